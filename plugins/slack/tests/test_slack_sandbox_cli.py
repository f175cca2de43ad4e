"""`im slack sandbox`: its lines once it accepts connections, a clean exit on Ctrl-C and
SIGTERM, and its options."""

import re
import signal
import subprocess
import sys

import httpx
import pytest

# The group under a bare Typer root, as the im CLI's register_commands hook adds it.
ROOT = (
    "import typer\n"
    "from im_slack.commands import add_commands\n"
    "app = typer.Typer()\n"
    "add_commands(app)\n"
    "app()\n"
)
LINE = re.compile(r"^Slack sandbox listening on (http://127\.0\.0\.1:\d+)$")


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ROOT, "slack", "sandbox", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serves_and_stops_cleanly(stop_signal):
    process = start("--port", "0", "--token", "xoxb-cli", "--signing-secret", "s3cret",
                    "--seed", "none", "--user", "Pat Doe <pat@company.com>",
                    "--scope", "users:read.email")
    try:
        first = process.stdout.readline().rstrip("\n")
        match = LINE.match(first)
        assert match, first + process.stderr.read()
        url = match.group(1)
        assert process.stdout.readline() == f"Web API: {url}/api/  bot token: xoxb-cli\n"
        headers = {"Authorization": "Bearer xoxb-cli"}
        found = httpx.get(f"{url}/api/users.lookupByEmail", headers=headers,
                          params={"email": "pat@company.com"}).json()
        assert (found["user"]["name"], found["user"]["real_name"]) == ("pat", "Pat Doe")
        refused = httpx.post(f"{url}/api/chat.postMessage", headers=headers,
                             json={"channel": "incidents", "text": "x"}).json()
        assert refused["error"] == "missing_scope"
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0
    assert out == "" and err == ""  # the given signing secret is never printed


def test_a_new_token_and_secret_are_printed():
    process = start("--port", "0")
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    finally:
        process.kill()
    assert re.match(r"^Web API: http://\S+/api/  bot token: xoxb-sandbox-[0-9a-f]{24}$",
                    lines[1].rstrip())
    assert re.match(r"^Signing secret: [0-9a-f]{32}$", lines[2].rstrip())


def test_the_command_is_registered_by_the_plugin(tmp_path):
    import im_slack
    from im.testing import make_runtime, run_cli

    runtime = make_runtime(tmp_path, plugins=[im_slack])
    result = run_cli(runtime, ["slack", "--help"])
    assert result.exit_code == 0, result.output
    assert "sandbox" in result.stdout and "Slack tools" in result.stdout
    # the plugin registers its connector type and workflow actions besides the command
    assert "slack" in runtime.connector_types
    assert {"slack.war_room", "slack.archive_war_room"} <= set(runtime.workflow_actions)
