"""The sandbox's REST API v2 against PagerDuty's rules: authentication, headers, From, incidents,
their lifecycle and error codes, notes, log entries, pagination and the directory."""

import httpx
import pytest

from .sandbox_calls import new_incident, update


def error_of(response: httpx.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


# authentication and headers


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Token token=wrong",
        "Bearer {key}",
        "Token {key}",
        "token token={key}",
        "Token token= {key}",
    ],
)
def test_anything_but_the_exact_token_header_is_401(pd, authorization):
    headers = {"Accept": "application/vnd.pagerduty+json;version=2"}
    if authorization:
        headers["Authorization"] = authorization.format(key=pd.api_key)
    response = httpx.get(f"{pd.url}/incidents", headers=headers)
    assert response.status_code == 401
    assert error_of(response) == {"message": "Authentication failed", "code": 2006}


def test_unknown_path_with_a_key_is_pagerduty_404(api):
    response = api.get("/no_such_things")
    assert response.status_code == 404
    assert error_of(response)["code"] == 2100


def test_accept_header_is_optional_but_only_version_2_is_served(pd):
    bare = {"Authorization": f"Token token={pd.api_key}"}
    assert httpx.get(f"{pd.url}/services", headers=bare).status_code == 200
    v1 = httpx.get(
        f"{pd.url}/services", headers={**bare, "Accept": "application/vnd.pagerduty+json;version=1"}
    )
    assert v1.status_code == 400 and error_of(v1)["code"] == 2001


def test_content_type_is_needed_on_writes_not_on_reads(pd, api):
    assert "content-type" not in api.build_request("GET", "/incidents").headers
    assert api.get("/incidents").status_code == 200
    response = api.post(
        "/incidents",
        content=b'{"incident": {"type": "incident", "title": "x", "service": {"id": "PXXXXXX"}}}',
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 400 and error_of(response)["code"] == 2001
    assert api.get("/incidents", params={"date_range": "all"}).json()["incidents"] == []


def test_from_header_is_required_and_must_be_a_known_user(pd):
    body = {
        "incident": {
            "type": "incident",
            "title": "x",
            "service": {"id": "PXXXXXX", "type": "service_reference"},
        }
    }
    with pd.client(from_email=None) as anonymous:
        missing = anonymous.post("/incidents", json=body)
        assert missing.status_code == 400 and error_of(missing)["code"] == 2016
        unknown = anonymous.post("/incidents", json=body, headers={"From": "nobody@company.com"})
        assert unknown.status_code == 400
        assert error_of(unknown) == {"message": "Requester User Not Found", "code": 1008}
        malformed = anonymous.post("/incidents", json=body, headers={"From": "John Doe"})
        assert malformed.status_code == 400 and error_of(malformed)["code"] == 1028
        # Any known user may act, in any letter case.
        created = anonymous.post(
            "/incidents", json=body, headers={"From": "Jane.Smith@Company.com"}
        )
        assert created.status_code == 201
        assert created.json()["incident"]["last_status_change_by"]["summary"] == "Jane Smith"


# creating incidents


def test_create_uses_the_service_policy_and_who_is_on_call(api):
    incident = new_incident(
        api, "PAPI001", urgency="low", body={"type": "incident_body", "details": "p99 above 2s"}
    )
    assert incident["type"] == "incident" and incident["status"] == "triggered"
    assert incident["incident_number"] == 1 and incident["urgency"] == "low"
    assert (
        incident["service"]["id"] == "PAPI001"
        and incident["service"]["type"] == "service_reference"
    )
    assert incident["escalation_policy"]["id"] == "PAPI_ESCALATION"
    assert incident["assigned_via"] == "escalation_policy"
    # The demo schedule puts John Doe on call until 09:00 tomorrow.
    assert [a["assignee"]["summary"] for a in incident["assignments"]] == ["John Doe"]
    assert len(incident["incident_key"]) == 32  # generated when not given
    fetched = api.get(f"/incidents/{incident['id']}").json()["incident"]
    assert fetched["body"] == {"type": "incident_body", "details": "p99 above 2s"}
    assert fetched["self"] == f"{api.base_url}/incidents/{incident['id']}".replace(
        "//incidents", "/incidents"
    )


def test_create_with_a_direct_assignment_or_another_policy(api):
    assigned = new_incident(
        api, assignments=[{"assignee": {"id": "PUJANE1", "type": "user_reference"}}]
    )
    assert assigned["assigned_via"] == "direct_assignment"
    assert [a["assignee"]["id"] for a in assigned["assignments"]] == ["PUJANE1"]
    delegated = new_incident(
        api,
        "PDAT001",
        escalation_policy={"id": "PAPI_ESCALATION", "type": "escalation_policy_reference"},
    )
    assert delegated["escalation_policy"]["id"] == "PAPI_ESCALATION"
    both = api.post(
        "/incidents",
        json={
            "incident": {
                "type": "incident",
                "title": "x",
                "service": {"id": "PXXXXXX", "type": "service_reference"},
                "assignments": [{"assignee": {"id": "PUJANE1", "type": "user_reference"}}],
                "escalation_policy": {
                    "id": "PAPI_ESCALATION",
                    "type": "escalation_policy_reference",
                },
            }
        },
    )
    assert both.status_code == 400 and error_of(both)["code"] == 2001


def test_assigning_to_yourself_creates_it_acknowledged(api):
    incident = new_incident(
        api, assignments=[{"assignee": {"id": "PUOPS01", "type": "user_reference"}}]
    )
    assert incident["status"] == "acknowledged"
    assert [a["acknowledger"]["id"] for a in incident["acknowledgements"]] == ["PUOPS01"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"service": {"id": "PNOPE00", "type": "service_reference"}}, 2001),
        ({"title": ""}, 2001),
        ({"urgency": "medium"}, 2001),
        ({"assignments": [{"assignee": {"id": "PNOBODY", "type": "user_reference"}}]}, 1007),
        ({"escalation_policy": {"id": "PNOPE00", "type": "escalation_policy_reference"}}, 1014),
        ({"priority": {"id": "PNOPE00", "type": "priority_reference"}}, 1020),
        ({"body": {"type": "text", "details": "x"}}, 2001),
    ],
)
def test_invalid_creates_are_400_with_pagerduty_codes(api, change, code):
    body = {
        "type": "incident",
        "title": "x",
        "service": {"id": "PXXXXXX", "type": "service_reference"},
        **change,
    }
    response = api.post("/incidents", json={"incident": body})
    assert response.status_code == 400
    assert error_of(response)["code"] == code
    assert api.get("/incidents", params={"date_range": "all"}).json()["incidents"] == []


