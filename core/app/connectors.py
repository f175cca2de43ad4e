"""Connector operations: add, update and remove a connector, check it, set up and check its
webhooks, its status, health and figures (`im metrics connector`), sync it (and say what is
left waiting), preview and replay.

Every front end (`im connector ...`, later the HTTP API and chat buttons) calls these with
plain arguments (names, settings as data, a public URL) and formats what they return: the
rules live here. Parsing a command line's text into settings (`--set PATH=VALUE`, a secret
read from standard input) and asking for settings one by one are the front end's.

An operation that waits on a remote system takes `deadline` (a time.monotonic(), past which
the connector stops waiting; None: its own timeouts) and `busy`, a context manager a front end
shows the wait with (the CLI's spinner; by default nothing). Connector operations take no
actor: nothing about a connector records who acted (incident operations, which do, take one).

The module loads only when a connector command runs: building the command line never
imports it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from im.app.busy import Busy, unseen
from im.connectors import (
    Check,
    CheckRequest,
    Connector,
    MapOutboundRequest,
    SettingsCheckRequest,
    SlaPolicyRequest,
    WebhookSetupRequest,
    WebhookTestRequest,
)
from im.errors import ConnectorError, ImError, InvalidInputError, NotFoundError
from im.models import ConnectorRecord, SyncDirection
from im.observability import ConnectorMetrics, ConnectorStatus
from im.storage import InboxRow, OutboxRow
from im.sync import DeliveryReport

if TYPE_CHECKING:
    from im.connectors import ConnectorSettings
    from im.runtime import Runtime

__all__ = [
    "Busy", "ConnectorAdded", "ConnectorChecked", "ConnectorHealth", "ConnectorRemoved",
    "ConnectorSummary", "ConnectorUpdated", "ConnectorView", "DeliveryInterrupted",
    "NothingToChangeError", "PublicUrlUnknownError", "Reconciled", "Replayed", "SettingChanged",
    "SyncBacklog", "SyncResult", "SyncScope", "WebhookCheck", "WebhookSetUp", "WebhooksEnabled",
    "WebhooksRemoved", "add", "backlog", "check", "check_webhooks", "deliver",
    "disable_webhooks", "enable_webhooks", "get", "health", "list_connectors", "metrics",
    "new_connector_type", "preview", "queued_changes", "reconcile", "remove", "replay",
    "requeue_failed", "set_up_webhooks", "show", "status", "sync", "sync_scope",
    "tear_down_webhooks", "update", "webhook_url",
]

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# The outbox states of a change still on its way (`delivering`: a process holds it now).
QUEUED = ("pending", "delivering")
# How long a webhook check waits for the event it sent (or the remote's ping) to be stored.
WEBHOOK_CHECK_SECONDS = 10.0


# -- configured connectors -----------------------------------------------------------------


class ConnectorSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A configured connector as `im connector list` shows it. `status`: active or disabled."""

    name: str
    type: str
    status: str
    direction: SyncDirection
    last_sync: datetime | None


class ConnectorView(msgspec.Struct, frozen=True, kw_only=True):
    """A connector's stored settings, secrets redacted."""

    name: str
    type: str
    enabled: bool
    settings: dict[str, Any]


def get(runtime: Runtime, name: str) -> ConnectorRecord:
    """A configured connector's record, or NotFoundError naming the configured ones."""
    record = runtime.store.get_connector(name)
    if record is None:
        names = ", ".join(r.name for r in runtime.store.list_connectors()) or "none"
        raise NotFoundError(f"no connector named {name!r} (configured: {names})")
    return record


def list_connectors(runtime: Runtime) -> list[ConnectorSummary]:
    return [ConnectorSummary(name=record.name, type=record.type,
                             status="active" if record.enabled else "disabled",
                             direction=record.sync_direction,
                             last_sync=runtime.store.last_sync(record.name))
            for record in runtime.store.list_connectors()]


def show(runtime: Runtime, name: str) -> ConnectorView:
    from im.connector_config import redact

    record = get(runtime, name)
    settings = redact(runtime.connector_type(record.type).Settings, record.settings)
    return ConnectorView(name=record.name, type=record.type, enabled=record.enabled,
                         settings=settings)


