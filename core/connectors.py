"""The Connector protocol: what a connector plugin implements, and the structs it exchanges.

A connector type (say `paging`) is a subclass of `Connector`, registered by a plugin through
the `register_connectors` hook. Each configured instance (say `prod-paging`) is built from it
with its decoded settings. Every method takes one msgspec request struct, so fields can be added
later without breaking plugins. Methods a connector does not support keep the default, which
raises `ConnectorError`; the core says so to the user.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import msgspec

from im.errors import ConnectorError
from im.models import DEFAULT_SYNC_DIRECTION, Incident, Link, SyncDirection

if TYPE_CHECKING:
    from im.runtime import Runtime


class ChangeKind(enum.StrEnum):
    """What happened to a remote incident, in im's words, whatever the remote system calls
    it: the `action` of an InboundChange (what sync applies) and the `kind` of a RemoteEvent
    (what reports read). A connector translates its own words into these."""

    # the remote incident was opened (created, triggered: whatever the remote system calls it):
    # one im did not make becomes an im incident; one of a resolved im incident reopens it
    OPENED = "opened"
    # acknowledged: an open im incident is mitigated
    ACKNOWLEDGED = "acknowledged"
    # back to open from acknowledged: the im incident is unacknowledged when none of the
    # connector's other remote incidents of it is still acknowledged
    UNACKNOWLEDGED = "unacknowledged"
    # resolved: the im incident is resolved when all the connector's remote incidents of it are
    RESOLVED = "resolved"
    # reopened after it was resolved: a resolved or closed im incident is reopened
    REOPENED = "reopened"
    # a note (`text`): added to the im incident's timeline
    NOTE = "note"
    # someone (`assignee`) was assigned: the im incident is assigned to them too
    ASSIGNED = "assigned"
    # escalated to someone (`assignee`, if it says whom): as ASSIGNED
    ESCALATED = "escalated"
    # anything else (`text`, a timeline line); with `moved_to_service`, moved to another service
    UPDATED = "updated"
    # someone was paged: in a remote incident's log for reports; sync has nothing to apply
    NOTIFIED = "notified"
    # the remote system has no such incident (any more): sync records it, applies nothing
    MISSING = "missing"
    # the remote incident was folded into another one (`merged_into`), which carries on the
    # problem: sync moves the link there and never resolves the im incident for it
    MERGED = "merged"
    # the remote incident's severity changed (its priority, say): `severity` is the im
    # severity it reads as, None when it reads as none (the timeline line only)
    SEVERITY = "severity"
    # the name and word of SDK versions before 1.0 for OPENED, still understood
    TRIGGERED = "opened"

    @classmethod
    def _missing_(cls, value: object) -> ChangeKind | None:
        return cls.OPENED if value == "triggered" else None


class RemoteStatus(enum.StrEnum):
    """The state of a remote incident, in im's words, whatever the remote system calls it: a
    connector translates its own (a paging tool's `triggered` is OPEN, an alert tool's `closed`
    is RESOLVED) where it hands a status to im (RemoteRef, InboundChange, RemoteIncidentReport,
    which refuse any other word). The core's rules read only these."""

    # open: nobody has acknowledged it
    OPEN = "open"
    # someone acknowledged it
    ACKNOWLEDGED = "acknowledged"
    # resolved or closed
    RESOLVED = "resolved"
    # the remote system has no such incident (any more): im's finding, set by the core
    MISSING = "missing"
    # folded into another remote incident (a MERGED change): set by the core
    MERGED = "merged"


def remote_status(value: object, *, field: str = "remote_status") -> RemoteStatus | None:
    """`value` as a RemoteStatus (None stays None); any other word is refused, naming it and
    the words im knows."""
    if value is None or isinstance(value, RemoteStatus):
        return value
    try:
        return RemoteStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in RemoteStatus)
        raise ValueError(f"{field} {value!r} is not one of im's remote states ({known}):"
                         " translate the remote system's word (see im.RemoteStatus)") from None


