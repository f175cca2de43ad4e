"""Proof of fidelity: every request and response of the sandbox's endpoints, successes and
errors, validated with openapi-core against PagerDuty's official OpenAPI document."""

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from .openapi_check import ARTEFACTS, OpenApiCheck, corrected
from .sandbox_calls import new_incident

# Routes PagerDuty's API has, answered by the sandbox: read from its app (below), so a route
# added to the sandbox is checked here without anyone listing it.
CONTROL_ROUTES = "/_sandbox"
# Litestar answers these itself (CORS preflight, HEAD of a GET); they are not routes of ours
FRAMEWORK_METHODS = {"OPTIONS", "HEAD"}


def served_routes() -> set[tuple[str, str]]:
    """(method, path template in PagerDuty's document, `{id}` for any parameter) of every
    route handler of the sandbox's app, its /_sandbox controls left out."""
    import re

    from im_pagerduty.sandbox import SandboxConfig
    from im_pagerduty.sandbox.app import create_app
    from im_pagerduty.sandbox.core import Sandbox

    app = create_app(Sandbox(SandboxConfig(api_keys=("routes",)))).app
    found = set()
    for route in app.routes:
        if route.path == CONTROL_ROUTES or route.path.startswith(CONTROL_ROUTES + "/"):
            continue
        template = re.sub(r"\{[^}]+\}", "{id}", route.path)
        for handler in route.route_handlers:
            found |= {(method, template) for method in handler.http_methods
                      if method not in FRAMEWORK_METHODS}
    return found


@pytest.fixture(scope="module")
def document(shared_pagerduty):
    return json.loads((shared_pagerduty / "rest-api-v2.openapiv3.json").read_text())


@pytest.fixture(scope="module")
def openapi(document):
    return OpenApiCheck(document)


@pytest.fixture
def checked(pd, openapi, pagerduty_webhook_receiver):
    openapi.problems.clear()
    openapi.refused_requests.clear()
    openapi.exchanges = 0
    with pd.client(event_hooks={"response": [openapi.hook]}) as client:
        yield client


def ref(kind, object_id):
    return {"id": object_id, "type": f"{kind}_reference"}


