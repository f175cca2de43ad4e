"""Workflow actions: `slack.war_room` opens a channel for an incident (topic, purpose, the
summary pinned, the on-call responders invited); `slack.archive_war_room`, run by a rule on
`closed`, archives the rooms made with `archive_on_close`.

A room is the incident's when its purpose carries the incident's correlation id (the purpose
is set right after the room is made); a room of the expected name made by the bot and with no
purpose yet is one an attempt that died in between made. So a retry after a crash, or after
`name_taken`, finds its own room instead of making a second one.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

import im
from im_slack import messages
from im_slack.api import SlackAPIError

MAX_NAME = 80
ARCHIVE_MARK = "Archived when the incident is closed."


class WarRoomSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    connector: str  # the slack connector (its token) to make the room with
    prefix: str = "inc"  # room names: PREFIX-NUMBER-TITLE
    invite_oncall_from: str | None = None  # a connector with an on-call lookup, or None
    archive_on_close: bool = False  # let slack.archive_war_room archive it when closed
    private: bool = False  # a private channel (groups:write) instead of a public one

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,20}", self.prefix):
            raise ValueError(f"{self.prefix!r} is not a channel-name prefix (lower case"
                             " letters, digits, - and _, at most 21) - at `prefix`")


class ArchiveSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    connector: str


def slug(text: str) -> str:
    """Text as Slack channel names take it: lower case, no spaces, periods or punctuation."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9_-]+", "-", text.lower())).strip("-_")


def room_name(prefix: str, incident: im.Incident, suffix: int = 1) -> str:
    """`inc-42-payment-api-down`, at most 80 characters; `-2`, `-3`... for later tries."""
    tail = f"-{suffix}" if suffix > 1 else ""
    base = f"{prefix}-{incident.number}"
    title = slug(incident.title)
    if title:
        base = f"{base}-{title}"
    return base[:MAX_NAME - len(tail)].rstrip("-_") + tail


def marker(incident: im.Incident) -> str:
    return f"(im {incident.correlation_id})"


def _slack(runtime: im.Runtime, name: str) -> Any:
    from im_slack.connector import SlackConnector

    connector = runtime.connector(name)
    if not isinstance(connector, SlackConnector):
        raise im.ConnectorError(f"{name} is a {connector.type} connector, not slack: give a"
                                " slack connector's name as `connector`")
    return connector


def _only_connectors(runtime: im.Runtime, *, archive: bool) -> dict[str, Any]:
    records = [record for record in runtime.store.list_connectors() if record.enabled]
    slack = [record.name for record in records if record.type == "slack"]
    settings: dict[str, Any] = {"connector": slack[0]} if len(slack) == 1 else {}
    if archive:
        return settings
    types = runtime.connector_types
    oncall = [record.name for record in records if record.type in types
              and types[record.type].oncall is not im.Connector.oncall]
    if len(oncall) == 1:
        settings["invite_oncall_from"] = oncall[0]
    return {**settings, "archive_on_close": True}


def find_room(slack: Any, incident: im.Incident, *, archived: bool = False
              ) -> dict[str, Any] | None:
    """The incident's room, by the correlation id in its purpose."""
    mark = marker(incident)
    for channel in slack.web.pages("conversations.list", "channels", limit=200,
                                   types="public_channel,private_channel",
                                   exclude_archived=not archived):
        if mark in ((channel.get("purpose") or {}).get("value") or ""):
            return dict(channel)
    return None


