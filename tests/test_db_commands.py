"""`im db status`, `im db migrate` and `im db copy --to postgresql://...`, on both stores.

The PostgreSQL tests need a server: IM_TEST_DATABASE=postgresql://USER@HOST:PORT/postgres
(each test makes a database of its own there and drops it). A copy reads an SQLite home, so its
tests leave IM_DATABASE_URL (which the suite sets in its PostgreSQL mode) unset for the source.
"""

import itertools
import json
import os
import re
from urllib.parse import urlsplit, urlunsplit

import pytest

from im.storage.sqlite.export import KEPT_COUNTS, TABLES
from im.storage.sqlite.migrations import MIGRATIONS
from im.sync import deliver_outbox
from im.testing import make_runtime, run_cli, sql

SERVER = os.environ.get("IM_TEST_DATABASE") or None
NO_SERVER = "needs PostgreSQL: set IM_TEST_DATABASE=postgresql://USER@HOST:PORT/postgres"
LATEST = MIGRATIONS[-1][0]
CONFIG = json.dumps({"api_key": "k-123456", "sync_direction": "bidirectional"})
_numbers = itertools.count()


def _with_database(url, name, password=None):
    parts = urlsplit(url)
    if password is not None:
        parts = parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}"
                                      f":{parts.port}")
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def empty_database():
    """The URL of a new, empty database on the test server (dropped after the test)."""
    if SERVER is None:
        pytest.skip(NO_SERVER)
    import psycopg

    from im.storage.postgres import database

    name = f"im_db_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield _with_database(SERVER, name)
    database.close_all()
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def im_rows(url):
    """Rows of every im table of the database at `url`, by table (none: all 0)."""
    import psycopg

    with psycopg.connect(url) as conn:
        return {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                for table in TABLES + KEPT_COUNTS}


@pytest.fixture
def sqlite_home(monkeypatch):
    """The SQLite store, also where the suite runs against PostgreSQL."""
    monkeypatch.delenv("IM_DATABASE_URL", raising=False)


# -- im db status and im db migrate ------------------------------------------------------------


def test_db_status_names_the_sqlite_store_and_its_migrations(sqlite_home, runtime):
    result = run_cli(runtime, ["db", "status"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"Store: SQLite, {runtime.home / 'im.db'}",
                         f"Migrations: {len(MIGRATIONS)} applied (latest {LATEST}), none pending"]
    assert re.fullmatch(r"Size: [\d.]+ KiB \(write-ahead log: [\d.]+ (B|KiB)\)", lines[2]), lines
    data = json.loads(run_cli(runtime, ["db", "status", "--json"]).stdout)
    assert data["store"] == {"kind": "sqlite", "location": str(runtime.home / "im.db")}
    assert data["migrations"] == {"applied": len(MIGRATIONS), "latest": LATEST, "pending": [],
                                  "unknown": []}


def test_db_status_names_the_postgresql_store_without_its_password(empty_database, monkeypatch,
                                                                  tmp_path):
    from im.storage.postgres.migrations import MIGRATIONS as PG_MIGRATIONS

    PG_LATEST = PG_MIGRATIONS[-1][0]
    url = _with_database(empty_database, urlsplit(empty_database).path[1:], password="hunter2")
    monkeypatch.setenv("IM_DATABASE_URL", url)  # the test server trusts: any password is let in
    runtime = make_runtime(tmp_path / "home")
    result = run_cli(runtime, ["db", "status"])
    assert result.exit_code == 0, result.output
    shown = url.replace(":hunter2@", ":***@")
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"Store: PostgreSQL, {shown}",
                         f"Migrations: {len(PG_MIGRATIONS)} applied (latest {PG_LATEST}),"
                         " none pending"]
    assert re.fullmatch(r"Size: [\d.]+ MiB", lines[2]), lines  # no write-ahead log of its own
    assert "hunter2" not in result.stdout
    data = json.loads(run_cli(runtime, ["db", "status", "--json"]).stdout)
    assert data["store"] == {"kind": "postgresql", "location": shown}
    assert data["migrations"] == {"applied": len(PG_MIGRATIONS), "latest": PG_LATEST,
                                  "pending": [], "unknown": []}