def _checked_status(struct: msgspec.Struct, field: str = "remote_status") -> None:
    status = remote_status(getattr(struct, field), field=field)
    if status is not getattr(struct, field):
        msgspec.structs.force_setattr(struct, field, status)


def _checked_kind(struct: msgspec.Struct, field: str) -> None:
    value = getattr(struct, field)
    if isinstance(value, ChangeKind):
        return
    try:
        kind = ChangeKind(value)
    except ValueError:
        known = ", ".join(k.value for k in ChangeKind)
        raise ValueError(f"{field} {value!r} is not one of im's change kinds ({known})") from None
    msgspec.structs.force_setattr(struct, field, kind)


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `30s`, `5m`, `2h` or `1d`."""
    match = DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number and s, m, h or d (e.g. 5m)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def prompt(order: int, title: str, *, secret: bool = False,
           description: str | None = None) -> msgspec.Meta:
    """Field metadata that makes `im connector add` ask for this setting, in this order."""
    return msgspec.Meta(title=title, description=description,
                        extra={"prompt": order, "secret": secret})


def secret(title: str | None = None) -> msgspec.Meta:
    """Field metadata for a credential: stored, never printed; `env:VAR` reads it at run time."""
    return msgspec.Meta(title=title, extra={"secret": True})


class ConnectorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings every connector has. A connector's settings struct subclasses this."""

    # which way changes go: im's out (outbound), the remote system's in (inbound), or both
    sync_direction: Annotated[SyncDirection, prompt(90, "Sync Direction")] = (
        DEFAULT_SYNC_DIRECTION
    )
    # how often `im serve` polls a connector that pulls (`30s`, `5m`, `1h`)
    sync_interval: str = "5m"
    # whether `im serve` takes the remote system's webhooks for it (only if it pulls)
    enable_webhook: bool = True
    # trace every call to the remote system, with its bodies (log_requests and log_responses)
    debug: bool = False
    # trace every call, with the request's body
    log_requests: bool = False
    # trace every call, with the answer's body
    log_responses: bool = False

    def __post_init__(self) -> None:
        try:
            parse_duration(self.sync_interval)
        except ValueError as error:
            raise ValueError(f"{error} - at `$.sync_interval`") from None


def idempotency_key(correlation_id: str, service: str) -> str:
    """The key a connector creates a remote incident with (PushRequest.idempotency_key):
    `im-<correlation id>-<service>`."""
    return f"im-{correlation_id}-{service}"


def parse_idempotency_key(key: str | None) -> tuple[str, str] | None:
    """(correlation id, service) of a key im made, or None for anyone else's key: what a
    connector that pulls sets InboundChange.correlation_id from."""
    if not key or not key.startswith("im-") or len(key) < 37 or key[35] != "-":
        return None
    correlation_id, service = key[3:35], key[36:]
    if not all(c in "0123456789abcdef" for c in correlation_id) or not service:
        return None
    return correlation_id, service


# -- requests and results ------------------------------------------------------------------


class RemoteRef(msgspec.Struct, frozen=True, kw_only=True):
    """What a connector learnt about the remote incident it created or changed: the core
    stores it as the link, keeping the link's earlier values for the fields left None."""

    # the remote incident's id: one remote incident, linked to one im incident and service
    remote_id: str
    # the number people know it by ("4512"), where the remote system has one
    remote_number: str | None = None
    # where people open it
    remote_url: str | None = None
    # its state now, in im's words (refused in any other)
    remote_status: RemoteStatus | None = None
    # when the remote system made the change, by its own clock (the one its events carry): an
    # event that happened before it is older and is not applied
    remote_updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _checked_status(self)


class PushRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Deliver one local change (an outbox row) for one service of an incident."""

    # what changed: one of im.Action's values, or one a later im adds (return PushResult()
    # for one you do not know: never fail it)
    action: str
    # the incident as it is now, at delivery, which is not always as it was at the change (a
    # queued ack may be delivered after the resolve)
    incident: Incident
    # the service this row is for
    service: str
    # the link your earlier pushes made for this incident and service, None before the first
    link: Link | None
    # the change's details, as each Action says: {"note": ...} for transitions, notes and
    # sla_breach; {"assignee": ...}; {"severity": ...}; {} for declare
    payload: dict[str, Any] = {}
    # `im-<correlation id>-<service>` (im.idempotency_key): the same on every attempt of every
    # row of this incident and service; create the remote incident with it
    idempotency_key: str
    # 1 on the first try
    attempt: int = 1
    # time.monotonic() by which the caller wants an answer (a CLI command, which leaves what it
    # could not deliver to `im serve`), or None. A connector should not wait past it: raise a
    # retryable ConnectorError instead, and the change stays queued. Requests that read
    # (PullRequest, CheckRequest, OncallRequest) carry the same deadline.
    deadline: float | None = None
    # When the change was queued (its outbox row made). A connector that must tell whether an
    # earlier attempt got through (a remote action without an idempotency key) can leave out
    # what is older: changes delivered long ago may have been forgotten (retention).
    queued_at: datetime | None = None
    # The system the change came from: "im" (a command, the HTTP API), or the name of the
    # connector it came through. A connector that receives its own changes
    # (`receives_own_changes`) finds them by its own name here. None: a change queued by an
    # im that did not keep it.
    origin_system: str | None = None


class PushResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a push did."""

    # the remote incident made or changed, to store as the link (None: the link as it is)
    link: RemoteRef | None = None
    # lines for the incident's timeline, saying what was synced (the CLI prints them too)
    timeline: list[str] = []
    # whom the remote system assigned, if it did (the im incident is assigned to them)
    assignee: str | None = None


class InboundChange(msgspec.Struct, frozen=True, kw_only=True):
    """A change that happened in the remote system, found by a webhook or a poll."""

    # the remote incident it happened to (the link it is applied to)
    remote_id: str
    # the change's own id in the remote system (a webhook's event id, a poll's state)
    event_id: str
    # what happened: a ChangeKind other than NOTIFIED (refused in any other word)
    action: ChangeKind
    # when the remote system made it, by its own clock: an older change than the link knows
    # is stale, not applied
    occurred_at: datetime
    # who made it (an email or a name), shown as the origin on the timeline
    actor: str
    # the note, or the timeline line saying what happened
    text: str = ""
    # the remote incident's number, for a link made from this change
    remote_number: str | None = None
    # where people open the remote incident
    remote_url: str | None = None
    # the remote incident's state after the change, in im's words (refused in any other)
    remote_status: RemoteStatus | None = None
    # the remote incident's title: that of the im incident made of an OPENED one
    title: str | None = None
    # the im service the remote incident is for (from its key, or the connector's mapping)
    service: str | None = None
    # with SEVERITY: the im severity ("SEV-2") the remote one reads as, None: none
    severity: str | None = None
    # who is assigned in the remote system (an email or a name)
    assignee: str | None = None
    # set when the remote incident carries the key im created it with
    # (im.parse_idempotency_key): it is linked even before the create's answer is
    correlation_id: str | None = None
    # a change made by im itself (the connector recognises its own user): known, not applied
    echo: bool = False
    # keep a status change on the link (and `text` on the timeline) without changing the im
    # incident: a remote resolve the connector's settings say not to follow. MISSING is always
    # record-only; a later change restores the link's status
    record_only: bool = False
    # when a poll read the remote state: a link that im changed since (a push, a webhook)
    # knows better, and the change is stale
    observed_at: datetime | None = None
    # with MERGED: the remote incident it was folded into (the link moves there)
    merged_into: str | None = None
    # with MERGED: that incident's number, where known
    merged_into_number: str | None = None
    # with MERGED: that incident's URL, where known
    merged_into_url: str | None = None
    # with UPDATED: the im service the remote incident belongs to since someone moved it to
    # another service in the remote system (the link follows it)
    moved_to_service: str | None = None

    def __post_init__(self) -> None:
        _checked_status(self)
        _checked_kind(self, "action")


