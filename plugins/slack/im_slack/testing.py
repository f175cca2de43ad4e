"""Test helpers for anyone testing against the Slack sandbox: a running sandbox on a free
loopback port, and pytest fixtures for it.

    from im_slack.testing import run_sandbox

    with run_sandbox() as slack:
        with slack.client() as web:
            web.post("/chat.postMessage", json={"channel": "incidents", "text": "hi"})
        assert slack.requests("chat.postMessage")

Fixtures (add `pytest_plugins = ["im_slack.testing"]` to your root conftest.py):
`slack_sandbox` (a sandbox reset to its seed for each test, one server per session).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

TEST_SIGNING_SECRET = "sandbox-signing-secret"


class RunningSandbox:
    """A Slack sandbox being served at `url`; its /_sandbox/ controls as methods."""

    def __init__(self, url: str, token: str, signing_secret: str) -> None:
        self.url = url
        self.api_url = f"{url}/api"
        self.token = token
        self.signing_secret = signing_secret
        self._control = httpx.Client(base_url=f"{url}/_sandbox", trust_env=False, timeout=30)

    def close(self) -> None:
        self._control.close()

    # the Web API

    def client(self, token: str | None = None, **options: Any) -> httpx.Client:
        """An httpx client for the Web API (base URL `.../api`) with the bot token."""
        options.setdefault("timeout", 10)
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {token or self.token}"},
            trust_env=False,
            **options,
        )

    # controls

    def _call(self, verb: str, route: str, body: Any = None,
              params: dict[str, Any] | None = None) -> Any:
        response = self._control.request(
            verb, route,
            content=msgspec.json.encode(body) if body is not None else None,
            params={k: v for k, v in (params or {}).items() if v is not None},
        )
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._call("POST", "/reset")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change run-time settings: scopes, rate_limits ("slack", "strict", "off"),
        post_message_burst, strict_limit, retry_after_seconds, app_timeout_seconds."""
        result: dict[str, Any] = self._call("PATCH", "/config", settings)
        return result

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the injected faults; fields not given go back to "no fault"."""
        result: dict[str, Any] = self._call("PUT", "/faults", faults)
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self, method: str | None = None) -> list[dict[str, Any]]:
        """Web API calls answered so far, with their arguments and answers."""
        found: list[dict[str, Any]] = self._call("GET", "/requests",
                                                 params={"method": method})["requests"]
        return found

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def users(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/users")["users"]
        return found

    def user_id(self, email: str) -> str:
        return next(u["id"] for u in self.users() if u["profile"].get("email") == email)

    def add_user(self, name: str, real_name: str, email: str) -> dict[str, Any]:
        user: dict[str, Any] = self._call(
            "POST", "/users", {"name": name, "real_name": real_name, "email": email})["user"]
        return user

    def channels(self) -> list[dict[str, Any]]:
        """Every channel with its members, pins and messages (thread replies included)."""
        found: list[dict[str, Any]] = self._call("GET", "/channels")["channels"]
        return found

    def channel(self, id_or_name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/channels/{id_or_name.lstrip('#')}")
        return found

    def ephemerals(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/ephemerals")["ephemerals"]
        return found

    def slash_command(self, url: str, text: str = "", command: str = "/incident",
                      **fields: Any) -> dict[str, Any]:
        """Send a signed slash command to the app at `url`, as Slack does; returns the delivery
        (what was sent, the app's status and answer). `fields`: user_id, channel_id,
        timestamp (Unix seconds to sign with instead of now)."""
        result: dict[str, Any] = self._call(
            "POST", "/slash_commands", {"url": url, "command": command, "text": text, **fields})
        return result

    def click(self, url: str, action_id: str, value: str = "", **fields: Any) -> dict[str, Any]:
        """Send a signed `block_actions` payload (a button clicked) to the app at `url`.
        `fields`: block_id, user_id, channel_id, message_ts, timestamp."""
        result: dict[str, Any] = self._call(
            "POST", "/interactions", {"url": url, "action_id": action_id, "value": value,
                                      **fields})
        return result

    def submit_view(self, url: str, view_id: str, values: dict[str, dict[str, str]],
                    **fields: Any) -> dict[str, Any]:
        """Send a signed `view_submission` (a modal submitted) to the app at `url`, with
        `values` typed into its inputs: {block_id: {action_id: text}}. `fields`: user_id,
        timestamp."""
        result: dict[str, Any] = self._call(
            "POST", "/view_submissions", {"url": url, "view_id": view_id, "values": values,
                                          **fields})
        return result

    def views(self) -> list[dict[str, Any]]:
        """The modals opened with views.open, each with `closed` and its state's values."""
        found: list[dict[str, Any]] = self._call("GET", "/views")["views"]
        return found

    def deliveries(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/deliveries")["deliveries"]
        return found

    def responses(self) -> list[dict[str, Any]]:
        """What the app posted to response_urls."""
        found: list[dict[str, Any]] = self._call("GET", "/responses")["responses"]
        return found


@contextlib.contextmanager
def run_sandbox(*, token: str | None = None, signing_secret: str = TEST_SIGNING_SECRET,
                host: str = "127.0.0.1", port: int = 0,
                **config: Any) -> Iterator[RunningSandbox]:
    """Serve a Slack sandbox on a background thread (a free port by default) until the block
    ends. `config` takes any other SandboxConfig field (users, scopes, rate_limits, ...)."""
    from im_slack.sandbox import SandboxConfig, SandboxServer

    bot_token = token or f"xoxb-sandbox-{secrets.token_hex(8)}"
    sandbox_config = SandboxConfig(token=bot_token, signing_secret=signing_secret, **config)
    server = SandboxServer(sandbox_config, host=host, port=port)
    running = RunningSandbox(server.start(), bot_token, signing_secret)
    try:
        yield running
    finally:
        running.close()
        server.stop()


@pytest.fixture(scope="session")
def slack_sandbox_server() -> Iterator[RunningSandbox]:
    """One Slack sandbox for the whole session; use `slack_sandbox`, which resets it per test."""
    with run_sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def slack_sandbox(slack_sandbox_server: RunningSandbox) -> RunningSandbox:
    """A running Slack sandbox, freshly reset to its seed."""
    slack_sandbox_server.reset()
    return slack_sandbox_server
