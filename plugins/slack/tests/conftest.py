import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from im_slack.testing import (  # noqa: F401  (fixtures)
    RunningSandbox,
    slack_sandbox,
    slack_sandbox_server,
)

from slack_openapi_check import OpenApiCheck

REPO = Path(__file__).resolve().parents[3]
SHARED_SLACK = REPO / ".." / "shared" / "slack"
SHARED_SKIP = "reference data not found"  # the root conftest.py counts skips by it
SPEC_FILE = "web-api.openapiv2.json"


def _shared_present() -> bool:
    return (SHARED_SLACK / SPEC_FILE).is_file()


@pytest.fixture(scope="session")
def shared_slack() -> Path:
    """Slack's reference data beside the repository (../shared/slack): the Web API's OpenAPI
    file, which stays outside the repository. Missing (a clone alone), the tests that need it
    skip themselves; see the root conftest.py."""
    if not _shared_present():
        pytest.skip(f"{SHARED_SKIP} at {SHARED_SLACK.resolve()} (Slack's Web API OpenAPI file)")
    return SHARED_SLACK.resolve()


class _NoCheck:
    """Stands in for the check where the reference data is absent."""

    problems: list[str] = []

    @contextlib.contextmanager
    def invalid_requests(self) -> Iterator[None]:
        yield

    def reset(self) -> None:
        return None


@pytest.fixture(scope="session")
def session_openapi() -> OpenApiCheck | _NoCheck:
    return OpenApiCheck.load(SHARED_SLACK.resolve()) if _shared_present() else _NoCheck()


@pytest.fixture
def openapi(session_openapi):
    """The check every `web` exchange goes through (a stand-in without ../shared/slack)."""
    session_openapi.reset()
    return session_openapi


@pytest.fixture
def slack(slack_sandbox: RunningSandbox) -> RunningSandbox:  # noqa: F811
    return slack_sandbox


@pytest.fixture
def web(slack: RunningSandbox, openapi):
    """An httpx client for the sandbox's Web API with the bot token. Every request a test
    makes with it, and every answer, is checked against Slack's Web API description when
    ../shared/slack is there: a test fails on any exchange that does not conform."""
    hooks = [openapi.hook] if isinstance(openapi, OpenApiCheck) else []
    with slack.client(event_hooks={"response": hooks}) as client:
        yield client
    assert openapi.problems == [], "\n".join(openapi.problems)


@pytest.fixture(autouse=True)
def fresh_message_pace(monkeypatch):
    """Each test paces its Slack messages afresh (im_slack.api.message_pace): the sandbox's
    token and channel ids are the same from one test to the next, and a test's first message
    would otherwise wait for the last one of the test before."""
    import im_slack.api

    monkeypatch.setattr(im_slack.api, "_pace", None)
