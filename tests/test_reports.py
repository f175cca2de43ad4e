"""`im report`: the figures of a known month, every format's content, includes and errors.

The data set (August 2025, report made 2025-09-01 12:00 UTC; SLA: SEV-1 ack 10m from the
`ops` connector's sla_mapping, everything else the documented defaults):

    INC-1  2025-07-31 23:59  SEV-1  outside the period
    INC-2  08-03 09:00  SEV-1 api     alice acks +4m, resolved +50m        met / met
    INC-3  08-03 12:00  SEV-1 db      assigned erin +1m, escalated to bob +10m (from the
                                      connector), bob acks +12m, resolved +2h   breached / breached
    INC-4  08-10 08:00  SEV-1 api,db  alice acks +8m, resolved +40m        met / met
    INC-5  08-10 14:00  SEV-2 web     bob acks +20m, resolved +3h          met / met
    INC-6  08-15 06:00  SEV-4 web     never acknowledged, open             breached / breached
    INC-7  08-20 10:00  SEV-2 api     carol resolves +45m, no ack          breached / met
    INC-8  08-31 23:00  SEV-3 db      carol acks +1h, open                 met / pending
    INC-9  2025-09-01 00:00  SEV-3  outside the period

The `ops` connector (type `paging`) describes remote incidents: those whose stored data is
incomplete are fetched (INC-3's is complete; INC-5's fetch fails).
"""

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from im import incidents
from im.connectors import ConnectorSettings, InboundChange
from im.errors import ConnectorError
from im.hookspecs import hookimpl
from im.inbound import apply_change
from im.models import Action, Origin
from im.reports import (
    RemoteEvent,
    RemoteIncidentReport,
    build_report,
    parse_period,
    render,
)
from im.reports.figures import percentile
from im.reports.tables import duration
from im.sync import deliver_outbox
from im.testing import FakeClock, FakeConnector, FakePlugin, FakeRemote, make_runtime, run_cli

START = datetime(2025, 8, 1, tzinfo=UTC)
NOW = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)


# -- a connector that can describe its remote incidents --------------------------------------