def queued_changes(runtime: Runtime, name: str, incident_id: str | None = None
                   ) -> list[OutboxRow]:
    """The changes still on their way to a connector (of one incident), in queue order."""
    return runtime.store.outbox(connector=name, incident_id=incident_id, statuses=QUEUED)


def status(runtime: Runtime, name: str) -> ConnectorStatus:
    """Direction, last sync, activity and errors in the last 24 hours, what is queued."""
    from im import observability

    return observability.status(runtime, name)


def metrics(runtime: Runtime, name: str) -> ConnectorMetrics:
    """Incidents linked, sync success and time, API calls and the rate limit used, webhook
    events: the figures of the last 24 hours (`/metrics` serves the same)."""
    from im import observability

    return observability.metrics(runtime, name)


class ConnectorHealth(msgspec.Struct, frozen=True, kw_only=True):
    """`health`: healthy, degraded or unhealthy; `checks`: what it was found from."""

    health: str
    checks: list[Check]


def health(runtime: Runtime, name: str, *, deadline: float | None = None,
           busy: Busy = unseen) -> ConnectorHealth:
    """The connector's live checks, then what its records say (webhooks, sync, errors)."""
    from im import observability

    with busy(f"Checking {name}"):
        verdict, checks = observability.health(runtime, name, deadline=deadline)
    return ConnectorHealth(health=verdict, checks=checks)


# -- adding, changing, removing ------------------------------------------------------------