class PullRequest(msgspec.Struct, frozen=True, kw_only=True):
    """List the remote changes since the cursor (all of one incident's, with `incident`)."""

    # where the last poll ended (PullResult.cursor), None on the first
    cursor: str | None = None
    # when asked for one incident (`im connector sync NAME --incident INC-1`), that incident
    incident: Incident | None = None
    # and its links of this connector: the remote incidents to read
    links: list[Link] = []
    # as PushRequest.deadline: a command waits no longer than this for the remote system
    deadline: float | None = None


class PullResult(msgspec.Struct, frozen=True, kw_only=True):
    # the changes found, applied in order
    changes: list[InboundChange] = []
    # where the next poll starts (stored once the changes are applied), None: as it was
    cursor: str | None = None


class WebhookRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook delivery: as received (verify_webhook, parse_webhook), or as stored
    (webhook_changes: the body only)."""

    # the delivery's headers, names lower-cased; empty in webhook_changes (only the body is
    # stored)
    headers: dict[str, str]
    # the raw body, as signed
    body: bytes
    # the sender's address, where known
    client: str | None = None
    # as PushRequest.deadline, for reading a stored event (`webhook_changes`), which may ask the
    # remote system (who an actor is): the event is held for a while only (INBOX_LEASE_SECONDS),
    # so a connector must not wait past it; a retryable ConnectorError leaves the event and the
    # ones after it for a later pass
    deadline: float | None = None


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    """The envelope of an authentic delivery: enough to store and deduplicate it.
    `delivery_id` comes from what the signature covers (the event's own id, else a hash of
    the body), never from an unsigned header, which whoever replays the body can change."""

    # deduplicates: a delivery with an id already stored is answered 202 and dropped
    delivery_id: str
    # the remote system's name for the event ("incident.acknowledged"), for `im logs`
    event_type: str
    # when the remote system says it happened
    occurred_at: datetime | None = None


class WebhookSetupRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Subscribe (or unsubscribe) the remote system's webhooks to `url`."""

    # im's webhook address for this connector: `<public URL>/connectors/NAME/webhook`
    url: str


class WebhookSetupResult(msgspec.Struct, frozen=True, kw_only=True):
    # what was done, a line each, printed by the command
    lines: list[str] = []


class WebhookTestRequest(msgspec.Struct, frozen=True, kw_only=True):
    # im's webhook address for this connector, where the test event goes
    url: str


class WebhookTestEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A signed event as the remote system would send it, for `webhook --test`."""

    # the headers to send it with (its signature among them)
    headers: dict[str, str]
    # the body, as signed
    body: bytes
    # its delivery id (what parse_webhook will read), to find it once stored
    delivery_id: str


class MapOutboundRequest(msgspec.Struct, frozen=True, kw_only=True):
    # the incident to map
    incident: Incident
    # the service whose remote incident it would be
    service: str


class AssigneeRequest(msgspec.Struct, frozen=True, kw_only=True):
    # whom `im assign` is to assign, as the user wrote it (an email or a name)
    assignee: str


class RemoteIncidentRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Describe one linked remote incident (for reports)."""

    # which remote incident
    link: Link
    # the im incident it belongs to
    incident: Incident | None = None


class RemoteEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a remote incident's log, in im's words."""

    # when it happened
    at: datetime
    # what happened: a ChangeKind other than MISSING (NOTIFIED: someone was paged)
    kind: ChangeKind
    # the entry as the remote system words it
    text: str = ""
    # who did it (an email or a name; None for the remote system itself)
    actor: str | None = None
    # who the event paged, assigned or escalated to
    targets: list[str] = []

    def __post_init__(self) -> None:
        _checked_kind(self, "kind")


class RemoteIncidentReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a connector knows about a remote incident: its identity, state and whole log."""

    # the remote incident's id
    remote_id: str
    # the number people know it by
    number: str | None = None
    # where people open it
    url: str | None = None
    # its state now, in im's words (refused in any other)
    status: RemoteStatus | None = None
    # its title in the remote system
    title: str | None = None
    # when the remote system made it
    created_at: datetime | None = None
    # its whole log, in any order (reports sort them by time)
    events: list[RemoteEvent] = []

    def __post_init__(self) -> None:
        _checked_status(self, "status")


