"""Test kit for im and its plugins: a fresh runtime on a temporary database, a controllable
clock, a fake connector with a fake remote system, and CLI and HTTP clients.

    from im.testing import make_runtime, run_cli

    def test_declare(tmp_path):
        runtime = make_runtime(tmp_path, plugins=[MyPlugin()])
        result = run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "x", "--service", "db"])
        assert result.exit_code == 0
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar

import msgspec

from im.connectors import (
    ChangeKind,
    Check,
    CheckRequest,
    Connector,
    ConnectorSettings,
    InboundChange,
    PullRequest,
    PullResult,
    PushRequest,
    PushResult,
    RemoteRef,
    RemoteStatus,
    prompt,
    WebhookEvent,
    WebhookRequest,
    parse_idempotency_key,
    secret,
)
from im.errors import ConnectorError, UnhandledEventError
from im.hookspecs import hookimpl
from im.plugins import get_plugin_manager
from im.runtime import Runtime
from im.sync import OUTBOX_LEASE_SECONDS  # noqa: F401 (for tests that outlive a lease)
from im.workflows import RUN_LEASE_SECONDS  # noqa: F401 (for tests that outlive a run's lease)
from im.workflows import run_queued as run_workflows  # noqa: F401 (what im serve runs)


class FakeClock:
    """A clock tests move by hand: `clock.advance(minutes=5)`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 8, 23, 14, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def make_runtime(home: Path, *, plugins: Sequence[object] = (), load_entrypoints: bool = False,
                 clock: Any = None, user: str = "tester") -> Runtime:
    """A Runtime on `home` (a temporary folder) with its own plugin manager."""
    pm = get_plugin_manager(load_entrypoints=load_entrypoints, plugins=tuple(plugins))
    kwargs: dict[str, Any] = {"pm": pm, "user": user}
    if clock is not None:
        kwargs["clock"] = clock
    return Runtime(home, **kwargs)