def test_incident_key_is_refused_while_an_incident_with_it_is_open_on_that_service(api):
    first = new_incident(api, incident_key="db-latency")
    again = api.post(
        "/incidents",
        json={
            "incident": {
                "type": "incident",
                "title": "again",
                "service": {"id": "PXXXXXX", "type": "service_reference"},
                "incident_key": "db-latency",
            }
        },
    )
    assert again.status_code == 400
    assert error_of(again)["errors"] == [
        "Open incident with matching dedup key already exists on this service"
    ]
    # Another service may use the same key; once resolved the key is free again.
    assert new_incident(api, "PDAT001", incident_key="db-latency")["status"] == "triggered"
    update(api, first["id"], status="acknowledged")
    assert (
        api.post(
            "/incidents",
            json={
                "incident": {
                    "type": "incident",
                    "title": "again",
                    "service": {"id": "PXXXXXX", "type": "service_reference"},
                    "incident_key": "db-latency",
                }
            },
        ).status_code
        == 400
    )
    assert update(api, first["id"], status="resolved").status_code == 200
    reused = new_incident(api, incident_key="db-latency")
    assert reused["id"] != first["id"] and reused["incident_key"] == "db-latency"


# the lifecycle


def test_acknowledge_resolve_reopen_and_their_errors(api):
    incident = new_incident(api, "PAPI001")
    acknowledged = update(
        api, incident["id"], from_email="jane.smith@company.com", status="acknowledged"
    )
    body = acknowledged.json()["incident"]
    assert body["status"] == "acknowledged"
    assert [a["acknowledger"]["id"] for a in body["acknowledgements"]] == ["PUJANE1"]
    # The acknowledger takes the incident.
    assert [a["assignee"]["id"] for a in body["assignments"]] == ["PUJANE1"]
    again = update(api, incident["id"], status="acknowledged")
    assert again.status_code == 400 and error_of(again)["code"] == 1002

    resolved = update(api, incident["id"], status="resolved", resolution="Index rebuilt").json()[
        "incident"
    ]
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert resolved["assignments"] == [] and resolved["acknowledgements"] == []
    for change in ({"status": "resolved"}, {"escalation_level": 2}, {"urgency": "low"}):
        refused = update(api, incident["id"], **change)
        assert refused.status_code == 400 and error_of(refused)["code"] == 1001

    reopened = update(api, incident["id"], status="triggered").json()["incident"]
    assert reopened["status"] == "triggered" and reopened["resolved_at"] is None
    assert [a["assignee"]["id"] for a in reopened["assignments"]] == ["PUJOHN1"]
    resolve_entries = [
        e
        for e in api.get(f"/incidents/{incident['id']}/log_entries").json()["log_entries"]
        if e["type"] == "resolve_log_entry"
    ]
    assert [e["note"] for e in resolve_entries] == ["Index rebuilt"]