def test_db_migrate_on_a_new_sqlite_home_applies_each_migration_once(sqlite_home, runtime):
    result = run_cli(runtime, ["db", "migrate"])
    assert (result.exit_code, result.stdout) == (0, "".join(
        [f"Store: SQLite, {runtime.home / 'im.db'}\n"]
        + [f"Applied {name}\n" for name, _ in MIGRATIONS]
        + [f"{len(MIGRATIONS)} migrations applied; now {len(MIGRATIONS)} (latest {LATEST})\n"]))
    again = make_runtime(runtime.home)
    result = run_cli(again, ["db", "migrate"])
    assert (result.exit_code, result.stdout) == (0, (
        f"Store: SQLite, {runtime.home / 'im.db'}\n"
        f"Nothing to migrate: {len(MIGRATIONS)} migrations applied (latest {LATEST})\n"))
    again.store.close()


def test_db_migrate_on_a_new_postgresql_database(empty_database, monkeypatch, tmp_path):
    from im.storage.postgres.migrations import MIGRATIONS as PG_MIGRATIONS

    PG_LATEST = PG_MIGRATIONS[-1][0]
    monkeypatch.setenv("IM_DATABASE_URL", empty_database)
    result = run_cli(make_runtime(tmp_path / "home"), ["db", "migrate"])
    assert (result.exit_code, result.stdout) == (0, "".join(
        [f"Store: PostgreSQL, {empty_database}\n"]
        + [f"Applied {name}\n" for name, _ in PG_MIGRATIONS]
        + [f"{len(PG_MIGRATIONS)} migrations applied; now {len(PG_MIGRATIONS)}"
           f" (latest {PG_LATEST})\n"]))
    result = run_cli(make_runtime(tmp_path / "home"), ["db", "migrate"])
    assert (result.exit_code, result.stdout) == (0, (
        f"Store: PostgreSQL, {empty_database}\n"
        f"Nothing to migrate: {len(PG_MIGRATIONS)} migrations applied (latest {PG_LATEST})\n"))


