"""Workflows: rules kept as data that run plugins' actions when something happens to an
incident, queued with the change, run once, retried and recorded on the timeline."""

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
import pytest

from im import (ActionRequest, ActionResult, ConnectorError, DefaultRule, Severity, Trigger,
                WorkflowAction, hookimpl, incidents, secret)
from im.testing import (FakeClock, FakePlugin, FakeWebhookConnector, make_runtime, run_cli,
                        sql)
from im.workflows import RETRY_FOR, RUN_LEASE_SECONDS, run_queued


class RoomSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prefix: str = "inc"
    archive_on_close: bool = True


class NoticeSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    to: list[str]
    password: Annotated[str | None, secret("SMTP password")] = None


class Actions:
    """A plugin of two actions that record what they were asked, and fail on demand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, int]] = []
        self.failures: list[Exception] = []
        self.passwords: list[str | None] = []
        plugin = self

        class WarRoom(WorkflowAction):
            name = "chat.war_room"
            description = "Open a war room for the incident"
            Settings = RoomSettings
            defaults = (DefaultRule(name="war-room", trigger=Trigger.DECLARED,
                                    severities=[Severity.SEV1]),)

            def run(self, request: ActionRequest) -> ActionResult:
                plugin.calls.append((self.name, request.incident.id, request.rule,
                                     request.attempt))
                if plugin.failures:
                    raise plugin.failures.pop(0)
                channel = f"#{self.settings.prefix}-{request.incident.id.lower()}"
                return ActionResult(timeline=[f"War room {channel} created"])

            def describe(self, request: ActionRequest) -> str:
                return f"open #{self.settings.prefix}-{request.incident.id.lower()}"

        class Notice(WorkflowAction):
            name = "mail.notify"
            Settings = NoticeSettings
            defaults = (DefaultRule(name="management-notice", trigger=Trigger.DECLARED,
                                    severities=[Severity.SEV1, Severity.SEV2]),)

            @classmethod
            def default_settings(cls, runtime):
                return {"password": "env:SMTP_PASSWORD"}

            def run(self, request: ActionRequest) -> ActionResult:
                plugin.calls.append((self.name, request.incident.id, request.rule,
                                     request.attempt))
                plugin.passwords.append(self.settings.password)
                notified = ", ".join(self.settings.to)
                return ActionResult(timeline=[f"Management notified: {notified}"])

            def describe(self, request: ActionRequest) -> str:
                return f"mail {', '.join(self.settings.to)}"

        self.classes = [WarRoom, Notice]

    @hookimpl
    def register_workflow_actions(self, register):
        for action in self.classes:
            register(action)


@pytest.fixture
def actions():
    return Actions()


@pytest.fixture
def wf_runtime(tmp_path, clock, fake, actions):
    runtime = make_runtime(tmp_path / "home", plugins=[fake, actions], clock=clock,
                           user="alice")
    yield runtime
    runtime.store.close()


def im(runtime, *args):
    return run_cli(runtime, list(args))


def add_war_room(runtime, *extra):
    result = im(runtime, "workflow", "add", "sev1-war-room", "--on", "declared", "--severity",
                "SEV-1", "--action", "chat.war_room", *extra)
    assert result.exit_code == 0, result.stdout + result.stderr
    return result


def test_a_rule_is_added_listed_shown_and_removed(wf_runtime):
    assert add_war_room(wf_runtime).stdout == (
        "Added workflow sev1-war-room: when declared, if severity SEV-1: run chat.war_room\n")
    result = im(wf_runtime, "workflow", "add", "management", "--on", "declared", "--sev",
                "SEV-1", "--sev", "2", "--action", 'mail.notify={"to": ["cto@company.com",'
                ' "vp-eng@company.com"]}')
    assert result.exit_code == 0, result.stderr
    assert im(wf_runtime, "workflow", "list").stdout.splitlines() == [
        "Name           When      If                       Actions        State",
        "management     declared  severity SEV-1 or SEV-2  mail.notify    active",
        "sev1-war-room  declared  severity SEV-1           chat.war_room  active",
    ]
    assert im(wf_runtime, "workflow", "show", "management").stdout.splitlines() == [
        "Workflow: management (active)",
        "When: declared",
        "If: severity SEV-1 or SEV-2",
        "Actions:",
        '  1. mail.notify {"to": ["cto@company.com", "vp-eng@company.com"]}',
    ]
    listed = json.loads(im(wf_runtime, "workflow", "list", "--json").stdout)
    assert [(r["name"], r["trigger"], r["steps"]) for r in listed] == [
        ("management", "declared",
         [{"action": "mail.notify",
           "settings": {"to": ["cto@company.com", "vp-eng@company.com"]}}]),
        ("sev1-war-room", "declared", [{"action": "chat.war_room", "settings": {}}])]
    assert im(wf_runtime, "workflow", "remove", "management").stdout == (
        "Removed workflow management\n")
    assert [r[0] for r in sql(wf_runtime, "SELECT name FROM workflows")] == ["sev1-war-room"]


@pytest.mark.parametrize(("args", "error"), [
    (["--on", "exploded", "--action", "chat.war_room"],
     "Error: unknown trigger 'exploded' (one of: declared, severity_changed, acknowledged,"
     " resolved, closed, sla_breached, note_added)"),
    (["--on", "declared", "--action", "pager.page"],
     "Error: unknown action 'pager.page' (available: chat.war_room, mail.notify)"),
    (["--on", "declared", "--action", "mail.notify"],
     "Error: action mail.notify: Object missing required field `to`"),
    (["--on", "declared", "--action", 'chat.war_room={"prefix": 7}'],
     "Error: action chat.war_room: Expected `str`, got `int` - at `$.prefix`"),
    (["--on", "declared", "--action", "chat.war_room={not json"],
     "Error: --action chat.war_room: its settings are not JSON"),
    (["--on", "declared", "--sev", "SEV-9", "--action", "chat.war_room"],
     "Error: invalid severity 'SEV-9'; choose from SEV-1, SEV-2, SEV-3, SEV-4"),
])
def test_a_mistake_in_a_rule_is_said_when_it_is_saved(wf_runtime, args, error):
    result = im(wf_runtime, "workflow", "add", "bad", *args)
    assert result.exit_code != 0
    assert result.stderr.startswith(error), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sql(wf_runtime, "SELECT name FROM workflows") == []


def test_the_default_rules_of_the_installed_actions_are_offered_and_added_as_rules(
        wf_runtime, actions, monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    assert im(wf_runtime, "workflow", "defaults").stdout.splitlines() == [
        "Name               When      If                       Action         State",
        "management-notice  declared  severity SEV-1 or SEV-2  mail.notify    needs settings:"
        " to is required",
        "war-room           declared  severity SEV-1           chat.war_room  ready",
        "Add them with: im workflow defaults --add all (or --add NAME), giving settings with"
        " --settings 'NAME={...}'",
    ]
    # one that cannot be added stops them all, saying what to give
    refused = im(wf_runtime, "workflow", "defaults", "--add", "all")
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: default rule management-notice: mail.notify: Object missing required field"
        " `to`; give its settings with --settings 'management-notice={...}'\n")
    assert sql(wf_runtime, "SELECT name FROM workflows") == []

    added = im(wf_runtime, "workflow", "defaults", "--add", "all", "--settings",
               'management-notice={"to": ["cto@company.com"]}')
    assert added.exit_code == 0, added.stderr
    assert added.stdout.splitlines() == [
        "Added workflow management-notice: when declared, if severity SEV-1 or SEV-2: run"
        " mail.notify",
        "Added workflow war-room: when declared, if severity SEV-1: run chat.war_room"]
    # the action's own settings under the user's
    assert json.loads(im(wf_runtime, "workflow", "show", "management-notice", "--json"
                         ).stdout)["steps"] == [{"action": "mail.notify", "settings": {
                             "password": "env:SMTP_PASSWORD", "to": ["cto@company.com"]}}]
    assert im(wf_runtime, "workflow", "defaults").stdout.splitlines()[1:] == [
        "management-notice  declared  severity SEV-1 or SEV-2  mail.notify    added",
        "war-room           declared  severity SEV-1           chat.war_room  added"]
    again = im(wf_runtime, "workflow", "defaults", "--add", "war-room")
    assert again.stderr == ("Error: workflow war-room exists: `im workflow remove war-room`"
                            " first to add it again\n")

    # ordinary rules from then on: they run, and can be changed
    sev1 = incidents.declare(wf_runtime, title="Payment API Down", severity="SEV-1",
                             services=["payments"])
    sev2 = incidents.declare(wf_runtime, title="Slow checkout", severity="SEV-2",
                             services=["payments"])
    run_queued(wf_runtime)
    assert sorted(call[:3] for call in actions.calls) == [
        ("chat.war_room", sev1.id, "war-room"), ("mail.notify", sev1.id, "management-notice"),
        ("mail.notify", sev2.id, "management-notice")]
    changed = im(wf_runtime, "workflow", "add", "war-room", "--replace", "--on", "declared",
                 "--sev", "SEV-1", "--sev", "SEV-2", "--action", "chat.war_room")
    assert changed.exit_code == 0, changed.stderr


@pytest.mark.parametrize(("args", "error"), [
    (["--add", "nope"], "Error: no default rule named nope (offered: management-notice,"
                        " war-room)"),
    (["--settings", "war-room"], "Error: --settings 'war-room': give NAME={JSON}"),
    (["--settings", "war-room=[1]"], "Error: --settings war-room: a JSON object is needed"),
    (["--settings", "war-room={x"], "Error: --settings war-room: not JSON"),
    (["--add", "war-room", "--settings", 'war-room={"prefix": 7}'],
     "Error: default rule war-room: chat.war_room: Expected `str`, got `int` - at `$.prefix`"),
])
def test_a_mistake_in_adding_default_rules_is_one_line_and_adds_nothing(wf_runtime, args,
                                                                         error):
    result = im(wf_runtime, "workflow", "defaults", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(error), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sql(wf_runtime, "SELECT name FROM workflows") == []


def test_a_name_taken_is_refused_unless_replaced(wf_runtime):
    add_war_room(wf_runtime)
    again = im(wf_runtime, "workflow", "add", "sev1-war-room", "--on", "resolved", "--action",
               "chat.war_room")
    assert again.exit_code != 0 and "exists" in again.stderr
    replaced = add_war_room(wf_runtime, "--replace")
    assert replaced.stdout.startswith("Replaced workflow sev1-war-room")


def test_a_matching_declare_runs_the_action_once_and_says_so(wf_runtime, actions):
    add_war_room(wf_runtime)
    result = im(wf_runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down",
                "--service", "payments")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Declared INC-1: SEV-1 Payment API Down (payments)",
        "  workflow sev1-war-room: War room #inc-inc-1 created",
    ]
    assert actions.calls == [("chat.war_room", "INC-1", "sev1-war-room", 1)]
    lines = [(e.kind, e.text, e.actor, e.system) for e in wf_runtime.store.timeline("INC-1")]
    assert lines[-1] == ("workflow", "War room #inc-inc-1 created", "sev1-war-room", "chat")
    # run again, by a server or another command: nothing runs twice
    assert run_queued(wf_runtime).done == 0
    assert len(actions.calls) == 1
    [run] = wf_runtime.store.read().workflow_runs.find()
    assert (run.status, run.attempts, run.trigger) == ("done", 1, "declared")


def test_an_incident_that_does_not_match_runs_nothing(wf_runtime, actions):
    add_war_room(wf_runtime)
    result = im(wf_runtime, "declare", "--sev", "SEV-3", "--title", "Slow reports",
                "--service", "reports")
    assert result.stdout == "Declared INC-1: SEV-3 Slow reports (reports)\n"
    assert actions.calls == []
    assert wf_runtime.store.read().workflow_runs.find() == []


def test_an_outage_queues_the_action_and_a_later_run_does_it_once(wf_runtime, actions, clock):
    add_war_room(wf_runtime)
    actions.failures.append(ConnectorError("chat is down (503)", retryable=True))
    result = im(wf_runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down",
                "--service", "payments")
    assert result.exit_code == 0
    assert "1 workflow action(s) queued; `im serve` will run them" in result.stderr
    [run] = wf_runtime.store.read().workflow_runs.find()
    assert (run.status, run.last_error) == ("pending", "chat is down (503)")
    assert run_queued(wf_runtime).done == 0  # not due before its backoff
    clock.advance(seconds=10)
    assert run_queued(wf_runtime).done == 1
    assert [c[3] for c in actions.calls] == [1, 2]
    texts = [e.text for e in wf_runtime.store.timeline("INC-1") if e.kind == "workflow"]
    assert texts == ["War room #inc-inc-1 created"]


def test_an_action_failing_for_a_day_is_set_aside_and_said_on_the_timeline(wf_runtime, actions,
                                                                         clock):
    add_war_room(wf_runtime)
    actions.failures.extend(ConnectorError("chat is down (503)", retryable=True)
                            for _ in range(1000))
    im(wf_runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down", "--service",
       "payments")
    queued = clock()
    for _ in range(1000):  # what `im serve` does, each time the run is due
        [run] = wf_runtime.store.read().workflow_runs.find()
        if run.status != "pending":
            break
        clock.now = max(clock.now, run.next_attempt_at)
        run_queued(wf_runtime)
    assert run.status == "failed"
    # tried again for a day, at most ten minutes apart, and no longer
    assert RETRY_FOR <= clock() - queued < RETRY_FOR + timedelta(minutes=10)
    assert len(actions.calls) > RETRY_FOR / timedelta(minutes=10)
    texts = [e.text for e in wf_runtime.store.timeline("INC-1") if e.kind == "workflow"]
    assert texts == ["Workflow sev1-war-room: chat.war_room failed: chat is down (503) (still"
                     " failing a day after it was queued)"]


def test_an_action_refused_for_good_is_set_aside_and_said_on_the_timeline(wf_runtime, actions):
    add_war_room(wf_runtime)
    actions.failures.append(ConnectorError("channel name taken (name_taken)", retryable=False))
    result = im(wf_runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down",
                "--service", "payments")
    assert result.stdout == "Declared INC-1: SEV-1 Payment API Down (payments)\n"
    assert result.stderr == ("  ! sev1-war-room chat.war_room INC-1: channel name taken"
                             " (name_taken)\n")
    [run] = wf_runtime.store.read().workflow_runs.find()
    assert run.status == "failed"
    texts = [e.text for e in wf_runtime.store.timeline("INC-1") if e.kind == "workflow"]
    assert texts == ["Workflow sev1-war-room: chat.war_room failed: channel name taken"
                     " (name_taken)"]


def test_an_action_slower_than_its_claim_is_recorded_once(wf_runtime, actions, clock,
                                                           monkeypatch):
    add_war_room(wf_runtime)
    incidents.declare(wf_runtime, title="Payment API Down", severity="SEV-1",
                      services=["payments"])
    war_room = actions.classes[0]
    original = war_room.run

    def slow(self, request):
        if len(actions.calls) == 0:
            actions.calls.append(("slow", request.incident.id, request.rule, request.attempt))
            clock.advance(seconds=RUN_LEASE_SECONDS + 1)  # another worker takes it over
            assert run_queued(wf_runtime).done == 1
        return original(self, request)

    monkeypatch.setattr(war_room, "run", slow)
    assert run_queued(wf_runtime).done == 0
    texts = [e.text for e in wf_runtime.store.timeline("INC-1") if e.kind == "workflow"]
    assert texts == ["War room #inc-inc-1 created"]


def test_workflow_test_shows_what_would_run_without_running_it(wf_runtime, actions):
    add_war_room(wf_runtime)
    im(wf_runtime, "workflow", "add", "management", "--on", "declared", "--sev", "SEV-1",
       "--sev", "SEV-2", "--service", "payments", "--action", "chat.war_room",
       "--action", 'mail.notify={"to": ["cto@company.com"]}')
    incidents.declare(wf_runtime, title="Payment API Down", severity="SEV-2",
                      services=["payments"], push=False)
    assert im(wf_runtime, "workflow", "test", "management", "--incident", "INC-1"
              ).stdout.splitlines() == [
        "Workflow management for INC-1 (when declared, from im):",
        "  Would run:",
        "    1. chat.war_room: open #inc-inc-1",
        "    2. mail.notify: mail cto@company.com",
    ]
    assert im(wf_runtime, "workflow", "test", "sev1-war-room", "-i", "INC-1"
              ).stdout.splitlines() == [
        "Workflow sev1-war-room for INC-1 (when declared, from im):",
        "  Does not apply: INC-1 is SEV-2, not SEV-1",
        "  Would run nothing.",
    ]
    assert actions.calls == []  # declared with push=False: nothing queued, nothing run
    missing = im(wf_runtime, "workflow", "test", "nope", "--incident", "INC-1")
    assert missing.exit_code != 0
    assert missing.stderr.startswith("Error: no workflow named 'nope' (defined: management,"
                                     " sev1-war-room)")


def test_a_change_from_a_connector_triggers_a_rule_for_its_source(tmp_path, actions):
    clock = FakeClock(datetime.now(UTC))  # the fake remote dates its events by the wall clock
    plugin = FakePlugin(connector=FakeWebhookConnector)
    runtime = make_runtime(tmp_path / "home", plugins=[plugin, actions], clock=clock,
                           user="alice")
    config = {"api_key": "k-123456", "sync_direction": "bidirectional",
              "webhook_secret": plugin.remote.SECRET, "custom": {"project": "OPS"}}
    assert run_cli(runtime, ["connector", "add", "fake", "prod-fake", "--config",
                             json.dumps(config)]).exit_code == 0
    assert im(runtime, "workflow", "add", "remote-notes", "--on", "note_added", "--source",
              "prod-fake", "--action", "chat.war_room").exit_code == 0
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout slow", "--service", "web")
    im(runtime, "note", "INC-1", "looking at it")  # a note from im: not this rule's source
    from im.inbound import process_inbox

    plugin.remote.sent.clear()
    plugin.remote.change("F1", note="Rolled back the deploy")
    [(_headers, body)] = plugin.remote.sent
    runtime.store.store_inbox(connector="prod-fake", delivery_id="D1", event_type="note",
                              body=body, at=clock())
    assert process_inbox(runtime).processed == 1
    assert run_queued(runtime).done == 1
    assert [(c[0], c[2]) for c in actions.calls] == [("chat.war_room", "remote-notes")]


def test_a_rule_whose_action_is_no_longer_installed_queues_nothing(tmp_path, clock, fake,
                                                                   actions):
    installed = make_runtime(tmp_path / "home", plugins=[fake, actions], clock=clock)
    add_war_room(installed)
    installed.store.close()
    runtime = make_runtime(tmp_path / "home", plugins=[fake], clock=clock)
    assert im(runtime, "workflow", "list").stdout.splitlines()[1].endswith(
        "not installed: chat.war_room")
    result = im(runtime, "declare", "--sev", "SEV-1", "--title", "x", "--service", "api")
    assert result.exit_code == 0
    assert runtime.store.read().workflow_runs.find() == []


def test_the_same_step_is_queued_once_for_a_triggering_event(wf_runtime):
    add_war_room(wf_runtime)
    incident = incidents.declare(wf_runtime, title="x", severity="SEV-1", services=["api"])
    [event] = [e for e in wf_runtime.store.timeline(incident.id) if e.kind == "declared"]
    with wf_runtime.store.transaction() as tx:
        again = tx.workflow_runs.add(workflow="sev1-war-room", step=0, action="chat.war_room",
                                     settings={}, incident_id=incident.id, trigger="declared",
                                     event_id=event.id, at=wf_runtime.clock())
    assert again == 0
    assert len(wf_runtime.store.read().workflow_runs.find()) == 1


def test_secrets_in_an_actions_settings_are_never_shown_and_env_is_read_when_it_runs(
        wf_runtime, actions, monkeypatch):
    for name, password in (("literal", "hunter2"), ("from-env", "env:SMTP_PASSWORD")):
        result = im(wf_runtime, "workflow", "add", name, "--on", "declared", "--action",
                    "mail.notify=" + json.dumps({"to": ["cto@company.com"],
                                                 "password": password}))
        assert result.exit_code == 0, result.stderr
    shown = (im(wf_runtime, "workflow", "show", "literal").stdout
             + im(wf_runtime, "workflow", "list", "--json").stdout
             + im(wf_runtime, "workflow", "show", "from-env", "--json").stdout)
    assert "hunter2" not in shown
    assert '"password": "********"' in shown and '"password": "env:SMTP_PASSWORD"' in shown
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    im(wf_runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "api")
    # here the variable is not set: the literal one ran, the other waits for a process that
    # has it
    assert actions.passwords == ["hunter2"]
    monkeypatch.setenv("SMTP_PASSWORD", "from-the-environment")
    wf_runtime.clock.advance(seconds=10)
    assert run_queued(wf_runtime).done == 1
    assert actions.passwords == ["hunter2", "from-the-environment"]
    runs = im(wf_runtime, "workflow", "show", "literal", "--json").stdout
    assert "hunter2" not in runs


def test_im_plugins_says_which_actions_a_plugin_adds(wf_runtime):
    listed = im(wf_runtime, "plugins").stdout
    assert "  workflow actions: chat.war_room, mail.notify\n" in listed
    described = json.loads(im(wf_runtime, "plugins", "--json").stdout)
    [entry] = [p for p in described["plugins"] if p.get("workflow_actions")]
    assert entry["workflow_actions"] == ["chat.war_room", "mail.notify"]
    # every plugin has the same keys: one that adds no action says so with an empty list
    assert all(p["workflow_actions"] == [] for p in described["plugins"] if p is not entry)


def test_im_serve_runs_an_action_after_its_change_reached_the_connected_systems(
        wf_runtime, actions, fake, clock):
    """`im serve` runs actions and delivers changes in loops of their own: a run waits while
    the changes of its incident queued with it are being delivered or not tried yet (the war
    room links the chat message and the paging incident that the declare makes), for up to
    half a minute; a delivery that failed holds it no longer."""
    from im.sync import deliver_outbox
    from im.workflows import DELIVERIES_FIRST_SECONDS

    im(wf_runtime, "connector", "add", "fake", "prod-fake", "--config",
       json.dumps({"api_key": "k-123456", "sync_direction": "outbound"}))
    add_war_room(wf_runtime)
    wait = DELIVERIES_FIRST_SECONDS
    incidents.declare(wf_runtime, title="Payment API Down", severity="SEV-1",
                      services=["payments"])
    assert run_queued(wf_runtime, deliveries_first=wait).done == 0  # the declare waits
    assert actions.calls == []
    deliver_outbox(wf_runtime)
    assert run_queued(wf_runtime, deliveries_first=wait).done == 1
    # the remote down: its delivery tried and failed, the action goes ahead
    fake.remote.fault = "down"
    incidents.declare(wf_runtime, title="Checkout down", severity="SEV-1",
                      services=["payments"])
    deliver_outbox(wf_runtime)
    [row] = wf_runtime.store.outbox(incident_id="INC-2")
    assert (row.status.value, row.attempts) == ("pending", 1)
    assert run_queued(wf_runtime, deliveries_first=wait).done == 1
    # a delivery never tried (no loop got to it) holds the action half a minute, no more
    incidents.declare(wf_runtime, title="Search down", severity="SEV-1", services=["search"])
    assert run_queued(wf_runtime, deliveries_first=wait).done == 0
    clock.advance(seconds=wait + 1)
    assert run_queued(wf_runtime, deliveries_first=wait).done == 1
    assert [call[1] for call in actions.calls] == ["INC-1", "INC-2", "INC-3"]
    # a command delivers first itself, then runs what is due without waiting
    incidents.declare(wf_runtime, title="Login down", severity="SEV-1", services=["auth"])
    assert run_queued(wf_runtime).done == 1