def test_unacknowledge_and_invalid_status(api):
    incident = new_incident(api)
    update(api, incident["id"], status="acknowledged")
    back = update(api, incident["id"], status="triggered").json()["incident"]
    assert back["status"] == "triggered" and back["acknowledgements"] == []
    invalid = update(api, incident["id"], status="snoozed")
    assert invalid.status_code == 400 and error_of(invalid) == {
        "message": "Invalid Status Provided",
        "code": 1003,
    }
    stray = update(api, incident["id"], resolution="too early")
    assert stray.status_code == 400 and error_of(stray)["code"] == 2001


def test_reopen_to_acknowledged_assigns_the_user_who_did_it(api):
    incident = new_incident(api)
    update(api, incident["id"], status="resolved")
    body = update(
        api, incident["id"], from_email="jane.smith@company.com", status="acknowledged"
    ).json()["incident"]
    assert body["status"] == "acknowledged"
    assert [a["assignee"]["id"] for a in body["assignments"]] == ["PUJANE1"]


def test_escalate_reassign_delegate_urgency_priority_title(api):
    incident = new_incident(api, "PAPI001")
    escalated = update(api, incident["id"], escalation_level=2).json()["incident"]
    assert [a["assignee"]["id"] for a in escalated["assignments"]] == ["PULEAD1"]
    beyond = update(api, incident["id"], escalation_level=3)
    assert beyond.status_code == 400 and error_of(beyond)["code"] == 1006

    reassigned = update(
        api, incident["id"], assignments=[{"assignee": {"id": "PUJANE1", "type": "user_reference"}}]
    ).json()["incident"]
    assert reassigned["assigned_via"] == "direct_assignment"
    assert [a["assignee"]["id"] for a in reassigned["assignments"]] == ["PUJANE1"]

    delegated = update(
        api,
        incident["id"],
        escalation_policy={"id": "PXXXXXX", "type": "escalation_policy_reference"},
    ).json()["incident"]
    assert delegated["escalation_policy"]["id"] == "PXXXXXX"
    assert delegated["assigned_via"] == "escalation_policy"

    changed = update(
        api,
        incident["id"],
        urgency="low",
        title="API is slow",
        priority={"id": "PPRIO01", "type": "priority_reference"},
    ).json()["incident"]
    assert (changed["urgency"], changed["title"], changed["priority"]["summary"]) == (
        "low",
        "API is slow",
        "P1",
    )
    by_name = update(api, incident["id"], priority="P3").json()["incident"]
    assert by_name["priority"]["id"] == "PPRIO03"
    unknown = update(api, incident["id"], priority="P9")
    assert unknown.status_code == 400 and error_of(unknown)["code"] == 1020


def test_bulk_update_manages_several_incidents(api):
    ids = [new_incident(api, title=f"n{i}")["id"] for i in range(3)]
    response = api.put(
        "/incidents",
        json={
            "incidents": [
                {"id": incident_id, "type": "incident_reference", "status": "resolved"}
                for incident_id in ids
            ]
        },
    )
    assert response.status_code == 200
    assert {i["status"] for i in response.json()["incidents"]} == {"resolved"}
    too_many = api.put(
        "/incidents",
        json={
            "incidents": [{"id": ids[0], "type": "incident_reference", "status": "resolved"}] * 251
        },
    )
    assert too_many.status_code == 413


