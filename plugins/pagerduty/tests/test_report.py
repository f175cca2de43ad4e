"""Reports with PagerDuty correlation, against the sandbox: describing a PagerDuty incident
from its log entries, and `im report --include-pagerduty` fetching what im did not store."""

import json
from datetime import timedelta

import pytest

from im.reports import RemoteIncidentRequest
from im_pagerduty.report import describe_remote

from .connector_kit import im, runtime_with_connector


pytestmark = pytest.mark.usefixtures("quick_retries")


@pytest.fixture
def runtime(tmp_path, pd):
    rt = runtime_with_connector(tmp_path / "home", pd)
    yield rt
    rt.store.close()


def escalated_and_handled(runtime, pd):
    """INC-1 in PagerDuty: paged to John (on call), escalated to the team lead after 15
    minutes without an acknowledgement, then acknowledged and resolved through im."""
    assert im(runtime, "declare", "--sev", "SEV-1", "--title", "API gateway down",
              "--service", "api").exit_code == 0
    pd.advance_clock(16 * 60)
    assert im(runtime, "ack", "--incident", "INC-1").exit_code == 0
    assert im(runtime, "resolve", "--incident", "INC-1").exit_code == 0
    [link] = runtime.store.links("INC-1")
    return link


def test_describe_remote_reads_the_incident_and_its_log(runtime, pd):
    link = escalated_and_handled(runtime, pd)
    described = describe_remote(runtime.connector("prod-pagerduty"),
                                RemoteIncidentRequest(link=link))
    assert (described.remote_id, described.number, described.url, described.status) == (
        link.remote_id, link.remote_number, link.remote_url, "resolved")
    assert described.title == "API gateway down"
    events = described.events
    assert [e.at for e in events] == sorted(e.at for e in events)
    kinds = [e.kind for e in events]
    assert kinds[0] == "opened" and kinds[-1] == "resolved"
    assigned = next(e for e in events if e.kind == "assigned")
    assert assigned.targets == ["john.doe@company.com"]
    escalated = next(e for e in events if e.kind == "escalated")
    assert escalated.targets == ["team-lead@company.com"]
    assert escalated.text == "Escalated to level 2"
    assert escalated.at - described.created_at >= timedelta(minutes=15)
    acknowledged = next(e for e in events if e.kind == "acknowledged")
    assert acknowledged.actor == "ops@company.com"  # im acknowledged it, as its From user


def test_report_fetches_who_was_paged_and_escalations(runtime, pd):
    escalated_and_handled(runtime, pd)
    today = runtime.clock().date()
    result = im(runtime, "report", "--start", str(today - timedelta(days=1)), "--end",
                str(today + timedelta(days=1)), "--include-pagerduty", "--format", "json",
                "-o", "-")
    assert result.exit_code == 0, result.output
    assert "1 linked remote incident (prod-pagerduty; 1 fetched)" in result.stderr
    data = json.loads(result.stdout)
    assert data["included"] == [{"name": "prod-pagerduty", "type": "pagerduty", "linked": 1,
                                 "fetched": 1}]
    [incident] = data["incidents"]
    [remote] = incident["remote"]
    assert remote["source"] == "fetched" and remote["status"] == "resolved"
    assert remote["paged"][:2] == ["john.doe@company.com", "team-lead@company.com"]
    [escalation] = incident["escalations"]
    assert (escalation["from"], escalation["to"], escalation["system"]) == (
        ["john.doe@company.com"], ["team-lead@company.com"], "prod-pagerduty")
    # Measured in PagerDuty, the acknowledgement came after the escalation (15+ minutes).
    assert remote["time_to_acknowledge_seconds"] >= 15 * 60
    assert [r["measured_in"] for r in data["response_by_severity"] if r["group"] == "SEV-1"] \
        == ["im", "prod-pagerduty"]
    responders = {r["responder"]: r for r in data["responders"]}
    assert responders["john.doe@company.com"]["escalated_away"] == 1


