"""The connector end to end against the sandbox: configuration, checks, outbound sync,
mappings, assignment and on-call, asserting what PagerDuty (the sandbox) holds."""

import json

import pytest


from .connector_kit import im, remote_incidents, runtime_with_connector


pytestmark = pytest.mark.usefixtures("quick_retries")


@pytest.fixture
def runtime(tmp_path, pd):
    rt = runtime_with_connector(tmp_path / "home", pd)
    yield rt
    rt.store.close()


def test_add_asks_the_specs_prompts(tmp_path, pd):
    from im.testing import make_runtime, run_cli

    runtime = make_runtime(tmp_path, load_entrypoints=True)
    answers = f"{pd.api_key}\n{pd.url}\nPXXXXXX\nops@company.com\n\nbidirectional\n"
    result = run_cli(runtime, ["connector", "add", "pagerduty", "prod-pagerduty"], input=answers)
    assert result.exit_code == 0, result.output
    # The test runner echoes what was typed, except the hidden API key.
    assert result.stdout.split("\n")[:7] == [
        "API Key: ",
        f"API Base URL [https://api.pagerduty.com]: {pd.url}",
        "Default Service ID: PXXXXXX",
        "From Email: ops@company.com",
        "Escalation Policy ID (optional): ",
        "Sync Direction (bidirectional, outbound, inbound) [outbound]: bidirectional",
        "Added connector prod-pagerduty (pagerduty, bidirectional)",
    ]
    assert pd.api_key not in result.stdout
    stored = runtime.store.get_connector("prod-pagerduty").settings
    assert stored["custom"] == {"service_id": "PXXXXXX", "from_email": "ops@company.com"}
    # A bad answer is asked again (at once when it can be checked alone, else after the
    # last question); the other answers are kept. (Another account's key: a second
    # connector of prod-pagerduty's account is refused, see test_shared_account.py.)
    answers = ("another-account-key\nhttp://pd.example.com\nPXXXXXX\nops\nops@company.com\n\n\n"
               f"{pd.url}\n")
    again = run_cli(runtime, ["connector", "add", "pagerduty", "second"], input=answers)
    assert again.exit_code == 0, again.output
    assert again.stderr == ("'ops' is not an email address\n'http://pd.example.com' is not an"
                            " https:// URL (http:// only on loopback)\n")
    assert runtime.store.get_connector("second").settings["base_url"] == pd.url


def test_the_specs_json_config_is_accepted_and_bad_fields_named(tmp_path, pd):
    from im.testing import make_runtime, run_cli

    runtime = make_runtime(tmp_path, load_entrypoints=True)
    spec = {"base_url": "https://api.pagerduty.com", "api_key": "your-api-key-here",
            "sync_direction": "bidirectional", "sync_interval": "5m", "enable_webhook": True,
            "custom": {"service_id": "PXXXXXX", "from_email": "ops@company.com",
                       "escalation_policy_id": "PXXXXXX"}}
    ok = run_cli(runtime, ["connector", "add", "pagerduty", "prod", "--config", json.dumps(spec)])
    assert ok.exit_code == 0, ok.output
    spec["custom"]["urgency_mapping"] = {"SEV-1": "urgent"}
    bad = run_cli(runtime, ["connector", "add", "pagerduty", "p2", "--config", json.dumps(spec)])
    assert bad.stderr == ("Error: invalid settings: Invalid enum value 'urgent'; choose from"
                          " high, low - at `custom.urgency_mapping[...]`\n")
    spec["custom"].pop("urgency_mapping")
    # the spec's "Service Mapping Configuration" snippet read as top-level settings
    spec["service_mappings"] = {"api": "PAPI001"}
    top = run_cli(runtime, ["connector", "add", "pagerduty", "p2", "--config", json.dumps(spec)])
    assert (top.exit_code, top.stderr) == (
        1, "Error: invalid settings: Object contains unknown field `service_mappings`; did you"
           " mean custom.service_mappings?\n")
    spec.pop("service_mappings")
    assert [r.name for r in runtime.store.list_connectors()] == ["prod"]
    by_set = run_cli(runtime, ["connector", "config", "prod", "--set",
                               'service_mappings={"api": "PAPI001"}'])
    assert (by_set.exit_code, by_set.stderr) == (
        1, "Error: unknown setting 'service_mappings'; did you mean custom.service_mappings?\n")
    assert "service_mappings" not in runtime.store.get_connector("prod").settings
    spec["base_url"] = "http://api.pagerduty.com"
    plain = run_cli(runtime, ["connector", "add", "pagerduty", "p2", "--config", json.dumps(spec)])
    assert "is not an https:// URL (http:// only on loopback) - at `base_url`" in plain.stderr
    spec["base_url"] = "https://api.pagerduty.com"
    for address in ("ops", "ops@", "@company.com", "ops@@company.com", "o ps@company.com"):
        spec["custom"]["from_email"] = address
        email = run_cli(runtime, ["connector", "add", "pagerduty", "p2", "--config",
                                  json.dumps(spec)])
        assert email.stderr == (f"Error: invalid settings: {address!r} is not an email address"
                                " - at `custom.from_email`\n")