def test_unknown_incident_is_404(api):
    assert api.get("/incidents/QNOPE").status_code == 404
    response = update(api, "QNOPE", status="acknowledged")
    assert response.status_code == 404 and error_of(response)["code"] == 5001


def test_timed_escalation_reaches_the_team_lead_after_15_minutes(pd, api):
    incident = new_incident(api, "PAPI001")
    assert (
        api.get(f"/incidents/{incident['id']}").json()["incident"]["pending_actions"][0]["type"]
        == "escalate"
    )
    pd.advance_clock(14 * 60)
    assert [
        a["assignee"]["id"]
        for a in api.get(f"/incidents/{incident['id']}").json()["incident"]["assignments"]
    ] == ["PUJOHN1"]
    assert pd.advance_clock(2 * 60)["escalations"] == 1
    body = api.get(f"/incidents/{incident['id']}").json()["incident"]
    assert [a["assignee"]["summary"] for a in body["assignments"]] == ["Team Lead"]
    acknowledged = new_incident(api, "PAPI001", title="acked in time")
    update(api, acknowledged["id"], status="acknowledged")
    pd.advance_clock(3600)
    assert (
        api.get(f"/incidents/{acknowledged['id']}").json()["incident"]["assignments"][0][
            "assignee"
        ]["id"]
        == "PUOPS01"
    )


# notes and log entries


def test_notes_are_added_and_listed(api):
    incident = new_incident(api)
    response = api.post(
        f"/incidents/{incident['id']}/notes",
        json={"note": {"content": "Failing over"}},
        headers={"From": "john.doe@company.com"},
    )
    assert response.status_code == 200
    note = response.json()["note"]
    assert note["content"] == "Failing over" and note["user"]["id"] == "PUJOHN1"
    api.post(f"/incidents/{incident['id']}/notes", json={"note": {"content": "Back to normal"}})
    notes = api.get(f"/incidents/{incident['id']}/notes").json()["notes"]
    assert [n["content"] for n in notes] == ["Failing over", "Back to normal"]
    empty = api.post(f"/incidents/{incident['id']}/notes", json={"note": {"content": " "}})
    assert empty.status_code == 400
    with httpx.Client(
        base_url=str(api.base_url), headers={"Authorization": api.headers["Authorization"]}
    ) as bare:
        assert (
            bare.post(
                f"/incidents/{incident['id']}/notes", json={"note": {"content": "x"}}
            ).status_code
            == 400
        )


def test_log_entries_newest_first_per_incident_and_account(api):
    incident = new_incident(api)
    update(api, incident["id"], status="acknowledged")
    api.post(f"/incidents/{incident['id']}/notes", json={"note": {"content": "looking"}})
    update(api, incident["id"], status="resolved")
    other = new_incident(api, title="other")
    types = [
        e["type"] for e in api.get(f"/incidents/{incident['id']}/log_entries").json()["log_entries"]
    ]
    assert types == [
        "resolve_log_entry",
        "annotate_log_entry",
        "acknowledge_log_entry",
        "assign_log_entry",
        "trigger_log_entry",
    ]
    overview = api.get(
        f"/incidents/{incident['id']}/log_entries", params={"is_overview": "true"}
    ).json()
    assert [e["type"] for e in overview["log_entries"]] == [
        "resolve_log_entry",
        "acknowledge_log_entry",
        "trigger_log_entry",
    ]
    everything = api.get("/log_entries", params={"limit": 100}).json()["log_entries"]
    assert everything[0]["incident"]["id"] == other["id"] and len(everything) == 7
    first = everything[-1]
    assert first["agent"]["id"] == "PUOPS01" and first["service"]["id"] == "PXXXXXX"
    one = api.get(f"/log_entries/{first['id']}").json()["log_entry"]
    assert one["id"] == first["id"] and one["type"] == "trigger_log_entry"


# listing incidents


