"""The incident lifecycle in the core, checked in the database."""

import json

import pytest

from im import incidents
from im.errors import InvalidInputError, NotFoundError, TransitionError
from im.models import Action, Origin, Severity, Status
from im.testing import sql


def test_declare_writes_incident_services_and_timeline(runtime, clock):
    incident = incidents.declare(runtime, title="Database cluster failure", severity="SEV-1",
                                 services=["database,api", "payments", "api"],
                                 description="Primary down", fields={"env": "prod"})
    assert incident.id == "INC-1"
    assert incident.services == ["database", "api", "payments"]
    assert incident.status is Status.OPEN
    assert incident.created_at == clock.now
    rows = sql(runtime, "SELECT service FROM incident_services ORDER BY position")
    assert [r[0] for r in rows] == ["database", "api", "payments"]
    [event] = runtime.store.timeline("INC-1")
    assert (event.kind, event.actor, event.system) == ("declared", "alice", "im")
    assert event.text == "Incident declared: SEV-1 Database cluster failure (database, api, payments)"
    second = incidents.declare(runtime, title="x", severity=Severity.SEV4, services=["web"])
    assert second.id == "INC-2"


def test_lifecycle_sets_status_times_and_timeline(runtime, clock):
    incidents.declare(runtime, title="API down", severity="SEV-2", services=["api"])
    clock.advance(minutes=3)
    acked = incidents.transition(runtime, "INC-1", Action.ACK, note="Investigating")
    assert acked.status is Status.MITIGATED and acked.mitigated_at == clock.now
    clock.advance(minutes=10)
    resolved = incidents.transition(runtime, "inc-1", Action.RESOLVE, note="Fixed")
    assert resolved.status is Status.RESOLVED and resolved.resolved_at == clock.now
    closed = incidents.transition(runtime, "1", Action.CLOSE)
    assert closed.status is Status.CLOSED
    reopened = incidents.transition(runtime, "INC-1", Action.REOPEN, note="Back again")
    assert reopened.status is Status.OPEN
    assert reopened.resolved_at is None and reopened.closed_at is None
    assert reopened.reopened_at == clock.now
    kinds = [e.kind for e in runtime.store.timeline("INC-1")]
    assert kinds == ["declared", "acknowledged", "resolved", "closed", "reopened"]
    texts = [e.text for e in runtime.store.timeline("INC-1")]
    assert texts[1] == "Acknowledged by alice: Investigating"


def test_closing_an_open_incident_resolves_it(runtime, clock):
    incidents.declare(runtime, title="x", severity="SEV-3", services=["web"])
    closed = incidents.transition(runtime, "INC-1", Action.CLOSE)
    assert closed.resolved_at == clock.now and closed.closed_at == clock.now


@pytest.mark.parametrize("steps, action, message", [
    ([Action.RESOLVE, Action.CLOSE], Action.RESOLVE,
     "cannot resolve INC-1: it is closed; from closed you can reopen"),
    ([Action.ACK], Action.ACK,
     "cannot ack INC-1: it is mitigated; from mitigated you can resolve, close"),
    ([], Action.REOPEN, "cannot reopen INC-1: it is open; from open you can ack, resolve, close"),
])
def test_illegal_transitions_name_the_valid_choices(runtime, steps, action, message):
    incidents.declare(runtime, title="x", severity="SEV-3", services=["web"])
    for step in steps:
        incidents.transition(runtime, "INC-1", step)
    before = runtime.store.get_incident("INC-1")
    with pytest.raises(TransitionError) as error:
        incidents.transition(runtime, "INC-1", action)
    assert str(error.value) == message
    assert runtime.store.get_incident("INC-1") == before


def test_bad_input(runtime):
    with pytest.raises(InvalidInputError, match="choose from SEV-1, SEV-2, SEV-3, SEV-4"):
        incidents.declare(runtime, title="x", severity="SEV-5", services=["a"])
    with pytest.raises(InvalidInputError, match="at least one service"):
        incidents.declare(runtime, title="x", severity="SEV-1", services=[" , "])
    with pytest.raises(InvalidInputError, match="a title is required"):
        incidents.declare(runtime, title="  ", severity="SEV-1", services=["a"])
    with pytest.raises(InvalidInputError, match="a title is required"):
        incidents.declare(runtime, title="\x00\x1b", severity="SEV-1", services=["a"])
    with pytest.raises(InvalidInputError, match="invalid service name"):
        incidents.declare(runtime, title="x", severity="SEV-1", services=["bad name"])
    with pytest.raises(NotFoundError, match="no incident INC-7"):
        incidents.get(runtime, "INC-7")
    with pytest.raises(InvalidInputError, match="write INC-<number>"):
        incidents.get(runtime, "banana")
    assert runtime.store.list_incidents() == []