def test_connection_test_prints_the_specs_lines(runtime, pd):
    from im.testing import serve

    spec_lines = ("✓ Connected to PagerDuty API\n"
                  "✓ Service PXXXXXX accessible\n"
                  "✓ User ops@company.com valid\n"
                  "✓ Escalation policy PXXXXXX found\n"
                  "✓ Priorities P1, P2, P3, P4 found\n"
                  "✓ Webhook endpoint configured\n")
    with serve(runtime) as url:
        enabled = im(runtime, "connector", "webhook", "prod-pagerduty", "--enable", "--url",
                     url)
        assert enabled.exit_code == 0, enabled.output
        result = im(runtime, "connector", "test", "prod-pagerduty")
        assert (result.exit_code, result.stdout) == (0, spec_lines)
    # im serve stopped: PagerDuty's side is still right, but its webhooks would be lost
    result = im(runtime, "connector", "test", "prod-pagerduty")
    assert (result.exit_code, result.stdout) == (0, spec_lines + (
        f"! Nothing answers at {url}/health (ConnectError): webhooks fail until"
        " `im serve` runs there (the sender retries for a while; polling catches up)\n"))


def test_bad_key_and_missing_service_say_how_to_fix(runtime, pd):
    # a key revoked in PagerDuty after it was configured (configuring it is refused)
    runtime.update_connector_settings("prod-pagerduty", {"api_key": "wrong"})
    result = im(runtime, "connector", "test", "prod-pagerduty")
    assert (result.exit_code, result.stdout) == (1, (
        "✗ Cannot use the PagerDuty API: PagerDuty rejected the API key (401 Unauthorized)\n"
        "  Fix: check the key (Account Settings → API Access Keys, admin role) and run:"
        " im connector update prod-pagerduty --api-key - (the key on standard input)\n"))
    im(runtime, "connector", "update", "prod-pagerduty", "--api-key", pd.api_key)
    # a service deleted in PagerDuty after it was configured (configuring it is refused)
    runtime.update_connector_settings("prod-pagerduty", {"custom.service_id": "PNOPE01"})
    result = im(runtime, "connector", "test", "prod-pagerduty")
    assert result.exit_code == 1
    assert ("✗ Service PNOPE01 not found (404)\n  Fix: im connector config prod-pagerduty"
            " --service-id CORRECT_SERVICE_ID\n") in result.stdout


def test_config_checks_the_service_and_escalation_policy_with_pagerduty(runtime, pd):
    before = runtime.store.get_connector("prod-pagerduty").settings
    cases = [(["--service-id", "PNOPE01"], "Error: PagerDuty has no service PNOPE01"
              " (custom.service_id); nothing changed\n"),
             (["--escalation-policy", "PNOPE99"], "Error: PagerDuty has no escalation policy"
              " PNOPE99 (custom.escalation_policy_id); nothing changed\n"),
             (["--set", "custom.service_id=PNOPE02"], "Error: PagerDuty has no service PNOPE02"
              " (custom.service_id); nothing changed\n"),
             (["--service-id", "../incidents"], "Error: PagerDuty has no service ../incidents"
              " (custom.service_id); nothing changed\n")]
    for command in ("config", "update"):
        for options, error in cases:
            result = im(runtime, "connector", command, "prod-pagerduty", *options)
            assert (result.exit_code, result.stdout, result.stderr) == (1, "", error), options
    assert runtime.store.get_connector("prod-pagerduty").settings == before
    ok = im(runtime, "connector", "config", "prod-pagerduty", "--service-id", "PAPI001",
            "--escalation-policy", "PAPI_ESCALATION")
    assert (ok.exit_code, ok.stderr) == (0, "")
    assert ok.stdout == ('Updated prod-pagerduty: custom.service_id = "PAPI001"\n'
                         'Updated prod-pagerduty: custom.escalation_policy_id ='
                         ' "PAPI_ESCALATION"\n')
    # a key PagerDuty refuses, given with another change: nothing of it is saved
    before = runtime.store.get_connector("prod-pagerduty").settings
    refused = im(runtime, "connector", "update", "prod-pagerduty", "--api-key", "wrong",
                 "--service-id", "PDAT001")
    assert (refused.exit_code, refused.stderr) == (
        1, "Error: PagerDuty refused the API key (401 Unauthorized); nothing changed\n")
    assert runtime.store.get_connector("prod-pagerduty").settings == before