def test_list_filters_by_status_service_key_user_and_sorts(api):
    a = new_incident(api, "PAPI001", incident_key="k-a", urgency="low")
    b = new_incident(api, "PDAT001", incident_key="k-b")
    c = new_incident(api, "PDAT001", incident_key="k-c")
    update(api, b["id"], status="acknowledged")
    update(api, c["id"], status="resolved")

    def ids(**params):
        response = api.get("/incidents", params=params)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["incidents"]]

    assert ids() == [a["id"], b["id"], c["id"]]
    assert ids(**{"statuses[]": ["triggered", "acknowledged"]}) == [a["id"], b["id"]]
    assert ids(**{"service_ids[]": "PDAT001"}) == [b["id"], c["id"]]
    assert ids(incident_key="k-c") == [c["id"]]
    assert ids(**{"urgencies[]": "low"}) == [a["id"]]
    assert ids(**{"user_ids[]": "PUOPS01"}) == [b["id"]]  # ops acknowledged b; c is resolved
    assert ids(sort_by="incident_number:desc") == [c["id"], b["id"], a["id"]]
    assert ids(sort_by="urgency:desc,incident_number:asc") == [a["id"], b["id"], c["id"]]
    assert ids(**{"team_ids[]": "PTEAM01"}) == []
    assert api.get("/incidents", params={"sort_by": "title"}).status_code == 400
    assert api.get("/incidents", params={"statuses[]": "open"}).status_code == 400


def test_list_time_window_defaults_to_a_month_and_date_range_all(pd, api):
    pd.bulk_incidents(3, span_seconds=90 * 86400)  # created 90, 60 and 30 days ago
    assert len(api.get("/incidents").json()["incidents"]) == 0
    assert len(api.get("/incidents", params={"date_range": "all"}).json()["incidents"]) == 3
    since = api.get(
        "/incidents", params={"since": "2000-01-01T00:00:00Z", "until": "2000-03-01T00:00:00Z"}
    )
    assert since.status_code == 200 and since.json()["incidents"] == []
    too_wide = api.get("/incidents", params={"since": "2000-01-01", "until": "2001-01-01"})
    assert too_wide.status_code == 400 and error_of(too_wide)["code"] == 2005
    backwards = api.get("/incidents", params={"since": "2001-01-01", "until": "2000-01-01"})
    assert backwards.status_code == 400 and error_of(backwards)["code"] == 2004
    garbage = api.get("/incidents", params={"since": "yesterday"})
    assert garbage.status_code == 400 and error_of(garbage)["code"] == 2004


def test_classic_pagination_and_the_10000_limit(pd, api):
    pd.bulk_incidents(60)
    first = api.get("/incidents", params={"limit": 25, "total": "true"}).json()
    assert (first["limit"], first["offset"], first["more"], first["total"]) == (25, 0, True, 60)
    last = api.get("/incidents", params={"limit": 25, "offset": 50}).json()
    assert len(last["incidents"]) == 10 and last["more"] is False and last["total"] is None
    assert api.get("/incidents", params={"limit": 500}).json()["limit"] == 100
    assert api.get("/incidents", params={"offset": 9900, "limit": 100}).status_code == 200
    over = api.get("/incidents", params={"offset": 9901, "limit": 100})
    assert over.status_code == 400
    assert error_of(over)["code"] == 2002 and "10000" in error_of(over)["errors"][0]
    assert api.get("/users", params={"offset": 10000}).status_code == 400


def test_include_replaces_references_with_objects(api):
    incident = new_incident(api, "PAPI001")
    response = api.get(
        f"/incidents/{incident['id']}",
        params={
            "include[]": [
                "services",
                "assignees",
                "escalation_policies",
                "first_trigger_log_entries",
            ]
        },
    )
    body = response.json()["incident"]
    assert body["service"]["type"] == "service" and body["service"]["name"] == "API Service"
    assert body["assignments"][0]["assignee"]["type"] == "user"
    assert body["assignments"][0]["assignee"]["email"] == "john.doe@company.com"
    assert body["escalation_policy"]["type"] == "escalation_policy"
    assert body["first_trigger_log_entry"]["type"] == "trigger_log_entry"


# the directory


