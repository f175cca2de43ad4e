"""Test helpers for anyone testing against the PagerDuty sandbox: a running sandbox on a free
loopback port, a small webhook receiver, and pytest fixtures for both.

    from im_pagerduty.testing import run_sandbox

    with run_sandbox() as pd:
        client = pd.client(from_email="ops@company.com")
        client.post("/incidents", json={...})
        assert pd.requests(method="POST", path="/incidents")

Fixtures (add `pytest_plugins = ["im_pagerduty.testing"]` to your root conftest.py):
`pagerduty_sandbox` (a sandbox reset to its seed for each test, one server per session)
and `pagerduty_webhook_receiver`.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import msgspec
import pytest

ACCEPT_V2 = "application/vnd.pagerduty+json;version=2"
DEFAULT_FROM = "ops@company.com"
# Delivery retries in tests: the same behaviour as PagerDuty's, in a fraction of a second.
TEST_RETRY_DELAYS = (0.05, 0.1, 0.2)
TEST_WEBHOOK_TIMEOUT = 2.0


class RunningSandbox:
    """A sandbox being served at `url`; its /_sandbox/ controls as methods."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self.api_key = api_key
        self._control = httpx.Client(base_url=f"{url}/_sandbox", trust_env=False, timeout=30)

    def close(self) -> None:
        self._control.close()

    # the REST API

    def headers(self, from_email: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Token token={self.api_key}", "Accept": ACCEPT_V2}
        if from_email:
            headers["From"] = from_email
        return headers

    def client(
        self, from_email: str | None = DEFAULT_FROM, *, via: str | None = None, **options: Any
    ) -> httpx.Client:
        """An httpx client for the REST API with the key, the v2 Accept and a `From` header.
        `via`: its changes are made as through that integration (`"Slack"`): their webhooks
        name it as their `client` (the sandbox's `X-Sandbox-Client` header)."""
        options.setdefault("timeout", 10)
        headers = self.headers(from_email)
        if via:
            headers["X-Sandbox-Client"] = via
        return httpx.Client(base_url=self.url, headers=headers, trust_env=False, **options)

    # controls

    def _call(
        self, verb: str, route: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        response = self._control.request(
            verb,
            route,
            content=msgspec.json.encode(body) if body is not None else None,
            params={k: v for k, v in (params or {}).items() if v is not None},
        )
        response.raise_for_status()
        return response.json()

    def reset(self, seed: str | None = None) -> None:
        self._call("POST", "/reset", {"seed": seed} if seed else {})

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change run-time settings: rate_limit, rate_limit_window_seconds,
        webhook_retry_delays, webhook_timeout_seconds."""
        result: dict[str, Any] = self._call("PATCH", "/config", settings)
        return result

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the injected faults; fields not given go back to "no fault"."""
        result: dict[str, Any] = self._call("PUT", "/faults", faults)
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """API requests answered so far; `path` ending in `*` matches a prefix."""
        found: list[dict[str, Any]] = self._call(
            "GET", "/requests", params={"method": method, "path": path}
        )["requests"]
        return found

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def deliveries(self, **filters: str) -> list[dict[str, Any]]:
        """Webhook delivery attempts; filters: subscription_id, event_type, outcome."""
        found: list[dict[str, Any]] = self._call("GET", "/webhooks/deliveries", params=filters)[
            "deliveries"
        ]
        return found

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Webhook events the sandbox produced, with the subscriptions they went to."""
        found: list[dict[str, Any]] = self._call(
            "GET", "/webhooks/events", params={"event_type": event_type}
        )["events"]
        return found

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Until nothing is queued or being retried; False if the timeout came first."""
        idle: bool = self._call("POST", "/webhooks/wait", {"timeout_seconds": timeout})["idle"]
        return idle

    def rotate_secret(self, subscription_id: str, grace_seconds: float | None = None) -> str:
        body = {"grace_seconds": grace_seconds} if grace_seconds is not None else {}
        secret: str = self._call(
            "POST", f"/webhook_subscriptions/{subscription_id}/rotate_secret", body
        )["secret"]
        return secret

    def end_rotation(self, subscription_id: str) -> None:
        self._call("POST", f"/webhook_subscriptions/{subscription_id}/end_rotation")

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/clock", {"advance_seconds": seconds})
        return result

    def set_priorities(self, *names: str) -> list[dict[str, Any]]:
        """The account's priorities, most severe first (renamed, or none: not enabled)."""
        found: list[dict[str, Any]] = self._call(
            "PUT", "/priorities", {"priorities": list(names)})["priorities"]
        return found

    def responder_reply(self, incident_id: str, user_id: str, state: str) -> dict[str, Any]:
        """A requested responder joins or declines in PagerDuty's app, with the
        `incident.responder.replied` webhook (PagerDuty's REST API has no route for it; a
        request is made with PagerDuty's own POST /incidents/{id}/responder_requests)."""
        body = {"user_id": user_id, "state": state}
        result: dict[str, Any] = self._call("POST", f"/incidents/{incident_id}/responders", body)
        return result

    def bulk_users(self, count: int) -> dict[str, Any]:
        """Add `count` users (a big account): "Bulk User N" <user.N@bulk.company.com>."""
        result: dict[str, Any] = self._call("POST", "/users/bulk", {"count": count})
        return result

    def bulk_incidents(self, count: int, **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/incidents/bulk", {"count": count, **options})
        return result


@contextlib.contextmanager
def run_sandbox(
    *,
    api_key: str | None = None,
    other_api_keys: tuple[str, ...] = (),
    seed: str = "demo",
    host: str = "127.0.0.1",
    port: int = 0,
    **config: Any,
) -> Iterator[RunningSandbox]:
    """Serve a sandbox on a background thread (a free port by default) until the block ends.

    `api_key` (random by default) is the key `RunningSandbox.client()` uses; `other_api_keys`
    are accepted too, each with its own rate limit. `config` takes any other SandboxConfig
    field; delivery retries and timeouts default to test-friendly values.
    """
    from im_pagerduty.sandbox import SandboxConfig, SandboxServer

    config.setdefault("webhook_retry_delays", TEST_RETRY_DELAYS)
    config.setdefault("webhook_timeout_seconds", TEST_WEBHOOK_TIMEOUT)
    key = api_key or f"sandbox-{secrets.token_hex(8)}"
    sandbox_config = SandboxConfig(api_keys=(key, *other_api_keys), seed=seed, **config)  # type: ignore[arg-type]
    server = SandboxServer(sandbox_config, host=host, port=port)
    running = RunningSandbox(server.start(), key)
    try:
        yield running
    finally:
        running.close()
        server.stop()


class ReceivedWebhook(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class WebhookReceiver:
    """A tiny HTTP endpoint that records every request and answers as told (202 by default)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Condition()
        self._received: list[ReceivedWebhook] = []
        self._answers: deque[tuple[int, float]] = deque()
        self.default_status = 202
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    status, delay = (
                        receiver._answers.popleft()
                        if receiver._answers
                        else (receiver.default_status, 0.0)
                    )
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting
                with receiver._lock:
                    receiver._received.append(
                        ReceivedWebhook(
                            method="POST",
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                        )
                    )
                    receiver._lock.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}/webhook"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def answer(self, *statuses: int, delay: float = 0.0) -> None:
        """Answer the next requests with these statuses, in order (after `delay` seconds each)."""
        with self._lock:
            self._answers.extend((status, delay) for status in statuses)

    @property
    def received(self) -> list[ReceivedWebhook]:
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedWebhook]:
        """At least `count` requests, or raise TimeoutError with what arrived."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"got {len(self._received)} webhook(s), wanted {count}")
                self._lock.wait(remaining)
            return list(self._received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture(scope="session")
def pagerduty_sandbox_server() -> Iterator[RunningSandbox]:
    """One sandbox for the whole session; use `pagerduty_sandbox`, which resets it per test."""
    with run_sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def pagerduty_sandbox(pagerduty_sandbox_server: RunningSandbox) -> RunningSandbox:
    """A running sandbox, freshly reset to the demo seed."""
    from im_pagerduty import priorities

    pagerduty_sandbox_server.reset()
    # a reset sandbox is a new account at the same URL and key: its priorities are read anew
    priorities.forget_all()
    return pagerduty_sandbox_server


@pytest.fixture
def pagerduty_webhook_receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver
