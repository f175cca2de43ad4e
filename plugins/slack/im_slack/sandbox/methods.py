"""The Web API methods the sandbox answers: each one's scopes, rate-limit tier and rules.

A method reads its arguments from one dict (form fields, query parameters or a JSON body, as
Slack accepts them all) and returns the body of its `{"ok": true, ...}` answer, or raises
SlackError for an `{"ok": false, "error": ...}` one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from im_slack.sandbox.workspace import (
    BOT_ID,
    BOT_USER_ID,
    MAX_TEXT_LENGTH,
    MAX_TOPIC_LENGTH,
    TEAM_ID,
    Channel,
    SlackError,
    Workspace,
)

Params = dict[str, Any]


@dataclass(frozen=True)
class Context:
    workspace: Workspace
    team: str
    workspace_url: str
    scopes: tuple[str, ...] = ()  # the token's


@dataclass(frozen=True)
class Method:
    run: Callable[[Context, Params], dict[str, Any]]
    # any one of these scopes lets the token call it; private channels need the second set
    scopes: tuple[str, ...]
    private_scopes: tuple[str, ...] = ()
    # Slack's rate-limit tier (1 to 4), or 0 for chat.postMessage's own per-channel limit
    tier: int = 3


# reading arguments: form and query values are strings, a JSON body's are typed


def _text(params: Params, name: str) -> str:
    value = params.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _flag(params: Params, name: str) -> bool:
    value = params.get(name)
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1")


def _structured(params: Params, name: str) -> list[Any] | None:
    """`blocks` and `attachments`: a JSON array, or a string holding one (form bodies)."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SlackError(f"invalid_{name}") from None
    if not isinstance(value, list):
        raise SlackError(f"invalid_{name}")
    return value