def test_priorities_can_be_renamed_and_turned_off_by_the_control_api(pd, api):
    standard = api.get("/priorities").json()["priorities"]
    assert [p["name"] for p in standard] == ["P1", "P2", "P3", "P4", "P5"]
    # renamed by the account's admins: each keeps its id, as a rename in PagerDuty does
    renamed = pd.set_priorities("SEV-1", "SEV-2", "SEV-3", "SEV-4")
    assert [p["id"] for p in renamed] == [p["id"] for p in standard[:4]]
    listed = api.get("/priorities").json()["priorities"]
    assert [p["name"] for p in listed] == ["SEV-1", "SEV-2", "SEV-3", "SEV-4"]
    incident = new_incident(api)
    assert update(api, incident["id"], priority="sev-2").json()["incident"]["priority"][
        "summary"] == "SEV-2"
    # not enabled: none listed, and setting one is refused as PagerDuty refuses a bad one
    pd.set_priorities()
    assert api.get("/priorities").json()["priorities"] == []
    refused = update(api, incident["id"], priority="SEV-1")
    assert (refused.status_code, error_of(refused)["code"]) == (400, 1020)


def test_services_match_the_spec_and_show_their_state(api):
    services = api.get("/services").json()["services"]
    assert {(s["id"], s["name"]) for s in services} == {
        ("PXXXXXX", "Default Service"),
        ("PAPI001", "API Service"),
        ("PDAT001", "Database Service"),
        ("PWEB001", "Web Service"),
        ("PPAY001", "Payments Service"),
        ("PGEN001", "General Service"),
    }
    incident = new_incident(api, "PWEB001")
    assert api.get("/services/PWEB001").json()["service"]["status"] == "critical"
    update(api, incident["id"], status="acknowledged")
    assert api.get("/services/PWEB001").json()["service"]["status"] == "warning"
    assert api.get("/services/PNOPE00").status_code == 404
    assert [s["id"] for s in api.get("/services", params={"query": "pay"}).json()["services"]] == [
        "PPAY001"
    ]


def test_users_query_matches_name_or_email(api):
    def emails(query):
        return [u["email"] for u in api.get("/users", params={"query": query}).json()["users"]]

    assert emails("john.doe@company.com") == ["john.doe@company.com"]
    assert emails("Smith") == ["jane.smith@company.com"]
    assert emails("team-lead@") == ["team-lead@company.com"]
    assert len(emails("@company.com")) == 4
    assert api.get("/users/PUJANE1").json()["user"]["name"] == "Jane Smith"


def test_escalation_policies_target_users_and_schedules(api):
    policy = api.get("/escalation_policies/PAPI_ESCALATION").json()["escalation_policy"]
    rules = policy["escalation_rules"]
    assert rules[0]["escalation_delay_in_minutes"] == 15
    assert [t["type"] for t in rules[0]["targets"]] == ["schedule_reference"]
    assert [(t["type"], t["summary"]) for t in rules[1]["targets"]] == [
        ("user_reference", "Team Lead")
    ]
    assert [s["id"] for s in policy["services"]] == ["PAPI001"]
    listed = api.get("/escalation_policies", params={"user_ids[]": "PUJANE1"}).json()[
        "escalation_policies"
    ]
    assert {p["id"] for p in listed} == {"PXXXXXX", "PAPI_ESCALATION"}


def test_seed_none_is_an_empty_account_with_one_user(pd, api):
    pd.reset("none")
    assert [u["email"] for u in api.get("/users").json()["users"]] == ["ops@company.com"]
    assert api.get("/services").json()["services"] == []
    assert api.get("/oncalls").json()["oncalls"] == []


# merges


