"""One running Slack sandbox: its workspace, settings, rate limits, faults and logs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

from im_slack.sandbox.config import SandboxConfig
from im_slack.sandbox.faults import Faults, FaultSwitch
from im_slack.sandbox.methods import METHODS, Context, needed_scopes
from im_slack.sandbox.outgoing import Outgoing
from im_slack.sandbox.ratelimit import RateLimits
from im_slack.sandbox.requestlog import RequestLog
from im_slack.sandbox.workspace import SlackError, Workspace


class Answer:
    """A Web API answer: HTTP status, JSON body and extra headers."""

    def __init__(self, body: dict[str, Any], status: int = 200,
                 headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.status = status
        self.headers = headers or {}


class Sandbox:
    def __init__(self, config: SandboxConfig, base_url: str = "http://127.0.0.1") -> None:
        if not config.token:
            raise ValueError("the sandbox needs a bot token")
        self.config = config
        self.base_url = base_url
        self._stopping = asyncio.Event()
        self.faults = FaultSwitch()
        self.requests = RequestLog(config.request_log_size)
        self.outgoing = Outgoing(base_url)
        self._fill()

    def _fill(self) -> None:
        self.settings = self.config
        self.workspace = Workspace(self.config.users)
        self.limits = RateLimits(self.settings)

    @property
    def team_domain(self) -> str:
        """The workspace's subdomain, as slash commands carry it (`team_domain`)."""
        return (urlsplit(self.settings.workspace_url).hostname or "sandbox").split(".")[0]

    def reset(self) -> None:
        """Back to a freshly started sandbox: workspace, settings, faults and logs."""
        self.requests.clear()
        self.outgoing.clear()
        self.set_faults(Faults())
        self._fill()

    def apply_settings(self, settings: SandboxConfig) -> None:
        self.settings = settings
        self.limits = RateLimits(settings)  # a new mode or pace starts with empty windows

    def set_faults(self, faults: Faults) -> None:
        self.faults.set(faults)

    async def hold(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def stopping(self) -> None:
        self._stopping.set()

    async def call(self, name: str, token: str | None, params: dict[str, Any]) -> Answer:
        """One Web API call, after the body was read: authentication, scopes, rate limits,
        then the method itself."""
        method = METHODS.get(name)
        if method is None:
            return Answer({"ok": False, "error": "unknown_method", "req_method": name}, 404)
        if not token:
            return Answer({"ok": False, "error": "not_authed"})
        if token != self.settings.token:
            return Answer({"ok": False, "error": "invalid_auth"})
        scopes = self.settings.scopes
        headers = {"x-oauth-scopes": ",".join(scopes),
                   "x-accepted-oauth-scopes": ",".join(method.scopes)}
        needed = needed_scopes(method, self.workspace, params)
        if needed and not set(needed) & set(scopes):
            return Answer({"ok": False, "error": "missing_scope", "needed": ",".join(needed),
                           "provided": ",".join(scopes)}, headers=headers)
        key = (name, token)
        if method.tier == 0:
            channel = params.get("channel")
            with contextlib.suppress(SlackError):
                channel = self.workspace.channel(channel).id
            key = (name, token, str(channel))
        retry_after = await self.limits.retry_after(method.tier, *key)
        if retry_after is not None:
            return Answer({"ok": False, "error": "ratelimited"}, 429,
                          {**headers, "Retry-After": str(retry_after)})
        context = Context(self.workspace, self.settings.team, self.settings.workspace_url,
                          scopes)
        try:
            body = method.run(context, params)
        except SlackError as refusal:
            return Answer(refusal.body(), headers=headers)
        return Answer({"ok": True, **body}, headers=headers)