class PagingCustom(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sla_mapping: dict[str, dict[str, str]] = {}


class PagingSettings(ConnectorSettings, frozen=True, kw_only=True):
    api_key: str = "k"
    custom: PagingCustom = PagingCustom()


class PagingConnector(FakeConnector):
    type = "paging"
    Settings = PagingSettings

    def sla_policy(self, request):
        return self.settings.custom.sla_mapping or None

    def describe_remote(self, request):
        remote = self.remote
        remote.calls.append(("describe", request.incident.id, request.link.remote_id))
        described = remote.described.get(request.link.remote_id)
        if isinstance(described, Exception):
            raise described
        if described is None:
            raise ConnectorError(f"no remote incident {request.link.remote_id}")
        return described


class PagingPlugin:
    def __init__(self):
        self.remote = FakeRemote()
        self.remote.described = {}

    @hookimpl
    def register_connectors(self, register):
        register(type("PagingConnector", (PagingConnector,), {"remote": self.remote}))


def im(runtime, *args):
    return run_cli(runtime, list(args))


@pytest.fixture
def paging():
    return PagingPlugin()


@pytest.fixture
def clock():
    return FakeClock(START)


@pytest.fixture
def runtime(tmp_path, clock, paging):
    rt = make_runtime(tmp_path / "home", plugins=[FakePlugin(), paging], clock=clock,
                      user="alice")
    yield rt
    rt.store.close()


def at(day, hour, minute=0, month=8):
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


def declare(runtime, clock, when, sev, title, services):
    clock.now = when
    incident = incidents.declare(runtime, title=title, severity=sev, services=services,
                                 origin=Origin(actor="alice"))
    deliver_outbox(runtime)
    return incident.id


def act(runtime, clock, when, incident_id, action, actor):
    clock.now = when
    incidents.transition(runtime, incident_id, action, origin=Origin(actor=actor))
    deliver_outbox(runtime)


def link(runtime, incident_id, service):
    return next(li for li in runtime.store.links(incident_id) if li.service == service)


def event(when, kind, text="", actor=None, targets=()):
    return RemoteEvent(at=when, kind=kind, text=text or kind, actor=actor,
                       targets=list(targets))


def described(runtime, incident_id, service, events, status):
    found = link(runtime, incident_id, service)
    return found.remote_id, RemoteIncidentReport(
        remote_id=found.remote_id, number=found.remote_number, url=found.remote_url,
        status=status, title="remote", created_at=events[0].at, events=events)


@pytest.fixture
def august(runtime, clock, paging):
    """The data set above; returns the runtime."""
    config = {"api_key": "k", "sync_direction": "bidirectional",
              "custom": {"sla_mapping": {"SEV-1": {"ack": "10m"}}}}
    assert im(runtime, "connector", "add", "paging", "ops", "--config",
              json.dumps(config)).exit_code == 0
    ack, resolve = Action.ACK, Action.RESOLVE
    declare(runtime, clock, at(31, 23, 59, month=7), "SEV-1", "Before the period", ["api"])
    i2 = declare(runtime, clock, at(3, 9), "SEV-1", "API gateway down", ["api"])
    act(runtime, clock, at(3, 9, 4), i2, ack, "alice")
    act(runtime, clock, at(3, 9, 50), i2, resolve, "alice")
    i3 = declare(runtime, clock, at(3, 12), "SEV-1", "Database cluster failure", ["db"])
    clock.now = at(3, 12, 1)
    incidents.assign(runtime, i3, "erin", origin=Origin(actor="alice"))
    deliver_outbox(runtime)
    clock.now = at(3, 12, 10)
    ops = runtime.connector("ops")
    remote_db = link(runtime, i3, "db")
    assert apply_change(runtime, ops, InboundChange(
        remote_id=remote_db.remote_id, event_id="esc-1", action="escalated",
        occurred_at=clock.now, actor="Paging", text="Remote incident escalated; assigned to bob",
        assignee="bob")) == "applied"
    act(runtime, clock, at(3, 12, 12), i3, ack, "bob")
    act(runtime, clock, at(3, 14), i3, resolve, "bob")
    i4 = declare(runtime, clock, at(10, 8), "SEV-1", "Payments | <failing> & slow",
                 ["api", "db"])
    act(runtime, clock, at(10, 8, 8), i4, ack, "alice")
    act(runtime, clock, at(10, 8, 40), i4, resolve, "alice")
    i5 = declare(runtime, clock, at(10, 14), "SEV-2", "Checkout errors", ["web"])
    act(runtime, clock, at(10, 14, 20), i5, ack, "bob")
    act(runtime, clock, at(10, 17), i5, resolve, "bob")
    i6 = declare(runtime, clock, at(15, 6), "SEV-4", "=cmd|' /C calc'!A0", ["web"])
    i7 = declare(runtime, clock, at(20, 10), "SEV-2", "Login latency", ["api"])
    act(runtime, clock, at(20, 10, 45), i7, resolve, "carol")
    i8 = declare(runtime, clock, at(31, 23), "SEV-3", "Disk filling up", ["db"])
    act(runtime, clock, at(1, 0, month=9), i8, ack, "carol")
    declare(runtime, clock, at(1, 0, month=9), "SEV-3", "After the period", ["db"])

    # What the remote system tells when asked (remote times differ from im's).
    d = paging.remote.described
    for remote_id, report in [
        described(runtime, i2, "api", [
            event(at(3, 9, 1), "triggered", targets=["alice@example.com"]),
            event(at(3, 9, 1), "notified", targets=["alice@example.com"]),
            event(at(3, 9, 3), "acknowledged", actor="alice@example.com"),
            event(at(3, 9, 51), "resolved", actor="alice@example.com")], "resolved"),
        described(runtime, i4, "api", [
            event(at(10, 8), "triggered", targets=["alice@example.com"]),
            event(at(10, 8, 5), "acknowledged", actor="alice@example.com"),
            event(at(10, 8, 40), "resolved")], "resolved"),
        described(runtime, i4, "db", [
            event(at(10, 8), "triggered", targets=["alice@example.com"]),
            event(at(10, 8, 6), "escalated", "Escalated to level 2",
                  targets=["dan@example.com"]),
            event(at(10, 8, 9), "acknowledged", actor="dan@example.com"),
            event(at(10, 8, 45), "resolved")], "resolved"),
        described(runtime, i6, "web", [
            event(at(15, 6), "triggered", targets=["frank@example.com"]),
            event(at(15, 6), "notified", targets=["frank@example.com"])], "open"),
        described(runtime, i7, "api", [
            event(at(20, 10), "triggered", targets=["carol@example.com"]),
            event(at(20, 10, 45), "resolved", actor="carol@example.com")], "resolved"),
        described(runtime, i8, "db", [
            event(at(31, 23), "triggered", targets=["carol@example.com"]),
            event(at(1, 0, month=9), "acknowledged", actor="carol@example.com")],
            "acknowledged"),
    ]:
        d[remote_id] = report
    d[link(runtime, i5, "web").remote_id] = ConnectorError("remote incident is gone (404)")
    clock.now = NOW
    return runtime


def report_json(runtime, *options):
    result = im(runtime, "report", "--start", "2025-08-01", "--end", "2025-08-31", "--format",
                "json", "--output", "-", *options)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def row(rows, **match):
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


# -- the arithmetic ------------------------------------------------------------------------


def test_percentile_interpolates_between_closest_ranks():
    assert percentile([], 0.5) is None
    assert percentile([7], 0.9) == 7
    assert percentile([240, 720, 480], 0.5) == 480
    assert percentile([240, 720, 480], 0.9) == pytest.approx(672)
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile(list(range(1, 11)), 0.9) == pytest.approx(9.1)


def test_durations_read_like_people_say_them():
    assert [duration(s) for s in (None, 0, 45, 60, 450, 3600, 7380, 86400, 97200)] == [
        "-", "0s", "45s", "1m", "7m30s", "1h", "2h03m", "1d", "1d03h"]


# -- the figures of the known month --------------------------------------------------------


def test_incidents_of_the_period_only_with_their_measures(august):
    data = report_json(august)
    assert [i["id"] for i in data["incidents"]] == [
        "INC-2", "INC-3", "INC-4", "INC-5", "INC-6", "INC-7", "INC-8"]
    assert data["period_start"] == "2025-08-01" and data["period_end"] == "2025-08-31"
    assert data["generated_at"] == "2025-09-01T12:00:00Z"
    measures = {i["id"]: (i["time_to_acknowledge_seconds"], i["time_to_resolve_seconds"],
                          i["acknowledged_by"], i["ack_sla"], i["resolve_sla"])
                for i in data["incidents"]}
    assert measures == {
        "INC-2": (240, 3000, "alice", "met", "met"),
        "INC-3": (720, 7200, "bob", "breached", "breached"),
        "INC-4": (480, 2400, "alice", "met", "met"),
        "INC-5": (1200, 10800, "bob", "met", "met"),
        "INC-6": (None, None, None, "breached", "breached"),
        "INC-7": (2700, 2700, "carol", "breached", "met"),  # resolving was the first response
        "INC-8": (3600, None, "carol", "met", "pending"),
    }
    summary = data["summary"]
    assert summary["incidents"] == 7
    assert summary["by_severity"] == {"SEV-1": 3, "SEV-2": 2, "SEV-3": 1, "SEV-4": 1}
    assert summary["by_status"] == {"open": 1, "mitigated": 1, "resolved": 5, "closed": 0}
    assert (summary["acknowledged"], summary["resolved"], summary["unresolved"]) == (6, 5, 2)
    assert summary["acknowledge"] == {"count": 6, "median_seconds": 960, "p90_seconds": 3150}
    assert summary["resolve"] == {"count": 5, "median_seconds": 3000, "p90_seconds": 9360}
    assert summary["ack_compliance_percent"] == 57.14
    assert summary["resolve_compliance_percent"] == 66.67


def test_response_times_by_severity_and_service(august):
    data = report_json(august)
    by_severity = data["response_by_severity"]
    assert [(r["group"], r["measured_in"]) for r in by_severity] == [
        ("SEV-1", "im"), ("SEV-2", "im"), ("SEV-3", "im"), ("SEV-4", "im"), ("All", "im")]
    sev1 = row(by_severity, group="SEV-1")
    assert sev1["incidents"] == 3
    assert sev1["acknowledge"] == {"count": 3, "median_seconds": 480, "p90_seconds": 672}
    assert sev1["resolve"] == {"count": 3, "median_seconds": 3000, "p90_seconds": 6360}
    sev2 = row(by_severity, group="SEV-2")
    assert sev2["acknowledge"] == {"count": 2, "median_seconds": 1950, "p90_seconds": 2550}
    assert sev2["resolve"] == {"count": 2, "median_seconds": 6750, "p90_seconds": 9990}
    sev4 = row(by_severity, group="SEV-4")
    assert sev4["acknowledge"] == {"count": 0, "median_seconds": None, "p90_seconds": None}
    by_service = {r["group"]: r for r in data["response_by_service"]}
    assert list(by_service) == ["api", "db", "web"]
    assert by_service["api"]["acknowledge"] == {"count": 3, "median_seconds": 480,
                                                "p90_seconds": 2256}
    assert by_service["api"]["resolve"] == {"count": 3, "median_seconds": 2700,
                                            "p90_seconds": 2940}
    assert by_service["db"]["acknowledge"] == {"count": 3, "median_seconds": 720,
                                               "p90_seconds": 3024}
    assert by_service["db"]["resolve"] == {"count": 2, "median_seconds": 4800,
                                           "p90_seconds": 6720}
    assert by_service["web"]["incidents"] == 2
    assert by_service["web"]["acknowledge"]["median_seconds"] == 1200


def test_sla_compliance_per_severity_with_the_connectors_targets(august):
    data = report_json(august)
    targets = {t["severity"]: (t["ack_seconds"], t["resolve_seconds"], t["source"])
               for t in data["sla_targets"]}
    assert targets == {"SEV-1": (600, 3600, "default + ops"), "SEV-2": (1800, 14400, "default"),
                       "SEV-3": (7200, 86400, "default"), "SEV-4": (28800, 259200, "default")}
    sla = {r["severity"]: r for r in data["sla"] if r["measured_in"] == "im"}
    assert {k: (v["ack_met"], v["ack_breached"], v["ack_pending"], v["ack_compliance_percent"])
            for k, v in sla.items()} == {
        "SEV-1": (2, 1, 0, 66.67), "SEV-2": (1, 1, 0, 50.0), "SEV-3": (1, 0, 0, 100.0),
        "SEV-4": (0, 1, 0, 0.0), "All": (4, 3, 0, 57.14)}
    assert {k: (v["resolve_met"], v["resolve_breached"], v["resolve_pending"],
                v["resolve_compliance_percent"]) for k, v in sla.items()} == {
        "SEV-1": (2, 1, 0, 66.67), "SEV-2": (2, 0, 0, 100.0), "SEV-3": (0, 0, 1, None),
        "SEV-4": (0, 1, 0, 0.0), "All": (4, 2, 1, 66.67)}


def test_on_call_effectiveness_from_stored_data(august):
    data = report_json(august)
    responders = {r["responder"]: (r["acknowledgements"], r["acknowledge"]["median_seconds"],
                                   r["acknowledge"]["p90_seconds"], r["paged"],
                                   r["escalated_away"]) for r in data["responders"]}
    assert responders == {
        "alice": (2, 360, 456, 0, 0),
        "bob": (2, 960, 1152, 1, 0),
        "carol": (2, 3150, 3510, 0, 0),
        "erin": (0, None, None, 1, 1),
    }
    assert [r["responder"] for r in data["responders"]][:3] == ["bob", "alice", "carol"]
    assert data["escalations"] == [{
        "incident_id": "INC-3", "at": "2025-08-03T12:10:00Z", "system": "ops",
        "from": ["erin"], "to": ["bob"], "text": "Remote incident escalated; assigned to bob"}]
    assert data["summary"]["escalations"] == 1
    assert data["included"] == [] and data["notes"] == []


def test_include_by_type_uses_stored_links_and_fetches_what_is_missing(august, paging):
    data = report_json(august, "--include-paging")
    assert data["included"] == [{"name": "ops", "type": "paging", "linked": 8, "fetched": 6}]
    remote = {(i["id"], r["service"]): r for i in data["incidents"] for r in i["remote"]}
    # INC-3's stored data is complete (number, link, times, who was paged): never asked for.
    asked = sorted(call[1] for call in paging.remote.calls if call[0] == "describe")
    assert asked == ["INC-2", "INC-4", "INC-4", "INC-5", "INC-6", "INC-7", "INC-8"]
    inc3 = remote[("INC-3", "db")]
    assert (inc3["source"], inc3["paged"], inc3["time_to_acknowledge_seconds"],
            inc3["time_to_resolve_seconds"]) == ("stored", ["bob"], 720, 7200)
    assert inc3["number"] == link(august, "INC-3", "db").remote_number
    assert inc3["url"].startswith("https://fake.example/")
    inc2 = remote[("INC-2", "api")]
    assert (inc2["source"], inc2["created_at"], inc2["acknowledged_by"],
            inc2["time_to_acknowledge_seconds"], inc2["time_to_resolve_seconds"],
            inc2["paged"]) == ("fetched", "2025-08-03T09:01:00Z", "alice@example.com", 120,
                               3000, ["alice@example.com"])
    # The failed fetch leaves INC-5 to stored data, and says so.
    assert remote[("INC-5", "web")]["source"] == "stored"
    assert data["notes"] == [("ops: 1 remote incident(s) could not be fetched (#6: remote"
                             " incident is gone (404)); they are reported from stored data")]
    # Two remote incidents of INC-4: first created, first acknowledged, last resolved.
    inc4 = next(i for i in data["incidents"] if i["id"] == "INC-4")
    assert inc4["remote_times"] == [{
        "connector": "ops", "created_at": "2025-08-10T08:00:00Z",
        "acknowledged_at": "2025-08-10T08:05:00Z", "resolved_at": "2025-08-10T08:45:00Z",
        "time_to_acknowledge_seconds": 300, "time_to_resolve_seconds": 2700,
        "ack_sla": "met", "resolve_sla": "met"}]
    assert inc4["paged"] == ["alice@example.com", "dan@example.com"]
    assert inc4["escalations"] == [{
        "incident_id": "INC-4", "at": "2025-08-10T08:06:00Z", "system": "ops",
        "from": ["alice@example.com"], "to": ["dan@example.com"],
        "text": "Escalated to level 2"}]
    # Response times measured in both systems.
    sev1_remote = row(data["response_by_severity"], group="SEV-1", measured_in="ops")
    assert sev1_remote["acknowledge"] == {"count": 3, "median_seconds": 300, "p90_seconds": 636}
    assert sev1_remote["resolve"] == {"count": 3, "median_seconds": 3000, "p90_seconds": 6360}
    sla_remote = row(data["sla"], severity="SEV-1", measured_in="ops")
    assert (sla_remote["ack_met"], sla_remote["ack_breached"],
            sla_remote["ack_compliance_percent"]) == (2, 1, 66.67)
    responders = {r["responder"]: r for r in data["responders"]}
    assert responders["alice@example.com"]["escalated_away"] == 1
    assert responders["dan@example.com"]["paged"] == 1
    assert data["summary"]["escalations"] == 2
    assert data["summary"]["linked_remote_incidents"] == 8


def test_no_fetch_uses_stored_data_only(august, paging):
    data = report_json(august, "--include", "ops", "--no-fetch")
    assert not [c for c in paging.remote.calls if c[0] == "describe"]
    assert data["included"] == [{"name": "ops", "type": "paging", "linked": 8, "fetched": 0}]
    inc2 = next(r for i in data["incidents"] if i["id"] == "INC-2" for r in i["remote"])
    # im pushed the acknowledgement and resolution: the remote times are the delivery times.
    assert (inc2["time_to_acknowledge_seconds"], inc2["time_to_resolve_seconds"]) == (240, 3000)
    assert data["notes"] == []


def test_an_unreachable_connector_is_asked_once(august, paging):
    paging.remote.described.clear()
    first = link(august, "INC-2", "api").remote_id
    paging.remote.described[first] = ConnectorError("timed out", retryable=True)
    data = report_json(august, "--include-all")
    assert [c[1] for c in paging.remote.calls if c[0] == "describe"] == ["INC-2"]
    assert data["notes"] == [("ops: could not fetch remote incidents (timed out); they are"
                             " reported from stored data")]
    assert {r["source"] for i in data["incidents"] for r in i["remote"]} == {"stored"}


def test_include_names_what_it_cannot_find(august, runtime):
    bad = im(august, "report", "--start", "2025-08-01", "--end", "2025-08-31",
             "--include-nothing")
    assert (bad.exit_code, bad.stderr) == (1, ("Error: 'nothing' is neither a connector type"
                                              " (fake, paging) nor a configured connector"
                                              " (ops)\n"))
    none_configured = im(august, "report", "--start", "2025-08-01", "--end", "2025-08-31",
                         "--include-fake")
    assert none_configured.stderr == ("Error: no fake connector is configured; `im connector"
                                      " add fake NAME` adds one\n")
    typo = im(august, "report", "--start", "2025-08-01", "--end", "2025-08-31", "--fromat",
              "pdf")
    assert typo.exit_code == 1
    assert typo.stderr.startswith("Error: no such option: --fromat")


# -- formats -------------------------------------------------------------------------------


def test_csv_has_one_row_per_incident_with_its_measures(august):
    result = im(august, "report", "--start", "2025-08-01", "--end", "2025-08-31",
                "--format", "csv", "-o", "-", "--include-paging")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in rows] == ["INC-2", "INC-3", "INC-4", "INC-5", "INC-6", "INC-7",
                                       "INC-8"]
    inc3 = rows[1]
    assert {k: inc3[k] for k in ("severity", "status", "services", "declared_at",
                                 "time_to_acknowledge_seconds", "time_to_resolve_seconds",
                                 "ack_sla_target_seconds", "ack_sla", "resolve_sla",
                                 "escalations", "paged", "ops_time_to_acknowledge_seconds",
                                 "ops_ack_sla")} == {
        "severity": "SEV-1", "status": "resolved", "services": "db",
        "declared_at": "2025-08-03T12:00:00+00:00", "time_to_acknowledge_seconds": "720",
        "time_to_resolve_seconds": "7200", "ack_sla_target_seconds": "600",
        "ack_sla": "breached", "resolve_sla": "breached", "escalations": "1",
        "paged": "erin bob", "ops_time_to_acknowledge_seconds": "720",
        "ops_ack_sla": "breached"}
    assert rows[2]["title"] == "Payments | <failing> & slow"
    # A title a spreadsheet would run as a formula is defused.
    assert rows[4]["title"] == "'=cmd|' /C calc'!A0"
    assert rows[6]["time_to_resolve_seconds"] == "" and rows[6]["resolve_sla"] == "pending"