def test_merge_resolves_the_sources_with_a_merge_resolve_reason(api):
    target = new_incident(api, "PAPI001", title="Checkout is failing")
    source = new_incident(api, "PAPI001", title="Payments time out")
    update(api, source["id"], status="acknowledged")
    merged = api.put(
        f"/incidents/{target['id']}/merge",
        json={"source_incidents": [{"id": source["id"], "type": "incident_reference"}]},
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["incident"]["id"] == target["id"]
    assert merged.json()["incident"]["type"] == "incident_reference"
    gone = api.get(f"/incidents/{source['id']}").json()["incident"]
    assert gone["status"] == "resolved"
    assert gone["resolve_reason"]["type"] == "merge_resolve_reason"
    assert gone["resolve_reason"]["incident"]["id"] == target["id"]
    number = target["incident_number"]
    assert gone["resolve_reason"]["incident"]["summary"].startswith(f"[#{number}]")
    # listings carry it too (a poll needs no call per incident to tell a merge)
    listed = {i["id"]: i for i in api.get("/incidents", params={"statuses[]": "resolved"}).json()[
        "incidents"]}
    assert listed[source["id"]]["resolve_reason"]["incident"]["id"] == target["id"]
    kept = api.get(f"/incidents/{target['id']}").json()["incident"]
    assert kept["status"] == "triggered" and kept["resolve_reason"] is None
    # a resolve that was not a merge has no reason
    update(api, target["id"], status="resolved")
    assert api.get(f"/incidents/{target['id']}").json()["incident"]["resolve_reason"] is None


def test_merge_refuses_what_pagerduty_refuses(api):
    target = new_incident(api, "PAPI001")
    source = new_incident(api, "PAPI001")

    def merge(into, *ids):
        return api.put(
            f"/incidents/{into}/merge",
            json={"source_incidents": [{"id": i, "type": "incident_reference"} for i in ids]},
        )

    assert merge("QNOTTHERE", source["id"]).status_code == 404
    assert merge(target["id"], "QNOTTHERE").status_code == 404
    assert merge(target["id"], target["id"]).status_code == 400
    assert merge(target["id"]).status_code == 400
    update(api, target["id"], status="resolved")
    refused = merge(target["id"], source["id"])
    assert refused.status_code == 400 and "resolved" in str(error_of(refused))
    assert api.get(f"/incidents/{source['id']}").json()["incident"]["status"] == "triggered"
    assert api.put(
        f"/incidents/{target['id']}/merge", json={"source_incidents": []}, headers={"From": ""}
    ).status_code == 400


def test_answers_are_rendered_in_the_account_or_asked_time_zone(pd, api):
    """PagerDuty renders REST times in the request's `time_zone`, by default the account's,
    with its offset; webhook times stay UTC."""
    from datetime import datetime

    created = api.post("/incidents", json={"incident": {
        "type": "incident", "title": "Zoned", "service": {"id": "PAPI001",
                                                        "type": "service_reference"}}},
        headers={"From": "ops@company.com"}).json()["incident"]
    utc = created["created_at"]
    assert utc.endswith("Z")
    lima = api.get(f"/incidents/{created['id']}", params={"time_zone": "America/Lima"}
                   ).json()["incident"]["created_at"]
    assert lima.endswith("-05:00")
    assert datetime.fromisoformat(lima) == datetime.fromisoformat(utc.replace("Z", "+00:00"))
    pd.configure(time_zone="Asia/Kolkata")
    try:
        kolkata = api.get(f"/incidents/{created['id']}").json()["incident"]["created_at"]
        assert kolkata.endswith("+05:30")
        assert datetime.fromisoformat(kolkata) == datetime.fromisoformat(lima)
    finally:
        pd.configure(time_zone="UTC")
    for name in ("Mars/Olympus_Mons", "America", "A" * 5000):  # none, a folder, too long
        refused = api.get("/incidents", params={"time_zone": name})
        assert refused.status_code == 400, name
        assert refused.json()["error"]["errors"] == [f"unknown time zone {name!r}"]


def test_an_operation_limit_refuses_that_operation_only(pd, api):
    """PagerDuty limits some operations below the key's limit (PUT /incidents 500 a minute;
    POST /incidents "human speed", no number): the sandbox's are settings. Past one, that
    operation gets 429 with the narrower limit's headers; other calls go on."""
    pd.configure(operation_limits={"POST /incidents": {"limit": 2, "window_seconds": 60}})
    body = {"incident": {"type": "incident", "title": "t", "service": {
        "id": "PAPI001", "type": "service_reference"}}}
    headers = {"From": "ops@company.com"}
    answers = [api.post("/incidents", json=body, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert answers[1].headers["ratelimit-limit"] == "2"
    assert answers[1].headers["ratelimit-remaining"] == "0"
    assert answers[2].json()["error"]["code"] == 2020
    listed = api.get("/incidents")
    assert listed.status_code == 200 and listed.headers["ratelimit-limit"] == "960"
    assert pd.configure()["operation_limits"]["POST /incidents"] == {
        "limit": 2, "window_seconds": 60}
