from collections.abc import Iterator

import pytest

from teams_endpoint import WorkflowsEndpoint


@pytest.fixture
def teams() -> Iterator[WorkflowsEndpoint]:
    """A Workflows webhook on loopback, its URL in $TEAMS_URL as a rule names it."""
    with WorkflowsEndpoint() as endpoint, pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEAMS_URL", endpoint.url)
        yield endpoint


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("IM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TZ", "UTC")


@pytest.fixture
def clock():
    from im.testing import FakeClock

    return FakeClock()


@pytest.fixture
def runtime(tmp_path, clock):
    """A real im runtime with this plugin loaded (and only it), as its entry point loads it."""
    import im_teams
    from im.testing import make_runtime

    rt = make_runtime(tmp_path / "home", plugins=[im_teams], clock=clock, user="alice")
    yield rt
    rt.store.close()
