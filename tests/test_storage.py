"""The store: migrations, concurrent writers and readers, and the reads' indexes; and the
SQLite store's own file (WAL, the application_id mark, query plans), which only it has. The
PostgreSQL store's plans are read where the suite runs on PostgreSQL."""

import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
import time

import pytest
import sqlite_utils

from im.models import Severity
from im.storage.sqlite import SqliteStore
from im.testing import make_runtime, sql

# the `im` executable of this Python (the conftest module's name is shared by every
# test folder's, so tests name it themselves)
IM = str(Path(sys.executable).parent / "im")


def _store(home):
    """The store a runtime on `home` opens: SQLite's file `home/im.db`, or the test's
    PostgreSQL database where the suite runs against PostgreSQL."""
    return make_runtime(home).store


def _migrations(store):
    if store.kind == "postgresql":
        from im.storage.postgres.migrations import MIGRATIONS
    else:
        from im.storage.sqlite.migrations import MIGRATIONS
    return [name for name, _ in MIGRATIONS]


def test_migrations_are_recorded_and_run_once(tmp_path):
    runtime = make_runtime(tmp_path)
    store = runtime.store
    assert store.applied_migrations() == _migrations(store)
    store.close()
    again = make_runtime(tmp_path)
    assert again.store.applied_migrations() == _migrations(again.store)
    if again.store.kind == "postgresql":
        tables = {row[0] for row in sql(again, "SELECT table_name FROM information_schema.tables"
                                               " WHERE table_schema = current_schema()")}
    else:
        tables = {row[0] for row in sql(again, "SELECT name FROM sqlite_master"
                                               " WHERE type = 'table'")}
    assert {"incidents", "incident_services", "timeline", "connectors", "links", "outbox",
            "inbox", "sync_cursors", "meta", "migrations"} <= tables


@pytest.mark.sqlite_only
def test_the_sqlite_file_is_in_wal_mode(tmp_path):
    store = SqliteStore(tmp_path / "im.db")
    store.applied_migrations()
    store.close()
    db = sqlite_utils.Database(tmp_path / "im.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_inbox_deduplicates_and_claims(tmp_path, clock):
    store = _store(tmp_path)
    assert store.store_inbox(connector="pd", delivery_id="e1", event_type="incident.triggered",
                             body=b"{}", at=clock.now)
    assert not store.store_inbox(connector="pd", delivery_id="e1", event_type="x", body=b"{}",
                                 at=clock.now)
    assert store.store_inbox(connector="other", delivery_id="e1", event_type="x", body=b"{}",
                             at=clock.now)
    [first] = store.claim_inbox(now=clock.now, lease_seconds=30)
    [second] = store.claim_inbox(now=clock.now, lease_seconds=30, limit=5)
    assert (first.delivery_id, first.connector, second.connector) == ("e1", "pd", "other")
    assert store.claim_inbox(now=clock.now, lease_seconds=30) == []
    store.finish_inbox(first.id, at=clock.now)
    # An expired claim (a crashed worker) is claimed again.
    [again] = store.claim_inbox(now=clock.advance(seconds=31), lease_seconds=30)
    assert again.id == second.id
    assert [r.status for r in store.inbox()] == ["done", "processing"]


@pytest.mark.sqlite_only
def test_the_webhook_hot_path_reads_the_inbox_by_index(tmp_path, clock):
    """Storing and claiming events must cost the same with a week of events kept as with
    none: every read they make searches an index, none scans the table or sorts all rows."""
    store = SqliteStore(tmp_path / "im.db")
    store.store_inbox_many([("pd", f"old{n}", "x", b"{}", clock.now) for n in range(50)])
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    store.store_inbox_many([("pd", "e1", "x", b"{}", clock.now), ("pd", "old1", "x", b"{}",
                                                                     clock.now),
                            ("other", "e1", "x", b"{}", clock.now)])
    store.claim_inbox(now=clock.now, lease_seconds=30, limit=20)
    store.conn.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) >= 2
    for sql in reads:
        plan = " | ".join(row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "SEARCH inbox USING" in plan and "SCAN inbox" not in plan, (sql, plan)
        assert "TEMP B-TREE" not in plan, (sql, plan)


@pytest.mark.sqlite_only
def test_a_claim_reads_only_the_changes_still_to_deliver(tmp_path, clock):
    """A claim costs the same with a month of delivered changes kept (retention.outbox_days)
    as with none: it reads the outbox only through the rows still to deliver, whatever it is
    asked for (a connector's, an incident's, due or not), never every row of a connector."""
    from im import incidents

    runtime = make_runtime(tmp_path / "home", clock=clock)
    store = runtime.store
    for n in range(1, 41):
        incident = incidents.declare(runtime, title=f"x{n}", severity="SEV-3", services=["db"])
        with store.transaction() as tx:
            tx.outbox.add(connector="pd", incident_id=incident.id, service="db",
                          action="declare", payload={}, at=clock.now)
    for _ in range(30):
        row = store.claim_outbox(now=clock.now, lease_seconds=30)
        store.finish_outbox(row.id, at=clock.now)
    for analyzed in (False, True):  # the planner with and without the table's statistics
        if analyzed:
            store.conn.execute("ANALYZE")
        statements: list[str] = []
        store.conn.set_trace_callback(statements.append)
        for asked in ({}, {"connector": "pd"}, {"connector": "pd", "due_only": False},
                      {"connector": "pd", "incident_id": "INC-35"}):
            row = store.claim_outbox(now=clock.now, lease_seconds=30, **asked)
            store.release_outbox(row.id, at=clock.now)
        store.conn.set_trace_callback(None)
        claims = [s for s in statements
                  if s.lstrip().startswith("SELECT") and "FROM outbox" in s]
        assert len(claims) == 4
        for statement in claims:
            plan = [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + statement)]
            reads = [step for step in plan if step.split()[1:2] == ["o"]]
            assert reads, plan
            for read in reads:  # the claimable rows, or one incident's rows
                assert ("outbox_claimable" in read or "status=?" in read
                        or "number=?" in read), (analyzed, statement, plan)
    store.close()