def test_declare_creates_one_pagerduty_incident_per_service(runtime, api):
    result = im(runtime, "declare", "--sev", "SEV-1", "--title", "Database cluster failure",
                "--service", "database,api,payments", "--description", "Primary <lost>",
                "--field", "environment=production")
    assert result.exit_code == 0, result.output
    remote = sorted(remote_incidents(api), key=lambda i: i["incident_number"])
    assert [(i["service"]["id"], i["urgency"], i["status"], i["escalation_policy"]["id"])
            for i in remote] == [("PDAT001", "high", "triggered", "PXXXXXX"),
                                 ("PAPI001", "high", "triggered", "PXXXXXX"),
                                 ("PPAY001", "high", "triggered", "PXXXXXX")]
    incident = runtime.store.get_incident("INC-1")
    assert {i["incident_key"] for i in remote} == {
        f"im-{incident.correlation_id}-{s}" for s in ("database", "api", "payments")}
    assert all(i["title"] == "Database cluster failure" for i in remote)
    detail = api.get(f"/incidents/{remote[0]['id']}", params={"include[]": "body"}).json()
    details = detail["incident"].get("body", {}).get("details", "")
    assert "<p>Primary &lt;lost&gt;</p>" in details and incident.correlation_id in details
    assert "<li><b>environment</b>: production</li>" in details
    links = {l.service: l for l in runtime.store.links("INC-1")}
    assert {s: l.remote_id for s, l in links.items()} == {
        "database": remote[0]["id"], "api": remote[1]["id"], "payments": remote[2]["id"]}
    assert result.stdout.splitlines()[1].startswith(
        "  prod-pagerduty: PagerDuty incident #1 created (high urgency, service PDAT001)")


def test_service_names_match_mappings_whatever_their_case(tmp_path, pd, api):
    # a mapping written in capitals, and services typed in any case: one service
    runtime = runtime_with_connector(tmp_path / "home", pd, service_mappings={
        "API": "PAPI001", "Db": "PDAT001"})
    assert runtime.connector("prod-pagerduty").settings.custom.service_mappings == {
        "api": "PAPI001", "db": "PDAT001"}
    for number, spelling in enumerate(("api", "API", "Api"), start=1):
        result = im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service",
                    f"{spelling},DB")
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0] == f"Declared INC-{number}: SEV-2 x (api, db)"
    assert sorted(i["service"]["id"] for i in remote_incidents(api)) == [
        "PAPI001", "PAPI001", "PAPI001", "PDAT001", "PDAT001", "PDAT001"]
    mapped = im(runtime, "connector", "map-service", "prod-pagerduty", "--im-service", "WEB",
                "--pd-service", "PWEB001")
    assert mapped.stdout == "Mapped im service web to PagerDuty service PWEB001\n"
    twins = im(runtime, "connector", "config", "prod-pagerduty", "--service-mappings",
               '{"API": "PAPI001", "api": "PDAT001"}')
    assert (twins.exit_code, twins.stderr) == (
        1, "Error: invalid settings: 'API' and 'api' are one im service; map it once - at"
           " `custom.service_mappings`\n")
    runtime.store.close()


