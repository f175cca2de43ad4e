"""The workspace a sandbox holds in memory: users, channels with their members, topic, purpose
and archived flag, messages with their threads, pins, and the ephemeral messages shown."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from im_slack.sandbox.config import SeedUser

TEAM_ID = "T0SANDBOX1"
APP_ID = "A0SANDBOX1"
BOT_ID = "B0SANDBOX1"
BOT_USER_ID = "U0SANDBOT1"
BOT_NAME = "im"
MAX_NAME_LENGTH = 80
MAX_TOPIC_LENGTH = 250
MAX_TEXT_LENGTH = 40_000
# a trigger_id can open one view, within three seconds of the click or command that made it
TRIGGER_SECONDS = 3.0
_NAME_CHARACTERS = re.compile(r"^[a-z0-9_\-\u00c0-\uffff]+$")


class SlackError(Exception):
    """A Web API refusal: HTTP 200, `{"ok": false, "error": ...}` and any extra fields."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"ok": False, "error": self.error, **self.extra}


@dataclass
class User:
    id: str
    name: str
    real_name: str
    email: str | None
    is_bot: bool = False

    def render(self) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.name,
            "display_name_normalized": self.name,
            "avatar_hash": "",
            "title": "",
            "phone": "",
            "skype": "",
            "status_text": "",
            "status_emoji": "",
            "fields": None,
            "team": TEAM_ID,
        }
        if self.email:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "is_admin": False,
            "is_owner": False,
            "tz": "Etc/UTC",
            "tz_label": "Coordinated Universal Time",
            "tz_offset": 0,
            "updated": 1_600_000_000,
            "profile": profile,
        }


@dataclass
class Message:
    ts: str
    user: str
    text: str
    blocks: list[Any] | None = None
    attachments: list[Any] | None = None
    thread_ts: str | None = None
    parent_user_id: str | None = None  # a reply's: who posted the thread's first message
    bot: bool = False
    edited: str | None = None
    replies: list[str] = field(default_factory=list)  # the ts of each reply, oldest first
    # who follows the thread: its author and whoever replied, as Slack subscribes them
    followers: set[str] = field(default_factory=set)

    def render(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text,
                                "ts": self.ts, "team": TEAM_ID}
        if self.bot:
            body.update(bot_id=BOT_ID, app_id=APP_ID)
        if self.blocks is not None:
            body["blocks"] = self.blocks
        if self.attachments is not None:
            body["attachments"] = self.attachments
        if self.thread_ts:
            body.update(thread_ts=self.thread_ts, parent_user_id=self.parent_user_id)
        if self.replies:
            # `subscribed` is the token's user's (the bot's): whether it follows the thread
            body.update(thread_ts=self.ts, reply_count=len(self.replies),
                        latest_reply=self.replies[-1],
                        subscribed=BOT_USER_ID in self.followers or self.user == BOT_USER_ID)
        if self.edited:
            body["edited"] = {"user": self.user, "ts": self.edited}
        return body


@dataclass
class Trigger:
    """A trigger_id Slack sent the app with an interaction: who it was for, and when."""

    user_id: str
    issued: float
    used: bool = False


@dataclass
class View:
    """A modal opened with views.open, as Slack keeps it for the user it was opened for."""

    id: str
    user_id: str
    body: dict[str, Any]  # what the app gave: type, title, blocks, submit, private_metadata...
    hash: str
    closed: bool = False
    # what the user typed, as Slack reports it: {block_id: {action_id: {"type", "value"}}}
    values: dict[str, Any] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        body = self.body
        return {
            "id": self.id, "team_id": TEAM_ID, "type": body.get("type", "modal"),
            "title": body.get("title"), "submit": body.get("submit"),
            "close": body.get("close"), "blocks": body.get("blocks") or [],
            "private_metadata": body.get("private_metadata", ""),
            "callback_id": body.get("callback_id", ""),
            "external_id": body.get("external_id", ""),
            "state": {"values": self.values}, "hash": self.hash,
            "clear_on_close": bool(body.get("clear_on_close", False)),
            "notify_on_close": bool(body.get("notify_on_close", False)),
            "previous_view_id": None, "root_view_id": self.id, "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID, "bot_id": BOT_ID,
        }


@dataclass
class Channel:
    id: str
    name: str
    creator: str
    created: int
    is_private: bool = False
    is_general: bool = False
    is_archived: bool = False
    members: list[str] = field(default_factory=list)
    topic: dict[str, Any] = field(default_factory=lambda: {"value": "", "creator": "",
                                                           "last_set": 0})
    purpose: dict[str, Any] = field(default_factory=lambda: {"value": "", "creator": "",
                                                             "last_set": 0})
    messages: dict[str, Message] = field(default_factory=dict)  # by ts, in posting order
    pins: list[str] = field(default_factory=list)

    def render(self, *, num_members: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "created": self.created,
            "creator": self.creator,
            "is_channel": not self.is_private,
            "is_group": self.is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_general": self.is_general,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "is_member": BOT_USER_ID in self.members,
            "topic": dict(self.topic),
            "purpose": dict(self.purpose),
            "previous_names": [],
            "unlinked": 0,
        }
        if num_members:
            body["num_members"] = len(self.members)
        return body