def test_a_key_is_new_once_until_it_expires(tmp_path, clock):
    """Runtime.first_time: True the first time, False while the key is kept (from its first
    sighting, not extended by later ones), True again once it expired, on either store."""
    runtime = make_runtime(tmp_path / "home", clock=clock)
    key = "slack:prod-slack:" + "ab" * 32
    assert runtime.first_time(key, seconds=600) is True
    assert runtime.first_time(key, seconds=600) is False
    assert runtime.first_time("slack:other:" + "ab" * 32, seconds=600) is True
    clock.advance(seconds=599)
    assert runtime.first_time(key, seconds=600) is False
    clock.advance(seconds=2)
    assert runtime.first_time(key, seconds=600) is True  # expired, not purged yet: new
    assert runtime.first_time(key, seconds=600) is False
    with pytest.raises(ValueError):
        runtime.first_time("x" * 256, seconds=600)
    runtime.store.close()


def test_threads_asking_for_one_key_at_once_are_told_it_is_new_once(tmp_path, clock):
    runtime = make_runtime(tmp_path / "home", clock=clock)
    runtime.store.applied_migrations()  # made before the threads race
    start = threading.Barrier(6)
    answers: list[bool] = []

    def ask() -> None:
        start.wait()
        answers.append(runtime.first_time("replayed-request", seconds=60))
        runtime.store.close()

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers) == [False] * 5 + [True]


WRITER = textwrap.dedent("""
    import sys
    from im.testing import make_runtime
    from im import incidents
    from pathlib import Path
    runtime = make_runtime(Path(sys.argv[1]), user=sys.argv[2])
    for n in range(int(sys.argv[3])):
        incident = incidents.declare(runtime, title=f"{sys.argv[2]} {n}", severity="SEV-3",
                                     services=["db"])
        incidents.add_note(runtime, incident.id, "note")
""")