def test_declare_says_where_an_unmapped_service_went(tmp_path, pd, api):
    mappings = {"api": "PAPI001"}
    runtime = runtime_with_connector(tmp_path / "home", pd, service_mappings=mappings)
    result = im(runtime, "declare", "--sev", "SEV-2", "--title", "Slow search", "--service",
                "search,api")
    assert result.exit_code == 0, result.output
    numbers = {i["service"]["id"]: (i["incident_number"], i["html_url"])
               for i in remote_incidents(api)}
    assert result.stdout.splitlines()[:3] == [
        "Declared INC-1: SEV-2 Slow search (search, api)",
        f"  prod-pagerduty: PagerDuty incident #{numbers['PXXXXXX'][0]} created (high urgency,"
        f" service PXXXXXX) {numbers['PXXXXXX'][1]}",
        "  prod-pagerduty: search has no service mapping; its incident went to PagerDuty"
        " service PXXXXXX (the connector's default service, service_id)"]
    assert "api has no service mapping" not in result.stdout
    mapped = im(runtime, "connector", "map-service", "prod-pagerduty", "--im-service",
                "default", "--pd-service", "PGEN001")
    assert mapped.exit_code == 0, mapped.output
    again = im(runtime, "declare", "--sev", "SEV-3", "--title", "Slow search", "--service",
               "Search")
    assert ("  prod-pagerduty: search has no service mapping; its incident went to PagerDuty"
            " service PGEN001 (the `default` mapping)") in again.stdout.splitlines()
    # the timeline keeps it
    assert any("search has no service mapping" in event.text
               for event in runtime.store.timeline("INC-2"))
    runtime.store.close()


def test_lifecycle_reaches_pagerduty(runtime, api):
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Slow pages", "--service", "web")
    [remote] = remote_incidents(api)
    assert remote["urgency"] == "low"
    status = lambda: api.get(f"/incidents/{remote['id']}").json()["incident"]["status"]
    notes = lambda: [n["content"] for n in api.get(f"/incidents/{remote['id']}/notes")
                     .json()["notes"]]
    im(runtime, "ack", "--incident", "INC-1", "--note", "Investigating database locks")
    assert status() == "acknowledged" and notes() == ["Investigating database locks"]
    im(runtime, "note", "--incident", "INC-1", "Cache warmed")
    assert notes() == ["Investigating database locks", "Cache warmed"]
    im(runtime, "resolve", "--incident", "INC-1", "--note", "Index rebuilt")
    assert status() == "resolved" and notes()[-1] == "Index rebuilt"
    im(runtime, "reopen", "--incident", "INC-1", "--note", "Errors are back")
    assert status() == "triggered"
    im(runtime, "close", "--incident", "INC-1")
    assert status() == "resolved"
    assert {r.status for r in runtime.store.outbox()} == {"done"}


def test_an_outage_queues_and_sync_delivers_exactly_once(runtime, pd, api):
    pd.set_faults(burst_5xx=2)  # as many as the client tries
    result = im(runtime, "declare", "--sev", "SEV-2", "--title", "Database performance issue",
                "--service", "db")
    assert result.exit_code == 0
    assert "1 change(s) queued" in result.stderr
    assert "PagerDuty answered 503" in result.stderr
    assert runtime.store.get_incident("INC-1").status.value == "open"
    assert remote_incidents(api) == []
    pd.set_faults()
    synced = im(runtime, "connector", "sync", "prod-pagerduty")
    assert synced.stdout == ("prod-pagerduty: 1 delivered, 0 queued for retry, 0 failed\n"
                             "prod-pagerduty: no remote changes; 1 already in step\n")
    [remote] = remote_incidents(api)
    api.put(f"/incidents/{remote['id']}", json={"incident": {
        "type": "incident_reference", "status": "acknowledged"}},
        headers={"From": "john.doe@company.com"}).raise_for_status()
    im(runtime, "declare", "--sev", "SEV-3", "--title", "second", "--service", "db")
    synced = im(runtime, "connector", "sync", "prod-pagerduty")
    assert synced.stdout == ("prod-pagerduty: 0 delivered, 0 queued for retry, 0 failed\n"
                             "prod-pagerduty: reconciled 1 remote change(s): 1 applied;"
                             " 1 already in step\n")