def test_markdown_holds_every_section_and_escapes_text(august):
    result = im(august, "report", "--start", "2025-08-01", "--end", "2025-08-31",
                "--format", "md", "-o", "-", "--include-paging")
    text = result.stdout
    assert text.startswith("# Incident report: 2025-08-01 to 2025-08-31\n")
    for heading in ("## Summary", "## Response times by severity", "## SLA compliance",
                    "## On-call effectiveness", "### Responders", "### Escalations",
                    "## Incidents per day", "## Incidents", "### INC-3: Database cluster failure",
                    "#### Linked remote incidents", "#### Timeline"):
        assert f"\n{heading}\n" in text, heading
    assert "| SEV-1 | im | 3 | 3 | 8m | 11m12s | 3 | 50m | 1h46m |" in text
    assert "| SEV-1 | ops | 3 | 3 | 5m | 10m36s | 3 | 50m | 1h46m |" in text
    assert "| All | im | 7 | 4 | 3 | 57.1% | 4 | 2 | 66.7% | 0 / 1 |" in text
    assert "| bob | 2 | 16m | 19m12s | 1 | 0 |" in text
    assert "| INC-3 | 2025-08-03 12:10 | ops | erin | bob |" in text
    assert "| 2025-08-03 | 2 | 0 | 0 | 0 | 2 |" in text
    assert "### INC-4: Payments \\| \\<failing\\> & slow" in text
    assert "| 2025-08-03 12:12:00 | Acknowledged by bob | bob | im |" in text
    assert "<https://fake.example/" in text
    assert "> Note: ops: 1 remote incident(s) could not be fetched" in text