def name_problem(name: str) -> str | None:
    """Slack's channel-name rules: lower case, no spaces or periods, at most 80 characters."""
    if not name:
        return "invalid_name_required"
    if len(name) > MAX_NAME_LENGTH:
        return "invalid_name_maxlength"
    if not _NAME_CHARACTERS.match(name):
        return "invalid_name_specials"
    if not re.search(r"[^\-_]", name):
        return "invalid_name_punctuation"
    return None


class Workspace:
    def __init__(self, users: tuple[SeedUser, ...]) -> None:
        self._ids = itertools.count(1)
        self._last_ts = 0.0
        bot = User(id=BOT_USER_ID, name=BOT_NAME, real_name="im", email=None, is_bot=True)
        self.users: dict[str, User] = {bot.id: bot}
        self.channels: dict[str, Channel] = {}
        # every ephemeral message shown, in order (Slack keeps none; tests read them here)
        self.ephemerals: list[dict[str, Any]] = []
        # the trigger_ids sent to the app, and the modals opened with them (views.open)
        self.triggers: dict[str, Trigger] = {}
        self.views: dict[str, View] = {}
        for seed_user in users:
            self.add_user(seed_user)
        people = [u.id for u in self.users.values() if not u.is_bot]
        first = people[0] if people else BOT_USER_ID
        self._add_channel("general", first, members=people, is_general=True)
        self._add_channel("incidents", first, members=[*people, BOT_USER_ID])

    # ids and times

    def _id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._ids):08d}"

    def new_ts(self) -> str:
        """A message timestamp: Unix seconds and six digits, unique and increasing."""
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    # triggers and views

    def issue_trigger(self, user_id: str) -> str:
        trigger_id = f"{next(self._ids)}.{int(time.time())}.{secrets.token_hex(16)}"
        self.triggers[trigger_id] = Trigger(user_id=user_id, issued=time.monotonic())
        return trigger_id

    def open_view(self, trigger_id: str, body: dict[str, Any]) -> View:
        """A modal for the user of `trigger_id`: once per trigger, within three seconds."""
        trigger = self.triggers.get(trigger_id)
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if trigger.used:
            raise SlackError("exchanged_trigger_id")
        if time.monotonic() - trigger.issued > TRIGGER_SECONDS:
            raise SlackError("expired_trigger_id")
        trigger.used = True
        view = View(id=self._id("V"), user_id=trigger.user_id, body=body,
                    hash=f"{int(time.time())}.{secrets.token_hex(4)}")
        self.views[view.id] = view
        return view

    # users

    def add_user(self, seed_user: SeedUser) -> User:
        if self.user_by_email(seed_user.email) is not None:
            raise ValueError(f"a user with e-mail {seed_user.email} exists")
        user = User(id=self._id("U"), name=seed_user.name, real_name=seed_user.real_name,
                    email=seed_user.email)
        self.users[user.id] = user
        return user

    def user_by_email(self, email: str) -> User | None:
        wanted = email.strip().lower()
        return next((u for u in self.users.values() if u.email and u.email.lower() == wanted),
                    None)

    # channels

    def _add_channel(self, name: str, creator: str, *, members: list[str],
                     is_private: bool = False, is_general: bool = False) -> Channel:
        channel = Channel(id=self._id("G" if is_private else "C"), name=name, creator=creator,
                          created=int(time.time()), is_private=is_private,
                          is_general=is_general, members=list(members))
        self.channels[channel.id] = channel
        return channel

    def channel(self, given: Any) -> Channel:
        """By id, or by name (`#name` or `name`) as chat.postMessage also accepts."""
        if not isinstance(given, str) or not given:
            raise SlackError("channel_not_found")
        if given in self.channels:
            return self.channels[given]
        name = given.removeprefix("#")
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        raise SlackError("channel_not_found")

    def create_channel(self, name: str, is_private: bool) -> Channel:
        problem = name_problem(name)
        if problem:
            raise SlackError(problem)
        if any(c.name == name for c in self.channels.values()):
            raise SlackError("name_taken")
        return self._add_channel(name, BOT_USER_ID, members=[BOT_USER_ID], is_private=is_private)

    # messages

    def post(self, channel: Channel, text: str, *, blocks: list[Any] | None = None,
             attachments: list[Any] | None = None, thread_ts: str | None = None,
             user: str = BOT_USER_ID, bot: bool = True) -> Message:
        parent = None
        if thread_ts:
            parent = channel.messages.get(thread_ts)
            if parent is None:
                raise SlackError("thread_not_found")
            if parent.thread_ts:  # a reply to a reply goes to the same thread
                parent = channel.messages[parent.thread_ts]
        message = Message(ts=self.new_ts(), user=user, text=text, blocks=blocks,
                          attachments=attachments, thread_ts=parent.ts if parent else None,
                          parent_user_id=parent.user if parent else None, bot=bot)
        channel.messages[message.ts] = message
        if parent is not None:
            parent.replies.append(message.ts)
            parent.followers.add(user)
        return message