def test_a_retry_links_the_incident_an_earlier_attempt_made(runtime, api):
    """The create reached PagerDuty but its answer was lost: the retry finds the incident by
    its key instead of creating a second one."""
    from im import incidents

    incident = incidents.declare(runtime, title="x", severity="SEV-2", services=["db"])
    made = api.post("/incidents", json={"incident": {
        "type": "incident", "title": "x", "service": {"id": "PDAT001", "type": "service_reference"},
        "incident_key": f"im-{incident.correlation_id}-db"}}).json()["incident"]
    result = im(runtime, "connector", "sync", "prod-pagerduty")
    assert result.exit_code == 0, result.output
    assert [i["id"] for i in remote_incidents(api)] == [made["id"]]
    assert runtime.store.links("INC-1")[0].remote_id == made["id"]
    assert any(e.text.startswith("PagerDuty incident #1 linked")
               for e in runtime.store.timeline("INC-1"))


def test_mappings_commands(runtime, pd):
    ok = im(runtime, "connector", "map-service", "prod-pagerduty", "--im-service", "search",
            "--pd-service", "PWEB001")
    assert ok.stdout == "Mapped im service search to PagerDuty service PWEB001\n"
    missing = im(runtime, "connector", "map-service", "prod-pagerduty", "--im-service", "x",
                 "--pd-service", "PNOPE01")
    assert (missing.exit_code, missing.stderr) == (1, "Error: PagerDuty has no service PNOPE01\n")
    listing = im(runtime, "connector", "list-mappings", "prod-pagerduty")
    assert listing.stdout.splitlines() == [
        "IM Service  PagerDuty Service  Service Name",
        "api         PAPI001            API Service",
        "database    PDAT001            Database Service",
        "db          PDAT001            Database Service",
        "payments    PPAY001            Payments Service",
        "search      PWEB001            Web Service",
        "web         PWEB001            Web Service",
        "default     PGEN001            General Service",
    ]
    mapped = im(runtime, "connector", "map-escalation", "prod-pagerduty", "--service", "api",
                "--escalation-policy", "PAPI_ESCALATION")
    assert mapped.stdout == "Mapped im service api to escalation policy PAPI_ESCALATION\n"
    escalations = im(runtime, "connector", "list-escalations", "prod-pagerduty")
    assert escalations.stdout.splitlines()[0] == "IM Service  Escalation Policy  Policy Name"
    assert escalations.stdout.splitlines()[1].split()[:2] == ["api", "PAPI_ESCALATION"]
    im(runtime, "declare", "--sev", "SEV-1", "--title", "API Gateway Down", "--service", "api")
    link = runtime.store.links("INC-1")[0]
    remote = pd.client().get(f"/incidents/{link.remote_id}").json()["incident"]
    assert (remote["service"]["id"], remote["escalation_policy"]["id"]) == (
        "PAPI001", "PAPI_ESCALATION")


def test_config_options(runtime):
    result = im(runtime, "connector", "config", "prod-pagerduty", "--escalation-policy",
                "PAPI_ESCALATION", "--sla-mapping",
                '{"SEV-1": {"ack": "15m", "resolve": "1h"}, "SEV-2": {"ack": "30m"}}')
    assert result.exit_code == 0, result.output
    settings = runtime.connector("prod-pagerduty").settings
    assert settings.custom.escalation_policy_id == "PAPI_ESCALATION"
    assert settings.custom.sla_mapping["SEV-1"].resolve == "1h"
    bad = im(runtime, "connector", "config", "prod-pagerduty", "--sla-mapping",
             '{"SEV-1": {"ack": "soon"}}')
    assert bad.stderr == ("Error: invalid settings: 'soon' is not a duration; use a number and"
                          " s, m, h or d (e.g. 5m) - at `custom.sla_mapping[...].ack`\n")
    key = im(runtime, "connector", "config", "prod-pagerduty", "--sla-mapping",
             '{"SEV-9": {"ack": "5m"}}')
    assert key.stderr == ("Error: invalid settings: Invalid enum value 'SEV-9'; choose from"
                          " SEV-1, SEV-2, SEV-3, SEV-4 - a key of `custom.sla_mapping`\n")