class WarRoom(im.WorkflowAction):
    name = "slack.war_room"
    description = ("Open a Slack channel for the incident: topic, purpose, the summary pinned,"
                   " the on-call responders invited")
    Settings = WarRoomSettings
    settings: WarRoomSettings
    defaults = (im.DefaultRule(name="war-room", trigger=im.Trigger.DECLARED,
                               severities=[im.Severity.SEV1],
                               description="every SEV-1 gets a war room"),)

    @classmethod
    def default_settings(cls, runtime: im.Runtime) -> dict[str, Any]:
        """The slack connector, and the connector to ask who is on call, where there is one
        of each to choose."""
        return _only_connectors(runtime, archive=False)

    def describe(self, request: im.ActionRequest) -> str:
        who = (f", invite who {self.settings.invite_oncall_from} has on call for"
               f" {', '.join(request.incident.services)}"
               if self.settings.invite_oncall_from else "")
        return (f"create #{room_name(self.settings.prefix, request.incident)} with"
                f" {self.settings.connector}{who}")

    def run(self, request: im.ActionRequest) -> im.ActionResult:
        slack = _slack(self.runtime, self.settings.connector)
        with slack.client.until(request.deadline):
            return self._run(slack, request)

    def _run(self, slack: Any, request: im.ActionRequest) -> im.ActionResult:
        incident = request.incident
        timeline: list[str] = []
        room, made = self._room(slack, incident)
        label = f"#{room['name']}"
        timeline.append(f"War room {label} created" if made else
                        f"War room {label} (made by an earlier attempt)")
        room_id = str(room["id"])
        # Slack reads <...> in a topic or purpose as a mention or a link: titles escaped
        purpose = f"Incident {incident.id}: {messages.escape(incident.title)}. {marker(incident)}"
        if self.settings.archive_on_close:
            purpose = f"{purpose} {ARCHIVE_MARK}"
        if (room.get("purpose") or {}).get("value") != purpose:
            slack.web.call("conversations.setPurpose", channel=room_id,
                           purpose=purpose[:250])
        topic = (f"{incident.severity.value} · {messages.escape(incident.title)} ·"
                 f" {', '.join(incident.services)}")[:250]
        if (room.get("topic") or {}).get("value") != topic:
            slack.web.call("conversations.setTopic", channel=room_id, topic=topic)
        self._pin_summary(slack, incident, room_id)
        if self.settings.invite_oncall_from:
            timeline.extend(self._invite(slack, incident, room_id, request.deadline))
        return im.ActionResult(timeline=timeline)

    def _room(self, slack: Any, incident: im.Incident) -> tuple[dict[str, Any], bool]:
        """(the room, whether this attempt made it)."""
        bot = None
        for suffix in range(1, 10):
            name = room_name(self.settings.prefix, incident, suffix)
            try:
                made = slack.web.call("conversations.create", name=name,
                                      is_private=self.settings.private or None)
                return dict(made["channel"]), True
            except SlackAPIError as error:
                if error.error != "name_taken":
                    raise
            existing = slack.find_channel(name, archived=True)
            if existing is None:  # taken by a channel the bot cannot see
                continue
            purpose = (existing.get("purpose") or {}).get("value") or ""
            if marker(incident) in purpose:
                return existing, False
            if bot is None:
                bot = slack.web.call("auth.test").get("user_id")
            if not purpose and existing.get("creator") == bot and not existing.get(
                    "is_archived"):
                return existing, False  # made by an attempt that died before its purpose
        raise im.ConnectorError(f"no free channel name for {incident.id}'s war room"
                                f" ({room_name(self.settings.prefix, incident)} to -9 are"
                                " taken)")

    def _pin_summary(self, slack: Any, incident: im.Incident, room_id: str) -> None:
        key = f"im-summary-{incident.correlation_id}"
        found = None
        for message in slack.web.pages("conversations.history", "messages", pages=2,
                                       channel=room_id, limit=200):
            if any(b.get("block_id") == key for b in message.get("blocks") or []):
                found = message
                break
        if found is None:
            links = slack.runtime.store.links(incident.id)
            own = [link for link in links if link.connector == slack.name]
            text, blocks = messages.war_room_summary(
                incident, key=key, incident_link=own[0].remote_url if own else None,
                remote=[link for link in links if link.connector != slack.name])
            found = slack.post(room_id, text, blocks)
        try:
            slack.web.call("pins.add", channel=room_id, timestamp=found["ts"])
        except SlackAPIError as error:
            if error.error != "already_pinned":
                raise

    def _invite(self, slack: Any, incident: im.Incident, room_id: str,
                deadline: float | None) -> list[str]:
        lines: list[str] = []
        source = self.settings.invite_oncall_from
        assert source is not None
        try:
            oncall = self.runtime.connector(source)
        except im.ImError as error:
            return [f"Could not invite the on-call responders: {error}"]
        responders: dict[str, list[str]] = {}  # e-mail -> the services they cover
        for service in incident.services:
            try:
                result = oncall.oncall(im.OncallRequest(service=service, deadline=deadline))
            except im.ConnectorError as error:
                if error.retryable:
                    raise
                lines.append(f"Could not ask {source} who is on call for {service}: {error}")
                continue
            if result.current:
                responders.setdefault(result.current.strip(), []).append(service)
            else:
                lines.append(f"{source} has nobody on call for {service}")
        for email, services in responders.items():
            covering = ", ".join(services)
            try:
                user = slack.web.call("users.lookupByEmail", email=email)["user"]
            except SlackAPIError as error:
                if error.error != "users_not_found":
                    raise
                lines.append(f"{email} (on call for {covering}) has no Slack account with"
                             " that e-mail: not invited")
                continue
            who = user.get("real_name") or user.get("name") or email
            try:
                slack.web.call("conversations.invite", channel=room_id, users=user["id"])
            except SlackAPIError as error:
                if error.error != "already_in_channel":
                    raise
            lines.append(f"Invited {who} (on call for {covering})")
        return lines


class ArchiveWarRoom(im.WorkflowAction):
    name = "slack.archive_war_room"
    defaults = (im.DefaultRule(name="archive-war-room", trigger=im.Trigger.CLOSED,
                               severities=[im.Severity.SEV1],
                               description="a SEV-1's war room is archived when it is closed"),)

    @classmethod
    def default_settings(cls, runtime: im.Runtime) -> dict[str, Any]:
        return _only_connectors(runtime, archive=True)

    description = ("Archive the incident's war room, if slack.war_room made it with"
                   " archive_on_close (run it on `closed`)")
    Settings = ArchiveSettings
    settings: ArchiveSettings

    def describe(self, request: im.ActionRequest) -> str:
        return (f"archive {request.incident.id}'s war room if it was made with"
                " archive_on_close")

    def run(self, request: im.ActionRequest) -> im.ActionResult:
        slack = _slack(self.runtime, self.settings.connector)
        incident = request.incident
        with slack.client.until(request.deadline):
            room = find_room(slack, incident, archived=True)
            if room is None:
                return im.ActionResult(timeline=[f"{incident.id} has no war room to archive"])
            label = f"#{room['name']}"
            if ARCHIVE_MARK not in ((room.get("purpose") or {}).get("value") or ""):
                return im.ActionResult(timeline=[
                    f"War room {label} kept: it was not made with archive_on_close"])
            if room.get("is_archived"):
                return im.ActionResult(timeline=[f"War room {label} archived"])
            try:
                slack.web.call("conversations.archive", channel=room["id"])
            except SlackAPIError as error:
                if error.error != "already_archived":
                    raise
            return im.ActionResult(timeline=[f"War room {label} archived"])
