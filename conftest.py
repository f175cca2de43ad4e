"""Suite-wide rules for every test folder (tests/ and each plugin's tests/).

Tests that need reference data kept outside the repository (`../shared`, beside a clone of the
team's workspace) skip themselves when it is absent, with a reason that starts with
`SHARED_SKIP`, so a clone alone runs green. `IM_REQUIRE_SHARED=1` (set by `.ci/run` where the
data is present) turns any such skip into a failed run.
"""

import os

import pytest

SHARED_SKIP = "reference data not found"


def _required() -> bool:
    return os.environ.get("IM_REQUIRE_SHARED") == "1"


# A test that needs a PostgreSQL server skips where none is given (IM_TEST_DATABASE), with a
# reason that starts with this; IM_REQUIRE_POSTGRES=1 (.ci/run's PostgreSQL pass) fails the run
# if one skipped there.
POSTGRES_SKIP = "needs PostgreSQL"


def _skips(stats, reason: str) -> int:
    return sum(1 for report in stats.get("skipped", []) if reason in str(report.longrepr))


def _shared_skips(stats) -> int:
    return _skips(stats, SHARED_SKIP)


def _missing(stats) -> list[str]:
    """What this run was told is there, and skipped tests for want of."""
    missing = []
    if _required() and _skips(stats, SHARED_SKIP):
        missing.append(f"{_skips(stats, SHARED_SKIP)} tests skipped for want of ../shared,"
                       " which IM_REQUIRE_SHARED=1 says is there")
    if os.environ.get("IM_REQUIRE_POSTGRES") == "1" and _skips(stats, POSTGRES_SKIP):
        missing.append(f"{_skips(stats, POSTGRES_SKIP)} tests skipped for want of PostgreSQL,"
                       " which IM_REQUIRE_POSTGRES=1 says is there")
    return missing


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter and _missing(reporter.stats) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in _missing(terminalreporter.stats):
        terminalreporter.write_line(f"FAILED: {line}", red=True)


# -- the suite against PostgreSQL ---------------------------------------------------------------
#
# IM_TEST_DATABASE=postgresql://USER@HOST:PORT/postgres (set by .ci/run, which starts a
# throwaway cluster) runs every test on a PostgreSQL database of its own, made from a migrated
# template, and named to the test's processes (the `im` commands and `im serve` a test starts
# included) by IM_DATABASE_URL. A test of what only SQLite does is marked `sqlite_only` and
# skips there, saying so.

SQLITE_ONLY_SKIP = "SQLite's own behaviour (a file on disk), not a store's"


def _test_database() -> str | None:
    return os.environ.get("IM_TEST_DATABASE") or None


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: a test of the SQLite store's own file,"
                            " skipped where the suite runs against PostgreSQL")


def pytest_collection_modifyitems(config, items):
    if _test_database() is None:
        return
    skip = pytest.mark.skip(reason=SQLITE_ONLY_SKIP)
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(skip)


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def _postgres_template():
    """A migrated, empty im database that each test's database is copied from."""
    url = _test_database()
    if url is None:
        yield None
        return
    import psycopg

    from im.storage.postgres import PostgresStore

    name = f"im_template_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    store = PostgresStore(_with_database(url, name))
    store.applied_migrations()  # migrates
    store.dispose()
    yield name
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _postgres_database(request, monkeypatch, _postgres_template):
    """Where IM_TEST_DATABASE is set: this test's own database, named by IM_DATABASE_URL."""
    url = _test_database()
    if url is None or "sqlite_only" in request.keywords:
        yield
        return
    import psycopg

    from im.storage.postgres import database

    name = f"im_test_{os.getpid()}_{_postgres_database.count}"
    _postgres_database.count += 1
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_postgres_template}"')
    monkeypatch.setenv("IM_DATABASE_URL", _with_database(url, name))
    yield
    database.close_all()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_postgres_database.count = 0


@pytest.fixture
def new_database(monkeypatch, _postgres_template):
    """For a test of several homes, each as new: where the suite runs against PostgreSQL, a
    call gives the runtimes made after it a new database of their own (IM_DATABASE_URL), as a
    new IM_HOME gives SQLite a new file; on SQLite it does nothing."""
    url = _test_database()
    made: list[str] = []

    def make() -> None:
        if url is None:
            return
        import psycopg

        name = f"im_test_{os.getpid()}_{_postgres_database.count}"
        _postgres_database.count += 1
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_postgres_template}"')
        made.append(name)
        monkeypatch.setenv("IM_DATABASE_URL", _with_database(url, name))

    yield make
    if made:
        import psycopg

        from im.storage.postgres import database

        database.close_all()
        with psycopg.connect(url, autocommit=True) as admin:
            for name in made:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
