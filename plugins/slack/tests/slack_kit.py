"""Shared set-up for the Slack plugin's tests: an im runtime with a `prod-slack` connector
pointed at the running sandbox, and readers of what the sandbox holds."""

import json
from typing import Any

import im
import msgspec
import pytest

import im_slack
from im.testing import make_runtime, run_cli


def settings(slack, **custom):
    return {"api_key": slack.token, "base_url": slack.api_url,
            "custom": {"channel": "#incidents", **custom}}


def runtime_with_slack(home, slack, *, plugins=(), clock=None, **custom):
    runtime = make_runtime(home, plugins=[im_slack, *plugins], user="alice", clock=clock)
    result = run_cli(runtime, ["connector", "add", "slack", "prod-slack", "--config",
                               json.dumps(settings(slack, **custom))])
    assert result.exit_code == 0, result.output
    return runtime


def im_(runtime, *args):
    return run_cli(runtime, list(args))


def incident_messages(slack, channel="incidents") -> list[dict[str, Any]]:
    """The channel's top-level messages (incident messages), oldest first."""
    found = slack.channel(channel)
    messages = found["messages"]
    if isinstance(messages, dict):
        messages = list(messages.values())
    return [m for m in messages if not m.get("thread_ts") or m.get("thread_ts") == m["ts"]]


def replies(slack, ts, channel="incidents") -> list[dict[str, Any]]:
    found = slack.channel(channel)
    messages = found["messages"]
    if isinstance(messages, dict):
        messages = list(messages.values())
    return [m for m in messages if m.get("thread_ts") == ts and m["ts"] != ts]


def block_text(message, block_id) -> str:
    for block in message.get("blocks") or []:
        if block.get("block_id") == block_id:
            if "fields" in block:
                return " ".join(f["text"] for f in block["fields"])
            return block["text"]["text"]
    return ""


class OncallSettings(im.ConnectorSettings, frozen=True, kw_only=True):
    pass


class OncallConnector(im.Connector):
    """A connector with an on-call lookup only: who is on call for each service."""

    type = "oncall-test"
    Settings = OncallSettings
    ONCALL: dict[str, str] = {}

    def push(self, request):
        return im.PushResult()  # an on-call lookup only: it has nothing to do with changes

    def oncall(self, request):
        return im.OncallResult(service=request.service,
                               current=self.ONCALL.get(request.service))


class OncallPlugin:
    @im.hookimpl
    def register_connectors(self, register):
        register(OncallConnector)


@pytest.fixture
def oncall(monkeypatch):
    people: dict[str, str] = {}
    monkeypatch.setattr(OncallConnector, "ONCALL", people)
    return people


def add_oncall(runtime, name="pd"):
    result = run_cli(runtime, ["connector", "add", "oncall-test", name, "--config", "{}"])
    assert result.exit_code == 0, result.output


def decode(data: bytes) -> Any:
    return msgspec.json.decode(data)
