import os
import sys
import time
from pathlib import Path

import pytest

from im.testing import FakeClock, FakePlugin, make_runtime

REPO = Path(__file__).resolve().parents[1]
IM = str(Path(sys.executable).parent / "im")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own IM_HOME and a fixed time zone, and no user settings leak in."""
    monkeypatch.setenv("IM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("IM_PUBLIC_URL", raising=False)
    monkeypatch.delenv("IM_USER", raising=False)
    time.tzset()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake():
    return FakePlugin()


@pytest.fixture
def runtime(tmp_path, clock, fake):
    rt = make_runtime(tmp_path / "home", plugins=[fake], clock=clock, user="alice")
    yield rt
    rt.store.close()


@pytest.fixture
def im_env(tmp_path):
    """Environment for running the real `im` executable in a subprocess."""
    env = dict(os.environ)
    env["IM_HOME"] = str(tmp_path / "home")
    env["TZ"] = "UTC"
    env["IM_USER"] = "alice"
    return env