class SlaPolicyRequest(msgspec.Struct, frozen=True, kw_only=True):
    pass


class RemoteAccount(msgspec.Struct, frozen=True, kw_only=True):
    """The remote account a connector works in."""

    # tells accounts apart (two connectors with the same key see the same remote incidents);
    # it must hold no secret (a hash of one is fine)
    key: str
    # names it for people: "this Acme account (same API key)"
    label: str


class CheckRequest(msgspec.Struct, frozen=True, kw_only=True):
    # where the remote system reaches `im serve` (IM_PUBLIC_URL, or the settings'
    # public_url), None when unknown: what a check of the webhook subscription compares with
    public_url: str | None = None
    # as PushRequest.deadline: a check not done by then fails, saying it ran out of time
    deadline: float | None = None


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One line of `im connector test` or `health`: what was checked, and the fix if it failed."""

    # what was checked, a short id ("api", "webhook")
    name: str
    # whether it passed
    ok: bool
    # what was found, in words ("Connected as im-bot@company.com")
    detail: str
    # what to do when it failed
    fix: str | None = None
    # the line's title in `health` ("API Connectivity"), else `name`
    label: str = ""
    # the connector cannot work at all while this fails (the remote unreachable, credentials
    # refused): `health` says unhealthy, where another failed check makes it degraded
    critical: bool = False


class SettingsCheckRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Check a change of the connector's settings (the connector holds the new settings)."""

    # the settings paths (dotted, as users write them) whose values the change sets anew
    changed: list[str] = []


class SettingsCheckResult(msgspec.Struct, frozen=True, kw_only=True):
    # what could not be checked (the remote system unreachable, say), a line each
    warnings: list[str] = []


class OncallRequest(msgspec.Struct, frozen=True, kw_only=True):
    # the im service asked about
    service: str
    # at what time (None: now)
    at: datetime | None = None
    # as PushRequest.deadline: raise a retryable ConnectorError rather than wait past it
    deadline: float | None = None


class OncallResult(msgspec.Struct, frozen=True, kw_only=True):
    """Who is on call for a service (`im oncall --service NAME`)."""

    # the im service asked about
    service: str
    # who is on call now (an email or a name), None: nobody
    current: str | None = None
    # until when
    current_until: datetime | None = None
    # who is on call next
    next: str | None = None
    # from when
    next_from: datetime | None = None
    # who is paged after them, and when, a line each ("After 30 minutes → jane@company.com")
    escalations: list[str] = []
    # for a service with no mapping of its own, where the connector sent the question (where
    # its incidents would go), in words, so the answer is not taken for one about a service
    # the remote system knows
    routed: str | None = None