def _timestamp(params: Params, name: str) -> float | None:
    """`oldest` and `latest` of conversations.history: a message ts, or Unix seconds."""
    value = _text(params, name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise SlackError(f"invalid_ts_{name}") from None


def _member_channel(ctx: Context, params: Params) -> Channel:
    """The channel argument, which the bot must be in and which must not be archived."""
    channel = ctx.workspace.channel(params.get("channel"))
    if channel.is_archived:
        raise SlackError("is_archived")
    if BOT_USER_ID not in channel.members:
        raise SlackError("not_in_channel")
    return channel


def _message_content(params: Params) -> tuple[str, list[Any] | None, list[Any] | None]:
    text = _text(params, "text")
    blocks = _structured(params, "blocks")
    attachments = _structured(params, "attachments")
    if not text and not blocks and not attachments:
        raise SlackError("no_text")
    if len(text) > MAX_TEXT_LENGTH:
        raise SlackError("msg_too_long")
    return text, blocks, attachments


# the methods


def auth_test(ctx: Context, params: Params) -> dict[str, Any]:
    return {"url": ctx.workspace_url, "team": ctx.team, "user": "im", "team_id": TEAM_ID,
            "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}


def chat_post_message(ctx: Context, params: Params) -> dict[str, Any]:
    channel = _member_channel(ctx, params)
    text, blocks, attachments = _message_content(params)
    message = ctx.workspace.post(channel, text, blocks=blocks, attachments=attachments,
                                 thread_ts=_text(params, "thread_ts") or None)
    return {"channel": channel.id, "ts": message.ts, "message": message.render()}


def chat_update(ctx: Context, params: Params) -> dict[str, Any]:
    channel = ctx.workspace.channel(params.get("channel"))
    message = channel.messages.get(_text(params, "ts"))
    if message is None:
        raise SlackError("message_not_found")
    if message.user != BOT_USER_ID:
        raise SlackError("cant_update_message")
    text, blocks, attachments = _message_content(params)
    message.text = text
    if blocks is not None:
        message.blocks = blocks
    if attachments is not None:
        message.attachments = attachments
    message.edited = ctx.workspace.new_ts()
    return {"channel": channel.id, "ts": message.ts, "text": message.text,
            "message": message.render()}


def chat_post_ephemeral(ctx: Context, params: Params) -> dict[str, Any]:
    channel = ctx.workspace.channel(params.get("channel"))
    if channel.is_archived:
        raise SlackError("is_archived")
    user = _text(params, "user")
    if user not in channel.members:
        raise SlackError("user_not_in_channel")
    text, blocks, _attachments = _message_content(params)
    ts = ctx.workspace.new_ts()
    ctx.workspace.ephemerals.append({"channel": channel.id, "user": user, "text": text,
                                     "blocks": blocks, "message_ts": ts,
                                     "thread_ts": _text(params, "thread_ts") or None})
    return {"message_ts": ts}


def conversations_create(ctx: Context, params: Params) -> dict[str, Any]:
    channel = ctx.workspace.create_channel(_text(params, "name"), _flag(params, "is_private"))
    return {"channel": channel.render()}


def _set_text(attribute: str, ctx: Context, params: Params) -> dict[str, Any]:
    channel = _member_channel(ctx, params)
    value = _text(params, attribute)
    if len(value) > MAX_TOPIC_LENGTH:
        raise SlackError("too_long")
    setattr(channel, attribute, {"value": value, "creator": BOT_USER_ID,
                                 "last_set": int(float(ctx.workspace.new_ts()))})
    return {"channel": channel.render()}


def conversations_set_topic(ctx: Context, params: Params) -> dict[str, Any]:
    return _set_text("topic", ctx, params)


def conversations_set_purpose(ctx: Context, params: Params) -> dict[str, Any]:
    return _set_text("purpose", ctx, params)


def conversations_invite(ctx: Context, params: Params) -> dict[str, Any]:
    channel = _member_channel(ctx, params)
    wanted = [u.strip() for u in _text(params, "users").split(",") if u.strip()]
    if not wanted:
        raise SlackError("no_user")
    for user_id in wanted:
        if user_id == BOT_USER_ID:
            raise SlackError("cant_invite_self")
        if user_id not in ctx.workspace.users:
            raise SlackError("user_not_found")
        if user_id in channel.members:
            raise SlackError("already_in_channel")
    channel.members.extend(dict.fromkeys(wanted))
    return {"channel": channel.render()}


def conversations_join(ctx: Context, params: Params) -> dict[str, Any]:
    channel = ctx.workspace.channel(params.get("channel"))
    if channel.is_private:
        raise SlackError("method_not_supported_for_channel_type")
    if channel.is_archived:
        raise SlackError("is_archived")
    if BOT_USER_ID in channel.members:
        return {"channel": channel.render(), "warning": "already_in_channel",
                "response_metadata": {"warnings": ["already_in_channel"]}}
    channel.members.append(BOT_USER_ID)
    return {"channel": channel.render()}


def conversations_archive(ctx: Context, params: Params) -> dict[str, Any]:
    channel = ctx.workspace.channel(params.get("channel"))
    if channel.is_archived:
        raise SlackError("already_archived")
    if channel.is_general:
        raise SlackError("cant_archive_general")
    if BOT_USER_ID not in channel.members:
        raise SlackError("not_in_channel")
    channel.is_archived = True
    return {}


def conversations_info(ctx: Context, params: Params) -> dict[str, Any]:
    channel = ctx.workspace.channel(params.get("channel"))
    return {"channel": channel.render(num_members=_flag(params, "include_num_members"))}


def conversations_history(ctx: Context, params: Params) -> dict[str, Any]:
    channel = ctx.workspace.channel(params.get("channel"))
    if BOT_USER_ID not in channel.members:
        raise SlackError("not_in_channel")
    try:
        limit = min(max(int(params.get("limit") or 100), 1), 999)
    except ValueError:
        limit = 100
    try:
        start = int(_text(params, "cursor") or 0)
    except ValueError:
        raise SlackError("invalid_cursor") from None
    # the channel's own messages (thread replies stay in their thread), newest first
    found = [m for m in reversed(channel.messages.values()) if not m.thread_ts]
    oldest = _timestamp(params, "oldest") or 0.0
    latest = _timestamp(params, "latest") or float("inf")
    found = [m for m in found if oldest < float(m.ts) < latest]
    page = found[start:start + limit]
    more = start + limit < len(found)
    return {"messages": [m.render() for m in page], "has_more": more,
            "pin_count": len(channel.pins), "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""}}


def conversations_replies(ctx: Context, params: Params) -> dict[str, Any]:
    channel = ctx.workspace.channel(params.get("channel"))
    if BOT_USER_ID not in channel.members and not channel.is_private:
        raise SlackError("not_in_channel")
    parent = channel.messages.get(_text(params, "ts"))
    if parent is None:
        raise SlackError("thread_not_found")
    if parent.thread_ts:  # the ts of a reply gives its thread, as Slack does
        parent = channel.messages[parent.thread_ts]
    try:
        limit = min(max(int(params.get("limit") or 100), 1), 999)
    except ValueError:
        limit = 100
    try:
        start = int(_text(params, "cursor") or 0)
    except ValueError:
        raise SlackError("invalid_cursor") from None
    # the parent first, then its replies oldest first
    found = [parent, *(channel.messages[ts] for ts in parent.replies)]
    page = found[start:start + limit]
    more = start + limit < len(found)
    return {"messages": [m.render() for m in page], "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""}}


def conversations_list(ctx: Context, params: Params) -> dict[str, Any]:
    types = {t.strip() for t in (_text(params, "types") or "public_channel").split(",")}
    exclude_archived = _flag(params, "exclude_archived")
    try:
        limit = min(max(int(params.get("limit") or 100), 1), 1000)
    except ValueError:
        limit = 100
    try:
        start = int(_text(params, "cursor") or 0)
    except ValueError:
        raise SlackError("invalid_cursor") from None
    # private channels are listed only to their members, as Slack lists them to a bot
    found = [c for c in ctx.workspace.channels.values()
             if ("private_channel" if c.is_private else "public_channel") in types
             and not (c.is_private and BOT_USER_ID not in c.members)
             and not (exclude_archived and c.is_archived)]
    page = found[start:start + limit]
    more = start + limit < len(found)
    return {"channels": [c.render() for c in page],
            "response_metadata": {"next_cursor": str(start + limit) if more else ""}}


def pins_add(ctx: Context, params: Params) -> dict[str, Any]:
    channel = ctx.workspace.channel(params.get("channel"))
    ts = _text(params, "timestamp")
    if not ts:
        raise SlackError("no_item_specified")
    if ts not in channel.messages:
        raise SlackError("message_not_found")
    if ts in channel.pins:
        raise SlackError("already_pinned")
    channel.pins.append(ts)
    return {}


def users_lookup_by_email(ctx: Context, params: Params) -> dict[str, Any]:
    user = ctx.workspace.user_by_email(_text(params, "email"))
    if user is None:
        raise SlackError("users_not_found")
    return {"user": user.render()}


def users_info(ctx: Context, params: Params) -> dict[str, Any]:
    user = ctx.workspace.users.get(_text(params, "user"))
    if user is None:
        raise SlackError("user_not_found")
    rendered = user.render()
    if "users:read.email" not in ctx.scopes:  # Slack leaves the address out without it
        rendered["profile"].pop("email", None)
    return {"user": rendered}


MAX_VIEW_TITLE = 24
MAX_VIEW_BLOCKS = 100
MAX_PRIVATE_METADATA = 3000


def _invalid(message: str) -> SlackError:
    return SlackError("invalid_arguments", response_metadata={"messages": [message]})


def views_open(ctx: Context, params: Params) -> dict[str, Any]:
    """A modal for the user who clicked or typed the command: its trigger_id opens one view,
    within three seconds. The view is checked as Slack checks the fields im uses."""
    trigger_id = _text(params, "trigger_id")
    view = params.get("view")
    if isinstance(view, str):
        try:
            view = json.loads(view)
        except ValueError:
            raise _invalid("failed to match all allowed schemas [json-pointer:/view]") from None
    if not trigger_id:
        raise _invalid("[ERROR] missing required field: trigger_id")
    if not isinstance(view, dict):
        raise _invalid("[ERROR] missing required field: view")
    if view.get("type") != "modal":
        raise _invalid("[ERROR] must be a valid enum value [json-pointer:/view/type]")
    title = view.get("title")
    if not isinstance(title, dict) or title.get("type") != "plain_text" or not title.get(
            "text") or len(str(title["text"])) > MAX_VIEW_TITLE:
        raise _invalid(f"[ERROR] must be plain_text of at most {MAX_VIEW_TITLE} characters"
                       " [json-pointer:/view/title]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not blocks or len(blocks) > MAX_VIEW_BLOCKS:
        raise _invalid(f"[ERROR] must have 1 to {MAX_VIEW_BLOCKS} blocks"
                       " [json-pointer:/view/blocks]")
    if any(b.get("type") == "input" for b in blocks if isinstance(b, dict)) and not view.get(
            "submit"):
        raise _invalid("[ERROR] a view with inputs needs a submit button"
                       " [json-pointer:/view/submit]")
    if len(str(view.get("private_metadata", ""))) > MAX_PRIVATE_METADATA:
        raise _invalid(f"[ERROR] must be at most {MAX_PRIVATE_METADATA} characters"
                       " [json-pointer:/view/private_metadata]")
    opened = ctx.workspace.open_view(trigger_id, view)
    return {"view": opened.render()}


_MANAGE = ("channels:manage",)
_PRIVATE_MANAGE = ("groups:write",)

METHODS: dict[str, Method] = {
    "auth.test": Method(auth_test, scopes=(), tier=4),
    "chat.postMessage": Method(chat_post_message, scopes=("chat:write",), tier=0),
    "chat.update": Method(chat_update, scopes=("chat:write",), tier=3),
    "chat.postEphemeral": Method(chat_post_ephemeral, scopes=("chat:write",), tier=4),
    "conversations.create": Method(conversations_create, scopes=_MANAGE,
                                   private_scopes=_PRIVATE_MANAGE, tier=2),
    "conversations.setTopic": Method(conversations_set_topic, scopes=_MANAGE,
                                     private_scopes=_PRIVATE_MANAGE, tier=2),
    "conversations.setPurpose": Method(conversations_set_purpose, scopes=_MANAGE,
                                       private_scopes=_PRIVATE_MANAGE, tier=2),
    "conversations.invite": Method(conversations_invite, scopes=_MANAGE,
                                   private_scopes=_PRIVATE_MANAGE, tier=3),
    "conversations.join": Method(conversations_join, scopes=("channels:join",), tier=3),
    "conversations.archive": Method(conversations_archive, scopes=_MANAGE,
                                    private_scopes=_PRIVATE_MANAGE, tier=2),
    "conversations.info": Method(conversations_info, scopes=("channels:read",),
                                 private_scopes=("groups:read",), tier=3),
    "conversations.history": Method(conversations_history, scopes=("channels:history",),
                                    private_scopes=("groups:history",), tier=3),
    "conversations.replies": Method(conversations_replies, scopes=("channels:history",),
                                    private_scopes=("groups:history",), tier=3),
    "conversations.list": Method(conversations_list, scopes=("channels:read", "groups:read"),
                                 tier=2),
    "pins.add": Method(pins_add, scopes=("pins:write",), tier=2),
    "users.lookupByEmail": Method(users_lookup_by_email, scopes=("users:read.email",), tier=3),
    "users.info": Method(users_info, scopes=("users:read",), tier=4),
    # views.open needs no scope: a trigger_id is the app's own (Slack's "none")
    "views.open": Method(views_open, scopes=(), tier=4),
}


def needed_scopes(method: Method, workspace: Workspace, params: Params) -> tuple[str, ...]:
    """The scopes the call needs: a method on a private channel needs its `groups:` scope, and
    conversations.create of a private one too."""
    if not method.private_scopes:
        return method.scopes
    if method.run is conversations_create:
        return method.private_scopes if _flag(params, "is_private") else method.scopes
    try:
        channel = workspace.channel(params.get("channel"))
    except SlackError:
        return method.scopes  # the method answers channel_not_found itself
    return method.private_scopes if channel.is_private else method.scopes