def test_db_migrate_says_in_one_line_that_the_server_is_unreachable(monkeypatch, tmp_path):
    pytest.importorskip("psycopg")
    monkeypatch.setenv("IM_DATABASE_URL", "postgresql://im:hunter2@127.0.0.1:1/im")
    result = run_cli(make_runtime(tmp_path / "home"), ["db", "migrate"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: cannot connect to the database at"
                                    " postgresql://im:***@127.0.0.1:1/im: connection failed:")
    assert result.stderr.count("\n") == 1 and "hunter2" not in result.stderr


# -- im db copy ---------------------------------------------------------------------------------


def _fill(runtime, clock):
    """A home with something in every table: incidents (one delivered, with links; changes
    queued), notes, a connector with a secret, received events (one claimed), calls, logs, a
    cursor, an SLA breach, an API token and meta."""
    assert run_cli(runtime, ["connector", "add", "fake", "prod-fake", "--config",
                             CONFIG]).exit_code == 0
    for args in (["declare", "--sev", "SEV-1", "--title", "Checkout errors", "--service",
                  "api,web", "--field", "region=eu"],
                 ["note", "-i", "INC-1", "Rolling back 4.2"],
                 ["ack", "-i", "INC-1"]):
        assert run_cli(runtime, args).exit_code == 0
    deliver_outbox(runtime)  # INC-1 made remotely: links
    clock.advance(minutes=5)
    for args in (["note", "-i", "INC-1", "Error rate falling"],  # queued, not delivered
                 ["declare", "--sev", "SEV-3", "--title", "Slow search", "--service", "search"],
                 ["resolve", "-i", "INC-2"],
                 ["api-token", "create", "ci", "--read-only"]):
        assert run_cli(runtime, args).exit_code == 0, args
    store = runtime.store
    store.store_inbox_many([("prod-fake", "E1", "incident.note", b"\x00\xff{raw}", clock.now),
                            ("prod-fake", "E2", "incident.note", b"{}", clock.now)])
    store.claim_inbox(now=clock.now, lease_seconds=30)  # E1 processing, with a lease
    store.set_cursor("prod-fake", "cursor-7", at=clock.now)
    runtime.record_call("prod-fake", method="POST", path="/incidents", status=201,
                        duration=0.25, rate_limit=100, rate_remaining=99)
    store.add_logs([{"at": clock.now, "level": "INFO", "levelno": 20, "component": "cli",
                     "connector": "prod-fake", "message": "hello", "data": {"k": [1, 2]}}])
    clock.advance(hours=2)
    assert run_cli(runtime, ["sla", "check"]).exit_code == 0  # SEV-1 unresolved: a breach
    runtime.installation_id  # noqa: B018 - meta
    with store.transaction() as tx:  # a number given, then its row purged: never given again
        tx.conn.execute("DELETE FROM outbox WHERE id = (SELECT max(id) FROM outbox)")
        # a workflow rule and a run it queued (of an action this test has not installed)
        from im.workflows import Conditions, Rule, Step, Trigger

        tx.workflows.save(Rule(name="sev1-room", trigger=Trigger.DECLARED,
                               conditions=Conditions(severities=["SEV-1"]),
                               steps=[Step(action="chat.war_room", settings={"prefix": "inc"})],
                               created_at=clock.now, updated_at=clock.now))
        [declared] = [e for e in tx.timeline.of_incident("INC-1") if e.kind == "declared"]
        tx.workflow_runs.add(workflow="sev1-room", step=0, action="chat.war_room",
                             settings={"prefix": "inc"}, incident_id="INC-1",
                             trigger="declared", event_id=declared.id, at=clock.now)


READ_BACK = [["show", "INC-1"], ["show", "INC-2"], ["timeline", "INC-1"], ["list", "--all"],
             ["connector", "list"], ["connector", "show", "prod-fake"], ["api-token", "list"],
             ["logs"], ["sla", "status"], ["workflow", "list"], ["workflow", "show", "sev1-room"]]


def _read_back(runtime):
    return {" ".join(args): run_cli(runtime, args).stdout for args in READ_BACK}


def _rows(runtime):
    store = runtime.store
    return {"outbox": [(r.id, r.status, r.attempts, r.next_attempt_at, r.lease_until,
                        r.payload) for r in store.outbox()],
            "inbox": [(r.id, r.status, r.body, r.received_at) for r in store.inbox()],
            "settings": store.get_connector("prod-fake").settings,
            "cursor": store.get_cursor("prod-fake"),
            "tokens": store.api_tokens(),
            "meta": store.get_meta("installation_id"),
            "breached": sql(runtime, "SELECT number, ack_breached_start IS NOT NULL,"
                                     " resolve_breached_start IS NOT NULL FROM incidents"
                                     " ORDER BY number"),
            "counts": sorted(sql(runtime, "SELECT status, severity, n FROM incident_counts"
                                          " WHERE n <> 0"))}


def test_db_copy_moves_an_sqlite_home_to_postgresql(sqlite_home, empty_database, runtime,
                                                    fake, clock, monkeypatch):
    _fill(runtime, clock)
    before, rows_before = _read_back(runtime), _rows(runtime)
    counts = {table: sql(runtime, f"SELECT count(*) FROM {table}")[0][0] for table in TABLES}
    assert all(counts.values()), counts  # something in every table
    assert rows_before["inbox"][0][1] == "processing"
    assert any(ack or resolve for _, ack, resolve in rows_before["breached"])

    result = run_cli(runtime, ["db", "copy", "--to", empty_database])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:len(TABLES)] == [
        f"Copied {table}: {counts[table]} row{'' if counts[table] == 1 else 's'}"
        for table in TABLES]
    assert lines[len(TABLES) + 1].split() == ["Table", "SQLite", "PostgreSQL"]
    compared = {line.split()[0]: line.split()[1:] for line in lines[len(TABLES) + 2:-2]}
    assert {table: compared[table] for table in TABLES} == {
        table: [str(n), str(n)] for table, n in counts.items()}
    assert compared["incident_counts"] == ["2", "2"]  # (mitigated, SEV-1), (resolved, SEV-3)
    assert lines[-1] == (f"Copied to {empty_database}. Set IM_DATABASE_URL to the URL given"
                         " to --to"
                         ' (or "database_url" in settings.json) to use it.')

    monkeypatch.setenv("IM_DATABASE_URL", empty_database)
    moved = make_runtime(runtime.home, plugins=[fake], clock=clock, user="alice")
    assert moved.store.kind == "postgresql"
    assert _read_back(moved) == before
    assert _rows(moved) == rows_before
    declared = run_cli(moved, ["declare", "--sev", "SEV-2", "--title", "Next", "--service",
                               "api"])
    assert declared.stdout.startswith("Declared INC-3: ")
    run_cli(moved, ["note", "-i", "INC-3", "numbered on"])
    new_ids = sql(moved, "SELECT max(id) FROM outbox")[0][0], sql(
        moved, "SELECT max(id) FROM timeline")[0][0]
    assert new_ids[0] > rows_before["outbox"][-1][0] + 1  # past the purged row's number too
    assert new_ids[1] > sql(runtime, "SELECT max(id) FROM timeline")[0][0]
    moved.store.close()