def test_severity_spellings():
    assert incidents.parse_severity("sev1") is Severity.SEV1
    assert incidents.parse_severity("2") is Severity.SEV2
    assert incidents.parse_severity(" SEV-4 ") is Severity.SEV4


def test_notes_and_assignment_keep_origin(runtime):
    incidents.declare(runtime, title="x", severity="SEV-3", services=["web"])
    incidents.add_note(runtime, "INC-1", "Status update",
                       origin=Origin(actor="john.doe@company.com", system="prod-paging"))
    incident = incidents.assign(runtime, "INC-1", "jane.smith@company.com")
    assert incident.assignee == "jane.smith@company.com"
    note, assigned = runtime.store.timeline("INC-1")[1:]
    assert (note.text, note.actor, note.system) == (
        "Status update", "john.doe@company.com", "prod-paging")
    assert assigned.data == {"assignee": "jane.smith@company.com", "previous": None}


def test_list_filters(runtime):
    incidents.declare(runtime, title="a", severity="SEV-1", services=["api", "db"])
    incidents.declare(runtime, title="b", severity="SEV-2", services=["web"])
    incidents.declare(runtime, title="c", severity="SEV-2", services=["db"])
    incidents.transition(runtime, "INC-3", Action.ACK)
    store = runtime.store
    assert [i.id for i in store.list_incidents()] == ["INC-3", "INC-2", "INC-1"]
    assert [i.id for i in store.list_incidents(services=["db"])] == ["INC-3", "INC-1"]
    assert [i.id for i in store.list_incidents(severities=[Severity.SEV2])] == ["INC-3", "INC-2"]
    assert [i.id for i in store.list_incidents(statuses=[Status.MITIGATED])] == ["INC-3"]


def test_service_names_are_one_whatever_their_case(runtime):
    from im.testing import run_cli

    declared = run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "a", "--service",
                                 "API,api,Web"])
    assert declared.stdout == "Declared INC-1: SEV-2 a (api, web)\n"
    incidents.declare(runtime, title="b", severity="SEV-3", services=["Api"])
    assert runtime.store.get_incident("INC-2").services == ["api"]
    rows = sql(runtime,
               "SELECT number, service FROM incident_services ORDER BY number, position")
    assert [tuple(row) for row in rows] == [(1, "api"), (1, "web"), (2, "api")]
    for spelling in ("api", "API", "Api"):
        assert [i.id for i in runtime.store.list_incidents(
            services=incidents.parse_services([spelling]))] == ["INC-2", "INC-1"]
        listed = run_cli(runtime, ["list", "--service", spelling, "--json"])
        assert [i["id"] for i in json.loads(listed.stdout)] == ["INC-2", "INC-1"]


class Recorder:
    def __init__(self):
        self.seen = []

    from im import hookimpl

    @hookimpl
    def incident_changed(self, incident, event, runtime):
        self.seen.append((incident.id, incident.status.value, event.kind))


class Broken:
    from im import hookimpl

    @hookimpl
    def incident_changed(self, incident):
        raise RuntimeError("notifier down")


def test_incident_changed_is_announced_after_commit_and_survives_broken_plugins(tmp_path):
    from im.testing import make_runtime

    recorder = Recorder()
    runtime = make_runtime(tmp_path, plugins=[Broken(), recorder])
    incidents.declare(runtime, title="x", severity="SEV-2", services=["db"])
    incidents.transition(runtime, "INC-1", Action.ACK)
    incidents.add_note(runtime, "INC-1", "hello")
    assert recorder.seen == [("INC-1", "open", "declared"), ("INC-1", "mitigated", "acknowledged"),
                             ("INC-1", "mitigated", "note")]


def test_control_characters_never_reach_what_people_read(runtime):
    made = incidents.declare(runtime, title="Disk\x00 full\r\n on db1\x1b[31m",
                             severity="SEV-2", services=["db"], description="a\x00b\nc")
    assert (made.title, made.description) == ("Disk full on db1 [31m", "ab\nc")
    note = incidents.add_note(runtime, made.id, "line 1\n\tline 2\x07")
    assert note.text == "line 1\n\tline 2"