def test_an_empty_api_key_and_an_ack_target_longer_than_resolve_are_refused(runtime, pd):
    before = runtime.store.get_connector("prod-pagerduty").settings
    for key in ("", "  "):
        empty = im(runtime, "connector", "update", "prod-pagerduty", "--api-key", key)
        assert (empty.exit_code, empty.stderr) == (
            1, "Error: invalid settings: the API key is empty; give the key from PagerDuty"
               " (Account Settings → API Access Keys) - at `api_key`\n")
    config = json.dumps({"api_key": "", "custom": {"service_id": "PXXXXXX",
                                                   "from_email": "ops@company.com"}})
    added = im(runtime, "connector", "add", "pagerduty", "second", "--config", config)
    assert added.exit_code == 1 and "the API key is empty" in added.stderr
    # asked: a blank key is asked again (another account's key: one connector per account)
    answers = f"  \nanother-account-key\n{pd.url}\nPXXXXXX\nops@company.com\n\noutbound\n"
    asked = im(runtime, "connector", "add", "pagerduty", "asked", input=answers)
    assert (asked.exit_code, asked.stderr) == (0, "API Key is required.\n"), asked.output
    assert runtime.store.get_connector("asked").settings["api_key"] == "another-account-key"
    assert im(runtime, "connector", "remove", "asked", "--yes").exit_code == 0
    both = im(runtime, "connector", "config", "prod-pagerduty", "--sla-mapping",
              '{"SEV-1": {"ack": "2h", "resolve": "1h"}}')
    assert (both.exit_code, both.stderr) == (
        1, "Error: invalid settings: the ack target (2h) is longer than the resolve target"
           " (1h); an incident is acknowledged before it is resolved - at"
           " `custom.sla_mapping[...].ack`\n")
    # an ack target longer than the resolve target it keeps from the defaults (72h)
    one = im(runtime, "connector", "config", "prod-pagerduty", "--sla-mapping",
             '{"SEV-4": {"ack": "80h"}}')
    assert (one.exit_code, one.stderr) == (
        1, "Error: invalid settings: SLA targets of SEV-4: ack 3d8h (prod-pagerduty) is longer"
           " than resolve 3d (default); an incident is acknowledged before it is resolved\n")
    assert runtime.store.get_connector("prod-pagerduty").settings == before
    assert [r.name for r in runtime.store.list_connectors()] == ["prod-pagerduty"]
    equal = im(runtime, "connector", "config", "prod-pagerduty", "--sla-mapping",
               '{"SEV-4": {"ack": "72h"}}')
    assert equal.exit_code == 0, equal.output


def test_assignment_in_both_systems(runtime, api):
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "api")
    assert runtime.store.get_incident("INC-1").assignee == "john.doe@company.com"
    result = im(runtime, "assign", "--incident", "INC-1", "--to", "jane.smith@company.com")
    assert result.exit_code == 0, result.output
    [remote] = remote_incidents(api)
    assignees = [a["assignee"]["summary"] for a in remote["assignments"]]
    assert assignees == ["Jane Smith"]
    unknown = im(runtime, "assign", "--incident", "INC-1", "--to", "nobody@company.com")
    assert unknown.exit_code == 1
    assert unknown.stderr == ("Error: nobody@company.com is not a PagerDuty user"
                              " (prod-pagerduty); `im oncall --service NAME` shows who is\n")
    assert runtime.store.get_incident("INC-1").assignee == "jane.smith@company.com"
    empty = im(runtime, "assign", "--incident", "INC-1", "--to", " ")
    assert (empty.exit_code, empty.stderr) == (
        1, "Error: an assignee is required (--to, e.g. an email)\n")


def test_oncall(runtime):
    result = im(runtime, "oncall", "--service", "api")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Service: api"
    assert lines[1].startswith("Current On-Call: john.doe@company.com (until ")
    assert lines[1].endswith(" 09:00)")
    assert lines[2].startswith("Next On-Call: jane.smith@company.com (")
    assert lines[3] == "Escalation: After 15 minutes → team-lead@company.com"
    assert len(lines) == 4  # api is mapped: nothing to add


def test_oncall_for_a_service_without_a_mapping_says_where_it_looked(runtime):
    im(runtime, "connector", "config", "prod-pagerduty", "--service-mappings",
       '{"api": "PAPI001"}')
    result = im(runtime, "oncall", "--service", "search")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "Note: search has no service mapping; its incidents go to PagerDuty service PXXXXXX"
        " (the connector's service_id)")