class Connector:
    """Base class of connector types. Subclass it, set `type` and `Settings`, override methods.

    `options` maps the option names of `im connector config/update` (without dashes) to the
    settings path they set, such as `{"service-id": "custom.service_id"}`: the connector owns
    its vocabulary and the core stays generic. `rate_limit_per_minute` is the remote API's
    documented request limit, the measure of `Rate Limit Usage` until a call records the
    limit the remote system gives (`runtime.record_call(rate_limit=...)`); None: unknown.
    `remote_incident_per` says how im incidents map to remote ones: "service" (one remote
    incident for each service of the im incident: every change is pushed once per service,
    and the incident resolves when all of them are) or "incident" (one remote incident for
    the im incident, made for its first service: every change is pushed once).
    `receives_own_changes`: a change never goes back to the connector it came from, unless
    its class sets this True. A connector that shows im's state, such as a chat message, may
    ask for the changes made through it too (a button clicked in that message): they are
    queued for it like any other, with `PushRequest.origin_system` its own name, so that it
    updates what it shows without echoing the change itself.

    What the core gives a connector: `self.runtime.record_call(self.name, method=, path=,
    status=, duration=, error=, rate_limit=, rate_remaining=)` records each call to the
    remote system (without it `im connector status`, `metrics` and `health` show no calls
    and no error rate); log through `logging.getLogger(f"im.connector.{self.name}")` (read
    with `im logs --component connector --filter NAME`), with secrets masked by
    `im.redact_headers` and `im.redact_body` (or call through `im.connector_client`, which
    does all of this); `self.settings.debug`, `log_requests` and `log_responses` say what to
    trace (also set by the `connectors.<type>` section of the settings file and the
    `<TYPE>_DEBUG=true` environment variable). `self.runtime.shared_rate_limits()` is where
    to count the remote API's rate limit so that every im process on the database spends one
    budget (several `im serve` on PostgreSQL): a `limits` storage for
    `limits.strategies.FixedWindowRateLimiter`, or None where each process keeps its own.
    A remote id is one remote incident: the core
    links it to one im incident and service, and sets aside a change whose answer names a
    remote incident linked elsewhere.
    """

    # the connector type's name, as `im connector add TYPE NAME` takes it ("acme-ops")
    type: ClassVar[str]
    # its settings struct, a subclass of ConnectorSettings
    Settings: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    # one line saying what the type connects to
    description: ClassVar[str] = ""
    # option names of `im connector config/update` (without dashes) to the settings paths
    # they set
    options: ClassVar[dict[str, str]] = {}
    # the remote API's documented request limit, the measure of Rate Limit Usage until a call
    # records the limit the remote system gives; None: unknown
    rate_limit_per_minute: ClassVar[int | None] = None
    # how im incidents map to remote ones: "service" (one remote incident per service of the
    # im incident) or "incident" (one, made for its first service)
    remote_incident_per: ClassVar[Literal["service", "incident"]] = "service"
    # True: the changes made through this connector (Origin.system its name) are queued for
    # it too, with PushRequest.origin_system its own name (a chat message showing im's state
    # updates itself); False: a change never goes back to where it came from
    receives_own_changes: ClassVar[bool] = False

    def __init__(self, name: str, settings: ConnectorSettings, runtime: Runtime) -> None:
        self.name = name
        self.settings = settings
        self.runtime = runtime

    def _unsupported(self, what: str) -> ConnectorError:
        return ConnectorError(f"connector {self.name} ({self.type}) does not support {what}")

    # sync
    def push(self, request: PushRequest) -> PushResult:
        """Deliver one outbound change. Raise ConnectorError(retryable=...) when it fails."""
        raise self._unsupported("pushing changes")

    def pull(self, request: PullRequest) -> PullResult:
        """List remote changes since `request.cursor` (no per-incident calls)."""
        raise self._unsupported("pulling changes")

    # mapping
    def map_outbound(self, request: MapOutboundRequest) -> dict[str, Any]:
        """The remote fields an incident's service would be created with (no remote call).
        `im connector preview NAME --incident INC-1` shows them; `push` normally uses it."""
        raise self._unsupported("mapping incidents")

    # webhooks
    @property
    def receives_webhooks(self) -> bool:
        """Whether this connector's type takes webhooks (it implements verify_webhook)."""
        return type(self).verify_webhook is not Connector.verify_webhook

    @property
    def subscribes_webhooks(self) -> bool:
        """Whether this connector's type sets up the remote system's webhooks itself (it
        implements webhook_subscribe): `im connector add/update` then do it for a connector
        that pulls, when im's public URL is known."""
        return type(self).webhook_subscribe is not Connector.webhook_subscribe

    @property
    def wants_webhooks(self) -> bool:
        """Whether webhooks would be of use: the connector takes them, they are enabled, and
        it applies remote changes (an outbound connector ignores them)."""
        return (self.receives_webhooks and self.settings.enable_webhook
                and self.settings.sync_direction.pulls)

    def verify_webhook(self, request: WebhookRequest) -> bool:
        """True when the delivery is authentic (signature checked over the raw body).
        `request.headers` are the delivery's, names lower-cased; `request.body` the raw
        bytes; `request.client` the sender's address. Called by `im serve` for each
        delivery to `POST /connectors/NAME/webhook` of a connector that pulls and has
        webhooks on (others are refused 404 before their body is read); False is a 401."""
        raise self._unsupported("webhooks")

    def parse_webhook(self, request: WebhookRequest) -> WebhookEvent:
        """The envelope of an authentic delivery, to store it (raise ValueError when it
        cannot be read: a 400). Its `delivery_id` deduplicates: a delivery with an id
        already stored is answered 202 and dropped."""
        raise self._unsupported("webhooks")

    def webhook_changes(self, request: WebhookRequest) -> list[InboundChange]:
        """The changes an authentic, stored delivery carries (may be none). Raise
        `im.UnhandledEventError` for event types it does not handle, ValueError for
        bodies it cannot read: either way the event is quarantined for replay, not lost.
        Only the body is stored: `request.headers` is empty here, so read everything from
        `request.body`. `request.deadline` bounds any call made to read it (a user look-up):
        past it, raise a retryable ConnectorError and the event waits for a later pass."""
        raise self._unsupported("webhooks")

    def webhook_subscribe(self, request: WebhookSetupRequest) -> WebhookSetupResult:
        """Make the remote system deliver events to `request.url` (and keep its secret)."""
        raise self._unsupported("webhook subscriptions")

    def webhook_unsubscribe(self, request: WebhookSetupRequest) -> WebhookSetupResult:
        """Stop the remote system's deliveries to `request.url` (`im connector webhook NAME
        --disable`, and `im connector remove`)."""
        raise self._unsupported("webhook subscriptions")

    def webhook_test_event(self, request: WebhookTestRequest) -> WebhookTestEvent:
        """A correctly signed, harmless event for `im connector webhook NAME --test`."""
        raise self._unsupported("webhook tests")

    def webhook_ping(self, request: WebhookTestRequest) -> str:
        """Ask the remote system to send its own test event; returns its event type."""
        raise self._unsupported("webhook pings")

    # configuration
    def remote_account(self) -> RemoteAccount | None:
        """The remote account this connector works in, from its settings alone (no remote
        call), or None when it cannot tell. `im connector add/update` refuse a second
        connector of an account when either of them pulls: two pulling would each make an im
        incident of every remote one, and what one pulls in the other would create again."""
        return None

    # health
    def test(self, request: CheckRequest) -> list[Check]:
        """Checks for `im connector test`: can it reach and use the remote system?"""
        raise self._unsupported("connection tests")

    def health(self, request: CheckRequest) -> list[Check]:
        """Checks for `im connector health`; defaults to the connection test."""
        return self.test(request)

    def check_assignee(self, request: AssigneeRequest) -> None:
        """Raise InvalidInputError when the remote system has no such user; stay silent when
        it cannot tell (unreachable): assigning must not wait on an outage."""

    def check_settings(self, request: SettingsCheckRequest) -> SettingsCheckResult:
        """`im connector update/config`, before a change is saved: raise InvalidInputError
        for a changed setting the remote system refuses (an id it does not know); warn when
        it cannot tell. The default checks nothing."""
        return SettingsCheckResult()

    def sla_policy(self, request: SlaPolicyRequest) -> dict[str, dict[str, str]] | None:
        """SLA targets configured on this connector, as {"SEV-1": {"ack": "15m", "resolve":
        "1h"}, ...}, or None. The core uses the first connector (by name) that has one."""
        return None

    def describe_remote(self, request: RemoteIncidentRequest) -> RemoteIncidentReport:
        """A linked remote incident and its whole log, for reports."""
        raise self._unsupported("describing remote incidents")

    # on-call
    def oncall(self, request: OncallRequest) -> OncallResult:
        """Who is on call for `request.service` now and next (`im oncall --service NAME`)."""
        raise self._unsupported("on-call look-ups")