def sql(runtime: Runtime, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """The rows a query returns on the runtime's database, for a test that checks what is
    stored (or sets up a state no command makes). Parameters are `?` on either store (SQLite,
    or PostgreSQL where IM_DATABASE_URL names one); write the SQL both understand. Times come
    back as each store keeps them: ISO text on SQLite, datetimes on PostgreSQL (`stored_time`
    reads either)."""
    return runtime.store.rows(query, params)


def stored_time(value: Any) -> datetime | None:
    """A time as `sql()` returned it, from either store."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


class CliResult(msgspec.Struct, kw_only=True):
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(runtime: Runtime, args: Sequence[str], input: str | None = None) -> CliResult:
    """Run `im ARGS` in this process against `runtime`; output is what a user would read."""
    from typer.testing import CliRunner

    from im.cli import make_app

    runner = CliRunner()
    result = runner.invoke(make_app(runtime), list(args), input=input, prog_name="im")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr)


@contextmanager
def http_client(runtime: Runtime) -> Iterator[Any]:
    """A Litestar TestClient on `im serve`'s app for `runtime`."""
    from litestar.testing import TestClient

    from im.server import create_app

    with TestClient(app=create_app(runtime)) as client:
        yield client


# -- a fake connector ----------------------------------------------------------------------


class FakeRemote:
    """The remote system a FakeConnector talks to: it records every call, keeps incidents
    by id and by idempotency key, and fails on demand (`remote.failures.append(error)` fails
    the next push; `remote.fault = "down"` (or "server_error", "refused", "lost_answer",
    "slow") fails every push until it is set back to None). Every change it makes is also a
    signed webhook delivery in `remote.sent` (for FakeWebhookConnector), made by `actor`:
    im's own user (`OWN_USER`) for pushes, a responder for `remote.change(...)`."""

    OWN_USER = "im-bot@fake.example"
    SECRET = "fake-webhook-secret"
    SIGNATURE_HEADER = "x-fake-signature"

    def __init__(self) -> None:
        self.incidents: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.failures: list[Exception] = []
        self.reachable = True
        self.fault: str | None = None
        self.slow_seconds = 3.0
        # keys of the changes made (the fake API takes an idempotency key on every write)
        self.done: set[str] = set()
        self.sent: list[tuple[dict[str, str], bytes]] = []
        self._numbers = itertools.count(1)
        self._events = itertools.count(1)
        self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> datetime:
        """The remote's own clock: the wall clock, never twice the same instant."""
        now = max(datetime.now(UTC), self._last + timedelta(microseconds=1))
        self._last = now
        return now

    def sign(self, body: bytes) -> dict[str, str]:
        import hashlib
        import hmac

        return {self.SIGNATURE_HEADER: hmac.new(self.SECRET.encode(), body,
                                                hashlib.sha256).hexdigest(),
                "content-type": "application/json"}

    def emit(self, remote_id: str, event_type: str, actor: str, text: str = "") -> None:
        incident = self.incidents[remote_id]
        at = self.now()
        if event_type != "incident.note":  # what a listing of incidents says of each
            incident["changed_at"], incident["changed_by"] = at, actor
        body = msgspec.json.encode({
            "id": f"E{next(self._events)}", "type": event_type, "incident": remote_id,
            "key": incident.get("key"), "service": incident.get("service"),
            "title": incident.get("title"), "status": incident.get("status"),
            "at": at.isoformat(), "actor": actor, "text": text})
        self.sent.append((self.sign(body), body))

    def change(self, remote_id: str, status: str | None = None, note: str | None = None,
               actor: str = "responder@fake.example") -> None:
        """A responder changes a remote incident (its status, or a note), as in the remote's
        own app: the webhook goes out."""
        incident = self.incidents[remote_id]
        if status is not None:
            incident["status"] = status
            self.emit(remote_id, f"incident.{status}", actor)
        if note is not None:
            incident["notes"].append(note)
            self.emit(remote_id, "incident.note", actor, note)


class FakeCustom(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project: Annotated[str, prompt(3, "Project")] = "OPS"
    labels: dict[str, str] = {}


class FakeSettings(ConnectorSettings, frozen=True, kw_only=True):
    api_key: Annotated[str, prompt(1, "API Key", secret=True)]
    base_url: Annotated[str, prompt(2, "API Base URL")] = "https://fake.example"
    verify_tls: Annotated[bool, prompt(4, "Verify TLS certificates")] = True
    custom: FakeCustom = FakeCustom()
    webhook_secret: Annotated[str, secret()] = ""


class FakeConnector(Connector):
    """A connector for tests. Its remote is the `FakeRemote` of the plugin that registered it."""

    type = "fake"
    Settings = FakeSettings
    description = "A connector for tests"
    options = {"api-key": "api_key", "project": "custom.project", "labels": "custom.labels"}
    remote: FakeRemote

    def push(self, request: PushRequest) -> PushResult:
        remote = self.remote
        remote.calls.append((request.action, request.incident.id, request.service))
        if remote.failures:
            failure = remote.failures.pop(0)
            raise failure
        self._meet_fault(request)
        if request.action == "declare":
            remote_id = remote.by_key.get(request.idempotency_key)
            if remote_id is None:
                remote_id = f"F{next(remote._numbers)}"
                remote.by_key[request.idempotency_key] = remote_id
                remote.incidents[remote_id] = {"status": "open", "notes": [],
                                               "title": request.incident.title,
                                               "service": request.service,
                                               "key": request.idempotency_key}
                remote.emit(remote_id, "incident.open", remote.OWN_USER)
            number = remote_id[1:]
            self._lose_answer()
            return PushResult(
                link=RemoteRef(remote_id=remote_id, remote_number=number,
                               remote_url=f"https://fake.example/{remote_id}",
                               remote_status=RemoteStatus.OPEN),
                timeline=[f"Fake incident #{number} created ({request.service})"],
            )
        if request.link is None:
            raise ConnectorError("no remote incident linked yet", retryable=True)
        remote_incident = remote.incidents[request.link.remote_id]
        status = {"ack": RemoteStatus.ACKNOWLEDGED, "resolve": RemoteStatus.RESOLVED,
                  "close": RemoteStatus.RESOLVED, "reopen": RemoteStatus.OPEN,
                  "unack": RemoteStatus.OPEN}.get(request.action)
        # the fake API takes an idempotency key on every write: a retried change is made once
        key = (f"{request.idempotency_key}/{request.action}/{request.queued_at}/"
               f"{msgspec.json.encode(request.payload).decode()}")
        if key not in remote.done:
            remote.done.add(key)
            if status:
                remote_incident["status"] = status
                remote.emit(request.link.remote_id, f"incident.{status}", remote.OWN_USER)
            if request.payload.get("note"):
                remote_incident["notes"].append(request.payload["note"])
                remote.emit(request.link.remote_id, "incident.note", remote.OWN_USER,
                            request.payload["note"])
        self._lose_answer()
        return PushResult(
            link=RemoteRef(remote_id=request.link.remote_id, remote_status=status),
            timeline=[f"Fake incident #{request.link.remote_number} {request.action} synced"],
        )

    def _meet_fault(self, request: PushRequest | PullRequest) -> None:
        """The outage `remote.fault` sets, as a careful connector reports it."""
        import time

        fault = self.remote.fault
        if fault == "down":
            raise ConnectorError("cannot reach the fake API: connection refused",
                                 retryable=True)
        if fault == "server_error":
            raise ConnectorError("the fake API answered 503: Service Unavailable",
                                 retryable=True)
        if fault == "refused":
            raise ConnectorError("the fake API answered 400: the incident is invalid")
        if fault == "slow":
            wait = self.remote.slow_seconds
            if request.deadline is not None and time.monotonic() + wait > request.deadline:
                raise ConnectorError("the fake API would answer after the deadline",
                                     retryable=True)
            time.sleep(wait)

    def _lose_answer(self) -> None:
        if self.remote.fault == "lost_answer":
            raise ConnectorError("no answer from the fake API (timed out)", retryable=True)

    def test(self, request: CheckRequest) -> list[Check]:
        if not self.remote.reachable:
            return [Check(name="api", critical=True, ok=False, detail="Cannot reach the fake API",
                          fix="Start the fake API")]
        return [Check(name="api", critical=True, ok=True, detail="Connected to the fake API")]


class FakeWebhookConnector(FakeConnector):
    """A FakeConnector that also takes its remote's signed webhooks (`webhook_secret` set to
    `FakeRemote.SECRET`), recognising im's own changes by the user it acts as."""

    KINDS: ClassVar[dict[str, ChangeKind]] = {
        "incident.open": ChangeKind.OPENED, "incident.acknowledged": ChangeKind.ACKNOWLEDGED,
        "incident.unacknowledged": ChangeKind.UNACKNOWLEDGED,
        "incident.resolved": ChangeKind.RESOLVED, "incident.note": ChangeKind.NOTE}

    def verify_webhook(self, request: WebhookRequest) -> bool:
        import hmac

        secret = self.settings.webhook_secret  # type: ignore[attr-defined]
        offered = request.headers.get(FakeRemote.SIGNATURE_HEADER, "")
        if not secret or not offered:
            return False
        return hmac.compare_digest(offered, self.remote.sign(request.body)[
            FakeRemote.SIGNATURE_HEADER]) and secret == FakeRemote.SECRET

    def _event(self, body: bytes) -> dict[str, Any]:
        try:
            event = msgspec.json.decode(body)
        except msgspec.DecodeError as error:
            raise ValueError(f"not a fake webhook: {error}") from None
        if not isinstance(event, dict) or not all(k in event for k in ("id", "type", "at")):
            raise ValueError("not a fake webhook: no id, type or at")
        return event

    def parse_webhook(self, request: WebhookRequest) -> WebhookEvent:
        event = self._event(request.body)
        return WebhookEvent(delivery_id=event["id"], event_type=event["type"],
                            occurred_at=datetime.fromisoformat(event["at"]))

    def webhook_changes(self, request: WebhookRequest) -> list[InboundChange]:
        event = self._event(request.body)
        kind = self.KINDS.get(event["type"])
        if kind is None:
            raise UnhandledEventError(f"fake event type {event['type']} is not handled")
        keyed = parse_idempotency_key(event.get("key"))
        return [InboundChange(
            remote_id=event["incident"], event_id=event["id"], action=kind,
            occurred_at=datetime.fromisoformat(event["at"]), actor=event["actor"],
            text=event.get("text") or "", remote_status=event.get("status"),
            title=event.get("title"), service=keyed[1] if keyed else event.get("service"),
            correlation_id=keyed[0] if keyed else None,
            echo=event["actor"] == FakeRemote.OWN_USER)]


    def pull(self, request: PullRequest) -> PullResult:
        """Every remote incident's state now, as a listing of the remote's incidents says it
        (a real remote would list only those changed since the cursor)."""
        self._meet_fault(request)
        now = self.runtime.clock()
        changes = []
        for remote_id, incident in self.remote.incidents.items():
            action = {"open": ChangeKind.OPENED, "acknowledged": ChangeKind.ACKNOWLEDGED,
                      "resolved": ChangeKind.RESOLVED}.get(str(incident.get("status")))
            if action is None:
                continue
            keyed = parse_idempotency_key(incident.get("key"))
            changes.append(InboundChange(
                remote_id=remote_id, event_id=f"poll:{remote_id}:{incident.get('status')}",
                action=action, occurred_at=incident.get("changed_at") or now,
                observed_at=now, actor=incident.get("changed_by") or "fake",
                remote_status=incident.get("status"), title=incident.get("title"),
                service=keyed[1] if keyed else incident.get("service"),
                correlation_id=keyed[0] if keyed else None))
        return PullResult(changes=changes, cursor=now.isoformat())


class FakePlugin:
    """A plugin that registers `FakeConnector` (or the `connector` class given, such as
    `FakeWebhookConnector`) bound to its own `FakeRemote`."""

    def __init__(self, remote: FakeRemote | None = None, *,
                 connector: type[FakeConnector] = FakeConnector) -> None:
        self.remote = remote or FakeRemote()
        self.connector = connector

    @hookimpl
    def register_connectors(self, register: Any) -> None:
        register(type(self.connector.__name__, (self.connector,), {"remote": self.remote}))


@contextmanager
def serve(runtime: Runtime, *, background: bool = True, host: str = "127.0.0.1"
          ) -> Iterator[str]:
    """Run `im serve`'s app for `runtime` on a free loopback port in a thread; yields its base
    URL. With `background`, outbox delivery, inbox processing and polling run too."""
    from im.server import create_app

    with serve_app(create_app(runtime, background=background), host=host) as url:
        yield url


@contextmanager
def serve_app(app: Any, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Run an app made by `im.server.create_app` as `im serve` runs it, on a free port in a
    thread (for a test that also looks inside the app); yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    from im.server import serving

    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    # log_config=None, as `im serve`: uvicorn's own logging set-up would close the handler
    # that keeps im's logs in the database (logging.config closes every existing handler)
    from im.server.protocol import BoundedHttpProtocol

    config = uvicorn.Config(serving(app), host=host, port=port, log_level="warning",
                            lifespan="on", log_config=None, http=BoundedHttpProtocol,
                            proxy_headers=False)  # as `im serve`: server.trusted_proxies decide
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="im-serve-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("im serve did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
