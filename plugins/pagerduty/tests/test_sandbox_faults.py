"""Rate limiting per API key, fault injection switched at run time, and the request log."""

import time

import httpx
import pytest

from im_pagerduty.sandbox.edge import _is_loopback
from im_pagerduty.testing import run_sandbox

from .sandbox_calls import new_incident, subscribe, update


def test_rate_limit_per_key_gives_pagerduty_429(pd, api):
    pd.configure(rate_limit=3, rate_limit_window_seconds=2)
    remaining = [api.get("/users").headers["ratelimit-remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    limited = api.get("/users")
    assert limited.status_code == 429
    assert limited.json() == {"error": {"message": "Rate Limit Exceeded", "code": 2020}}
    assert (
        limited.headers["ratelimit-limit"] == "3" and limited.headers["ratelimit-remaining"] == "0"
    )
    assert 1 <= int(limited.headers["ratelimit-reset"]) <= 2
    assert "retry-after" not in limited.headers
    deadline = time.monotonic() + 4
    while api.get("/users").status_code == 429:
        assert time.monotonic() < deadline, "the window never reset"
        time.sleep(0.05)


def test_each_api_key_has_its_own_budget():
    with run_sandbox(api_key="first", other_api_keys=("second",), rate_limit=2) as pd:
        with pd.client() as first:
            assert [first.get("/services").status_code for _ in range(3)] == [200, 200, 429]
        second = httpx.get(f"{pd.url}/services", headers={"Authorization": "Token token=second"})
        assert second.status_code == 200 and second.headers["ratelimit-remaining"] == "1"


def test_default_limit_is_960_per_minute(api):
    response = api.get("/services")
    assert response.headers["ratelimit-limit"] == "960"
    assert 0 < int(response.headers["ratelimit-reset"]) <= 60


def test_429_storm_with_and_without_headers(pd, api):
    pd.set_faults(storm_429=1)
    stormy = api.get("/incidents")
    assert stormy.status_code == 429 and stormy.json()["error"]["code"] == 2020
    assert stormy.headers["ratelimit-remaining"] == "0" and stormy.headers["ratelimit-reset"] == "1"
    pd.set_faults(storm_429=2, storm_429_headers=False)
    bare = [api.get("/incidents") for _ in range(2)]
    assert [r.status_code for r in bare] == [429, 429]
    assert all("ratelimit-reset" not in r.headers and r.content == b"" for r in bare)
    assert api.get("/incidents").status_code == 200


def test_burst_of_5xx_then_recovery(pd, api):
    pd.set_faults(burst_5xx=2, burst_status=502)
    first, second, third = (api.get("/services") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (502, 502, 200)
    assert first.headers["content-type"].startswith("text/html")  # a gateway, not the API
    pd.set_faults(burst_5xx=1, burst_status=500)
    error = api.get("/services")
    assert error.status_code == 500 and error.json()["error"]["code"] == 2000
    faults = [r["fault"] for r in pd.requests(path="/services")]
    assert faults == ["server_error 502", "server_error 502", None, "server_error 500"]


def test_error_rate_is_random_but_repeatable(pd, api):
    def outcomes():
        pd.set_faults(error_rate=0.5, error_status=503, seed=7)
        return [api.get("/users").status_code for _ in range(30)]

    first = outcomes()
    assert set(first) == {200, 503}
    assert outcomes() == first


def test_faults_can_target_paths_and_writes_are_not_applied(pd, api):
    pd.set_faults(error_rate=1.0, paths=["/incidents"])
    assert api.get("/services").status_code == 200
    refused = api.post(
        "/incidents",
        json={
            "incident": {
                "type": "incident",
                "title": "x",
                "service": {"id": "PXXXXXX", "type": "service_reference"},
            }
        },
    )
    assert refused.status_code == 500
    pd.clear_faults()
    assert api.get("/incidents", params={"date_range": "all"}).json()["incidents"] == []


def test_added_latency(pd, api):
    pd.set_faults(latency_ms=300)
    started = time.monotonic()
    assert api.get("/users").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_request_that_arrived_before_the_log_was_cleared_is_not_logged(pd, api):
    pd.set_faults(latency_ms=300, paths=["/users"])
    with pytest.raises(httpx.ReadTimeout):
        api.get("/users", timeout=0.05)
    pd.clear_requests()
    time.sleep(0.4)  # it ends now, in the sandbox
    assert api.get("/services").status_code == 200
    assert [r["path"] for r in pd.requests()] == ["/services"]
    pd.clear_faults()


def test_a_late_answer_comes_after_the_change_is_made(pd, api):
    pd.set_faults(late_answer_rate=1.0, late_answer_ms=400, paths=["/incidents"])
    body = {"incident": {"type": "incident", "title": "Late", "incident_key": "late-1",
                         "service": {"id": "PXXXXXX", "type": "service_reference"}}}
    with pytest.raises(httpx.ReadTimeout):
        api.post("/incidents", json=body, timeout=0.1)
    # made at once, though its answer never reached the client
    [made] = api.get("/incidents", params={"incident_key": "late-1", "date_range": "all"},
                     timeout=2).json()["incidents"]
    assert made["title"] == "Late"
    started = time.monotonic()
    assert api.get("/services").status_code == 200  # other paths answer at once
    assert time.monotonic() - started < 0.3
    [posted, *_] = pd.requests(method="POST", path="/incidents")
    assert posted["fault"] == "late_answer"
    pd.clear_faults()


def test_dropped_connection_gets_no_answer(pd, api):
    pd.set_faults(drop_connections=1)
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/incidents")
    assert api.get("/incidents").status_code == 200
    first, second = pd.requests(path="/incidents")
    assert (first["status"], first["fault"]) == (None, "drop")
    assert second["status"] == 200


def test_paused_webhooks_are_held_then_delivered_in_order(pd, api, pagerduty_webhook_receiver):
    receiver = pagerduty_webhook_receiver
    subscribe(api, receiver.url)
    pd.set_faults(webhooks="paused")
    incident = new_incident(api)
    update(api, incident["id"], status="acknowledged")
    assert pd.wait_for_webhooks(timeout=0.3) is False
    assert receiver.received == []
    pd.clear_faults()
    assert pd.wait_for_webhooks()
    assert [w.json()["event"]["event_type"] for w in receiver.wait_for(2)] == [
        "incident.triggered",
        "incident.acknowledged",
    ]


def test_failing_webhooks_never_arrive_and_are_dropped(pd, api, pagerduty_webhook_receiver):
    subscribe(api, pagerduty_webhook_receiver.url)
    pd.set_faults(webhooks="failing")
    new_incident(api)
    assert pd.wait_for_webhooks()
    assert pagerduty_webhook_receiver.received == []
    attempts = pd.deliveries()
    assert [a["outcome"] for a in attempts] == ["retrying", "retrying", "retrying", "dropped"]
    assert attempts[0]["error"] == "injected delivery failure"


def test_duplicate_deliveries_share_the_webhook_id(pd, api, pagerduty_webhook_receiver):
    subscribe(api, pagerduty_webhook_receiver.url)
    pd.set_faults(webhook_duplicates=True)
    new_incident(api)
    first, second = pagerduty_webhook_receiver.wait_for(2)
    assert (
        first.headers["x-webhook-id"] == second.headers["x-webhook-id"]
        and first.body == second.body
    )


def test_request_log_counts_api_calls_and_reset_clears_everything(pd, api):
    for _ in range(3):
        api.get("/incidents")
    new_incident(api)
    api.get("/services/PAPI001")
    assert len(pd.requests(method="GET", path="/incidents")) == 3
    assert len(pd.requests(path="/services*")) == 1
    post = pd.requests(method="POST")[0]
    assert (post["path"], post["status"], post["query"]) == ("/incidents", 201, "")
    pd.set_faults(burst_5xx=5)
    pd.configure(rate_limit=1)
    pd.reset()
    assert pd.requests() == []
    assert api.get("/incidents").status_code == 200
    assert api.get("/incidents").status_code == 200  # the limit is back to 960


def test_control_api_is_loopback_only():
    assert _is_loopback(("127.0.0.1", 5000)) and _is_loopback(("::1", 5000))
    assert not _is_loopback(("192.0.2.10", 5000))
    assert not _is_loopback(None)


def test_refuse_rate_answers_a_final_400_and_does_nothing(pd, api):
    pd.set_faults(refuse_rate=1.0, paths=("/incidents",))
    refused = api.post("/incidents", json={"incident": {
        "type": "incident", "title": "Refused",
        "service": {"id": "PXXXXXX", "type": "service_reference"}}})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == 2001
    assert api.get("/services").status_code == 200  # only the paths given
    pd.clear_faults()
    titles = [i["title"] for i in api.get("/incidents", params={"date_range": "all"}).json()[
        "incidents"]]
    assert "Refused" not in titles
    assert [r["fault"] for r in pd.requests(method="POST", path="/incidents")] == [
        "client_error 400"]
