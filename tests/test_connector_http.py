"""im.connector_client: a connector's HTTP calls logged, recorded, bounded by the caller's
deadline and retried by the core's rules, checked against a real HTTP server on loopback (what
it received), the log lines written, the calls stored and what the commands print of them."""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import threading
import time
from datetime import timedelta
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import msgspec
import pytest

import im
from im.logs import install
from im.testing import FakeClock, make_runtime, run_cli, run_workflows, sql

SECRET = "s3cr3t-api-key-123"


# -- a remote system on loopback, answering as each test scripts it ------------------------


class Received:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.at = time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


class Remote:
    """A threaded HTTP server on 127.0.0.1. `answers` are taken in order, one per request:
    (status, headers, body), or HANG (no answer until the test ends); when none are left it
    answers 200 `{"ok": true}`. `received` holds every request it read."""

    HANG = "hang"

    def __init__(self, port: int = 0) -> None:
        self.answers: list[Any] = []
        self.received: list[Received] = []
        self.released = threading.Event()
        remote = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                remote.received.append(Received(self.command, self.path,
                                                {k.lower(): v for k, v in self.headers.items()},
                                                body))
                answer = remote.answers.pop(0) if remote.answers else (
                    200, {}, {"ok": True})
                if answer == Remote.HANG:
                    remote.released.wait(10)  # bounded: the test releases it when it ends
                    return
                status, headers, payload = answer
                data = payload if isinstance(payload, bytes) else (
                    b"" if payload is None else json.dumps(payload).encode())
                self.send_response(status)
                if data and "content-type" not in {k.lower() for k in headers}:
                    self.send_header("Content-Type", "application/json")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def remote():
    server = Remote()
    yield server
    server.close()