class ConnectorAdded(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type: str
    direction: SyncDirection


class SettingChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A setting a change set, and its new value as it may be shown (a secret redacted)."""

    path: str
    value: Any


class ConnectorUpdated(msgspec.Struct, frozen=True, kw_only=True):
    """`changed`: the settings set, in the order given (a JSON object's keys first, sorted).
    `warnings`: what the remote system could not confirm (it was unreachable, say).
    `webhooks`: what the change asks of the connector's webhooks next, when anything: the
    front end follows with set_up_webhooks or tear_down_webhooks (after showing the change)."""

    name: str
    changed: list[SettingChanged]
    warnings: list[str] = []
    webhooks: Literal["set up", "tear down"] | None = None


class ConnectorRemoved(msgspec.Struct, frozen=True, kw_only=True):
    """`lines`: what removing the connector's webhook subscriptions said; `unsubscribe_error`
    why they could not be removed (they must then be deleted in the remote system)."""

    name: str
    type: str
    lines: list[str] = []
    unsubscribe_error: str | None = None


class NothingToChangeError(InvalidInputError):
    """An update that sets nothing."""


def new_connector_type(runtime: Runtime, type_name: str, name: str) -> type[Connector]:
    """The connector type a connector `name` is to be added of, once the checks that need no
    settings pass: the type is installed, the name well-formed and not taken. A front end
    that asks for the settings one by one runs these first; `add` runs them again."""
    cls = runtime.connector_type(type_name)
    if not NAME.match(name):
        raise InvalidInputError(f"invalid connector name {name!r}: use lower-case letters,"
                                " digits, '-' or '_'")
    if runtime.store.get_connector(name) is not None:
        raise InvalidInputError(f"connector {name} exists already; change it with"
                                f" `im connector update {name}`")
    return cls


def add(runtime: Runtime, type_name: str, name: str, settings: dict[str, Any]
        ) -> ConnectorAdded:
    """Validate and store a new connector. One that pulls and sets up its remote's webhooks
    itself wants them now: front ends follow with set_up_webhooks (after saying it is
    added, as that may take a while)."""
    new_connector_type(runtime, type_name, name)
    decoded, _warnings = _save(runtime, name, type_name, settings)
    return ConnectorAdded(name=name, type=type_name, direction=decoded.sync_direction)


def update(runtime: Runtime, name: str, *, merge: dict[str, Any] | None = None,
           values: Sequence[tuple[str, Any]] = (), busy: Busy = unseen) -> ConnectorUpdated:
    """Change a connector's settings: `merge` is merged in deeply (a JSON object), then each
    (dotted path, value) of `values` is set. The result is validated as a whole, checked with
    the remote system where the connector can (an id it does not know is refused), and
    refused when it would make two connectors of one remote account duplicate incidents."""
    from im.connector_config import get_path, redact, set_path

    record = get(runtime, name)
    cls = runtime.connector_type(record.type)
    data = dict(record.settings)
    changed: list[str] = []
    if merge is not None:
        data = _deep_merge(data, merge)
        changed += sorted(merge)
    for path, value in values:
        data = set_path(data, path, value)
        changed.append(path)
    if not changed:
        raise NothingToChangeError("nothing to change")
    # webhooks, or pulling, turned on: set them up as after `add`
    turned_on = bool({"enable_webhook", "sync_direction"} & set(changed)) and not (
        _wants_webhooks(runtime, name))
    # webhooks turned off: the remote stops sending them, as with disable_webhooks
    turned_off = "enable_webhook" in changed and data.get("enable_webhook") is False and (
        record.settings.get("enable_webhook", True) is not False)
    _decoded, warnings = _save(runtime, name, record.type, data, record.created_at,
                               before=record.settings, busy=busy)
    safe = redact(cls.Settings, data)
    return ConnectorUpdated(
        name=name, changed=[SettingChanged(path=path, value=get_path(safe, path))
                            for path in changed],
        warnings=warnings,
        webhooks="set up" if turned_on else "tear down" if turned_off else None)


def remove(runtime: Runtime, name: str) -> ConnectorRemoved:
    """Remove a connector, and the webhook subscriptions it made in its remote system (they
    would go on delivering to a route that answers 404). Links stay on the incidents'
    history; queued changes are dropped (queued_changes says which, for a front end to ask
    first)."""
    record = get(runtime, name)
    cls = runtime.connector_type(record.type)
    lines: list[str] = []
    error = None
    if (cls.webhook_unsubscribe is not Connector.webhook_unsubscribe
            and record.settings.get("enable_webhook", True) is not False):
        try:
            result = runtime.connector(name).webhook_unsubscribe(WebhookSetupRequest(url=""))
        except ImError as problem:
            error = str(problem)
        else:
            lines = list(result.lines)
    runtime.store.delete_connector(name)
    return ConnectorRemoved(name=name, type=record.type, lines=lines, unsubscribe_error=error)


def _save(runtime: Runtime, name: str, type_name: str, data: dict[str, Any],
          created_at: datetime | None = None, before: dict[str, Any] | None = None,
          busy: Busy = unseen) -> tuple[ConnectorSettings, list[str]]:
    """Store a connector's settings (an update when `before`, the stored ones, is given):
    the decoded settings, and the warnings of the remote check."""
    from im.connector_config import validate
    from im.sla import TargetOrderError, sourced_policy

    cls = runtime.connector_type(type_name)
    connector = cls(name, validate(cls.Settings, data), runtime)
    _refuse_shared_account(runtime, connector, before)
    warnings: list[str] = []
    if before is not None:  # an update: what the remote system must know, checked last
        warnings = _check_remotely(runtime, name, type_name, before, data, busy)
    now = runtime.clock()
    with runtime.store.transaction():
        runtime.store.save_connector(ConnectorRecord(
            name=name, type=type_name, settings=data, created_at=created_at or now,
            updated_at=now,
        ))
        # SLA targets from two places (this connector, the defaults) must agree too:
        # an ack target longer than the resolve target rolls the change back
        if _sets_sla_targets(runtime, name, type_name, data):
            try:
                sourced_policy(runtime, strict=True)
            except TargetOrderError as error:
                raise InvalidInputError(f"invalid settings: {error}") from None
            except ImError:
                pass  # said by every command that reads the targets
    return connector.settings, warnings


def _sets_sla_targets(runtime: Runtime, name: str, type_name: str,
                      data: dict[str, Any]) -> bool:
    try:
        connector = runtime.build_connector(name, type_name, data, debug_overrides=False)
    except ImError:
        return False  # such as an env: secret not set here
    if type(connector).sla_policy is Connector.sla_policy:
        return False
    return bool(connector.sla_policy(SlaPolicyRequest()))


def _refuse_shared_account(runtime: Runtime, connector: Connector,
                           before: dict[str, Any] | None) -> None:
    """Two connectors of one remote account, either of them pulling, would duplicate
    incidents (in im, or back in the remote): refused, with the reason. An update of a
    connector that shared its account already (made before this rule) is not refused: it
    may be the step that ends the sharing."""
    from im.connector_config import validate

    account = connector.remote_account()
    if account is None:
        return
    previous = None
    if before is not None:
        try:
            previous = type(connector)(connector.name, validate(connector.Settings, before),
                                       runtime)
        except ImError:
            pass
    for record in runtime.store.list_connectors():
        other_type = runtime.connector_types.get(record.type)
        if record.name == connector.name or other_type is None:
            continue
        try:
            other = other_type(record.name, validate(other_type.Settings, record.settings),
                               runtime)
        except ImError:
            continue
        reason = _sharing(connector, other)
        if reason is None or (previous is not None and _sharing(previous, other)):
            continue
        raise InvalidInputError(
            f"{other.name} already syncs {account.label}: {reason}; keep one connector"
            f" per account (change {other.name}: im connector update {other.name}), or"
            " make both outbound")


def _sharing(connector: Connector, other: Connector) -> str | None:
    """Why two connectors of one remote account would duplicate incidents, or None (another
    account, or neither of them pulls)."""
    mine, theirs = connector.remote_account(), other.remote_account()
    if mine is None or theirs is None or mine.key != theirs.key:
        return None
    pulls, their_pulls = (connector.settings.sync_direction.pulls,
                          other.settings.sync_direction.pulls)
    if pulls and their_pulls:
        return "both would pull its incidents, and each would become two im incidents"
    if their_pulls:
        return (f"{other.name} pulls its incidents in, and {connector.name} would create each"
                " of them there again")
    if pulls:
        return (f"{connector.name} would pull its incidents in, and {other.name} would create"
                " each of them there again")
    return None


def _check_remotely(runtime: Runtime, name: str, type_name: str, before: dict[str, Any],
                    after: dict[str, Any], busy: Busy) -> list[str]:
    """Let the connector refuse a changed setting its remote system does not know (a
    service id, say), before the change is saved; what it could not check, as warnings."""
    from im.connector_config import changed_paths, validate

    cls = runtime.connector_type(type_name)
    validate(cls.Settings, after)  # the struct's own checks first
    changed = changed_paths(cls.Settings, before, after)
    if not changed:
        return []
    try:
        connector = runtime.build_connector(name, type_name, after, debug_overrides=False)
    except ImError:
        return []  # such as an env: secret not set here: nothing to check with
    with busy(f"Checking the change with {name}"):
        result = connector.check_settings(SettingsCheckRequest(changed=changed))
    return list(result.warnings)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# -- checks --------------------------------------------------------------------------------


class ConnectorChecked(msgspec.Struct, frozen=True, kw_only=True):
    """`checks`: the connector's own; `warnings`: what else was found (nothing answers at
    im's public URL, where webhooks go)."""

    connector: str
    ok: bool
    checks: list[Check]
    warnings: list[str] = []


def check(runtime: Runtime, name: str, *, deadline: float | None = None,
          busy: Busy = unseen) -> ConnectorChecked:
    """Check that a connector can reach and use its remote system."""
    connector = runtime.connector(name)
    public_url = runtime.public_url_for(name)
    problem = None
    with busy(f"Checking {name}"):
        checks = connector.test(CheckRequest(public_url=public_url, deadline=deadline))
        if public_url and connector.wants_webhooks:
            problem = _serve_unreachable(public_url)
    return ConnectorChecked(connector=name, ok=all(c.ok for c in checks), checks=list(checks),
                            warnings=[problem] if problem else [])


def _serve_unreachable(public_url: str) -> str | None:
    """A warning when nothing answers at im's public URL (no connection, or none in time);
    None when something does, whatever it says (a proxy, TLS or a redirect in between is
    not for this check to judge)."""
    from urllib.parse import urlsplit

    import httpx

    from im.net import is_loopback

    url = f"{public_url.rstrip('/')}/health"
    # a proxy from the environment is never the way to this machine's own loopback
    direct = is_loopback(urlsplit(url).hostname or "")
    try:
        httpx.get(url, timeout=3, trust_env=not direct)
    except (httpx.ConnectError, httpx.TimeoutException) as error:
        return (f"Nothing answers at {url} ({type(error).__name__}): webhooks fail until"
                " `im serve` runs there (the sender retries for a while; polling catches up)")
    except httpx.HTTPError:
        pass
    return None


# -- webhooks ------------------------------------------------------------------------------


class PublicUrlUnknownError(InvalidInputError):
    """No public URL was given and im's is not known (IM_PUBLIC_URL, the settings, or one
    given before): where the remote system should send webhooks cannot be said."""


class WebhookSetUp(msgspec.Struct, frozen=True, kw_only=True):
    """What setting up a connector's webhooks after a change came to. `outcome`:

    - `not wanted`: the connector does not pull, or takes no webhooks it sets up itself;
    - `connector unusable`: it cannot be built here (`error`; an env: key not set, say);
    - `bad public url`: im's public URL is malformed (`error`);
    - `no public url`: im's public URL is not known yet;
    - `remote failed`: the remote system did not set them up (`error`); polling covers;
    - `set up`: done; `lines` say what the remote did, `url` where events will go.

    Only `set up` set anything up; the settings are saved either way."""

    outcome: Literal["not wanted", "connector unusable", "bad public url", "no public url",
                     "remote failed", "set up"]
    error: str | None = None
    lines: list[str] = []
    url: str | None = None


class WebhooksRemoved(msgspec.Struct, frozen=True, kw_only=True):
    """`outcome`: `not supported` (the connector's type makes no subscriptions), `failed`
    (`error`: the remote failed, or the connector cannot be built here) or `removed`."""

    outcome: Literal["not supported", "failed", "removed"]
    error: str | None = None
    lines: list[str] = []


class WebhooksEnabled(msgspec.Struct, frozen=True, kw_only=True):
    """`url`: where the remote system now sends events; `lines`: what it said. `direction`:
    the connector's; one that does not pull ignores the events until it changes."""

    connector: str
    type: str
    url: str
    lines: list[str]
    direction: SyncDirection


class WebhookCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One step of checking a connector's webhooks: `passed`, `failed` (with a `fix` when
    there is one) or `skipped` (it could not be tried; not a failure)."""

    outcome: Literal["passed", "failed", "skipped"]
    detail: str
    fix: str | None = None


def webhook_url(base: str, name: str) -> str:
    """The URL a connector's webhooks are sent to, from im's public base URL: https, or
    http on loopback."""
    from urllib.parse import urlsplit

    from im.net import is_http_url, is_loopback

    if not is_http_url(base):
        raise InvalidInputError(f"{base!r} is not a URL; write https://your-domain.com")
    parts = urlsplit(base)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise InvalidInputError("webhook URLs must use https:// (http:// only on loopback)")
    return f"{base.rstrip('/')}/connectors/{name}/webhook"


def _public_url(runtime: Runtime, name: str, url: str | None) -> str:
    base = url or runtime.public_url_for(name)
    if not base:
        raise PublicUrlUnknownError("im's public URL is not known")
    return base


def _wants_webhooks(runtime: Runtime, name: str) -> bool:
    """Whether the connector pulls and takes webhooks it sets up itself (from its stored
    settings alone: nothing is resolved or read for a connector that does not)."""
    from im.connector_config import validate

    record = get(runtime, name)
    cls = runtime.connector_type(record.type)
    try:
        connector = cls(name, validate(cls.Settings, record.settings), runtime)
    except ImError:
        return False
    return connector.wants_webhooks and connector.subscribes_webhooks


def set_up_webhooks(runtime: Runtime, name: str, *, busy: Busy = unseen) -> WebhookSetUp:
    """After adding a connector, or a change that turned webhooks or pulling on: a connector
    that pulls and sets up its remote's webhooks itself gets them now when im's public URL
    is known. The settings are saved already: a remote that fails here only leaves the
    webhooks for later (enable_webhooks)."""
    if not _wants_webhooks(runtime, name):
        return WebhookSetUp(outcome="not wanted")
    try:
        connector = runtime.connector(name)
    except ImError as error:  # an env: key not set in this shell, say
        return WebhookSetUp(outcome="connector unusable", error=str(error))
    try:
        base = runtime.public_url_for(name)
        endpoint = webhook_url(base, name) if base else ""
    except InvalidInputError as error:  # a malformed IM_PUBLIC_URL, say
        return WebhookSetUp(outcome="bad public url", error=str(error))
    if not base:
        return WebhookSetUp(outcome="no public url")
    try:
        with busy(f"Setting up {name}'s webhooks"):
            result = connector.webhook_subscribe(WebhookSetupRequest(url=endpoint))
    except ConnectorError as error:
        return WebhookSetUp(outcome="remote failed", error=str(error))
    runtime.remember_public_url(name, base)
    return WebhookSetUp(outcome="set up", lines=list(result.lines), url=endpoint)


def tear_down_webhooks(runtime: Runtime, name: str) -> WebhooksRemoved:
    """After a change that turned webhooks off: the subscriptions the connector made are
    removed (the settings are saved already; a remote that fails leaves them for
    disable_webhooks)."""
    cls = runtime.connector_type(get(runtime, name).type)
    if cls.webhook_unsubscribe is Connector.webhook_unsubscribe:
        return WebhooksRemoved(outcome="not supported")
    try:
        result = runtime.connector(name).webhook_unsubscribe(WebhookSetupRequest(url=""))
    except ImError as error:  # the remote failed, or an env: key is not set here
        return WebhooksRemoved(outcome="failed", error=str(error))
    return WebhooksRemoved(outcome="removed", lines=list(result.lines))


def enable_webhooks(runtime: Runtime, name: str, *, url: str | None = None,
                    busy: Busy = unseen) -> WebhooksEnabled:
    """Subscribe to the remote system's events at `url` (im's public base URL; default:
    IM_PUBLIC_URL, else the last one given), and remember it. A new URL replaces the
    subscription. Raises PublicUrlUnknownError when there is none."""
    connector = runtime.connector(name)
    base = _public_url(runtime, name, url)
    endpoint = webhook_url(base, name)
    with busy(f"Setting up {name}'s webhooks"):
        result = connector.webhook_subscribe(WebhookSetupRequest(url=endpoint))
    runtime.remember_public_url(name, base)
    return WebhooksEnabled(connector=name, type=connector.type, url=endpoint,
                           lines=list(result.lines),
                           direction=connector.settings.sync_direction)


def disable_webhooks(runtime: Runtime, name: str, *, url: str | None = None) -> list[str]:
    """Remove every subscription the connector made (no public URL needed); what the
    remote system said."""
    connector = runtime.connector(name)
    base = url or runtime.public_url_for(name)
    endpoint = webhook_url(base, name) if base else ""
    return list(connector.webhook_unsubscribe(WebhookSetupRequest(url=endpoint)).lines)


def check_webhooks(runtime: Runtime, name: str, *, url: str | None = None
                   ) -> Iterator[WebhookCheck]:
    """Post a signed test event to the real route, then ask the remote for its ping; each
    passes only when the event is found stored in the inbox. The steps come one by one as
    they are done (each may wait up to WEBHOOK_CHECK_SECONDS); a failed step ends them.
    The connector and the URL are checked at once (PublicUrlUnknownError without one)."""
    connector = runtime.connector(name)
    request = WebhookTestRequest(url=webhook_url(_public_url(runtime, name, url), name))
    return _webhook_checks(runtime, connector, request)


def _webhook_checks(runtime: Runtime, connector: Connector, request: WebhookTestRequest
                    ) -> Iterator[WebhookCheck]:
    import httpx

    def stored(delivery_id: str | None, event_type: str | None, after: int) -> bool:
        deadline = time.monotonic() + WEBHOOK_CHECK_SECONDS
        while time.monotonic() < deadline:
            for row in runtime.store.inbox(connector=connector.name):
                if row.id > after and (row.delivery_id == delivery_id
                                       or row.event_type == event_type):
                    return True
            time.sleep(0.2)
        return False

    last = max((row.id for row in runtime.store.inbox(connector=connector.name)), default=0)
    event = connector.webhook_test_event(request)
    try:
        answer = httpx.post(request.url, content=event.body, headers=event.headers, timeout=10)
    except httpx.HTTPError as error:
        yield WebhookCheck(outcome="failed", detail=f"Cannot reach {request.url}: {error}",
                           fix="start `im serve` and check that the URL reaches it")
        return
    if answer.status_code != 202:
        yield WebhookCheck(outcome="failed", detail=f"{request.url} answered"
                                                    f" {answer.status_code}: {answer.text[:200]}")
        return
    if not stored(event.delivery_id, None, last):
        yield WebhookCheck(outcome="failed",
                           detail=f"{request.url} accepted the test event but it was not"
                                  " stored here (does the URL reach this im's `im serve`?)")
        return
    yield WebhookCheck(outcome="passed",
                       detail=f"Signed test event accepted by {request.url} (202) and stored")
    try:
        event_type = connector.webhook_ping(request)
    except ConnectorError as error:
        yield WebhookCheck(outcome="skipped", detail=f"Remote ping not sent: {error}")
        return
    if stored(None, event_type, last):
        yield WebhookCheck(outcome="passed",
                           detail=f"{connector.type} ping received ({event_type})")
        return
    yield WebhookCheck(outcome="failed",
                       detail=f"{connector.type} ping not received within"
                              f" {WEBHOOK_CHECK_SECONDS:g} s; check that {request.url} is"
                              " reachable from the remote system")


# -- sync ----------------------------------------------------------------------------------


class SyncScope(msgspec.Struct, frozen=True, kw_only=True):
    """What a sync covers: a configured connector, and one incident of it or all."""

    connector: str
    incident_id: str | None = None


class DeliveryInterrupted(KeyboardInterrupt):
    """Ctrl-C while changes were being delivered: `queued` are those left waiting (what was
    being delivered is back in line at once), for a front end to say which and who delivers
    them."""

    def __init__(self, queued: list[OutboxRow]) -> None:
        super().__init__()
        self.queued = queued


class SyncBacklog(msgspec.Struct, frozen=True, kw_only=True):
    """After a sync's deliveries, why the changes still waiting were not delivered, beyond
    the ones it queued for retry: `held` by another process (until their lease ends),
    waiting in order `behind_held` or `behind_retry`, `not_tried` for lack of time; and
    those `set_aside` earlier (failed for good)."""

    held: list[OutboxRow] = []
    behind_held: list[OutboxRow] = []
    behind_retry: list[OutboxRow] = []
    not_tried: list[OutboxRow] = []
    set_aside: list[OutboxRow] = []

    @property
    def not_done(self) -> int:
        """How many changes the sync should have tried but did not."""
        return len(self.behind_retry) + len(self.not_tried)


class Reconciled(msgspec.Struct, frozen=True, kw_only=True):
    """How many remote changes had each outcome (`confirmed`: what im knew already), or
    the `error` reconciling ended with."""

    outcomes: dict[str, int] | None = None
    error: str | None = None


class SyncResult(msgspec.Struct, frozen=True, kw_only=True):
    """A whole sync: how many failed changes were queued again (None: not asked), what
    delivery did, what is left waiting, and what reconciling did."""

    scope: SyncScope
    requeued: int | None
    delivery: DeliveryReport
    backlog: SyncBacklog
    reconciled: Reconciled


def sync_scope(runtime: Runtime, name: str, incident: str | None = None) -> SyncScope:
    """The scope of a sync of connector `name` (of `incident` alone, e.g. INC-12), both
    checked to exist."""
    from im.incidents import get as get_incident

    record = get(runtime, name)
    incident_id = get_incident(runtime, incident).id if incident else None
    return SyncScope(connector=record.name, incident_id=incident_id)


def requeue_failed(runtime: Runtime, scope: SyncScope) -> int:
    """Queue again the changes refused for good (after their cause is fixed)."""
    return runtime.store.requeue_failed_outbox(connector=scope.connector,
                                               incident_id=scope.incident_id,
                                               at=runtime.clock())


def deliver(runtime: Runtime, scope: SyncScope, *, deadline: float | None = None,
            progress: Callable[[OutboxRow], None] | None = None) -> DeliveryReport:
    """Deliver the queued changes now, without waiting for their backoff, until `deadline`
    (what is left stays queued). `progress` is called after each change tried. Ctrl-C
    raises DeliveryInterrupted."""
    from im.sync import deliver_outbox

    try:
        return deliver_outbox(runtime, connector=scope.connector, incident_id=scope.incident_id,
                              due_only=False, progress=progress,
                              budget=None if deadline is None else deadline - time.monotonic())
    except KeyboardInterrupt:
        raise DeliveryInterrupted(queued_changes(runtime, scope.connector,
                                                 scope.incident_id)) from None


def backlog(runtime: Runtime, scope: SyncScope, tried: Sequence[int]) -> SyncBacklog:
    """What is left waiting after a delivery that tried the outbox rows `tried` (see
    SyncBacklog)."""
    now = runtime.clock()
    rows = queued_changes(runtime, scope.connector, scope.incident_id)
    held = [row for row in rows if row.status == "delivering" and row.lease_until is not None
            and row.lease_until > now]
    held_ids = {row.id for row in held}
    tried_ids = set(tried)
    behind_held: list[OutboxRow] = []
    behind_retry: list[OutboxRow] = []
    not_tried: list[OutboxRow] = []
    held_for, tried_for = set(), set()  # incidents with a held / a tried row so far
    for row in rows:  # in queue order
        if row.id in held_ids:
            held_for.add(row.incident_id)
        elif row.id in tried_ids:  # tried here, and counted as queued for retry
            tried_for.add(row.incident_id)
        elif row.incident_id in held_for:
            behind_held.append(row)
        elif row.incident_id in tried_for:
            behind_retry.append(row)
        else:
            not_tried.append(row)
    set_aside = [row for row in runtime.store.outbox(
        connector=scope.connector, incident_id=scope.incident_id, statuses=("failed",))
        if row.id not in tried_ids]
    return SyncBacklog(held=held, behind_held=behind_held, behind_retry=behind_retry,
                       not_tried=not_tried, set_aside=set_aside)


def reconcile(runtime: Runtime, scope: SyncScope, *, deadline: float | None = None
              ) -> Reconciled:
    """For a connector that pulls: apply what changed remotely since its cursor (for one
    incident: what its remote incidents say now)."""
    from im.inbound import poll

    try:
        return Reconciled(outcomes=poll(runtime, scope.connector,
                                        incident_id=scope.incident_id, deadline=deadline))
    except ConnectorError as error:
        return Reconciled(error=str(error))


def sync(runtime: Runtime, name: str, *, incident: str | None = None,
         retry_failed: bool = False, deadline: float | None = None,
         busy: Busy = unseen) -> SyncResult:
    """Deliver queued changes now, then reconcile, within one `deadline`; with
    `retry_failed`, the changes refused for good are queued again first. A front end that
    reports each step as it ends calls the steps itself (requeue_failed, deliver, backlog,
    reconcile)."""
    scope = sync_scope(runtime, name, incident)
    requeued = requeue_failed(runtime, scope) if retry_failed else None
    with busy(f"Delivering to {scope.connector}"):
        delivery = deliver(runtime, scope, deadline=deadline)
    waiting = backlog(runtime, scope, delivery.tried)
    with busy(f"Reconciling with {scope.connector}"):
        reconciled = reconcile(runtime, scope, deadline=deadline)
    return SyncResult(scope=scope, requeued=requeued, delivery=delivery, backlog=waiting,
                      reconciled=reconciled)


# -- what a connector would send; events set aside -----------------------------------------


def preview(runtime: Runtime, name: str, incident: str) -> dict[str, dict[str, Any]]:
    """What the connector sends to create the incident, per service (no remote call)."""
    from im.incidents import get as get_incident

    connector = runtime.connector(name)
    found = get_incident(runtime, incident)
    return {service: connector.map_outbound(MapOutboundRequest(incident=found,
                                                               service=service))
            for service in found.services}


class Replayed(msgspec.Struct, frozen=True, kw_only=True):
    """`waiting`: how many events were quarantined (0: nothing was done); `processed` and
    `quarantined`: what processing them again came to; `remaining`: those (of the ones
    asked for) still quarantined, with their errors."""

    connector: str
    waiting: int
    processed: int = 0
    quarantined: int = 0
    remaining: list[InboxRow] = []


def replay(runtime: Runtime, name: str, ids: Sequence[int] = ()) -> Replayed:
    """Process a connector's quarantined events again (after an upgrade or a settings fix):
    all of them, or those of `ids`, each of which must be quarantined."""
    from im.inbound import replay as replay_events

    get(runtime, name)
    waiting = runtime.store.inbox(connector=name, statuses=("quarantined",))
    if not waiting:
        return Replayed(connector=name, waiting=0)
    unknown = sorted(set(ids) - {row.id for row in waiting})
    if unknown:
        raise InvalidInputError(
            f"no quarantined event {', '.join(f'#{n}' for n in unknown)} for {name};"
            f" quarantined: {', '.join(f'#{row.id}' for row in waiting)}")
    report = replay_events(runtime, name, list(ids) or None)
    remaining = [row for row in runtime.store.inbox(connector=name, statuses=("quarantined",))
                 if not ids or row.id in ids]
    return Replayed(connector=name, waiting=len(waiting), processed=report.processed,
                    quarantined=report.quarantined, remaining=remaining)