def test_db_copy_refuses_a_database_that_holds_im_data(sqlite_home, empty_database, runtime):
    run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service",
                      "api"])
    assert run_cli(runtime, ["db", "copy", "--to", empty_database]).exit_code == 0
    run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Later", "--service", "api"])
    result = run_cli(runtime, ["db", "copy", "--to", empty_database])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", (
        f"Error: the database at {empty_database} already holds im data (1 in incidents, 1 in"
        " incident_services, 1 in timeline); im copies only into an empty database: make a"
        " new one (CREATE DATABASE im)\n"))
    assert im_rows(empty_database)["incidents"] == 1


def test_db_copy_refuses_a_postgresql_source(empty_database, monkeypatch, tmp_path):
    monkeypatch.setenv("IM_DATABASE_URL", empty_database)
    runtime = make_runtime(tmp_path / "home")
    result = run_cli(runtime, ["db", "copy", "--to", empty_database])
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: im db copy copies an SQLite home, and this im uses PostgreSQL at"
        f" {empty_database} (IM_DATABASE_URL or the settings' database_url): unset it to copy"
        " the SQLite one\n"))


def test_a_copy_that_fails_midway_leaves_the_target_without_im_rows(sqlite_home,
                                                                     empty_database, runtime):
    for title in ("First", "Second"):
        run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", title, "--service", "api"])
    # a row PostgreSQL refuses, after incidents and their services were written
    sql(runtime, "UPDATE timeline SET data = '{not json' WHERE number = 2")
    result = run_cli(runtime, ["db", "copy", "--to", empty_database])
    assert result.exit_code == 1
    assert result.stdout == ("Copied incidents: 2 rows\n"
                             "Copied incident_services: 2 rows\n")
    assert result.stderr.startswith(
        f"Error: the copy to {empty_database} failed and was undone (the database is as empty"
        " as before): invalid input syntax for type json")
    assert result.stderr.count("\n") == 1
    assert set(im_rows(empty_database).values()) == {0}

    sql(runtime, "UPDATE timeline SET data = '{}' WHERE number = 2")
    assert run_cli(runtime, ["db", "copy", "--to", empty_database]).exit_code == 0
    assert im_rows(empty_database)["incidents"] == 2


