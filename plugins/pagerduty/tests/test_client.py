"""The REST client against mocked PagerDuty answers (pytest-httpx): headers, retries, rate
limits, pagination and error messages."""

import json
import time
import math
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from im_pagerduty.client import PagerDutyClient, PagerDutyError

BASE = "https://api.pagerduty.com"


@pytest.fixture
def slept():
    return []


@pytest.fixture
def client(slept):
    # A key of its own per test: the rate-limit budget is shared per API key.
    return PagerDutyClient(BASE, f"key-{uuid.uuid4().hex}", from_email="ops@company.com",
                           sleep=slept.append, max_attempts=4)


def test_headers_on_reads_and_writes(client, httpx_mock):
    httpx_mock.add_response(url=f"{BASE}/services/PAPI001", json={"service": {"id": "PAPI001"}})
    httpx_mock.add_response(url=f"{BASE}/incidents", method="POST", json={"incident": {}},
                            status_code=201)
    client.get("/services/PAPI001")
    client.post("/incidents", {"incident": {"title": "x"}})
    read, write = httpx_mock.get_requests()
    assert read.headers["Authorization"].startswith("Token token=key-")
    assert read.headers["Accept"] == "application/vnd.pagerduty+json;version=2"
    assert "From" not in read.headers and "Content-Type" not in read.headers
    assert write.headers["From"] == "ops@company.com"
    assert write.headers["Content-Type"] == "application/json"
    assert json.loads(write.content) == {"incident": {"title": "x"}}


def test_retries_server_errors_then_succeeds(client, httpx_mock, slept):
    httpx_mock.add_response(url=f"{BASE}/users", status_code=502)
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=f"{BASE}/users")
    httpx_mock.add_response(url=f"{BASE}/users", json={"users": []})
    assert client.get("/users") == {"users": []}
    assert len(httpx_mock.get_requests()) == 3 and len(slept) == 2


@pytest.mark.parametrize("failure", [
    httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("Server disconnected"), 500])
def test_a_post_that_may_have_been_carried_out_is_not_sent_again(client, httpx_mock, failure):
    # A note that timed out may be on the incident already: the caller checks before it
    # posts again, so the client must not repeat it on its own.
    notes = f"{BASE}/incidents/Q1/notes"
    if isinstance(failure, int):
        httpx_mock.add_response(url=notes, method="POST", status_code=failure)
    else:
        httpx_mock.add_exception(failure, url=notes, method="POST")
    with pytest.raises(PagerDutyError) as raised:
        client.post("/incidents/Q1/notes", {"note": {"content": "Replica lag"}})
    assert raised.value.retryable and not raised.value.unsent
    assert len(httpx_mock.get_requests()) == 1


def test_a_post_that_surely_was_not_carried_out_is_sent_again(client, httpx_mock):
    notes = f"{BASE}/incidents/Q1/notes"
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=notes, method="POST")
    httpx_mock.add_response(url=notes, method="POST", status_code=429)
    httpx_mock.add_response(url=notes, method="POST", json={"note": {"id": "N1"}})
    assert client.post("/incidents/Q1/notes", {"note": {"content": "x"}}) == {
        "note": {"id": "N1"}}
    assert len(httpx_mock.get_requests()) == 3


def test_a_repeatable_post_is_retried_after_a_timeout(client, httpx_mock):
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=f"{BASE}/incidents", method="POST")
    httpx_mock.add_response(url=f"{BASE}/incidents", method="POST", json={"incident": {}})
    client.post("/incidents", {"incident": {"incident_key": "k"}}, repeatable=True)
    assert len(httpx_mock.get_requests()) == 2


def test_429_waits_for_the_reset(client, httpx_mock, slept):
    httpx_mock.add_response(url=f"{BASE}/users", status_code=429,
                            headers={"ratelimit-limit": "960", "ratelimit-remaining": "0",
                                     "ratelimit-reset": "7"},
                            json={"error": {"message": "Rate Limit Exceeded", "code": 2020}})
    httpx_mock.add_response(url=f"{BASE}/users", json={"users": []})
    client.get("/users")
    # PagerDuty said "7 s"; the client waited at least that long before the retry.
    assert sum(slept) >= 7


def test_a_reset_of_a_minute_is_waited_out_whole_once(client, httpx_mock, slept):
    """PagerDuty's `ratelimit-reset` goes up to 60 s. Waiting less (the client once capped a
    wait at 30 s) only earns another 429: the reset is waited out once, then the call
    succeeds."""
    httpx_mock.add_response(url=f"{BASE}/users", status_code=429,
                            headers={"ratelimit-limit": "960", "ratelimit-remaining": "0",
                                     "ratelimit-reset": "58"},
                            json={"error": {"message": "Rate Limit Exceeded", "code": 2020}})
    httpx_mock.add_response(url=f"{BASE}/users", json={"users": []})
    assert client.get("/users") == {"users": []}
    assert len(slept) == 1 and 58 <= slept[0] <= 58.25
    assert len(httpx_mock.get_requests()) == 2


def test_a_reset_past_the_callers_deadline_is_not_waited_for(client, httpx_mock, slept):
    """Within a command's deadline: a reset it cannot wait out leaves the call to the outbox
    (unsent, retryable, with when to try again), without sleeping."""
    httpx_mock.add_response(url=f"{BASE}/users", status_code=429,
                            headers={"ratelimit-reset": "58"},
                            json={"error": {"message": "Rate Limit Exceeded", "code": 2020}})
    with client.until(time.monotonic() + 10), pytest.raises(PagerDutyError) as raised:
        client.get("/users")
    assert raised.value.retryable and raised.value.unsent
    assert raised.value.retry_after == 58
    assert slept == [] and len(httpx_mock.get_requests()) == 1