class Waits:
    """An injected sleep that sleeps not at all but records each wait and moves its own
    monotonic clock (the client's `monotonic`) by it, as a real wait would."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.now = time.monotonic()

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def waits():
    return Waits()


# -- a connector of an HTTP API, written with the helper -------------------------------------


class AcmeSettings(im.ConnectorSettings, frozen=True, kw_only=True):
    api_key: Annotated[str, im.prompt(1, "API key", secret=True)]
    base_url: Annotated[str, im.prompt(2, "API URL")]


class AcmeConnector(im.Connector):
    type = "acme"
    Settings = AcmeSettings
    settings: AcmeSettings
    client_options: ClassVar[dict[str, Any]] = {}

    @cached_property
    def client(self) -> im.ConnectorClient:
        return im.connector_client(
            self, base_url=self.settings.base_url, system="Acme",
            headers={"Authorization": f"Bearer {self.settings.api_key}",
                     "X-Api-Key": self.settings.api_key},
            **self.client_options)

    def push(self, request: im.PushRequest) -> im.PushResult:
        with self.client.until(request.deadline):
            if request.action == "declare":
                made = self.client.post("/incidents", {
                    "title": request.incident.title, "service": request.service,
                    "password": "hunter2"}, idempotency_key=request.idempotency_key)
                return im.PushResult(link=im.RemoteRef(remote_id=str(made["id"])))
            assert request.link is not None
            self.client.post(f"/incidents/{request.link.remote_id}/notes",
                             {"action": request.action})
            return im.PushResult()

    def test(self, request: im.CheckRequest) -> list[im.Check]:
        try:
            with self.client.until(request.deadline):
                self.client.get("/users/me")
        except im.ConnectorError as error:
            return [im.Check(name="api", label="API", ok=False, critical=True,
                             detail=str(error))]
        return [im.Check(name="api", label="API", ok=True, critical=True, detail="Connected")]


class AcmePlugin:
    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = options or {}

    @im.hookimpl
    def register_connectors(self, register: Any) -> None:
        register(type("AcmeConnector", (AcmeConnector,), {"client_options": self.options}))


@pytest.fixture
def runtime(tmp_path, waits):
    rt = make_runtime(tmp_path / "home", plugins=[AcmePlugin({
        "sleep": waits, "monotonic": waits.monotonic})], clock=FakeClock(), user="alice")
    handler = install(rt.store)
    yield rt
    logging.getLogger("im").removeHandler(handler)
    rt.store.close()


def add_acme(runtime, remote, **settings):
    config = json.dumps({"api_key": SECRET, "base_url": remote.url,
                         "sync_direction": "outbound", **settings})
    result = run_cli(runtime, ["connector", "add", "acme", "acme", "--config", config])
    assert result.exit_code == 0, result.output
    return runtime.connector("acme")


def acme(runtime, url, *, settings=None, **options):
    """The client of an AcmeConnector not stored (its `settings` as given), with `options`."""
    settings = AcmeSettings(api_key=SECRET, base_url=url, **(settings or {}))
    connector = AcmeConnector("acme", settings, runtime)
    return im.connector_client(connector, base_url=url, system="Acme", **options)


def calls(runtime):
    return [tuple(row) for row in sql(
        runtime, "SELECT method, path, status, error, rate_limit, rate_remaining FROM calls"
        " ORDER BY id")]


def connector_logs(runtime):
    out = run_cli(runtime, ["logs", "--json", "--component", "connector"]).stdout
    return [json.loads(line) for line in out.splitlines()]


# -- logging ----------------------------------------------------------------------------------


def test_with_debug_on_every_call_is_logged_and_no_secret_reaches_the_log(
        runtime, remote, monkeypatch):
    add_acme(runtime, remote)
    monkeypatch.setenv("ACME_DEBUG", "true")  # as for any connector type: <TYPE>_DEBUG
    remote.answers = [(201, {}, {"id": 7, "token": "remote-session-token"})]
    declared = run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Checkout errors",
                                 "--service", "api"])
    assert declared.exit_code == 0, declared.output
    [sent] = remote.received
    assert sent.headers["authorization"] == f"Bearer {SECRET}"  # the secret is sent...
    rows = connector_logs(runtime)
    assert [row["message"] for row in rows] == ["Acme request POST /incidents",
                                                "Acme response 201 POST /incidents"]
    request, response = (row["data"] for row in rows)
    assert request["url"] == f"{remote.url}/incidents"
    assert request["headers"]["authorization"] == request["headers"]["x-api-key"] == "***"
    assert json.loads(request["body"]) == {"title": "Checkout errors", "service": "api",
                                           "password": "***"}
    assert (response["status"], json.loads(response["body"])) == (201, {"id": 7,
                                                                        "token": "***"})
    assert all(row["connector"] == "acme" for row in rows)
    # ...and never logged, whatever `im logs` prints
    printed = run_cli(runtime, ["logs", "--component", "connector"]).stdout
    assert "Acme request POST /incidents" in printed
    assert SECRET not in printed and SECRET not in json.dumps(rows)
    assert "remote-session-token" not in printed + json.dumps(rows)


def test_without_the_switches_nothing_is_logged(runtime, remote):
    add_acme(runtime, remote)
    remote.answers = [(201, {}, {"id": 7})]
    run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "x", "--service", "api"])
    assert len(remote.received) == 1
    assert connector_logs(runtime) == []


def test_log_requests_logs_every_call_with_request_bodies_only(runtime, remote):
    client = acme(runtime, remote.url, settings={"log_requests": True})
    client.put("/users/ann", {"name": "Ann"}, params={"notify": "no", "api_key": SECRET})
    rows = connector_logs(runtime)
    assert [row["message"] for row in rows] == ["Acme request PUT /users/ann",
                                                "Acme response 200 PUT /users/ann"]
    request, response = (row["data"] for row in rows)
    # a secret in the query string is masked too
    assert request["url"] == f"{remote.url}/users/ann?notify=no&api_key=%2A%2A%2A"
    assert json.loads(request["body"]) == {"name": "Ann"}
    assert response["status"] == 200 and "body" not in response
    assert remote.received[0].path == f"/users/ann?notify=no&api_key={SECRET}"


def test_log_responses_logs_every_call_with_answer_bodies_only(runtime, remote):
    remote.answers = [(200, {}, {"name": "Ann"})]
    client = acme(runtime, remote.url, settings={"log_responses": True})
    client.put("/users/ann", {"name": "Ann"})
    request, response = (row["data"] for row in connector_logs(runtime))
    assert "body" not in request
    assert json.loads(response["body"]) == {"name": "Ann"}


# -- recorded calls: what status, metrics and health read -------------------------------------


def test_every_call_is_recorded_and_status_and_metrics_show_them(runtime, remote):
    add_acme(runtime, remote)
    limits = {"RateLimit-Limit": "120", "RateLimit-Remaining": "117", "RateLimit-Reset": "30"}
    remote.answers = [(201, limits, {"id": 7}), (200, limits, {}),
                      (400, {}, {"message": "note too long"})]
    for step in (["declare", "--sev", "SEV-2", "--title", "x", "--service", "api"],
                 ["ack", "--incident", "INC-1"], ["resolve", "--incident", "INC-1"]):
        run_cli(runtime, step)
    assert calls(runtime) == [
        ("POST", "/incidents", 201, None, 120, 117),
        ("POST", "/incidents/7/notes", 200, None, 120, 117),
        ("POST", "/incidents/7/notes", 400, "Acme refused the request (400): note too long",
         None, None)]
    status = run_cli(runtime, ["connector", "status", "acme"]).stdout.splitlines()
    assert "Sync Errors: 1" in status
    assert any(line.startswith("Last Error: Acme refused the request (400): note too long (")
               for line in status), status
    figures = json.loads(run_cli(runtime, ["metrics", "connector", "acme", "--json"]).stdout)
    assert (figures["api_calls_24h"], figures["api_errors_24h"]) == (3, 1)
    assert figures["rate_limit"] == 120
    assert figures["rate_limit_usage"] == pytest.approx(3 / 120)
    health = run_cli(runtime, ["connector", "health", "acme"]).stdout.splitlines()
    # its own check is one call more, recorded too
    assert health[1] == "API: ✓ Connected"
    assert health[-1] == "Error Rate: ✗ 25% (1 errors in 24h)"
    assert calls(runtime)[-1] == ("GET", "/users/me", 200, None, None, None)


def test_an_hourly_limit_is_recorded_per_minute(runtime, remote):
    remote.answers = [(200, {"X-RateLimit-Limit": "6000", "X-RateLimit-Remaining": "5999"},
                       {"ok": True})]
    acme(runtime, remote.url, rate_limit_window=3600).get("/users/me")
    assert calls(runtime) == [("GET", "/users/me", 200, None, 100, 5999)]


# -- retries: what the remote system received ------------------------------------------------


def test_a_post_is_not_sent_again_after_a_timeout(runtime, remote, waits):
    remote.answers = [Remote.HANG]
    client = acme(runtime, remote.url, settings={"debug": True}, timeout=0.3, sleep=waits,
                  monotonic=waits.monotonic)
    with pytest.raises(im.ConnectorError) as raised:
        client.post("/incidents", {"title": "x"})
    assert str(raised.value) == "Acme did not answer in time (POST /incidents)"
    assert raised.value.retryable is True  # the outbox tries again, the connector checks first
    assert len(remote.received) == 1 and waits.slept == []
    # recorded, and logged, as the user reads it
    assert calls(runtime) == [("POST", "/incidents", None,
                               "Acme did not answer in time (POST /incidents)", None, None)]
    assert [row["message"] for row in connector_logs(runtime)] == [
        "Acme request POST /incidents",
        "Acme request POST /incidents failed: Acme did not answer in time (POST /incidents)"]


def test_a_post_is_sent_again_after_a_connection_that_never_opened(runtime, waits):
    with socket.socket() as probe:  # a loopback port nobody listens on, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started: list[Remote] = []

    def sleep(seconds):
        waits(seconds)
        if not started:
            started.append(Remote(port))  # the remote system comes up while we wait

    try:
        client = acme(runtime, f"http://127.0.0.1:{port}", sleep=sleep,
                      monotonic=waits.monotonic)
        assert client.post("/incidents", {"title": "x"}) == {"ok": True}
        [remote] = started
        assert [(r.method, r.path, r.json()) for r in remote.received] == [
            ("POST", "/incidents", {"title": "x"})]
        assert len(waits.slept) == 1
        [(method, path, status, error, _, _), second] = calls(runtime)
        assert (method, path, status) == ("POST", "/incidents", None)
        assert error.startswith(f"cannot reach Acme at http://127.0.0.1:{port}"
                                " (POST /incidents): ")
        assert second[:4] == ("POST", "/incidents", 200, None)
    finally:
        for server in started:
            server.close()


def test_a_post_is_sent_again_after_a_429_when_the_remote_says(runtime, remote, waits):
    remote.answers = [(429, {"Retry-After": "2"}, {"message": "slow down"}),
                      (201, {}, {"id": 1})]
    client = acme(runtime, remote.url, sleep=waits, monotonic=waits.monotonic)
    assert client.post("/incidents", {"title": "x"}) == {"id": 1}
    assert [r.method for r in remote.received] == ["POST", "POST"]
    assert waits.slept == [2.0]
    assert [row[2:4] for row in calls(runtime)] == [
        (429, "Acme is rate limiting requests (429): slow down"), (201, None)]


def test_a_post_is_not_sent_again_after_a_5xx_unless_it_carries_an_idempotency_key(
        runtime, remote, waits):
    remote.answers = [(503, {}, None)]
    client = acme(runtime, remote.url, sleep=waits, monotonic=waits.monotonic)
    with pytest.raises(im.ConnectorHTTPError) as raised:
        client.post("/incidents", {"title": "x"})
    assert (str(raised.value), raised.value.retryable, raised.value.status) == (
        "Acme answered 503: Service Unavailable", True, 503)
    assert len(remote.received) == 1 and waits.slept == []

    remote.answers = [(503, {}, None), (201, {}, {"id": 2})]
    assert client.post("/incidents", {"title": "x"}, idempotency_key="im-abc-api") == {"id": 2}
    assert [r.headers.get("idempotency-key") for r in remote.received[1:]] == [
        "im-abc-api", "im-abc-api"]
    assert len(waits.slept) == 1


def test_a_get_is_sent_again_after_a_503_then_succeeds(runtime, remote, waits):
    remote.answers = [(503, {}, {"error": {"message": "maintenance"}}),
                      (200, {}, {"users": ["ann"]})]
    client = acme(runtime, remote.url, sleep=waits, monotonic=waits.monotonic)
    assert client.get("/users", params={"query": "ann"}) == {"users": ["ann"]}
    assert [(r.method, r.path) for r in remote.received] == [("GET", "/users?query=ann")] * 2
    [slept] = waits.slept
    assert 0 <= slept <= 0.5  # backoff with jitter, the remote system having said nothing
    assert [row[2:4] for row in calls(runtime)] == [
        (503, "Acme answered 503: maintenance"), (200, None)]


def test_attempts_are_bounded(runtime, remote, waits):
    remote.answers = [(502, {}, None)] * 10
    client = acme(runtime, remote.url, max_attempts=3, sleep=waits,
                  monotonic=waits.monotonic)
    with pytest.raises(im.ConnectorHTTPError, match="^Acme answered 502: Bad Gateway$"):
        client.get("/users")
    assert len(remote.received) == 3 and len(waits.slept) == 2


# -- the deadline ----------------------------------------------------------------------------


def test_retry_after_is_honoured_but_never_past_the_deadline(runtime, remote, waits):
    remote.answers = [(429, {"Retry-After": "3"}, None), (429, {"Retry-After": "3"}, None),
                      (201, {}, {"id": 1})]
    client = acme(runtime, remote.url, sleep=waits, monotonic=waits.monotonic)
    with client.until(waits.now + 5), pytest.raises(im.ConnectorHTTPError) as raised:
        client.post("/incidents", {"title": "x"})
    # waited 3 s once; a second wait of 3 s would end after the deadline: not begun
    assert waits.slept == [3.0]
    assert len(remote.received) == 2
    error = raised.value
    assert str(error) == ("Acme is rate limiting requests (429) (not tried again: waiting 3s"
                          " would run past the command's deadline)")
    assert (error.retryable, error.out_of_time, error.retry_after) == (True, True, 3.0)


def test_the_rate_limit_reset_is_waited_for_within_the_deadline(runtime, remote, waits):
    reset = {"RateLimit-Limit": "60", "RateLimit-Remaining": "0", "RateLimit-Reset": "4"}
    remote.answers = [(429, reset, None), (200, {}, {"ok": True})]
    client = acme(runtime, remote.url, sleep=waits, monotonic=waits.monotonic)
    assert client.get("/users", deadline=waits.now + 10) == {"ok": True}
    assert waits.slept == [4.0]


def test_a_reset_given_as_a_unix_time_is_read_as_the_time_until_it(runtime, remote, waits):
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 5)}
    remote.answers = [(429, reset, None), (200, {}, {"ok": True})]
    client = acme(runtime, remote.url, sleep=waits, monotonic=waits.monotonic)
    assert client.get("/users") == {"ok": True}
    [slept] = waits.slept
    assert 3 < slept <= 5


def test_a_retry_after_date_is_read_as_the_time_until_it(runtime, remote, waits):
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    remote.answers = [(503, {"Retry-After": later}, None)]
    client = acme(runtime, remote.url, sleep=waits, monotonic=waits.monotonic)
    with pytest.raises(im.ConnectorHTTPError) as raised:
        client.get("/users")
    # longer than a call waits (max_retry_after, 60 s): the outbox waits instead
    assert waits.slept == [] and len(remote.received) == 1
    assert 110 < raised.value.retry_after <= 120
    assert raised.value.out_of_time is False


def test_no_call_is_made_once_the_deadline_has_passed(runtime, remote, waits):
    client = acme(runtime, remote.url, sleep=waits, monotonic=waits.monotonic)
    with pytest.raises(im.ConnectorHTTPError) as raised:
        client.post("/incidents", {"title": "x"}, deadline=waits.now - 1)
    assert str(raised.value) == ("no time left to call Acme (POST /incidents): the command's"
                                 " deadline passed")
    assert (raised.value.retryable, raised.value.unsent, raised.value.out_of_time) == (
        True, True, True)
    assert remote.received == [] and calls(runtime) == [] and waits.slept == []


def test_a_call_waits_no_longer_than_the_time_left(runtime, remote):
    remote.answers = [Remote.HANG]
    client = acme(runtime, remote.url, timeout=30)
    started = time.monotonic()
    with client.until(started + 0.3), pytest.raises(im.ConnectorHTTPError) as raised:
        client.get("/users")
    assert time.monotonic() - started < 5  # not the 30 s timeout
    assert str(raised.value) == ("Acme did not answer in time (GET /users) (not tried again:"
                                 " the command's time is up)")
    assert raised.value.retryable


def test_a_push_out_of_time_stays_queued(runtime, remote, waits):
    add_acme(runtime, remote)
    remote.answers = [(429, {"Retry-After": "30"}, None)]
    declared = run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "x", "--service",
                                 "api"])
    assert declared.exit_code == 0, declared.output
    # the CLI gives its connectors about ten seconds: a 30 s wait is not begun
    assert waits.slept == [] and len(remote.received) == 1
    [row] = runtime.store.outbox()
    assert (row.status, row.last_error) == ("pending", (
        "Acme is rate limiting requests (429) (not tried again: waiting 30s would run past"
        " the command's deadline)"))


# -- a rate limit kept before calling --------------------------------------------------------


def test_a_call_with_a_budget_waits_its_turn_under_its_key(runtime, remote):
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        time.sleep(seconds)

    budget = im.RateBudget("1/second")
    client = acme(runtime, remote.url, sleep=sleep)
    for channel in ("C1", "C1", "C2"):
        client.request("POST", f"/channels/{channel}/messages", json={"text": "x"},
                       budget=(budget, f"acme:{channel}"))
    first, second, other = remote.received
    assert second.at - first.at >= 1.0  # its turn, and a little more
    assert other.at - second.at < 0.9  # another key: not paced against the first
    assert len(slept) == 1 and 0 < slept[0] <= 1.05


def test_a_turn_after_the_deadline_is_not_waited_for(runtime, remote, waits):
    budget = im.RateBudget("1/minute")
    client = acme(runtime, remote.url, sleep=waits, monotonic=waits.monotonic)
    client.request("POST", "/messages", json={"text": "1"}, budget=(budget, "acme:C1"))
    with pytest.raises(im.ConnectorHTTPError) as raised:
        client.request("POST", "/messages", json={"text": "2"}, budget=(budget, "acme:C1"),
                       deadline=waits.now + 10)
    error = raised.value
    assert str(error) == ("no time left to call Acme (POST /messages): its turn under the rate"
                          " limit im keeps (1/minute) comes in 60s, after the command's"
                          " deadline")
    assert (error.retryable, error.unsent, error.out_of_time) == (True, True, True)
    assert 59 < error.retry_after <= 60.1
    # nothing slept, nothing sent, and the call not made is not recorded
    assert waits.slept == [] and len(remote.received) == 1
    assert [row[:2] for row in calls(runtime)] == [("POST", "/messages")]


def test_budgets_on_a_shared_storage_spend_one_count(runtime, remote, waits):
    """Several processes on one database: each has its own RateBudget on the storage
    runtime.shared_rate_limits() gives (here a `limits` memory storage stands in for it)."""
    from limits.storage import MemoryStorage

    shared = MemoryStorage()
    one, two = im.RateBudget("2/minute", shared=shared), im.RateBudget("2/minute", shared=shared)
    deadline = waits.now + 10
    turns = [budget.take("acme:C1", deadline=deadline, sleep=waits, monotonic=waits.monotonic)
             for budget in (one, two, one)]
    assert turns[:2] == [None, None]
    assert 59 < turns[2] <= 60.1  # the window's two calls are spent, whoever spent them
    assert two.take("acme:C2", deadline=deadline, sleep=waits) is None
    assert waits.slept == []


# -- what the user reads ---------------------------------------------------------------------


@pytest.mark.parametrize(("status", "headers", "body", "message", "retryable"), [
    (400, {}, {"message": "title is required"},
     "Acme refused the request (400): title is required", False),
    (422, {}, {"error": "invalid", "errors": [{"message": "title is empty"}, "no service"]},
     "Acme refused the request (422): invalid: title is empty; no service", False),
    (401, {}, {"error": {"message": "bad key"}}, "Acme refused the request (401): bad key",
     False),
    (404, {}, None, "Acme refused the request (404)", False),
    (403, {"Content-Type": "text/plain"}, b"no \x1baccess\n\tto this\n",
     "Acme refused the request (403): no access to this", False),
    (404, {"Content-Type": "text/html"}, b"<html>not found</html>",
     "Acme refused the request (404)", False),
    (301, {"Location": "https://acme.example/api/users"}, None,
     "Acme refused the request (301): redirected to https://acme.example/api/users (check"
     " the base URL)", False),
    (408, {}, None, "Acme did not answer in time (GET /users)", True),
    (500, {}, {"detail": "boom"}, "Acme answered 500: boom", True),
    (599, {}, None, "Acme answered 599", True),  # no reason phrase either
])
def test_failed_answers_read_as_the_user_needs(runtime, remote, waits, status, headers, body,
                                               message, retryable):
    remote.answers = [(status, headers, body)]
    client = acme(runtime, remote.url, max_attempts=1, sleep=waits, monotonic=waits.monotonic)
    with pytest.raises(im.ConnectorHTTPError) as raised:
        client.get("/users")
    assert (str(raised.value), raised.value.retryable, raised.value.status) == (
        message, retryable, status)


def test_a_connector_reads_its_api_s_own_error_body(runtime, remote):
    def fault(response):
        return response.json()["fault"]["text"]

    remote.answers = [(400, {}, {"fault": {"text": "unknown service"}}),
                      (400, {}, {"message": "not the shape it expects"})]
    with acme(runtime, remote.url, error_message=fault) as client:
        for expected in ("Acme refused the request (400): unknown service",
                         # its reading fails: the default one is used, and it is logged
                         "Acme refused the request (400): not the shape it expects"):
            with pytest.raises(im.ConnectorHTTPError) as raised:
                client.get("/services/api")
            assert str(raised.value) == expected
    assert client.http.is_closed


def test_an_inner_until_cannot_extend_an_outer_one(runtime, remote, waits):
    client = acme(runtime, remote.url, sleep=waits, monotonic=waits.monotonic)
    with client.until(waits.now - 1), client.until(waits.now + 100), pytest.raises(
            im.ConnectorHTTPError, match="^no time left to call Acme"):
        client.get("/users")
    with client.until(waits.now + 100), client.until(None):
        assert client.get("/users") == {"ok": True}
    assert len(remote.received) == 1


def test_a_base_url_without_its_scheme_is_a_final_error(runtime, remote, waits):
    address = remote.url.removeprefix("http://")
    client = acme(runtime, address, sleep=waits, monotonic=waits.monotonic)
    with pytest.raises(im.ConnectorHTTPError) as raised:
        client.get("/users")
    assert str(raised.value) == (
        f"cannot call Acme at {address} (GET /users): the base URL must start with http:// or"
        " https://")
    assert raised.value.retryable is False and waits.slept == []


def test_a_body_that_is_not_json_is_an_error(runtime, remote):
    remote.answers = [(200, {"Content-Type": "text/html"}, b"<html>login</html>")]
    with pytest.raises(im.ConnectorHTTPError) as raised:
        acme(runtime, remote.url).get("/users")
    assert str(raised.value) == "Acme sent a body that is not JSON (GET /users)"


def test_request_returns_the_response_and_empty_bodies_are_none(runtime, remote):
    remote.answers = [(204, {"ETag": "v2"}, None), (204, {}, None)]
    client = acme(runtime, remote.url)
    response = client.request("PUT", "/incidents/7", json={"status": "resolved"})
    assert (response.status_code, response.headers["etag"]) == (204, "v2")
    assert client.delete("/incidents/7") is None
    assert [(r.method, r.path) for r in remote.received] == [("PUT", "/incidents/7"),
                                                             ("DELETE", "/incidents/7")]


# -- a workflow action's calls ------------------------------------------------------------------

# a webhook whose URL is its credential (its path and its query's signature), as Teams' or
# Slack's incoming webhooks are
HOOK_PATH = "/hooks/7f3a9c2e51d04b8a/invoke?api-version=1&sig=s1gN4tur3-of-the-hook"
HOOK_KEY = "hook-key-0123456789"


class HookSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, im.secret("Webhook URL")]
    key: Annotated[str, im.secret()] = HOOK_KEY
    timeout: float = 10.0


class HookPost(im.WorkflowAction):
    """Posts the incident to a webhook, with the helper: what an action author writes."""

    name = "hook.post"
    Settings = HookSettings
    settings: HookSettings
    client_options: ClassVar[dict[str, Any]] = {}

    def client(self) -> im.ConnectorClient:
        parts = urlsplit(self.settings.url)
        return im.connector_client(
            self, base_url=f"{parts.scheme}://{parts.netloc}", system="Hook",
            headers={"X-Hook-Auth": self.settings.key}, timeout=self.settings.timeout,
            **self.client_options)

    def run(self, request: im.ActionRequest) -> im.ActionResult:
        with self.client() as client, client.until(request.deadline):
            client.post(self.settings.url, {"incident": request.incident.id})
        return im.ActionResult(timeline=["Hook posted"])


class HookPlugin:
    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = options or {}

    @im.hookimpl
    def register_workflow_actions(self, register: Any) -> None:
        register(type("HookPost", (HookPost,), {"client_options": self.options}))


@pytest.fixture
def hook_runtime(tmp_path, waits):
    rt = make_runtime(tmp_path / "hooks", plugins=[HookPlugin({
        "sleep": waits, "monotonic": waits.monotonic, "max_attempts": 1})], clock=FakeClock(),
        user="alice")
    handler = install(rt.store)
    yield rt
    logging.getLogger("im").removeHandler(handler)
    rt.store.close()


def add_hook(runtime, url):
    result = run_cli(runtime, ["workflow", "add", "hook", "--on", "declared", "--action",
                               "hook.post=" + json.dumps({"url": url})])
    assert result.exit_code == 0, result.output


def workflow_logs(runtime):
    out = run_cli(runtime, ["logs", "--json", "--component", "workflows"]).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_an_actions_calls_are_traced_by_its_debug_variable_with_its_secrets_masked(
        hook_runtime, remote, monkeypatch, caplog):
    url = remote.url + HOOK_PATH
    add_hook(hook_runtime, url)
    monkeypatch.setenv("HOOK_POST_DEBUG", "true")  # <ACTION>_DEBUG, as <TYPE>_DEBUG
    remote.answers = [(202, {}, {"accepted": f"by {url}"})]
    with caplog.at_level(logging.DEBUG):
        declared = run_cli(hook_runtime, ["declare", "--sev", "SEV-2", "--title", "x",
                                          "--service", "api"])
    assert declared.stdout.splitlines()[-1] == "  workflow hook: Hook posted"
    [sent] = remote.received
    assert (sent.path, sent.headers["x-hook-auth"]) == (HOOK_PATH, HOOK_KEY)  # sent...
    rows = workflow_logs(hook_runtime)
    traces = [row for row in rows if row["connector"] == "hook.post"]
    assert [row["message"] for row in traces] == ["Hook request POST ***",
                                                  "Hook response 202 POST ***"]
    # the host is named; the path and query, the credential, are not
    hidden = f"{remote.url}***"
    request, response = (row["data"] for row in traces)
    assert request["url"] == hidden
    assert request["headers"]["x-hook-auth"] == "***"
    assert json.loads(request["body"]) == {"incident": "INC-1"}
    assert json.loads(response["body"]) == {"accepted": f"by {hidden}"}
    printed = run_cli(hook_runtime, ["logs", "--filter", "hook.post"]).stdout
    assert "workflows/hook.post: Hook request POST ***" in printed
    # ...and never logged, by im or by httpx
    assert "HTTP Request: POST" in caplog.text
    for text in (printed, json.dumps(rows), caplog.text):
        assert "s1gN4tur3" not in text and "7f3a9c2e51d04b8a" not in text
        assert HOOK_KEY not in text
    # an action's calls are not among a connector's
    assert calls(hook_runtime) == []


def test_without_its_debug_variable_an_action_traces_nothing(hook_runtime, remote):
    add_hook(hook_runtime, remote.url + HOOK_PATH)
    run_cli(hook_runtime, ["declare", "--sev", "SEV-2", "--title", "x", "--service", "api"])
    assert len(remote.received) == 1
    assert [row for row in workflow_logs(hook_runtime) if row["connector"]] == []


def test_an_actions_failed_call_is_retried_by_the_runner_its_error_masked(hook_runtime,
                                                                          remote):
    url = remote.url + HOOK_PATH
    add_hook(hook_runtime, url)
    remote.answers = [(503, {"Retry-After": "20"}, {"message": f"{url} is paused"}),
                      (400, {}, {"message": f"{url} refused it"})]
    run_cli(hook_runtime, ["declare", "--sev", "SEV-2", "--title", "x", "--service", "api"])
    [run] = hook_runtime.store.read().workflow_runs.find()
    hidden = f"{remote.url}***"
    assert (run.status, run.last_error) == ("pending", f"Hook answered 503: {hidden} is paused")
    assert run.next_attempt_at == hook_runtime.clock() + timedelta(seconds=20)
    hook_runtime.clock.advance(seconds=21)
    run_workflows(hook_runtime)
    [run] = hook_runtime.store.read().workflow_runs.find()
    refused = f"Hook refused the request (400): {hidden} refused it"
    assert (run.status, run.last_error) == ("failed", refused)
    shown = run_cli(hook_runtime, ["workflow", "show", "hook"]).stdout
    timeline = run_cli(hook_runtime, ["timeline", "INC-1"]).stdout
    assert refused in timeline
    for text in (shown, timeline):
        assert "s1gN4tur3" not in text and "7f3a9c2e51d04b8a" not in text


def test_an_actions_client_keeps_to_the_deadline_and_retries_by_the_core_rules(
        hook_runtime, remote, waits):
    url = remote.url + HOOK_PATH
    action = HookPost(HookSettings(url=url), hook_runtime)
    client = im.connector_client(action, base_url=remote.url, system="Hook", sleep=waits,
                                 monotonic=waits.monotonic)
    remote.answers = [(503, {}, None)]
    assert client.get(url) == {"ok": True}  # a GET is sent again after a 503
    assert len(remote.received) == 2 and len(waits.slept) == 1
    remote.answers = [(503, {}, None)]
    with pytest.raises(im.ConnectorHTTPError) as raised:
        client.post(url, {"incident": "INC-1"})  # a POST without a key is not
    assert str(raised.value) == "Hook answered 503: Service Unavailable"
    assert len(remote.received) == 3
    with client.until(waits.now - 1), pytest.raises(im.ConnectorHTTPError) as raised:
        client.post(url, {"incident": "INC-1"})
    assert str(raised.value) == ("no time left to call Hook (POST ***): the command's deadline"
                                 " passed")
    assert raised.value.out_of_time and len(remote.received) == 3
    assert calls(hook_runtime) == []


def test_a_connectors_secret_the_remote_repeats_is_masked_in_the_error(runtime, remote):
    remote.answers = [(401, {}, {"message": f"key {SECRET} is revoked"})]
    with pytest.raises(im.ConnectorHTTPError) as raised:
        acme(runtime, remote.url, max_attempts=1).get("/users/me")
    assert str(raised.value) == "Acme refused the request (401): key *** is revoked"
    assert calls(runtime)[-1][3] == "Acme refused the request (401): key *** is revoked"


def test_the_client_is_for_a_connector_or_an_action():
    with pytest.raises(TypeError, match="takes a Connector or a WorkflowAction, not str"):
        im.connector_client("acme", base_url="https://acme.example")
