"""SLA timers, driven by a controllable clock: start, stop, re-target, breach once."""

import json

from im import hookimpl, incidents
from im.models import Action, Origin
from im.testing import make_runtime, run_cli


class Breaches:
    def __init__(self):
        self.seen = []

    @hookimpl
    def sla_breached(self, incident, timer):
        self.seen.append((incident.id, timer.kind, timer.target_seconds))


def im(runtime, *args):
    return run_cli(runtime, list(args))


def test_default_targets_and_states(runtime, clock):
    incidents.declare(runtime, title="API down", severity="SEV-1", services=["api"])
    clock.advance(minutes=10)
    assert im(runtime, "sla").stdout.splitlines() == [
        "Incident  Severity  Timer    Due               State     Title",
        "INC-1     SEV-1     ack      2025-08-23 14:45  5m left   API down",
        "INC-1     SEV-1     resolve  2025-08-23 15:30  50m left  API down",
        "(targets from defaults)",
    ]
    incidents.transition(runtime, "INC-1", Action.ACK)
    shown = im(runtime, "show", "INC-1").stdout
    assert "SLA:          ack met (10m), resolve 50m left" in shown


def test_breach_is_notified_once_everywhere(tmp_path, clock):
    from im.testing import FakePlugin

    breaches = Breaches()
    fake = FakePlugin()
    runtime = make_runtime(tmp_path, plugins=[fake, breaches], clock=clock)
    run_cli(runtime, ["connector", "add", "fake", "f", "--config", '{"api_key": "k"}'])
    im(runtime, "declare", "--sev", "SEV-2", "--title", "DB slow", "--service", "db,api")
    clock.advance(minutes=29)
    assert im(runtime, "sla", "check").stdout == "No new SLA breaches.\n"
    clock.advance(minutes=2)
    result = im(runtime, "sla", "check")
    assert result.stdout.splitlines()[0] == (
        "INC-1: SLA breached, not acknowledged within 30m (SEV-2)")
    assert im(runtime, "sla", "check").stdout == "No new SLA breaches.\n"
    assert breaches.seen == [("INC-1", "ack", 1800.0)]
    [event] = [e for e in runtime.store.timeline("INC-1") if e.kind == "sla_breached"]
    assert event.text == "SLA breached: not acknowledged within 30m (SEV-2, due 2025-08-23 15:00)"
    # a note on every linked remote incident
    notes = [r["notes"] for r in fake.remote.incidents.values()]
    assert notes == [[event.text], [event.text]]
    assert "ack breached 1m ago" in im(runtime, "list").stdout


def test_acks_from_either_side_stop_the_timer_and_reopen_restarts(runtime, clock):
    incidents.declare(runtime, title="x", severity="SEV-3", services=["web"],
                      origin=Origin(actor="john", system="prod-pagerduty"))
    clock.advance(minutes=30)
    incidents.transition(runtime, "INC-1", Action.ACK,
                         origin=Origin(actor="john", system="prod-pagerduty"))
    clock.advance(hours=1)
    incidents.transition(runtime, "INC-1", Action.RESOLVE)
    assert "No SLA timers running" in im(runtime, "sla").stdout
    clock.advance(hours=30)
    incidents.transition(runtime, "INC-1", Action.REOPEN)
    rows = json.loads(im(runtime, "sla", "--json").stdout)
    assert [(r["kind"], r["state"]) for r in rows] == [("ack", "ack 2h left"),
                                                        ("resolve", "resolve 1d left")]
    assert im(runtime, "sla", "check").stdout == "No new SLA breaches.\n"


def test_severity_change_retargets_running_timers(runtime, clock):
    incidents.declare(runtime, title="x", severity="SEV-3", services=["web"])
    clock.advance(minutes=20)
    assert im(runtime, "severity", "--incident", "INC-1", "--sev", "SEV-1").stdout == (
        "INC-1 is now SEV-1\n")
    assert im(runtime, "sla", "check").stdout == (
        "INC-1: SLA breached, not acknowledged within 15m (SEV-1)\n")
    same = im(runtime, "severity", "--incident", "INC-1", "--sev", "SEV-1")
    assert (same.exit_code, same.stderr) == (1, "Error: INC-1 is SEV-1 already\n")


def test_policy_from_settings_file_and_bad_policies(tmp_path, clock):
    (tmp_path / "settings.json").write_text(json.dumps(
        {"sla": {"SEV-2": {"ack": "5m", "resolve": "1h"}}}))
    runtime = make_runtime(tmp_path, clock=clock)
    incidents.declare(runtime, title="x", severity="SEV-2", services=["web"])
    assert "ack 5m left" in im(runtime, "list").stdout
    (tmp_path / "settings.json").write_text(json.dumps({"sla": {"SEV-9": {"ack": "5m"}}}))
    broken = make_runtime(tmp_path, clock=clock)
    result = im(broken, "sla")
    assert result.stderr == ("Error: settings sla: unknown severity 'SEV-9'; use SEV-1 to"
                             " SEV-4\n")