def test_db_copy_reads_in_batches_and_keeps_every_row(sqlite_home, empty_database, runtime):
    from im.app import database

    run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Busy", "--service", "api"])
    with runtime.store.transaction() as tx:
        tx.conn.executemany(
            "INSERT INTO timeline (number, at, kind, text, actor, system, data)"
            " VALUES (1, ?, 'note', ?, 'alice', 'im', '{}')",
            [(f"2025-08-23T14:30:00.{n:06d}+00:00", f"note {n}") for n in range(2500)])
    seen = []
    copied = database.copy_to_postgres(runtime, empty_database, batch_size=1000,
                                       progress=lambda table, rows: seen.append((table, rows)))
    assert copied.committed and ("timeline", 2501) in seen
    from im.storage.sqlite.export import SqliteExport

    with SqliteExport(runtime.home / "im.db") as export:
        batches = [len(b) for b in export.rows("timeline", ["id"], 1000)]
    assert batches == [1000, 1000, 501]
    assert im_rows(empty_database)["timeline"] == 2501


def test_a_copy_whose_counts_differ_is_undone(sqlite_home, empty_database, runtime,
                                              monkeypatch):
    from im.storage.sqlite.export import SqliteExport

    run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "First", "--service", "api"])
    counted = SqliteExport.count
    # the source counts a timeline row more than was read (as if one had been lost on the way)
    monkeypatch.setattr(SqliteExport, "count", lambda self, table: counted(self, table) + (
        table == "timeline"))
    result = run_cli(runtime, ["db", "copy", "--to", empty_database])
    assert result.exit_code == 1
    assert "timeline           2       1           DIFFERS\n" in result.stdout
    assert "incidents          1       1\n" in result.stdout
    assert result.stderr == (f"Error: the copy differs from the SQLite database (timeline): it"
                             f" was undone, {empty_database} is as empty as before.\n")
    assert set(im_rows(empty_database).values()) == {0}


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://im:s3cret@db.example:5432/im", "postgresql://im:***@db.example:5432/im"),
    ("postgresql://im@db.example/im?password=s3cret&sslmode=require",
     "postgresql://im@db.example/im?password=***&sslmode=require"),
    ("postgresql://im:pa/ss?w#rd@db.example/im", None),
    ("postgresql://db.example/im", "postgresql://db.example/im"),
])
def test_a_database_url_is_never_shown_with_its_password(url, shown):
    from im.storage.postgres.database import redacted_url

    redacted = redacted_url(url)
    assert "s3cret" not in redacted and "pa/ss" not in redacted and "w#rd" not in redacted
    if shown is not None:
        assert redacted == shown


@pytest.mark.parametrize("args", [["db", "status"], ["db", "copy", "--to", "im:s3cret@db/im"]])
def test_a_url_that_is_not_postgresqls_is_refused_without_echoing_it(tmp_path, monkeypatch,
                                                                     args):
    runtime = make_runtime(tmp_path / "home", user="alice")
    if args[1] == "status":
        monkeypatch.setenv("IM_DATABASE_URL", "im:s3cret@db.example/im")
    else:
        monkeypatch.delenv("IM_DATABASE_URL", raising=False)
    result = run_cli(runtime, args)
    assert result.exit_code != 0
    assert "s3cret" not in result.stdout + result.stderr
    assert "a URL without postgresql://" in result.stderr


def test_copying_a_home_with_nothing_in_it_is_refused(tmp_path, monkeypatch):
    """A mistyped IM_HOME is an empty home: copying it would look like a move that worked."""
    monkeypatch.delenv("IM_DATABASE_URL", raising=False)
    runtime = make_runtime(tmp_path / "nowhere", user="alice")
    result = run_cli(runtime, ["db", "copy", "--to", "postgresql://im@127.0.0.1:1/im"])
    assert result.exit_code != 0
    assert result.stderr.startswith("Error: nothing to copy: the SQLite database at ")
    assert "is IM_HOME the home to move?" in result.stderr