def test_429_without_headers_backs_off(client, httpx_mock, slept):
    httpx_mock.add_response(url=f"{BASE}/users", status_code=429)
    httpx_mock.add_response(url=f"{BASE}/users", json={"users": []})
    client.get("/users")
    assert len(slept) == 1 and 0 <= slept[0] <= 30


def test_gives_up_after_bounded_attempts(client, httpx_mock):
    for _ in range(4):
        httpx_mock.add_response(url=f"{BASE}/users", status_code=503,
                                json={"error": {"message": "Service Unavailable", "code": 2000}})
    with pytest.raises(PagerDutyError) as error:
        client.get("/users")
    assert str(error.value) == "PagerDuty answered 503: Service Unavailable (code 2000)"
    assert error.value.retryable and len(httpx_mock.get_requests()) == 4


def test_client_errors_are_not_retried_and_name_pagerdutys_message(client, httpx_mock):
    httpx_mock.add_response(url=f"{BASE}/incidents", method="POST", status_code=400, json={
        "error": {"message": "Invalid Input Provided", "code": 2001,
                  "errors": ["Service not found"]}})
    with pytest.raises(PagerDutyError) as error:
        client.post("/incidents", {"incident": {}})
    assert str(error.value) == ("PagerDuty answered 400: Invalid Input Provided:"
                                " Service not found (code 2001)")
    assert not error.value.retryable and error.value.code == 2001
    assert len(httpx_mock.get_requests()) == 1


def test_connection_errors_say_where(client, httpx_mock):
    for _ in range(4):
        httpx_mock.add_exception(httpx.ConnectError("refused"), url=f"{BASE}/users")
    with pytest.raises(PagerDutyError, match="cannot reach PagerDuty at https://api.pagerduty"
                                             ".com: refused"):
        client.get("/users")


def test_pagination_walks_pages_of_100(client, httpx_mock):
    for offset, more in ((0, True), (100, True), (200, False)):
        httpx_mock.add_response(
            url=f"{BASE}/users?limit=100&offset={offset}",
            json={"users": [{"id": f"U{offset + i}"} for i in range(100 if more else 7)],
                  "more": more, "limit": 100, "offset": offset})
    users = list(client.paginate("/users", "users"))
    assert len(users) == 207 and users[-1]["id"] == "U206"


def test_incident_windows_never_pass_the_offset_ceiling(client, httpx_mock):
    """25,000 incidents: each window stops before offset + limit passes 10,000 and the next
    one starts at the last creation time seen; no incident is yielded twice."""
    since = datetime(2025, 8, 1, tzinfo=UTC)
    until = since + timedelta(days=2)
    created = [since + timedelta(seconds=5 * n) for n in range(25_000)]
    calls = []

    def answer(request):
        params = request.url.params
        start = datetime.fromisoformat(params["since"])
        offset, limit = int(params["offset"]), int(params["limit"])
        assert offset + limit <= 10_000
        assert params["sort_by"] == "created_at:asc"
        calls.append(offset)
        matching = [n for n, at in enumerate(created) if at >= start]
        page = matching[offset:offset + limit]
        return httpx.Response(200, json={
            "incidents": [{"id": f"Q{n}", "created_at": created[n].isoformat()} for n in page],
            "more": offset + limit < len(matching), "offset": offset, "limit": limit})

    httpx_mock.add_callback(answer, is_reusable=True)
    found = list(client.incidents_between(since, until))
    assert [i["id"] for i in found] == [f"Q{n}" for n in range(25_000)]
    assert len(calls) <= math.ceil(25_000 / 100) + 3


def test_an_exhausted_budget_waits_before_the_next_call(client, httpx_mock, slept):
    httpx_mock.add_response(url=f"{BASE}/users", json={"users": []},
                            headers={"ratelimit-remaining": "0", "ratelimit-reset": "12"})
    httpx_mock.add_response(url=f"{BASE}/services", json={"services": []})
    client.get("/users")
    assert slept == []
    client.get("/services")
    assert len(slept) == 1 and 11 < slept[0] <= 12


def test_a_callers_deadline_is_not_waited_past_for_the_rate_limit(client, httpx_mock, slept):
    httpx_mock.add_response(url=f"{BASE}/users", json={"users": []}, headers={
        "ratelimit-limit": "960", "ratelimit-remaining": "0", "ratelimit-reset": "30"})
    client.get("/users")  # PagerDuty says: no more calls for 30 s
    with client.until(time.monotonic() + 5), pytest.raises(PagerDutyError) as raised:
        client.get("/users")
    assert raised.value.unsent and raised.value.retryable
    assert "no time left to call PagerDuty (GET /users)" in str(raised.value)
    assert slept == [] and len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize("reset", ["-5", "nan", "inf", "1e9"])
def test_a_nonsensical_reset_is_kept_within_a_minute(client, httpx_mock, slept, reset):
    """A proxy may send any `ratelimit-reset`: it never makes sleep() fail (negative, NaN)
    nor blocks the key for longer than PagerDuty's minute (inf, huge)."""
    httpx_mock.add_response(url=f"{BASE}/users", status_code=429,
                            headers={"ratelimit-reset": reset})
    httpx_mock.add_response(url=f"{BASE}/users", json={"users": []})
    assert client.get("/users") == {"users": []}
    assert len(slept) == 1 and 0 <= slept[0] <= 60.25
