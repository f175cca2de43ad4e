import os
import sys
import time
from contextlib import contextmanager
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


class PostgresPlans:
    """The statements the PostgreSQL store runs while `watching()`, each with its parameters,
    and the plan PostgreSQL makes of one (`plan()`). The plan is asked for on a connection of
    its own with sequential scans priced out of reach (`enable_seqscan = off`): on the few rows
    of a test PostgreSQL scans a table whatever indexes it has. Name the index that must serve
    a statement (`indexes(plan)`): one no index serves shows "Seq Scan", or the whole of
    another index read in its place (an index whose second column the statement filters
    on, say)."""

    def __init__(self, monkeypatch):
        self._monkeypatch = monkeypatch

    @contextmanager
    def watching(self):
        from im.storage.postgres import database

        seen: list[tuple[str, object]] = []
        run = database._run

        def recorded(conn, query, params):
            seen.append((query, params))
            return run(conn, query, params)

        self._monkeypatch.setattr(database, "_run", recorded)
        try:
            yield seen
        finally:
            self._monkeypatch.setattr(database, "_run", run)

    def plan(self, query, params=None) -> str:
        import psycopg

        with psycopg.connect(os.environ["IM_DATABASE_URL"], autocommit=True) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            conn.execute("SET enable_seqscan = off")
            return "\n".join(row[0] for row in conn.execute("EXPLAIN " + query, params))

    @staticmethod
    def indexes(plan: str) -> set[str]:
        """The indexes a plan reads, by name."""
        import re

        found = re.findall(r"Index (?:Only )?Scan(?: Backward)? using (\S+)"
                           r"|Bitmap Index Scan on (\S+)", plan)
        return {name for pair in found for name in pair if name}

    @staticmethod
    def whole_reads(plan: str) -> list[str]:
        """The plan's reads of a whole table or index: each sequential scan, and each index
        scan with no Index Cond (its rows are not searched for: every entry is read)."""
        lines = plan.splitlines()
        nodes = [i for i, line in enumerate(lines) if i == 0 or "->" in line] + [len(lines)]
        found = []
        for start, end in zip(nodes, nodes[1:]):
            node = lines[start].split("->")[-1].strip()
            if node.startswith("Seq Scan") or ("Index" in node and " Scan" in node and not any(
                    line.strip().startswith("Index Cond:") for line in lines[start + 1:end])):
                found.append(node.split("  (")[0])
        return found


@pytest.fixture
def postgres_plans(monkeypatch):
    """For a test of the plans of the PostgreSQL store's statements: skips where the suite
    does not run on PostgreSQL (IM_TEST_DATABASE)."""
    if not os.environ.get("IM_TEST_DATABASE"):
        pytest.skip("needs PostgreSQL: set IM_TEST_DATABASE (.ci/run does)")
    return PostgresPlans(monkeypatch)
