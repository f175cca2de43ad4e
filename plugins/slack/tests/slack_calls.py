"""Short Web API calls the sandbox tests repeat."""

from typing import Any

import httpx

# Methods Slack describes as GET with query arguments (the connector's own list); the others
# are POSTs with a body.
from im_slack.api import READS


def call(client: httpx.Client, method: str, **arguments: Any) -> dict[str, Any]:
    """A GET with query arguments or a JSON-bodied POST, as Slack describes the method;
    returns the answer, whatever its `ok`."""
    if method in READS:
        response = client.get(f"/{method}", params=arguments)
    else:
        response = client.post(f"/{method}", json=arguments)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def ok(client: httpx.Client, method: str, **arguments: Any) -> dict[str, Any]:
    answer = call(client, method, **arguments)
    assert answer["ok"] is True, answer
    return answer


def error(client: httpx.Client, method: str, **arguments: Any) -> str:
    answer = call(client, method, **arguments)
    assert answer["ok"] is False, answer
    return str(answer["error"])


def new_channel(client: httpx.Client, name: str = "inc-42-database") -> dict[str, Any]:
    channel: dict[str, Any] = ok(client, "conversations.create", name=name)["channel"]
    return channel
