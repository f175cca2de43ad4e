"""The `slack` connector: each incident as one message in a channel, kept to the incident's
current state, with every change posted as a reply in its thread (outbound only). With the
app's signing secret, the message has buttons and the app a slash command, served by `im
serve` (im_slack.routes); a change made there updates the message and posts no reply.

A link's remote id is `CHANNEL_ID/TS`, the message. The declare finds the message an earlier
attempt posted (a crash, a lost answer) by its header block, whose id is the incident's
idempotency key, in the channel's latest messages (conversations.history); a later change finds
its own reply in the thread (conversations.replies) by the key of the change in its first
block's id, when it is a retry.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import msgspec

import im
from im_slack import messages
from im_slack.api import (
    DEFAULT_BASE_URL,
    SlackAPIError,
    SlackWeb,
    account_key,
    message_pace,
    slack_error_message,
)

# The incident message's state, in im's words (RemoteRef.remote_status).
REMOTE_STATUS = {"open": im.RemoteStatus.OPEN, "mitigated": im.RemoteStatus.ACKNOWLEDGED,
                 "resolved": im.RemoteStatus.RESOLVED, "closed": im.RemoteStatus.RESOLVED}

# What the incident messages need of the token, and what war rooms need besides.
MESSAGE_SCOPES = {
    "chat:write": "post and update the incident messages",
    "channels:read": "find the channel (conversations.info, conversations.list)",
    "channels:history": "find a message or reply an earlier attempt posted, so that none"
                        " is posted twice",
}
# What the buttons and the slash command need besides (with custom.signing_secret).
REQUEST_SCOPES = {
    "commands": "take the slash command",
    "users:read": "find who clicked or typed a command (users.info)",
    "users:read.email": "know them in im by their e-mail",
}
WAR_ROOM_SCOPES = {
    "channels:manage": "create war rooms, set their topic and purpose, invite, archive",
    "pins:write": "pin the incident summary in the war room",
    "users:read.email": "find on-call responders by e-mail (users.lookupByEmail)",
}
HISTORY_PAGES = 5  # how far back (pages of 200) a declare looks for its own message


class SlackCustom(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The channel the incident messages go to: its ID (C0123ABCD) or its name (#incidents),
    # which is looked up (conversations.list) whenever a method needs the ID.
    channel: Annotated[str, im.prompt(3, "Channel for incident messages (ID or #name)")]
    # Join the channel when the bot is not in it (public channels, `channels:join`).
    join_channel: bool = True
    # im's web address, for an "Open in im" link on each message (None: no link).
    im_url: str | None = None
    # The app's signing secret (Basic Information → App Credentials): with it, `im serve`
    # takes the app's button clicks and slash commands (POST /slack/NAME/interactions and
    # /slack/NAME/commands), and the incident message has its buttons. None: neither.
    signing_secret: Annotated[str | None, im.secret("Signing secret")] = None

    def __post_init__(self) -> None:
        if not self.channel.strip().lstrip("#"):
            raise ValueError("the channel is empty; give its ID (C0123ABCD) or #name"
                             " - at `channel`")
        if self.signing_secret is not None and not self.signing_secret.strip():
            raise ValueError("the signing secret is empty; give the app's Signing Secret"
                             " (Basic Information → App Credentials), or leave it out"
                             " - at `signing_secret`")


class SlackSettings(im.ConnectorSettings, frozen=True, kw_only=True):
    api_key: Annotated[str, im.prompt(1, "Bot token (xoxb-...)", secret=True)]
    base_url: Annotated[str, im.prompt(2, "Web API base URL")] = DEFAULT_BASE_URL
    custom: SlackCustom
    # Slack gets im's changes; nothing comes back this way (buttons and the slash command
    # come through im serve's routes, as a front end of im).
    sync_direction: im.SyncDirection = im.SyncDirection.OUTBOUND

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.api_key.strip():
            raise ValueError("the bot token is empty; give the app's Bot User OAuth Token"
                             " (xoxb-...) - at `api_key`")
        if self.sync_direction is not im.SyncDirection.OUTBOUND:
            raise ValueError("a slack connector only posts to Slack; use outbound"
                             " - at `sync_direction`")
        parts = urlsplit(self.base_url)
        if not parts.hostname or parts.scheme not in {"http", "https"} or (
                parts.scheme == "http" and not im.is_loopback(parts.hostname)):
            raise ValueError(f"{self.base_url!r} is not an https:// URL (http:// only on"
                             " loopback, for the sandbox) - at `base_url`")


class SlackConnector(im.Connector):
    type = "slack"
    Settings = SlackSettings
    description = "Posts each incident to a Slack channel and keeps it up to date in a thread"
    options: ClassVar[dict[str, str]] = {"channel": "custom.channel", "token": "api_key",
                                         "base-url": "base_url", "im-url": "custom.im_url",
                                         "join-channel": "custom.join_channel",
                                         "signing-secret": "custom.signing_secret"}
    remote_incident_per = "incident"
    # a change made with the message's buttons or the slash command comes back here, so
    # that the message shows it (and no thread reply echoes it)
    receives_own_changes = True
    rate_limit_per_minute = 50  # tier 3, Slack's most common; chat.postMessage: ~1/s/channel
    settings: SlackSettings
    # for tests: options of the HTTP client (max_attempts, timeout, sleep, monotonic)
    client_options: ClassVar[dict[str, Any]] = {}

    @cached_property
    def client(self) -> im.ConnectorClient:
        options: dict[str, Any] = {"timeout": 10.0, **self.client_options}
        return im.connector_client(
            self, base_url=self.settings.base_url, system="Slack",
            headers={"Authorization": f"Bearer {self.settings.api_key}"},
            error_message=slack_error_message, **options)

    @cached_property
    def web(self) -> SlackWeb:
        return SlackWeb(self.client, pace=message_pace(self.runtime.shared_rate_limits()),
                        account=account_key(self.settings.api_key))

    # -- channels ---------------------------------------------------------------------------

    def find_channel(self, name: str, *, archived: bool = False) -> dict[str, Any] | None:
        """A channel by name (conversations.list), or None."""
        name = name.lstrip("#")
        for channel in self.web.pages("conversations.list", "channels", limit=200,
                                      types="public_channel,private_channel",
                                      exclude_archived=not archived):
            if channel.get("name") == name:
                return channel
        return None

    def channel_info(self, given: str) -> dict[str, Any]:
        """The channel `given` (an ID or a #name): conversations.info of its ID."""
        given = given.strip()
        if not given.startswith("#") and given[:1] in "CG" and given[1:].isalnum() and \
                given.upper() == given:
            return dict(self.web.call("conversations.info", channel=given)["channel"])
        found = self.find_channel(given)
        if found is None:
            raise SlackAPIError(
                f"Slack has no channel {given if given.startswith('#') else '#' + given} that"
                " the bot can see: check the name (a private channel also needs the bot"
                " invited to it)", error="channel_not_found", method="conversations.list")
        return found

    def channel_id(self) -> str:
        return str(self.channel_info(self.settings.custom.channel)["id"])

    def joined(self, channel: dict[str, Any]) -> bool:
        """Make sure the bot is in `channel`; False when it is not and cannot join."""
        if channel.get("is_member"):
            return True
        if not self.settings.custom.join_channel or channel.get("is_private"):
            return False
        self.web.call("conversations.join", channel=channel["id"])
        return True

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]], *,
             thread_ts: str | None = None, label: str | None = None) -> dict[str, Any]:
        """chat.postMessage; a bot not in a public channel joins it once and posts again."""
        arguments = {"channel": channel, "text": text, "blocks": blocks,
                     "thread_ts": thread_ts, "unfurl_links": False, "unfurl_media": False}
        try:
            return self.web.call("chat.postMessage", label=label, **arguments)
        except SlackAPIError as error:
            if error.error != "not_in_channel" or not self.settings.custom.join_channel:
                raise
            try:
                self.web.call("conversations.join", label=label, channel=channel)
            except SlackAPIError:
                raise error from None
            return self.web.call("chat.postMessage", label=label, **arguments)

    # -- outbound ---------------------------------------------------------------------------

    def push(self, request: im.PushRequest) -> im.PushResult:
        with self.client.until(request.deadline):
            if request.action == "declare":
                return self._declare(request)
            if request.link is None:
                # An incident's rows come in order: its declare failed for good, or it was
                # declared before this connector existed. Retrying cannot help.
                raise im.ConnectorError(f"{request.incident.id} has no message in Slack to"
                                        " update (its declare was never delivered)")
            return self._change(request)

    def _links(self, incident: im.Incident) -> list[im.Link]:
        return [link for link in self.runtime.store.links(incident.id)
                if link.connector != self.name]

    def _url(self, incident: im.Incident) -> str | None:
        base = self.settings.custom.im_url
        return f"{base.rstrip('/')}/incidents/{incident.id}" if base else None

    @property
    def takes_requests(self) -> bool:
        """Whether Slack's button clicks and slash commands are taken (a signing secret)."""
        return bool(self.settings.custom.signing_secret)

    def _message(self, incident: im.Incident, key: str) -> tuple[str, list[dict[str, Any]]]:
        return messages.incident_message(incident, key=key, links=self._links(incident),
                                         url=self._url(incident),
                                         with_buttons=self.takes_requests)

    def _declare(self, request: im.PushRequest) -> im.PushResult:
        incident, key = request.incident, request.idempotency_key
        channel = self.channel_info(self.settings.custom.channel)
        label = f"#{channel.get('name') or self.settings.custom.channel.lstrip('#')}"
        text, blocks = self._message(incident, key)
        found = self._earlier_message(channel, key) if channel.get("is_member") else None
        if found is not None:
            ts = str(found["ts"])
            # bring it up to date: the incident may have changed since that attempt
            self.web.call("chat.update", channel=channel["id"], ts=ts, text=text,
                          blocks=blocks)
            said = ", posted by an earlier attempt"
        else:
            if not channel.get("is_member"):
                self.joined(channel)
            posted = self.post(str(channel["id"]), text, blocks, label=label)
            ts = str(posted["ts"])
            said = ""
        status = REMOTE_STATUS.get(incident.status.value, im.RemoteStatus.OPEN)
        return im.PushResult(
            link=im.RemoteRef(remote_id=f"{channel['id']}/{ts}", remote_number=ts,
                              remote_url=self._permalink(str(channel["id"]), ts),
                              remote_status=status),
            timeline=[f"Slack message in {label}{said}"])

    def _earlier_message(self, channel: dict[str, Any], key: str) -> dict[str, Any] | None:
        """The bot's message carrying `key` in the channel's latest messages, if any."""
        block_id = messages.incident_block_id(key)
        for message in self.web.pages("conversations.history", "messages",
                                      pages=HISTORY_PAGES, channel=channel["id"], limit=200):
            if any(block.get("block_id") == block_id for block in message.get("blocks") or []):
                return message
        return None

    def _permalink(self, channel_id: str, ts: str) -> str | None:
        # Slack's permalink form; the workspace's address is only known from auth.test,
        # which a declare does not need to call: links go through slack.com's redirect.
        base = urlsplit(self.settings.base_url)
        host = "slack.com" if base.hostname == "slack.com" else base.netloc
        scheme = base.scheme or "https"
        return f"{scheme}://{host}/archives/{channel_id}/p{ts.replace('.', '')}"

    def _change(self, request: im.PushRequest) -> im.PushResult:
        assert request.link is not None
        channel, _, ts = request.link.remote_id.partition("/")
        incident = request.incident
        text, blocks = self._message(incident, request.idempotency_key)
        self.web.call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)
        status = REMOTE_STATUS.get(incident.status.value)
        word = messages.STATUS_WORDS.get(incident.status.value, incident.status.value)
        if request.origin_system == self.name:
            # made in Slack (a button, the slash command): the message shows it, and the one
            # who made it was answered there; a reply in the thread would only echo it
            return im.PushResult(
                link=im.RemoteRef(remote_id=request.link.remote_id, remote_status=status),
                timeline=[f"Slack message updated ({word})"])
        reply_text, reply_blocks = messages.change_reply(request)
        posted = ""
        if request.attempt > 1 and self._earlier_reply(channel, ts,
                                                       messages.change_block_id(request)):
            posted = ", posted by an earlier attempt"
        else:
            self.post(channel, reply_text, reply_blocks, thread_ts=ts)
        return im.PushResult(
            link=im.RemoteRef(remote_id=request.link.remote_id, remote_status=status),
            timeline=[f"Slack message updated ({word}); {request.action} posted in its"
                      f" thread{posted}"])

    def _earlier_reply(self, channel: str, ts: str, block_id: str) -> bool:
        for message in self.web.pages("conversations.replies", "messages", channel=channel,
                                      ts=ts, limit=200):
            if any(block.get("block_id") == block_id for block in message.get("blocks") or []):
                return True
        return False

    # -- checks -----------------------------------------------------------------------------

    def war_room_rules(self) -> list[str]:
        """The workflow rules whose slack actions use this connector."""
        try:
            rules = self.runtime.store.read().workflows.all()
        except Exception:  # noqa: BLE001  (a store without workflows: no rules to read)
            return []
        return [rule.name for rule in rules for step in rule.steps
                if step.action.startswith("slack.")
                and step.settings.get("connector") == self.name]

    def test(self, request: im.CheckRequest) -> list[im.Check]:
        checks: list[im.Check] = []
        with self.client.until(request.deadline):
            try:
                answer, response = self.web.response("auth.test")
            except im.ConnectorError as error:
                return [im.Check(name="token", label="API Connectivity", ok=False,
                                 critical=True, detail=str(error),
                                 fix="check api_key (a xoxb- bot token) and base_url")]
            checks.append(im.Check(
                name="token", label="API Connectivity", ok=True, critical=True,
                detail=f"Bot token works: {answer.get('user')} in {answer.get('team')}"
                       f" ({answer.get('team_id')})"))
            granted = {s.strip() for s in response.headers.get("x-oauth-scopes", "").split(",")
                       if s.strip()}
            checks.append(self._scopes_check(granted))
            checks.append(self._channel_check(granted))
        if self.takes_requests:
            checks.append(self._requests_check(request.public_url))
        return checks

    def _requests_check(self, public_url: str | None) -> im.Check:
        """Where the Slack app sends clicks and commands (nothing to call: Slack calls us)."""
        base = f"{public_url.rstrip('/')}/slack/{self.name}" if public_url else \
            f"/slack/{self.name}"
        detail = (f"Buttons and the slash command: Interactivity Request URL"
                  f" {base}/interactions, slash command Request URL {base}/commands")
        if not public_url:
            detail += " (on im serve's public address: IM_PUBLIC_URL)"
        return im.Check(name="requests", label="Slack requests", ok=True, detail=detail)

    def _scopes_check(self, granted: set[str]) -> im.Check:
        wanted = dict(MESSAGE_SCOPES)
        rules = self.war_room_rules()
        if rules:
            wanted.update(WAR_ROOM_SCOPES)
        if self.takes_requests:
            wanted.update(REQUEST_SCOPES)
        missing = [scope for scope in wanted if scope not in granted]
        if self.settings.custom.join_channel and "channels:join" not in granted:
            note = " (without channels:join the bot must be invited to the channel)"
        else:
            note = ""
        features = ["incident messages"]
        if self.takes_requests:
            features.append("requests from Slack (buttons, slash command)")
        if rules:
            features.append(f"war rooms (workflow {', '.join(rules)})")
        uses = (", ".join(features[:-1]) + " and " + features[-1] if len(features) > 1
                else features[0])
        if missing:
            return im.Check(
                name="scopes", label="Scopes", ok=False,
                detail=f"The token lacks {', '.join(missing)}, needed for {uses}",
                fix="add " + "; ".join(f"{s} (to {wanted[s]})" for s in missing) +
                    " under OAuth & Permissions → Bot Token Scopes, then reinstall the app")
        return im.Check(name="scopes", label="Scopes", ok=True,
                        detail=f"Scopes for {uses}: {', '.join(wanted)}{note}")

    def _channel_check(self, granted: set[str]) -> im.Check:
        given = self.settings.custom.channel
        try:
            channel = self.channel_info(given)
        except im.ConnectorError as error:
            return im.Check(name="channel", label="Channel", ok=False, detail=str(error),
                            fix="give custom.channel as the channel's ID (C0123ABCD) or"
                                " #name, and invite the bot to a private channel")
        label = f"#{channel.get('name')} ({channel.get('id')})"
        if channel.get("is_archived"):
            return im.Check(name="channel", label="Channel", ok=False,
                            detail=f"{label} is archived", fix="configure another channel")
        if channel.get("is_member"):
            return im.Check(name="channel", label="Channel", ok=True,
                            detail=f"{label}: the bot is a member")
        if (self.settings.custom.join_channel and not channel.get("is_private")
                and "channels:join" in granted):
            return im.Check(name="channel", label="Channel", ok=True,
                            detail=f"{label}: the bot is not a member yet and will join it"
                                   " with its first message")
        return im.Check(name="channel", label="Channel", ok=False,
                        detail=f"{label}: the bot is not a member and cannot join it",
                        fix=f"invite it (/invite @your-app in {label}) or grant channels:join")