def test_an_unreachable_pagerduty_leaves_the_report_to_stored_data(runtime, pd):
    escalated_and_handled(runtime, pd)
    pd.set_faults(error_rate=1.0, paths=["/incidents/"])
    today = runtime.clock().date()
    result = im(runtime, "report", "--start", str(today), "--end", str(today),
                "--include-pagerduty", "--format", "json", "-o", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    [remote] = data["incidents"][0]["remote"]
    assert remote["source"] == "stored" and remote["number"]
    assert data["notes"][0].startswith("prod-pagerduty: could not fetch remote incidents")


def test_sla_targets_from_the_settings_file_in_im_sla_and_the_report(tmp_path, pd):
    """SEV-1 from the connector, SEV-4 from settings.json: `im sla check` notes each breach on
    PagerDuty under that breach; `im sla` and the report say what set each target; an
    oversized target is refused where it is configured."""
    from im.testing import FakeClock

    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text(json.dumps(
        {"sla": {"SEV-4": {"ack": "2s", "resolve": "4s"}}}))
    clock = FakeClock()
    runtime = runtime_with_connector(home, pd, clock=clock,
                                     sla_mapping={"SEV-1": {"ack": "10m", "resolve": "1h"}})
    result = im(runtime, "connector", "config", "prod-pagerduty", "--sla-mapping",
                '{"SEV-1": {"ack": "99999999999d"}}')
    assert (result.exit_code, result.stderr) == (
        1, ("Error: invalid settings: '99999999999d' is too long; an SLA target is at most"
            " 365d - at `custom.sla_mapping[...].ack`\n"))
    assert im(runtime, "declare", "--sev", "SEV-4", "--title", "Disk full",
              "--service", "db").exit_code == 0
    clock.advance(seconds=5)
    [number] = [link.remote_number for link in runtime.store.links("INC-1")]
    assert im(runtime, "sla", "check").stdout.splitlines() == [
        "INC-1: SLA breached, not acknowledged within 2s (SEV-4)",
        f"  prod-pagerduty: SLA breach noted on PagerDuty incident #{number}",
        "INC-1: SLA breached, not resolved within 4s (SEV-4)",
        f"  prod-pagerduty: SLA breach noted on PagerDuty incident #{number}",
    ]
    assert im(runtime, "sla").stdout.splitlines()[-1] == (
        "(targets set by: SEV-1 prod-pagerduty, SEV-2 default, SEV-3 default,"
        " SEV-4 settings file)")
    today = clock().date()
    result = im(runtime, "report", "--start", str(today), "--end", str(today), "-f", "md",
                "-o", "-", "--no-fetch")
    assert result.exit_code == 0, result.output
    assert ("| SEV-1 | 10m | 1h | prod-pagerduty |\n| SEV-2 | 30m | 4h | default |\n"
            "| SEV-3 | 2h | 1d | default |\n| SEV-4 | 2s | 4s | settings file |\n"
            ) in result.stdout
    assert "| Disk full | db | " in result.stdout
    [row] = [line for line in result.stdout.splitlines() if line.startswith("| INC-1 |")]
    assert row.endswith("| - | - | breached | breached |")



def test_stored_data_tells_who_was_paged_and_escalated_as_pagerduty_does(tmp_path, pd):
    """A two-service incident (PagerDuty #1 for api, #2 for db), both escalated from John to
    the team lead, which im hears by webhook: the report from stored data (`--no-fetch`) names
    who was paged and each escalation as PagerDuty's logs do."""
    from datetime import UTC, datetime, timedelta

    from im.reports.remote import summarize
    from im.testing import serve

    from .connector_kit import delivered, wait_for

    class SandboxTime:
        """im's clock kept with the sandbox's: the escalations are dated 16 minutes on, and
        im quarantines events dated ahead of its own clock."""
        offset = timedelta()

        def __call__(self):
            return datetime.now(UTC) + self.offset

    clock = SandboxTime()
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    try:
        with serve(runtime) as url:
            assert im(runtime, "connector", "webhook", "prod-pagerduty", "--enable", "--url",
                      url).exit_code == 0
            assert im(runtime, "declare", "--sev", "SEV-1", "--title", "Checkout down",
                      "--service", "api", "--service", "db").exit_code == 0
            delivered(runtime)  # both PagerDuty incidents made before the clock moves on
            pd.advance_clock(16 * 60)
            clock.offset += timedelta(minutes=16)
            assert pd.wait_for_webhooks(timeout=10)
            wait_for(lambda: not runtime.store.inbox(statuses=("pending", "processing")))
        assert [e.kind for e in runtime.store.timeline("INC-1")].count("escalated") == 2
        today = runtime.clock().date()
        result = im(runtime, "report", "--start", str(today), "--end", str(today),
                    "--include-pagerduty", "--no-fetch", "--format", "json", "-o", "-")
        assert result.exit_code == 0, result.output
        [incident] = json.loads(result.stdout)["incidents"]
        stored = {r["service"]: (r["paged"], [(e["from"], e["to"]) for e in r["escalations"]])
                  for r in incident["remote"]}
        # What the report makes of PagerDuty's logs when it fetches them.
        connector = runtime.connector("prod-pagerduty")
        fetched = {}
        for link in runtime.store.links("INC-1"):
            remote = summarize(link, describe_remote(connector, RemoteIncidentRequest(link=link)),
                               connector_type="pagerduty", source="fetched")
            fetched[link.service] = (remote.paged,
                                     [(e.from_, e.to) for e in remote.escalations])
        john, lead = "john.doe@company.com", "team-lead@company.com"
        assert stored == fetched == {"api": ([john, lead], [([john], [lead])]),
                                     "db": ([john, lead], [([john], [lead])])}
        assert incident["paged"] == [john, lead]
        assert [(e["from"], e["to"]) for e in incident["escalations"]] == [([john], [lead])] * 2
        responders = {r["responder"]: (r["paged"], r["escalated_away"])
                      for r in json.loads(result.stdout)["responders"]}
        assert responders == {john: (1, 2), lead: (1, 0)}
    finally:
        runtime.store.close()