def test_html_is_self_contained_and_escaped(august):
    result = im(august, "report", "--start", "2025-08-01", "--end", "2025-08-31",
                "--format", "html", "-o", "-", "--include-paging")
    page = result.stdout
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Incident report: 2025-08-01 to 2025-08-31</title>" in page
    assert page.count("<svg") == 3
    assert "Incidents per day by severity" in page
    assert "Time to acknowledge by severity" in page and "Time to resolve by severity" in page
    assert "Payments | &lt;failing&gt; &amp; slow" in page and "<failing>" not in page
    assert '<a href="#INC-4">INC-4</a>' in page and '<article id="INC-4">' in page
    assert "<td>57.1%</td>" in page
    assert '<td class="breached">breached</td>' in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_empty_period_says_so_in_every_format(runtime):
    expected = {"md": "No incidents were declared in this period.",
                "html": "No incidents were declared in this period."}
    for fmt in ("json", "csv", "md", "html"):
        result = im(runtime, "report", "--start", "2025-02-01", "--end", "2025-02-28",
                    "--format", fmt, "-o", "-")
        assert result.exit_code == 0
        assert result.stderr == (f"Wrote standard output ({fmt}): no incidents declared from"
                                 " 2025-02-01 to 2025-02-28\n")
        if fmt in expected:
            assert expected[fmt] in result.stdout
    data = report_json(runtime)
    assert data["incidents"] == [] and data["summary"]["incidents"] == 0
    assert len(data["daily"]) == 31 and {d["total"] for d in data["daily"]} == {0}
    csv_result = im(runtime, "report", "--start", "2025-02-01", "--end", "2025-02-28",
                    "--format", "csv", "-o", "-")
    assert csv_result.stdout.count("\n") == 1  # the header row only


