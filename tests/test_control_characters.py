"""Control characters from outside (a webhook's actor, a remote URL, a custom field, a title
given through the API) never reach a terminal or a report: an OSC 52 clipboard write, an OSC 8
hyperlink or a carriage return would act on the reader's terminal."""

from datetime import timedelta

import pytest

from im import incidents
from im.models import Origin
from im.testing import run_cli

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"  # writes "rm -rf ~" to the clipboard
OSC8 = "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"
HOSTILE = (OSC52, OSC8, "\r", "\x9b", "\x00", "\x7f")


def seen(text: str) -> list[str]:
    """The hostile sequences' control characters found in `text`."""
    return [c for c in set(text.replace("\r\n", "\n")) if c in "\x1b\x07\r\x9b\x00\x7f"]


@pytest.fixture
def hostile(runtime, clock):
    incident = incidents.declare(
        runtime, title=f"API down{OSC52}", severity="SEV-2", services=["api"],
        description=f"line one\r\nline two{OSC8}", fields={"ticket": f"T-1{OSC52}"},
        origin=Origin(actor=f"alice{OSC52}"))
    runtime.store.add_timeline(
        incident.id, at=clock.now + timedelta(minutes=1), kind="note",
        text=f"Looking{OSC8}\rAll fine", actor=f"John Doe{OSC52}", system="ops")
    return incident


@pytest.mark.parametrize("form", ["md", "html", "csv"])
def test_reports_hold_no_control_characters(runtime, hostile, clock, form):
    day = f"{clock.now:%Y-%m-%d}"
    result = run_cli(runtime, ["report", "--start", day, "--end", day, "--format", form,
                               "--output", "-"])
    assert result.exit_code == 0, result.output
    assert seen(result.stdout) == []
    assert "John Doe" in result.stdout or form == "csv"  # the text itself stays


def test_list_show_and_timeline_print_no_control_characters(runtime, hostile):
    for args in (["list"], ["show", hostile.id], ["timeline", hostile.id]):
        result = run_cli(runtime, args)
        assert result.exit_code == 0, result.output
        assert seen(result.stdout) == [], (args, result.stdout)
    assert "API down ]52;c;cm0gLXJmIH4=" in run_cli(runtime, ["list"]).stdout
    for brief in ([], ["--brief"]):
        timeline = run_cli(runtime, ["timeline", hostile.id, *brief]).stdout
        assert "Looking]8;;https://evil.example\\click]8;;\\All fine" in timeline
        assert seen(timeline) == []




def test_a_remote_error_with_control_characters_reaches_no_terminal(runtime, fake):
    """The remote system's words (an error answer) show in declare, sync, status and logs."""
    from im.errors import ConnectorError

    run_cli(runtime, ["connector", "add", "fake", "f", "--config", '{"api_key": "k"}'])
    fake.remote.failures.append(ConnectorError(f"refused{OSC52}\rforged", retryable=True))
    declared = run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "x", "--service", "db"])
    fake.remote.failures.append(ConnectorError(f"again{OSC8}", retryable=True))
    synced = run_cli(runtime, ["connector", "sync", "f"])
    status = run_cli(runtime, ["connector", "status", "f"])
    health = run_cli(runtime, ["connector", "health", "f"])
    logs = run_cli(runtime, ["logs", "--limit", "50"])
    for result in (declared, synced, status, health, logs):
        assert seen(result.stdout + result.stderr) == [], result.output
    assert "refused]52;c;cm0gLXJmIH4=forged" in declared.stderr
    assert "Last Error: again]8;;https://evil.example" in status.stdout