def test_two_writer_processes_and_the_cli_at_once(tmp_path, im_env):
    home = tmp_path / "home"
    im_env["IM_HOME"] = str(home)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(home), name, "60"],
                                stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    cli = [subprocess.run([IM, "declare", "--sev", "SEV-2", "--title", f"cli {n}", "--service",
                           "api"], env=im_env, capture_output=True, text=True) for n in range(5)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    assert all(r.returncode == 0 for r in cli), [r.stderr for r in cli]
    runtime = make_runtime(home)
    assert sql(runtime, "SELECT count(*) FROM incidents") == [(125,)]
    assert sql(runtime, "SELECT count(*) FROM timeline") == [(245,)]
    numbers = [r[0] for r in sql(runtime, "SELECT number FROM incidents ORDER BY number")]
    assert numbers == list(range(1, 126))


def test_a_log_flush_returns_only_once_a_batch_being_written_is_committed(tmp_path):
    """`im logs` flushes before reading; a batch the flush thread is writing at that moment
    must be in the table when flush() returns, or the line a user just caused is missing."""
    import logging
    import threading

    from im.logs import StoreHandler

    store = _store(tmp_path)
    writing, release = threading.Event(), threading.Event()
    real_add_logs = store.add_logs

    def slow_add_logs(entries):
        writing.set()
        release.wait(10)
        real_add_logs(entries)

    store.add_logs = slow_add_logs
    handler = StoreHandler(store)
    handler.emit(logging.makeLogRecord({"name": "im.sync", "msg": "first", "levelno": 30,
                                        "levelname": "WARNING"}))
    background = threading.Thread(target=handler.flush)
    background.start()
    assert writing.wait(10)
    second = threading.Thread(target=handler.flush)
    second.start()
    second.join(0.2)
    assert second.is_alive(), "flush returned while the batch was still being written"
    release.set()
    second.join(10)
    background.join(10)
    assert [row["message"] for row in store.logs(min_level=0)] == ["first"]
    handler.close()


def test_logging_shutdown_while_the_flush_thread_writes_does_not_hang(tmp_path):
    """At exit, `logging.shutdown` takes each handler's lock and flushes it. That must not
    wait forever on the flush thread (it once did, and a stopped `im serve` never exited)."""
    import logging
    import threading
    import time

    from im.logs import StoreHandler

    store = _store(tmp_path)
    handler = StoreHandler(store)
    handler.emit(logging.makeLogRecord({"name": "im.sync", "msg": "last words", "levelno": 30,
                                        "levelname": "WARNING"}))

    def shutdown():  # what logging.shutdown does with each handler
        handler.acquire()
        try:
            flusher = threading.Thread(target=handler.flush)  # the flush thread, meanwhile
            flusher.start()
            time.sleep(0.2)
            handler.flush()
            handler.close()
        finally:
            handler.release()
        flusher.join()

    exiting = threading.Thread(target=shutdown, daemon=True)
    exiting.start()
    exiting.join(10)
    assert not exiting.is_alive(), "logging.shutdown hung on the log handler"
    assert [row["message"] for row in store.logs(min_level=0)] == ["last words"]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("content, says", [
    (b"", "is empty (0 bytes), so not an im database; im leaves it as it is: restore it from a"
          " backup, or remove it to start afresh"),
    (b"not a database at all\n" * 100, "is not an im database (file is not a database); im"
                                       " leaves it as it is: move it away to start afresh, or"
                                       " set IM_HOME to another folder"),
    ("other-app", "is an SQLite database of another program (not im's); im leaves it as it"
                  " is: move it away, or set IM_HOME to another folder"),
])
def test_an_existing_file_that_is_not_an_im_database_is_refused_untouched(im_env, tmp_path,
                                                                          content, says):
    home = tmp_path / "home"
    home.mkdir()
    database = home / "im.db"
    if content == "other-app":
        other = sqlite3.connect(database)
        other.execute("CREATE TABLE notes (body TEXT)")
        other.execute("INSERT INTO notes VALUES ('keep me')")
        other.commit()
        other.close()
    else:
        database.write_bytes(content)
    before = database.read_bytes()
    for args in (["list"], ["declare", "--sev", "SEV-2", "--title", "x", "--service", "db"]):
        done = subprocess.run([IM, *args], env=im_env, capture_output=True, text=True)
        assert (done.returncode, done.stdout, done.stderr) == (1, "", f"Error: {database} {says}\n")
    assert database.read_bytes() == before
    assert not (home / "im.db-wal").exists() or content == "other-app"


@pytest.mark.sqlite_only
def test_a_database_made_before_the_mark_is_still_opened(tmp_path):
    """im databases made before im marked its files (application_id 0) open as before."""
    from im.storage.sqlite import APPLICATION_ID, SqliteStore

    store = SqliteStore(tmp_path / "im.db")
    store.conn.execute("PRAGMA application_id = 0")
    store.close()
    again = SqliteStore(tmp_path / "im.db")
    assert again.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    again.close()


def test_a_reader_does_not_wait_for_another_process_writing(tmp_path, im_env):
    """WAL (or PostgreSQL's snapshots) lets `im list` read while another process holds the
    writers' lock in a write transaction: opening an existing database takes no lock."""
    home = tmp_path / "home"
    _store(home).close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from im.testing import make_runtime
        store = make_runtime(Path({str(home)!r})).store
        with store.transaction():
            print("holding", flush=True)
            sys.stdin.readline()  # until the test has read
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        listed = subprocess.run([IM, "list"], env=im_env, capture_output=True, text=True,
                                timeout=30)
        assert (listed.returncode, listed.stdout) == (0, "No incidents.\n"), listed.stderr
        assert holder.poll() is None  # the writer still held its transaction meanwhile
    finally:
        holder.communicate("done\n", timeout=30)


@pytest.mark.sqlite_only
def test_filters_read_through_indexes(tmp_path):
    """A service filter (case-insensitive, for names stored before they were lower-cased) and
    the connector's latest call each read through an index, whatever the history's size."""
    store = SqliteStore(tmp_path / "im.db")
    plan = lambda sql, *args: " ".join(row[3] for row in store.conn.execute(  # noqa: E731
        "EXPLAIN QUERY PLAN " + sql, args))
    by_service = plan("SELECT number FROM incident_services WHERE lower(service) IN (?)", "api")
    assert "USING INDEX incident_services_lower" in by_service, by_service
    latest = plan("SELECT status FROM calls WHERE connector = ? ORDER BY at DESC, id DESC"
                  " LIMIT 1", "pd")
    assert "USING INDEX calls_connector_at" in latest and "TEMP B-TREE" not in latest, latest
    store.close()


@pytest.mark.sqlite_only
def test_a_database_another_process_is_making_is_waited_for_not_refused(tmp_path):
    """Two processes starting on a new IM_HOME at once: the second must wait for the first to
    finish making the database, whatever step the first is at, never take the half-made file
    for another program's (it did between the switch to WAL and the application_id mark)."""
    database = tmp_path / "im.db"
    marker = tmp_path / "making"
    maker = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, time
        from pathlib import Path
        connect = sqlite3.connect

        held = []

        def slow_connect(*args, **kwargs):
            conn = connect(*args, **kwargs)
            def trace(sql):
                # hold the first steps after the file has content open for a moment each
                if len(held) < 5 and Path({str(database)!r}).stat().st_size:
                    held.append(sql)
                    Path({str(marker)!r}).touch()
                    time.sleep(0.3)
            conn.set_trace_callback(trace)
            return conn

        sqlite3.connect = slow_connect
        from im.storage.sqlite import SqliteStore
        SqliteStore(Path({str(database)!r})).conn
    """)], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if marker.exists() or maker.poll() is not None:
                break
            time.sleep(0.01)
        assert marker.exists(), maker.stderr.read()
        store = SqliteStore(database)
        assert "incidents" in {row[0] for row in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        store.close()
    finally:
        assert maker.wait(timeout=60) == 0, maker.stderr.read()


@pytest.mark.sqlite_only
def test_connector_figures_read_indexes_not_every_row_the_connector_had(tmp_path):
    """`im metrics connector`, `im connector status` and /metrics ask for a connector's
    figures: incidents linked, the last day's deliveries and calls, what is queued. Each
    statement searches an index (never a scan, never a sort of every row: only the day's
    links are sorted, to count the incidents synced), so their cost follows the day's
    activity, not the years of history."""
    from im import observability
    from im.testing import FakePlugin, make_runtime, run_cli

    runtime = make_runtime(tmp_path / "home", plugins=[FakePlugin()])
    result = run_cli(runtime, ["connector", "add", "fake", "f", "--config",
                               '{"api_key": "k"}'])
    assert result.exit_code == 0, result.output
    statements: list[str] = []
    runtime.store.conn.set_trace_callback(statements.append)
    try:
        observability.metrics(runtime, "f")
        observability.status(runtime, "f")
    finally:
        runtime.store.conn.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and any(
        f"FROM {table}" in s for table in ("links", "outbox", "calls", "inbox"))]
    assert len(reads) >= 5
    for sql in reads:
        plan = " | ".join(row[3] for row in runtime.store.conn.execute(
            "EXPLAIN QUERY PLAN " + sql))
        assert " SCAN " not in f" {plan} " and not plan.startswith("SCAN"), (sql, plan)
        # the incidents synced in the day are told apart among the day's links only
        assert "TEMP B-TREE" not in plan or plan == (
            "USE TEMP B-TREE FOR count(DISTINCT) | SEARCH links USING COVERING INDEX"
            " links_connector_updated (connector=? AND updated_at>?)"), (sql, plan)
    runtime.store.close()


def _incident(store, clock, n):
    from im.models import Severity

    return store.insert_incident(title=f"i{n}", description="", severity=Severity("SEV-2"),
                                 services=["api"], fields={}, correlation_id=f"c{n}",
                                 created_by="t", at=clock.now)


def test_a_poll_reads_the_open_links_of_the_window_through_an_index(tmp_path, clock):
    """The links a poll checks against the remote's open listing: those im believes open
    (open, acknowledged), of incidents declared since the horizon, of that connector;
    read through links_open (only open links are in it), never every link made (the plan is
    SQLite's; the links found are checked on either store)."""
    from datetime import timedelta

    from im.models import Link

    store = _store(tmp_path)
    old = _incident(store, clock, 0)  # declared before the horizon
    store.upsert_link(Link(incident_id=old.id, connector="pd", service="api", remote_id="R0",
                           remote_status="open"))
    horizon = clock.advance(days=1)
    statuses = ["open", "acknowledged", "resolved", "merged", "missing", None]
    for n, status in enumerate(statuses, start=1):
        incident = _incident(store, clock, n)
        store.upsert_link(Link(incident_id=incident.id, connector="pd", service="api",
                               remote_id=f"R{n}", remote_status=status))
        store.upsert_link(Link(incident_id=incident.id, connector="other", service="api",
                               remote_id=f"O{n}", remote_status="open"))
    # an open one for a second service of a resolved one's incident
    store.upsert_link(Link(incident_id="INC-4", connector="pd", service="db",
                           remote_id="R4b", remote_status="acknowledged"))
    statements: list[str] = []
    if store.kind == "sqlite":
        store.conn.set_trace_callback(statements.append)
    try:
        found = store.open_links("pd", declared_since=horizon - timedelta(seconds=1))
    finally:
        if store.kind == "sqlite":
            store.conn.set_trace_callback(None)
    assert [(link.incident_id, link.service, link.remote_id, link.remote_status)
            for link in found] == [("INC-2", "api", "R1", "open"),
                                   ("INC-3", "api", "R2", "acknowledged"),
                                   ("INC-4", "db", "R4b", "acknowledged")]
    if store.kind != "sqlite":
        return
    [sql] = [s for s in statements if "FROM links" in s]
    plan = [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql)]
    assert plan == ["SEARCH links USING INDEX links_open (connector=?)",
                    "SEARCH incidents USING INTEGER PRIMARY KEY (rowid=?)"], plan


def test_on_postgresql_a_poll_reads_the_open_links_through_an_index(tmp_path, clock,
                                                                    postgres_plans):
    """The same of the PostgreSQL store: the poll's links are searched in links_open by
    connector (the only links in it are open ones), their incidents by number; neither
    table is read whole, however many links were made."""
    from datetime import timedelta

    from im.models import Link

    store = _store(tmp_path)
    horizon = clock.now
    for n, status in enumerate(["open", "acknowledged", "resolved", "resolved"]):
        incident = _incident(store, clock, n)
        store.upsert_link(Link(incident_id=incident.id, connector="pd", service="api",
                               remote_id=f"R{n}", remote_status=status))
    with postgres_plans.watching() as seen:
        found = store.open_links("pd", declared_since=horizon - timedelta(seconds=1))
    assert [link.remote_id for link in found] == ["R0", "R1"]
    [(query, params)] = [s for s in seen if "FROM links" in s[0]]
    plan = postgres_plans.plan(query, params)
    assert "links_open" in postgres_plans.indexes(plan), plan
    assert postgres_plans.whole_reads(plan) == [], plan


def test_the_incidents_declared_in_a_period_come_in_pages_whole_and_in_order(tmp_path):
    """Pages follow the declared time, then the number (incidents declared at the same
    moment, as bulk imports make them), each after the last one's key: none twice, none
    left out, the last page short or the one before it full."""
    from datetime import UTC, datetime, timedelta

    store = _store(tmp_path)
    start = datetime.now(UTC).replace(microsecond=0)
    declared = [start + timedelta(minutes=minutes) for minutes in (5, 0, 1, 1, 1, 3, 9, 10)]
    with store.transaction() as tx:
        ids = [tx.incidents.add(title=f"t{n}", description="", severity=Severity.SEV3,
                                services=["db"], fields={}, correlation_id=f"c{n}",
                                created_by="alice", at=at).id
               for n, at in enumerate(declared)]
        tx.timeline.add(ids[2], at=declared[2], kind="note", text="n", actor="a", system="im")
    end = start + timedelta(minutes=10)  # the last incident is declared at the end: outside
    expected = [i for _, i in sorted((at, n) for n, at in enumerate(declared) if at < end)]
    for size in (1, 2, 3, 7, 100):
        batches = list(store.declared_in_batches(start, end, size=size))
        assert [len(b) for b in batches] == [size] * (7 // size) + (
            [7 % size] if 7 % size else []), size
        assert [ids.index(i.id) for b in batches for i, _, _ in b] == expected
        timelines = {i.id: [e.text for e in t] for b in batches for i, t, _ in b}
        assert timelines[ids[2]] == ["n"] and timelines[ids[3]] == []
    store.close()


@pytest.mark.sqlite_only
def test_a_page_deep_into_a_long_period_reads_no_more_than_the_first(tmp_path):
    """What a page of a report's incidents costs, counted in SQLite's steps (not timed):
    the same for the page after 2,990 incidents as for the first, never a read of every
    incident before it."""
    from datetime import UTC, datetime, timedelta

    store = SqliteStore(tmp_path / "im.db")
    start = datetime.now(UTC).replace(microsecond=0)
    with store.transaction() as tx:
        for n in range(3000):
            tx.incidents.add(title=f"t{n}", description="", severity=Severity.SEV3,
                             services=["db"], fields={}, correlation_id=f"c{n}",
                             created_by="alice", at=start + timedelta(seconds=n // 2))
    end = start + timedelta(days=1)
    reads = store.read()

    def steps(after):
        counted = [0]

        def count():
            counted[0] += 1
            return 0

        store.conn.set_progress_handler(count, 1)
        page = reads.incidents.declared_page(start, end, after=after, limit=10)
        store.conn.set_progress_handler(None, 1)
        return counted[0], page

    first, page = steps(None)
    assert [i.id for i in page] == [f"INC-{n}" for n in range(1, 11)]
    deep, page = steps((start + timedelta(seconds=1494), "INC-2989"))
    # INC-2989 and INC-2990 share a moment: the page starts after the one given
    assert [i.id for i in page] == [f"INC-{n}" for n in range(2990, 3000 + 1)][:10]
    assert deep <= 2 * first, (first, deep)
    store.close()


def test_what_a_block_undone_by_its_savepoint_announced_is_not_announced(runtime):
    """A change applied inside a savepoint that is then undone (an event another worker took
    over, one quarantined half way) must not be announced to plugins when the transaction
    around it commits; what the transaction kept is."""
    store = runtime.store
    announced = []
    with store.transaction() as tx:
        store.after_commit(lambda: announced.append("kept"))
        try:
            with tx.savepoint():
                store.after_commit(lambda: announced.append("undone"))
                raise RuntimeError("undo this block")
        except RuntimeError:
            pass
        with tx.savepoint():
            store.after_commit(lambda: announced.append("also kept"))
    assert announced == ["kept", "also kept"]
