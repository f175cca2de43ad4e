from collections.abc import Iterator

import pytest

from smtp_server import PASSWORD, SmtpServer


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("IM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)


@pytest.fixture
def smtp(tmp_path) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path) as server:
        yield server


@pytest.fixture
def clock():
    from im.testing import FakeClock

    return FakeClock()


@pytest.fixture
def runtime(tmp_path, clock):
    """A real im runtime with this plugin loaded (and only it), as its entry point loads it."""
    import im_email
    from im.testing import make_runtime

    rt = make_runtime(tmp_path / "home", plugins=[im_email], clock=clock, user="alice")
    yield rt
    rt.store.close()