def test_preview_shows_what_a_create_sends(runtime):
    from im import incidents

    incidents.declare(runtime, title="API down", severity="SEV-3", services=["api", "web"],
                      push=False)
    result = im(runtime, "connector", "preview", "prod-pagerduty", "--incident", "INC-1")
    assert result.exit_code == 0, result.output
    sent = json.loads(result.stdout)
    assert (sent["api"]["service"]["id"], sent["api"]["urgency"]) == ("PAPI001", "low")
    assert sent["web"]["service"]["id"] == "PWEB001"
    assert sent["api"]["escalation_policy"] == {"id": "PXXXXXX",
                                                "type": "escalation_policy_reference"}


def test_sla_breach_is_noted_on_every_linked_pagerduty_incident(tmp_path, pd, api):
    from datetime import UTC, datetime

    from im.testing import FakeClock

    clock = FakeClock(datetime.now(UTC))
    runtime = runtime_with_connector(tmp_path / "home", pd, clock=clock)
    im(runtime, "connector", "config", "prod-pagerduty", "--sla-mapping",
       '{"SEV-1": {"ack": "15m", "resolve": "1h"}}')
    im(runtime, "declare", "--sev", "SEV-1", "--title", "API Gateway Down",
       "--service", "api,payments")
    clock.advance(minutes=16)
    result = im(runtime, "sla", "check")
    assert result.stdout.splitlines()[0] == (
        "INC-1: SLA breached, not acknowledged within 15m (SEV-1)")
    for link in runtime.store.links("INC-1"):
        notes = api.get(f"/incidents/{link.remote_id}/notes").json()["notes"]
        assert [n["content"] for n in notes] == [
            next(e.text for e in runtime.store.timeline("INC-1") if e.kind == "sla_breached")]
    assert im(runtime, "sla", "check").stdout == "No new SLA breaches.\n"


def test_a_slow_pagerduty_holds_a_command_up_no_longer_than_its_budget(runtime, pd,
                                                                       monkeypatch):
    """PagerDuty takes every request but answers after 3 s: `im declare` gives up on it when
    its delivery budget is spent, says what is queued, and returns; a sync later links what
    PagerDuty made, once per service."""
    import time

    from im.cli import waiting

    monkeypatch.setattr(waiting, "BUDGET", 1.0)
    pd.set_faults(late_answer_rate=1.0, late_answer_ms=3000)
    started = time.monotonic()
    result = im(runtime, "declare", "--sev", "SEV-2", "--title", "Slow", "--service",
                "api,payments")
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert took < 2.5, took
    assert result.stdout == "Declared INC-1: SEV-2 Slow (api, payments)\n"
    assert "2 change(s) queued; `im serve` or `im connector sync prod-pagerduty` will" in (
        result.stderr)
    time.sleep(2.5)  # PagerDuty has carried out the first create meanwhile
    pd.clear_faults()
    synced = im(runtime, "connector", "sync", "prod-pagerduty")
    assert synced.stdout.startswith("prod-pagerduty: 2 delivered, 0 queued for retry, 0 failed")
    incident = runtime.store.get_incident("INC-1")
    assert sorted(i["incident_key"] for i in remote_incidents(pd.client())) == sorted(
        f"im-{incident.correlation_id}-{s}" for s in ("api", "payments"))


def test_config_help_lists_every_option_of_the_connector(runtime):
    from im_pagerduty.connector import PagerDutyConnector

    for command in ("config", "update"):
        shown = im(runtime, "connector", command, "--help").stdout
        assert "Options of pagerduty connectors:" in shown
        for option, path in PagerDutyConnector.options.items():
            assert f"--{option} " in shown and path in shown, (option, shown)
    shown = im(runtime, "connector", "config", "--help").stdout
    assert "--sync-direction bidirectional|outbound|inbound" in shown
    assert "--api-key -|@FILE|VALUE" in shown