def test_default_output_name_and_the_line_that_says_what_it_holds(august, tmp_path,
                                                                  monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = im(august, "report", "--start", "2025-08-01", "--end", "2025-08-31",
                "--format", "md", "--include-paging")
    assert result.exit_code == 0, result.output
    assert result.stdout == ("Wrote im-report-2025-08-01-to-2025-08-31.md (md): 7 incidents"
                             " declared from 2025-08-01 to 2025-08-31, 8 linked remote"
                             " incidents (ops; 6 fetched)\n")
    assert result.stderr.startswith("Warning: ops: 1 remote incident(s) could not be fetched")
    assert (tmp_path / "im-report-2025-08-01-to-2025-08-31.md").read_text().startswith(
        "# Incident report")
    assert not list(tmp_path.glob(".*.partial"))
    plain = im(august, "report", "--start", "2025-08-01", "--end", "2025-08-31",
               "--format", "json", "-o", str(tmp_path / "out" / "r.json"))
    assert plain.exit_code == 1
    assert plain.stderr.startswith(f"Error: cannot write {tmp_path / 'out' / 'r.json'}:")


@pytest.mark.parametrize(("start", "end", "message"), [
    ("2025-08-31", "2025-08-01", ("Error: the period ends (2025-08-01) before it starts"
                                 " (2025-08-31): --end must be on or after --start\n")),
    ("2025-13-01", "2025-12-31", ("Error: invalid --start date '2025-13-01': write YYYY-MM-DD,"
                                 " e.g. 2025-08-01\n")),
    ("2025-08-01", "20250831", ("Error: invalid --end date '20250831': write YYYY-MM-DD,"
                               " e.g. 2025-08-01\n")),
    ("2025-02-30", "2025-03-01", ("Error: invalid --start date '2025-02-30': write YYYY-MM-DD,"
                                 " e.g. 2025-08-01\n")),
])
def test_bad_periods_are_one_line_errors(runtime, tmp_path, monkeypatch, start, end, message):
    monkeypatch.chdir(tmp_path)
    result = im(runtime, "report", "--start", start, "--end", end)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", message)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_one_line_error(runtime):
    result = im(runtime, "report", "--start", "2025-08-01", "--end", "2025-08-31", "--format",
                "docx")
    assert (result.exit_code, result.stderr) == (
        1, "Error: unknown format 'docx'; choose from pdf, html, md, json, csv\n")


def test_one_day_period_and_the_api(august):
    report = build_report(august, parse_period("2025-08-03", "2025-08-03"))
    assert [i.id for i in report.incidents] == ["INC-2", "INC-3"]
    assert [d.day.isoformat() for d in report.daily] == ["2025-08-03"]
    assert render(report, "json") == render(report, "JSON")
    assert report.generated_at == NOW


def test_starting_im_loads_neither_reports_nor_reportlab():
    code = ("import sys; from im.cli import make_app; from im.runtime import Runtime; "
            "make_app(Runtime()); print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert [m for m in loaded if m.startswith(("reportlab", "im.reports"))] == []


def test_report_uses_the_sla_targets_of_im_sla_and_says_what_set_each(tmp_path, clock, paging):
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text(json.dumps(
        {"sla": {"SEV-2": {"ack": "1m"}, "SEV-4": {"ack": "2s", "resolve": "4s"}}}))
    runtime = make_runtime(home, plugins=[paging], clock=clock, user="alice")
    for name, mapping in [("ops", {"SEV-1": {"ack": "10m"}, "SEV-2": {"resolve": "2h"}}),
                          ("zz", {"SEV-1": {"ack": "1m"}})]:
        config = {"api_key": "k", "custom": {"sla_mapping": mapping}}
        assert im(runtime, "connector", "add", "paging", name, "--config",
                  json.dumps(config)).exit_code == 0
    declare(runtime, clock, at(1, 9), "SEV-4", "Disk full", ["db"])
    clock.now = at(1, 9, 1)
    assert im(runtime, "sla", "check").stdout.splitlines()[0] == (
        "INC-1: SLA breached, not acknowledged within 2s (SEV-4)")
    assert im(runtime, "sla").stdout.splitlines()[-1] == (
        "(targets set by: SEV-1 default + ops, SEV-2 ops + settings file, SEV-3 default,"
        " SEV-4 settings file)")
    result = im(runtime, "report", "--start", "2025-08-01", "--end", "2025-08-01", "-f", "md",
                "-o", "-")
    text = result.stdout
    assert "- SLA targets: default, ops, settings file (see SLA compliance).\n" in text
    assert ("| Severity | Acknowledge within | Resolve within | Set by |\n"
            "|---|---|---|---|\n"
            "| SEV-1 | 10m | 1h | default + ops |\n"
            "| SEV-2 | 1m | 2h | ops + settings file |\n"
            "| SEV-3 | 2h | 1d | default |\n"
            "| SEV-4 | 2s | 4s | settings file |\n") in text
    assert ("| INC-1 | SEV-4 | open | Disk full | db | 2025-08-01 09:00 | - | - | breached"
            " | breached |") in text
    assert ("> Note: zz: its SLA targets are not used; ops's are (the first connector by name"
            " that sets them)") in text
    data = json.loads(im(runtime, "report", "--start", "2025-08-01", "--end", "2025-08-01",
                         "-f", "json", "-o", "-").stdout)
    assert data["sla_targets"][3] == {"severity": "SEV-4", "ack_seconds": 2.0,
                                      "resolve_seconds": 4.0, "source": "settings file"}
    [entry] = data["incidents"]
    assert (entry["ack_sla"], entry["resolve_sla"]) == ("breached", "breached")


def test_a_remote_state_stored_in_a_connectors_own_word_is_reported_as_unknown(august):
    import msgspec

    stored = link(august, "INC-2", "api")
    august.store.replace_link(msgspec.structs.replace(stored, remote_status="closed"))
    data = report_json(august, "--include", "ops", "--no-fetch")
    inc2 = next(r for i in data["incidents"] if i["id"] == "INC-2" for r in i["remote"])
    assert inc2["status"] is None


# -- the documents, byte for byte ----------------------------------------------------------

GOLDEN = Path(__file__).parent / "data" / "reports"


def golden(name):
    """A document as im wrote it when reports were built whole in memory (the version in its
    `generator` is today's)."""
    from im import __version__

    return (GOLDEN / name).read_bytes().replace(b'"generator": "im 0.1.0"',
                                                f'"generator": "im {__version__}"'.encode())


def written(runtime, tmp_path, fmt, *options):
    path = tmp_path / f"written.{fmt}"
    result = im(runtime, "report", "--start", "2025-08-01", "--end", "2025-08-31",
                "--format", fmt, "-o", str(path), *options)
    assert result.exit_code == 0, result.output
    return path.read_bytes()


@pytest.mark.parametrize(("name", "fmt", "options"), [
    ("august.json", "json", ()),
    ("august-included.json", "json", ("--include-paging",)),
    ("august-included.csv", "csv", ("--include-paging",)),
])
def test_json_and_csv_are_the_documents_they_were(august, tmp_path, name, fmt, options):
    assert written(august, tmp_path, fmt, *options) == golden(name)


@pytest.mark.parametrize(("name", "fmt", "options"), [
    ("august.json", "json", ()),
    ("august-included.json", "json", ("--include-paging",)),
    ("august-included.csv", "csv", ("--include-paging",)),
])
def test_a_report_read_in_batches_smaller_than_the_period_is_whole_and_in_order(
        august, tmp_path, monkeypatch, name, fmt, options):
    # 7 incidents in the period, read 2 at a time: 4 batches, the last one short.
    from im.reports import build

    monkeypatch.setattr(build, "BATCH", 2)
    assert written(august, tmp_path, fmt, *options) == golden(name)


@pytest.mark.sqlite_only
def test_the_period_is_read_through_an_index_a_page_at_a_time(august):
    """Every read of a report follows the period's pages: the incidents by an index range in
    the report's order (no scan of every incident ever declared, no sort), their services,
    timelines and links by the page's numbers."""
    from im.reports import build

    statements = []
    august.store.conn.set_trace_callback(statements.append)
    build_report(august, parse_period(*(day.isoformat() for day in (START.date(),
                                                                     NOW.date()))))
    august.store.conn.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and any(
        f"FROM {table} " in s for table in ("incidents", "incident_services", "timeline",
                                            "links"))]
    pages = [s for s in reads if "FROM incidents WHERE created_at" in s]
    assert len(pages) == 1 and build.BATCH > 8  # one short page holds the 8 incidents
    for sql in reads:
        plan = " | ".join(row[3] for row in august.store.conn.execute(
            "EXPLAIN QUERY PLAN " + sql))
        for table in ("incidents", "incident_services", "timeline", "links"):
            assert f"SCAN {table}" not in plan, (sql, plan)
        if sql in pages:
            assert "USING INDEX incidents_created" in plan, (sql, plan)
            assert "TEMP B-TREE" not in plan, (sql, plan)

def test_on_postgresql_the_period_is_read_through_an_index_a_page_at_a_time(
        august, postgres_plans, monkeypatch):
    """The same of the PostgreSQL store, in pages of 3: each page of incidents is a range of
    incidents_created in the report's order (no sort), the pages after the first starting
    at the last one's key; each page's services, timelines and links are searched by its
    numbers; nothing is read whole."""
    from im.reports import build

    monkeypatch.setattr(build, "BATCH", 3)
    with postgres_plans.watching() as seen:
        build_report(august, parse_period(*(day.isoformat() for day in (START.date(),
                                                                         NOW.date()))))
    reads = [(query, params) for query, params in seen
             if query.lstrip().upper().startswith("SELECT") and any(
                 f"FROM {table} " in query for table in ("incidents", "incident_services",
                                                         "timeline", "links"))]
    pages = [(query, params) for query, params in reads
             if "FROM incidents WHERE created_at" in query]
    assert len(pages) == 3  # 8 incidents: 3, 3 and 2
    assert len(reads) == 3 * 4
    for query, params in reads:
        plan = postgres_plans.plan(query, params)
        assert postgres_plans.whole_reads(plan) == [], (query, plan)
        if (query, params) in pages:
            assert postgres_plans.indexes(plan) == {"incidents_created"}, (query, plan)
            assert "Sort" not in plan, (query, plan)


@pytest.mark.parametrize("folder", [".", "..", "/"])
def test_a_folder_as_the_output_is_refused_in_one_line(august, folder):
    result = im(august, "report", "--start", "2025-08-01", "--end", "2025-08-31", "--format",
                "json", "--output", folder)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f"Error: cannot write {folder}: it is a folder; give a file name"
                             " (such as im-report-2025-08-01-to-2025-08-31.json)\n")