def test_every_endpoint_matches_the_openapi_document(
    pd, openapi, checked, pagerduty_webhook_receiver
):
    c = checked
    # an override and an on-call window a month ahead of now, whatever the date
    day = (datetime.now(UTC) + timedelta(days=30)).replace(hour=0, minute=0, second=0,
                                                            microsecond=0)

    def at(hours):
        return (day + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")

    # the directory, with and without include[]
    c.get("/services", params={"total": "true"})
    c.get("/services/PAPI001")
    c.get("/services/PAPI001", params={"include[]": "escalation_policies"})
    c.get("/users", params={"query": "jane.smith@company.com"})
    c.get("/users/PUJANE1")
    c.get("/users/me")  # 400 with an account-level key, as PagerDuty answers it
    c.get("/escalation_policies", params={"query": "API"})
    c.get("/escalation_policies/PAPI_ESCALATION", params={"include[]": "targets"})
    c.get("/schedules")
    c.get("/schedules/PSPRIM1")
    c.post(
        "/schedules/PSPRIM1/overrides",
        json={
            "overrides": [
                {
                    "start": at(0),
                    "end": at(6),
                    "user": ref("user", "PUJANE1"),
                }
            ]
        },
    )
    c.get("/schedules/PSPRIM1/overrides", params={"since": at(-1), "until": at(7)})
    c.get("/oncalls")
    c.get(
        "/oncalls",
        params={
            "earliest": "true",
            "until": at(24),
            "since": at(-24),
            "include[]": ["users", "escalation_policies", "schedules"],
            "escalation_policy_ids[]": "PAPI_ESCALATION",
            "schedule_ids[]": "PSPRIM1",
        },
    )
    c.get("/priorities")

    # the incident lifecycle
    created = c.post(
        "/incidents",
        json={
            "incident": {
                "type": "incident",
                "title": "Checkout is failing",
                "service": ref("service", "PPAY001"),
                "urgency": "high",
                "incident_key": "checkout-5xx",
                "priority": ref("priority", "PPRIO02"),
                "body": {"type": "incident_body", "details": "HTTP 500 on /pay"},
                "conference_bridge": {
                    "conference_number": "+1 555 0100",
                    "conference_url": "https://example.com/bridge",
                },
            }
        },
    )
    incident_id = created.json()["incident"]["id"]
    c.post(
        "/incidents",
        json={
            "incident": {
                "type": "incident",
                "title": "dup",
                "service": ref("service", "PPAY001"),
                "incident_key": "checkout-5xx",
            }
        },
    )
    c.get(f"/incidents/{incident_id}")
    c.get(
        f"/incidents/{incident_id}",
        params={
            "include[]": [
                "services",
                "assignees",
                "acknowledgers",
                "agents",
                "escalation_policies",
                "first_trigger_log_entries",
                "priorities",
                "conference_bridge",
            ]
        },
    )
    for change in (
        {"status": "acknowledged"},
        {"status": "acknowledged"},
        {"status": "triggered"},
        {"escalation_level": 2},
        {"assignments": [{"assignee": ref("user", "PUJANE1")}]},
        {"escalation_policy": ref("escalation_policy", "PAPI_ESCALATION")},
        {"priority": "P1"},
        {"urgency": "low", "title": "Checkout is slow"},
    ):
        c.put(
            f"/incidents/{incident_id}", json={"incident": {"type": "incident_reference", **change}}
        )
    with openapi.invalid_requests():
        c.put(
            f"/incidents/{incident_id}",
            json={"incident": {"type": "incident_reference", "status": "snoozed"}},
        )
    assert len(openapi.refused_requests) == 1
    c.post(f"/incidents/{incident_id}/notes", json={"note": {"content": "Rolled back the release"}})
    c.get(f"/incidents/{incident_id}/notes")
    c.post(f"/incidents/{incident_id}/status_updates", json={"message": "Rolling back"})
    # responders: a user and an escalation policy, then the incident that lists them
    asked = c.post(
        f"/incidents/{incident_id}/responder_requests",
        json={
            "requester_id": "PUJOHN1",
            "message": "Please join the bridge",
            "responder_request_targets": [
                {"responder_request_target": ref("user", "PUJANE1")},
                {"responder_request_target": ref("escalation_policy", "PAPI_ESCALATION")},
            ],
        },
    )
    shown = c.get(f"/incidents/{incident_id}").json()["incident"]
    assert asked.status_code == 200 and len(shown["incidents_responders"]) == 2
    with openapi.invalid_requests():
        c.post(
            f"/incidents/{incident_id}/responder_requests",
            json={"message": "no requester", "responder_request_targets": []},
        )
    assert len(openapi.refused_requests) == 2
    unknown_user = c.post(
        f"/incidents/{incident_id}/responder_requests",
        json={
            "requester_id": "PUJOHN1",
            "message": "x",
            "responder_request_targets": [{"responder_request_target": ref("user", "PNOBODY")}],
        },
    )
    assert unknown_user.status_code == 400
    c.put(
        f"/incidents/{incident_id}",
        json={"incident": {"type": "incident", "status": "resolved", "resolution": "Rolled back"}},
    )
    c.put(
        f"/incidents/{incident_id}",
        json={"incident": {"type": "incident_reference", "status": "resolved"}},
    )
    second = c.post(
        "/incidents",
        json={
            "incident": {
                "type": "incident",
                "title": "Queue backlog",
                "service": ref("service", "PGEN001"),
                "assignments": [{"assignee": ref("user", "PUJOHN1")}],
            }
        },
    ).json()["incident"]["id"]
    c.put(
        "/incidents",
        json={
            "incidents": [{"id": second, "type": "incident_reference", "status": "acknowledged"}]
        },
    )
    # a merge: the source is resolved with a merge resolve reason naming the target
    merged = c.post(
        "/incidents",
        json={"incident": {"type": "incident", "title": "Queue slow", "service": ref(
            "service", "PGEN001")}},
    ).json()["incident"]["id"]
    c.put(f"/incidents/{second}/merge", json={"source_incidents": [ref("incident", merged)]})
    c.get(f"/incidents/{merged}")
    c.put(f"/incidents/{incident_id}/merge", json={"source_incidents": [ref("incident", second)]})
    c.get(
        "/incidents",
        params={
            "statuses[]": ["triggered", "acknowledged", "resolved"],
            "total": "true",
            "service_ids[]": ["PPAY001", "PGEN001"],
            "sort_by": "created_at:desc",
            "include[]": ["services", "assignees", "priorities"],
            "date_range": "all",
        },
    )
    c.get(
        "/incidents",
        params={
            "incident_key": "checkout-5xx",
            "since": "2020-01-01T00:00:00Z",
            "until": "2020-05-01T00:00:00Z",
        },
    )
    log = c.get(f"/incidents/{incident_id}/log_entries", params={"include[]": "incidents"}).json()[
        "log_entries"
    ]
    c.get("/log_entries", params={"is_overview": "true", "total": "true"})
    c.get(f"/log_entries/{log[0]['id']}")

    # webhook subscriptions
    sub = c.post(
        "/webhook_subscriptions",
        json={
            "webhook_subscription": {
                "type": "webhook_subscription",
                "description": "im",
                "delivery_method": {
                    "type": "http_delivery_method",
                    "url": pagerduty_webhook_receiver.url,
                    "custom_headers": [{"name": "X-Tenant", "value": "acme"}],
                },
                "events": ["incident.triggered", "incident.resolved"],
                "filter": ref("service", "PPAY001"),
            }
        },
    ).json()["webhook_subscription"]
    c.get("/webhook_subscriptions", params={"filter_type": "service", "filter_id": "PPAY001"})
    c.get(f"/webhook_subscriptions/{sub['id']}")
    c.put(
        f"/webhook_subscriptions/{sub['id']}",
        json={"webhook_subscription": {"events": ["incident.triggered"]}},
    )
    c.post(f"/webhook_subscriptions/{sub['id']}/ping")
    c.post(f"/webhook_subscriptions/{sub['id']}/enable")
    c.delete(f"/webhook_subscriptions/{sub['id']}")

    # errors the API answers with
    c.get("/incidents/QNOTTHERE")
    unknown_incident = c.post(
        "/incidents/QNOTTHERE/responder_requests",
        json={
            "requester_id": "PUJOHN1",
            "message": "x",
            "responder_request_targets": [{"responder_request_target": ref("user", "PUJANE1")}],
        },
    )
    assert unknown_incident.json()["error"]["message"] == "Incident Not Found"
    c.put(
        "/incidents/QNOTTHERE",
        json={"incident": {"type": "incident_reference", "status": "resolved"}},
    )
    c.get("/incidents", params={"offset": 9990, "limit": 25})
    c.get("/services/PNOPE00")
    c.get(f"/webhook_subscriptions/{sub['id']}")
    c.post(
        "/incidents",
        json={"incident": {"type": "incident", "title": "x", "service": ref("service", "PXXXXXX")}},
        headers={"From": "nobody@company.com"},
    )
    with pd.client(event_hooks={"response": [openapi.hook]}) as stranger:
        stranger.headers["Authorization"] = "Token token=not-the-key"
        stranger.get("/incidents")
    pd.set_faults(storm_429=1)
    c.get("/incidents")

    assert openapi.problems == []
    missing = served_routes() - openapi.operations
    assert not missing, f"not exercised: {sorted(missing)}"
    # Nothing the sandbox answered went unchecked.
    assert openapi.exchanges == len(pd.requests()) > 50


@pytest.mark.parametrize(
    ("path", "status", "body", "culprit"),
    [
        ("/incidents/Q1", 200, {"incident": {"id": "Q1", "status": "open"}}, "status"),
        (
            "/incidents/Q1",
            200,
            {"incident": {"id": "Q1", "service": {"type": "service_reference"}}},
            "service",
        ),
        (
            "/oncalls",
            200,
            {"oncalls": [{"escalation_level": "first"}], "limit": 25, "offset": 0, "more": False},
            "escalation_level",
        ),
        (
            "/incidents",
            400,
            {"error": {"message": "Invalid Input Provided", "code": "2001"}},
            "code",
        ),
    ],
)
def test_the_check_catches_bodies_that_break_the_document(openapi, pd, path, status, body, culprit):
    """The harness must be able to fail, corrections and all."""
    openapi.problems.clear()
    request = httpx.Request(
        "GET",
        f"{pd.url}{path}",
        headers={
            "Accept": "application/vnd.pagerduty+json;version=2",
            "Authorization": "Token token=x",
        },
    )
    openapi.hook(httpx.Response(status, request=request, json=body))
    assert len(openapi.problems) == 1 and culprit in openapi.problems[0]


def test_every_corrected_artefact_is_in_the_document(document):
    """If PagerDuty fixes its document, the matching correction must go: each is checked here."""
    schemas = document["components"]["schemas"]
    get_incidents = document["paths"]["/incidents"]["get"]["parameters"]
    content_type = [p for p in get_incidents if "Content-Type" in json.dumps(p)]
    assert content_type, "GET /incidents lists Content-Type"
    incident = schemas["Incident"]["allOf"][1]["properties"]
    assert (
        "nullable" not in incident["resolved_at"]
        and "null" in incident["resolved_at"]["description"]
    )
    examples = json.dumps(document)
    assert '"priority": null' in examples and '"resolve_reason": null' in examples
    assert "$ref" in incident["priority"] and "$ref" in incident["resolve_reason"]
    oncall = schemas["Oncall"]["properties"]
    assert (
        "nullable" not in json.dumps(oncall["schedule"])
        and "null" in oncall["start"]["description"]
    )
    assert schemas["Tag"]["allOf"][0]["properties"]["id"]["readOnly"] is True
    assert schemas["IncidentBody"]["properties"]["details"]["type"] == "object"
    assert schemas["AcknowledgeLogEntry"]["allOf"][1]["properties"]["type"]["enum"] == [
        "acknowledgement_log_entry"
    ]
    # two alternatives that require nothing both match any channel object
    assert sum("required" not in shape for shape in schemas["Channel"]["oneOf"]) >= 2
    assert schemas["Service"]["allOf"][1]["properties"]["escalation_policy"] == {
        "$ref": "#/components/schemas/EscalationPolicyReference"
    }
    overrides = document["paths"]["/schedules/{id}/overrides"]["get"]["responses"]
    assert "201" in overrides and "200" not in overrides
    assert "400" not in document["paths"]["/incidents/{id}"]["put"]["responses"]
    assert "429" not in document["paths"]["/services"]["get"]["responses"]
    # and the corrected copy leaves the original alone
    assert (
        corrected(document) is not document
        and "429" not in document["paths"]["/services"]["get"]["responses"]
    )
    assert len(ARTEFACTS) == 11


def test_every_seeded_user_has_a_role_pagerduty_has(shared_pagerduty, pd):
    """A user's account role is one of PagerDuty's (the seeded team lead once was `manager`,
    which is a team role, not an account role)."""
    document = json.loads((shared_pagerduty / "rest-api-v2.openapiv3.json").read_text())
    [roles] = [part["properties"]["role"]["enum"]
               for part in document["components"]["schemas"]["User"]["allOf"]
               if "role" in part.get("properties", {})]
    with pd.client() as api:
        users = api.get("/users", params={"limit": 100}).json()["users"]
    assert users and {user["role"] for user in users} <= set(roles), users


def test_the_routes_read_from_the_app_are_pagerdutys(document):
    """The routes the check above must see: read from the sandbox's app, each one a path and
    method of PagerDuty's document (the reading itself is checked: the core of the API is in
    it, and none of the controls)."""
    routes = served_routes()
    assert {("GET", "/incidents"), ("PUT", "/incidents/{id}/merge"), ("GET", "/users/me"),
            ("DELETE", "/webhook_subscriptions/{id}"),
            ("GET", "/schedules/{id}/overrides")} <= routes
    assert not any(path.startswith("/_sandbox") for _, path in routes)
    unknown = sorted((method, path) for method, path in routes
                     if method.lower() not in document["paths"].get(path, {}))
    assert not unknown, f"not in PagerDuty's document: {unknown}"


# include[] values the sandbox renders, by route: each of them one PagerDuty lists for it
INCLUDES = {
    "/incidents": ["acknowledgers", "agents", "assignees", "conference_bridge",
                   "escalation_policies", "first_trigger_log_entries", "priorities",
                   "services"],
    "/services": ["escalation_policies"],
    "/escalation_policies": ["services", "targets"],
    "/oncalls": ["escalation_policies", "schedules", "users"],
    "/log_entries": ["incidents", "services"],
}
INCLUDES |= {"/incidents/{id}": INCLUDES["/incidents"],
             "/services/{id}": INCLUDES["/services"],
             "/escalation_policies/{id}": INCLUDES["/escalation_policies"],
             "/log_entries/{id}": INCLUDES["/log_entries"],
             "/incidents/{id}/log_entries": INCLUDES["/log_entries"]}


def _includes_of(document, path):
    """The include[] values PagerDuty's document lists for GET `path`."""
    parameters = document["components"]["parameters"]
    for parameter in document["paths"][path]["get"].get("parameters", []):
        if "$ref" in parameter:
            parameter = parameters[parameter["$ref"].rsplit("/", 1)[1]]
        if parameter["name"] == "include[]":
            schema = parameter["schema"]
            return schema.get("items", schema)["enum"]
    return []


@pytest.mark.parametrize(("route", "include"), [
    (route, include) for route, includes in INCLUDES.items() for include in includes])
def test_every_include_the_sandbox_renders_matches_the_document(
        document, openapi, checked, route, include):
    """Each include[] a route renders, on an incident as most are (no conference bridge,
    acknowledged, with a priority): PagerDuty lists it for the route, and the answer matches
    the document."""
    assert include in _includes_of(document, route)
    c = checked
    incident = c.post("/incidents", json={"incident": {
        "type": "incident", "title": "Checkout is failing", "service": ref("service", "PAPI001"),
        "priority": ref("priority", "PPRIO02")}}).json()["incident"]
    c.put(f"/incidents/{incident['id']}", json={"incident": {
        "type": "incident_reference", "status": "acknowledged"}})
    ids = {"/incidents/{id}": incident["id"], "/incidents/{id}/log_entries": incident["id"],
           "/services/{id}": "PAPI001", "/escalation_policies/{id}": "PAPI_ESCALATION",
           "/log_entries/{id}": incident["first_trigger_log_entry"]["id"]}
    answer = c.get(route.replace("{id}", ids.get(route, "")), params={"include[]": include})
    assert answer.status_code == 200, answer.text
    assert openapi.problems == []


def test_a_conference_bridge_is_included_only_where_the_incident_has_one(api):
    """As PagerDuty's document shows it: the object when there is a bridge; no null in its
    place when there is none (the schema has no null for it)."""
    plain = new_incident(api, "PAPI001")
    bridged = new_incident(api, "PAPI001", title="With a bridge", conference_bridge={
        "conference_number": "+1 555 0100", "conference_url": "https://example.com/bridge"})
    shown = {i["id"]: i for i in api.get("/incidents", params={
        "include[]": "conference_bridge"}).json()["incidents"]}
    assert "conference_bridge" not in shown[plain["id"]]
    assert shown[bridged["id"]]["conference_bridge"] == {
        "conference_number": "+1 555 0100", "conference_url": "https://example.com/bridge"}


def test_an_include_pagerduty_does_not_list_for_log_entries_is_ignored(api):
    """PagerDuty's log entries include incidents, services, channels and teams, not users:
    include[]=users leaves the agent a reference, as an unknown request parameter is
    ignored (API-NOTES §1), rather than rendering what PagerDuty does not."""
    incident = new_incident(api, "PAPI001")
    entry_id = incident["first_trigger_log_entry"]["id"]
    for path in ("/log_entries", f"/log_entries/{entry_id}",
                 f"/incidents/{incident['id']}/log_entries"):
        body = api.get(path, params={"include[]": "users"}).json()
        entries = body.get("log_entries") or [body["log_entry"]]
        assert {e["agent"]["type"] for e in entries} == {"user_reference"}, path