def test_a_key_is_read_from_standard_input_or_a_file_not_the_command_line(runtime, pd,
                                                                          tmp_path):
    """A key in the arguments shows in `ps`: `-` and @FILE keep it out of them."""
    runtime.update_connector_settings("prod-pagerduty", {"api_key": "an-old-key"})
    changed = im(runtime, "connector", "update", "prod-pagerduty", "--api-key", "-",
                 input=f"{pd.api_key}\n")
    assert changed.exit_code == 0, changed.output
    assert changed.stdout.startswith('Updated prod-pagerduty: api_key = "********"')
    assert runtime.store.get_connector("prod-pagerduty").settings["api_key"] == pd.api_key
    runtime.update_connector_settings("prod-pagerduty", {"api_key": "an-old-key"})
    secret = tmp_path / "pd-key"
    secret.write_text(pd.api_key + "\n")
    assert im(runtime, "connector", "update", "prod-pagerduty", "--set",
              f"api_key=@{secret}").exit_code == 0
    assert runtime.store.get_connector("prod-pagerduty").settings["api_key"] == pd.api_key
    missing = im(runtime, "connector", "update", "prod-pagerduty", "--api-key",
                 f"@{tmp_path / 'nothing'}")
    assert (missing.exit_code, missing.stderr) == (
        1, f"Error: --api-key: cannot read api_key from {tmp_path / 'nothing'}: No such file"
           " or directory\n")
    empty = im(runtime, "connector", "update", "prod-pagerduty", "--api-key", "-", input="")
    assert (empty.exit_code, empty.stderr) == (
        1, "Error: --api-key: api_key: nothing was read from standard input\n")
    settings = json.dumps({"base_url": pd.url, "api_key": "another-account-key",
                           "custom": {"service_id": "PXXXXXX", "from_email": "ops@company.com"}})
    added = im(runtime, "connector", "add", "pagerduty", "from-stdin", "--config", "-",
               input=settings)
    assert added.exit_code == 0, added.output
    assert runtime.store.get_connector("from-stdin").settings["api_key"] == "another-account-key"


def test_a_secret_list_is_set_as_json_on_the_command_line_or_from_a_file(runtime, tmp_path):
    assert im(runtime, "connector", "update", "prod-pagerduty", "--set",
              'custom.webhook_secrets=["one", "two"]').exit_code == 0
    assert runtime.connector("prod-pagerduty").settings.custom.webhook_secrets == ["one", "two"]
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text('["three"]\n')
    assert im(runtime, "connector", "update", "prod-pagerduty", "--set",
              f"custom.webhook_secrets=@{secrets_file}").exit_code == 0
    assert runtime.connector("prod-pagerduty").settings.custom.webhook_secrets == ["three"]


def test_a_key_pagerduty_refuses_is_not_saved(runtime, pd):
    before = runtime.store.get_connector("prod-pagerduty").settings
    refused = im(runtime, "connector", "update", "prod-pagerduty", "--api-key", "mistyped")
    assert (refused.exit_code, refused.stderr) == (
        1, "Error: PagerDuty refused the API key (401 Unauthorized); nothing changed\n")
    assert runtime.store.get_connector("prod-pagerduty").settings == before
    pd.set_faults(error_rate=1.0, error_status=503)  # unreachable: kept, with a warning
    try:
        kept = im(runtime, "connector", "update", "prod-pagerduty", "--api-key", "another-key")
    finally:
        pd.clear_faults()
    assert kept.exit_code == 0
    assert kept.stderr.startswith("Warning: could not check the API key with PagerDuty: ")
    assert runtime.store.get_connector("prod-pagerduty").settings["api_key"] == "another-key"


def test_reopening_never_unacknowledges_a_pagerduty_incident_that_is_still_open(
        tmp_path, pd, api):
    """With auto_resolve off, resolving in im leaves the PagerDuty incident acknowledged.
    Reopening im's incident must leave it so: `status: triggered` on an acknowledged incident
    unacknowledges it, and PagerDuty pages its responders again. The timeline says why."""
    runtime = runtime_with_connector(tmp_path / "home", pd, auto_resolve=False)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Queue backlog", "--service", "db")
    im(runtime, "ack", "--incident", "INC-1")
    im(runtime, "resolve", "--incident", "INC-1")
    [link] = runtime.store.links("INC-1")
    pd.clear_requests()
    reopened = im(runtime, "reopen", "--incident", "INC-1", "--note", "Backlog again")
    assert reopened.exit_code == 0, reopened.output
    assert pd.requests("PUT", "/incidents/*") == []
    remote = api.get(f"/incidents/{link.remote_id}").json()["incident"]
    assert remote["status"] == "acknowledged"
    said = [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sync"]
    assert f"PagerDuty incident #{link.remote_number} is still acknowledged; not triggered" \
        " again" in said
    notes = [n["content"] for n in api.get(f"/incidents/{link.remote_id}/notes").json()["notes"]]
    assert notes[-1] == "Backlog again"  # the reopen's note still reaches it
    runtime.store.close()
