"""What /metrics, `im metrics connector` and `im connector status` cost: the same on a home
of years of history as on a new one. Whole-table counts are kept as rows change (and must
stay equal to a real count, whatever the changes), the other figures read an index for
their time range or the newest entry of one."""

import random
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from im.models import Link, Severity, Status
from im.storage.sqlite import SqliteStore
from im.storage.sqlite.migrations import MIGRATIONS
from im.testing import make_runtime, sql

BIG_TABLES = ("incidents", "incident_services", "timeline", "links", "outbox", "inbox",
              "calls", "logs", "sla_breaches")
REAL_COUNTS = {
    "incident_counts": "SELECT status, severity, count(*) FROM incidents"
                       " GROUP BY status, severity",
    "linked_incidents": "SELECT connector, count(DISTINCT number) FROM links GROUP BY connector",
    "outbox_counts": "SELECT connector, status, count(*) FROM outbox GROUP BY connector, status",
    "inbox_counts": "SELECT connector, status, count(*) FROM inbox GROUP BY connector, status",
}


def _kept(where):
    """Each kept count (those above 0) beside the real one, read on a runtime's store (either
    store) or on an SQLite connection."""
    if isinstance(where, sqlite3.Connection):
        run = lambda query: where.execute(query).fetchall()  # noqa: E731
    else:
        run = lambda query: sql(where, query)  # noqa: E731
    kept = {"incident_counts": "SELECT status, severity, n FROM incident_counts WHERE n > 0",
            "linked_incidents": "SELECT connector, n FROM linked_incidents WHERE n > 0",
            "outbox_counts": "SELECT connector, status, n FROM outbox_counts WHERE n > 0",
            "inbox_counts": "SELECT connector, status, n FROM inbox_counts WHERE n > 0"}
    counts = {name: sorted(map(tuple, run(query))) for name, query in kept.items()}
    if not isinstance(where, sqlite3.Connection):
        # as /metrics reads them, whatever form a store keeps them in (PostgreSQL keeps the
        # inbox's as changes to add up)
        counts["inbox_counts"] = sorted(where.store.read().inbox.count_by_connector_and_status())
    return (counts,
            {name: sorted(map(tuple, run(query))) for name, query in REAL_COUNTS.items()})


def test_kept_counts_equal_real_counts_after_any_sequence_of_changes(tmp_path, clock):
    """Links added (a second service of an incident counts once), moved to another service,
    following a merge's survivor, of a removed connector (they stay); incidents declared and
    moved through their states; changes queued, claimed, delivered, failed, queued again,
    discarded, purged; events stored, processed, quarantined, replayed, purged. After every
    step the counts /metrics reads equal a real count of the rows."""
    runtime = make_runtime(tmp_path)
    store = runtime.store
    rng = random.Random(20)
    incidents: list[str] = []
    connectors = ("pd", "jira")
    services = ("api", "db", "web")
    remote = iter(range(1_000_000))

    def declare():
        made = store.insert_incident(
            title="x", description="", severity=rng.choice(list(Severity)),
            services=["api"], fields={}, correlation_id=f"c{len(incidents)}",
            created_by="t", at=clock.now)
        incidents.append(made.id)

    def link():
        store.upsert_link(Link(incident_id=rng.choice(incidents),
                               connector=rng.choice(connectors), service=rng.choice(services),
                               remote_id=f"R{next(remote)}", remote_status="open"))

    def move():
        links = store.links(connector=rng.choice(connectors))
        if links:
            chosen = rng.choice(links)
            taken = {other.service for other in store.links(chosen.incident_id,
                                                            connector=chosen.connector)}
            free = [s for s in services if s not in taken]
            if free:
                with store.transaction() as tx:
                    tx.links.move(chosen, rng.choice(free))

    def merge():
        links = store.links(connector=rng.choice(connectors))
        if links:
            import msgspec

            store.replace_link(msgspec.structs.replace(rng.choice(links),
                                                       remote_id=f"R{next(remote)}",
                                                       remote_status="merged"))

    def transition():
        store.update_incident(rng.choice(incidents), clock.now,
                              status=rng.choice(list(Status)),
                              severity=rng.choice(list(Severity)))

    def queue():
        with store.transaction() as tx:
            tx.outbox.add(connector=rng.choice(connectors), incident_id=rng.choice(incidents),
                          service="api", action="note", payload={}, at=clock.now)

    def deliver():
        row = store.claim_outbox(now=clock.now, lease_seconds=60)
        if row is not None:
            {0: lambda: store.finish_outbox(row.id, at=clock.now),
             1: lambda: store.fail_outbox(row.id, error="no", at=clock.now),
             2: lambda: store.release_outbox(row.id, at=clock.now),
             3: lambda: store.retry_outbox(row.id, error="later", next_attempt_at=clock.now),
             }[rng.randrange(4)]()

    def requeue():
        store.requeue_failed_outbox(connector=rng.choice(connectors), at=clock.now)

    def discard():
        with store.transaction() as tx:
            tx.outbox.discard_queued(rng.choice(connectors))

    def receive():
        store.store_inbox(connector=rng.choice(connectors), delivery_id=f"d{next(remote)}",
                          event_type="x", body=b"{}", at=clock.now)

    def process():
        for row in store.claim_inbox(now=clock.now, lease_seconds=60, limit=2):
            store.finish_inbox(row.id, at=clock.now,
                               status=rng.choice(("done", "quarantined")), error="bad")

    def replay():
        store.requeue_inbox(connector=rng.choice(connectors))

    def purge():
        clock.advance(hours=1)
        store.purge(inbox_before=clock.now, logs_before=clock.now, calls_before=clock.now,
                    outbox_before=clock.now)

    def remove_connector():
        store.delete_connector(rng.choice(connectors))

    declare()
    steps = [declare, link, link, move, merge, transition, queue, queue, deliver, deliver,
             requeue, discard, receive, receive, process, replay, purge, remove_connector]
    states = set()
    for _ in range(400):
        step = rng.choice(steps)
        step()
        kept, real = _kept(runtime)
        assert kept == real, step.__name__
        states |= {(table, row[-2]) for table in ("outbox_counts", "inbox_counts")
                   for row in real[table]}
    # every kind of change came about
    assert {"merged", "open"} <= {link.remote_status for link in store.links()}
    assert states >= {("outbox_counts", "done"), ("outbox_counts", "failed"),
                      ("outbox_counts", "pending"), ("inbox_counts", "quarantined")}
    assert any(len(store.links(i, connector="pd")) > 1 for i in incidents)
    store.close()


@pytest.mark.sqlite_only
def test_a_database_of_an_earlier_version_starts_its_counts_from_its_rows(tmp_path):
    """Migration 0012 counts what a database made before it holds."""
    path = tmp_path / "im.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    from im.storage.sqlite.database import _split_statements, ts

    for name, script in MIGRATIONS:
        if name >= "0012":
            break
        for statement in _split_statements(script):
            conn.execute(statement)
        conn.execute("INSERT INTO migrations VALUES (?, '')", (name,))
    now = ts(datetime.now(UTC))
    for number, (status, severity) in enumerate(
            [("open", "SEV-1"), ("resolved", "SEV-2"), ("resolved", "SEV-2")], start=1):
        conn.execute("INSERT INTO incidents (number, title, severity, status, correlation_id,"
                     " created_by, created_at, updated_at) VALUES (?, 'x', ?, ?, ?, 't', ?, ?)",
                     (number, severity, status, f"c{number}", now, now))
    for number, connector, service in [(1, "pd", "api"), (1, "pd", "db"), (2, "pd", "api"),
                                       (3, "jira", "api")]:
        conn.execute("INSERT INTO links (number, connector, service, remote_id, updated_at)"
                     " VALUES (?, ?, ?, ?, ?)", (number, connector, service,
                                                  f"R{number}{service}", now))
    for connector, status in [("pd", "done"), ("pd", "done"), ("pd", "failed")]:
        conn.execute("INSERT INTO outbox (connector, number, service, action, status,"
                     " next_attempt_at, created_at) VALUES (?, 1, 'api', 'note', ?, ?, ?)",
                     (connector, status, now, now))
    for delivery, status in [("a", "done"), ("b", "quarantined")]:
        conn.execute("INSERT INTO inbox (connector, delivery_id, body, received_at, status)"
                     " VALUES ('pd', ?, x'', ?, ?)", (delivery, now, status))
    conn.close()
    store = SqliteStore(path)
    kept, real = _kept(store.conn)
    assert kept == real
    assert kept["linked_incidents"] == [("jira", 1), ("pd", 2)]
    assert kept["incident_counts"] == [("open", "SEV-1", 1), ("resolved", "SEV-2", 2)]
    store.close()


def _history(runtime, clock, count, start):
    """`count` incidents of the past weeks, each with what its life left behind: resolved,
    linked to connector f (every other one for two services), a change delivered to f (and
    one, later, to a connector since removed), a webhook event processed (one in ten set aside), a timeline line, a call that went
    well."""
    store = runtime.store
    for n in range(start, start + count):
        at = clock() - timedelta(days=40) + timedelta(minutes=n)
        made = store.insert_incident(title=f"old {n}", description="", severity=Severity.SEV3,
                                     services=["api"], fields={}, correlation_id=f"old-{n}",
                                     created_by="t", at=at)
        store.update_incident(made.id, at, status=Status.CLOSED, closed_at=at)
        store.add_timeline(made.id, at=at, kind="note", text="done", actor="t", system="im")
        for service in ("api", "db")[:1 + n % 2]:
            store.upsert_link(Link(incident_id=made.id, connector="f", service=service,
                                   remote_id=f"R{n}{service}", remote_status="resolved",
                                   updated_at=at))
        with store.transaction() as tx:
            tx.outbox.add(connector="f", incident_id=made.id, service="api", action="resolve",
                          payload={}, at=at)
        row = store.claim_outbox(now=at, lease_seconds=60, connector="f", incident_id=made.id)
        store.finish_outbox(row.id, at=at)
        # a connector removed since, whose deliveries came after all of f's
        later = at + timedelta(days=20)
        with store.transaction() as tx:
            tx.outbox.add(connector="g", incident_id=made.id, service="api", action="note",
                          payload={}, at=later)
        row = store.claim_outbox(now=later, lease_seconds=60, connector="g",
                                 incident_id=made.id)
        store.finish_outbox(row.id, at=later)
        store.store_inbox(connector="f", delivery_id=f"old-{n}", event_type="x", body=b"{}",
                          at=at)
        [event] = store.claim_inbox(now=at, lease_seconds=60, connector="f")
        store.finish_inbox(event.id, at=at, status="quarantined" if n % 10 == 0 else "done",
                           error="bad")
        store.record_call(connector="f", at=at, method="GET", path="/x", status=200,
                          duration_ms=1.0, error=None)


def _scrape(runtime):
    """The statements of one /metrics scrape, and how many SQLite VM steps it took."""
    from im.server.metrics import ServerMetrics

    metrics = ServerMetrics(runtime)
    conn = runtime.store.conn
    statements: list[str] = []
    steps = [0]

    def step():
        steps[0] += 1
        return 0

    conn.set_trace_callback(statements.append)
    conn.set_progress_handler(step, 1)
    try:
        text = metrics.render().decode()
    finally:
        conn.set_trace_callback(None)
        conn.set_progress_handler(None, 1)
    return text, statements, steps[0]


@pytest.fixture
def home_with_history(tmp_path):
    from im.testing import FakeClock, FakePlugin, make_runtime, run_cli

    clock = FakeClock()
    runtime = make_runtime(tmp_path / "home", plugins=[FakePlugin()], clock=clock)
    result = run_cli(runtime, ["connector", "add", "fake", "f", "--config",
                               '{"api_key": "k"}'])
    assert result.exit_code == 0, result.output
    _history(runtime, clock, 100, 0)
    # today: an open incident linked, a change queued, one failed, an event quarantined,
    # calls; the last rate limit said and the last error of a call are older than the
    # history (found without reading the calls since)
    store = runtime.store
    now = clock()
    store.record_call(connector="f", at=now - timedelta(days=50), method="GET", path="/x",
                      status=429, duration_ms=1.0, error="rate limited", rate_limit=900)
    made = store.insert_incident(title="now", description="", severity=Severity.SEV1,
                                 services=["api"], fields={}, correlation_id="now",
                                 created_by="t", at=now)
    store.upsert_link(Link(incident_id=made.id, connector="f", service="api", remote_id="RNOW",
                           remote_status="open", updated_at=now))
    with store.transaction() as tx:
        for action in ("ack", "note"):
            tx.outbox.add(connector="f", incident_id=made.id, service="api", action=action,
                          payload={}, at=now)
    row = store.claim_outbox(now=now, lease_seconds=60, connector="f")
    store.fail_outbox(row.id, error="refused", at=now)
    store.store_inbox(connector="f", delivery_id="now", event_type="x", body=b"{}", at=now)
    [event] = store.claim_inbox(now=now, lease_seconds=60, connector="f")
    store.finish_inbox(event.id, at=now, status="quarantined", error="bad")
    store.record_call(connector="f", at=now, method="GET", path="/y", status=200,
                      duration_ms=1.0, error=None)
    yield runtime, clock
    runtime.store.close()


def test_a_metrics_scrape_says_the_figures_of_the_history(home_with_history):
    """What the scrape below says, on either store (the statements' plans are SQLite's)."""
    from im.server.metrics import ServerMetrics

    runtime, _ = home_with_history
    text = ServerMetrics(runtime).render().decode()
    assert 'im_incidents{severity="SEV-3",status="closed"} 100.0' in text
    assert 'im_connector_incidents{connector="f"} 101.0' in text
    assert 'im_connector_rate_limit_usage_ratio{connector="f"} 0.00111' in text


@pytest.mark.sqlite_only
def test_no_statement_of_a_metrics_scrape_scans_a_big_table(home_with_history):
    """Every statement /metrics runs reads a kept count, a small table (connectors,
    cursors), or searches an index: never a scan of incidents, links, the outbox, the inbox,
    calls or the timeline, and never a sort but of the day's links."""
    runtime, _ = home_with_history
    text, statements, _ = _scrape(runtime)
    assert 'im_incidents{severity="SEV-3",status="closed"} 100.0' in text
    assert 'im_connector_incidents{connector="f"} 101.0' in text
    assert 'im_connector_rate_limit_usage_ratio{connector="f"} 0.00111' in text
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) >= 15
    for sql in reads:
        plan = [row[3] for row in runtime.store.conn.execute("EXPLAIN QUERY PLAN " + sql)]
        for line in plan:
            words = line.split()
            assert not (words[0] == "SCAN" and words[1] in BIG_TABLES), (sql, plan)
            assert "TEMP B-TREE" not in line or line == "USE TEMP B-TREE FOR count(DISTINCT)"
        if "TEMP B-TREE" in " ".join(plan):
            assert "(connector=? AND updated_at>?)" in plan[-1], (sql, plan)


def test_on_postgresql_no_statement_of_the_connector_figures_reads_a_big_table_whole(
        home_with_history, postgres_plans):
    """The same of the PostgreSQL store, for a /metrics scrape and `im metrics connector` and
    `im connector status` (the connector's figures): every statement that reads a big table
    searches an index of it, never reads the table or an index whole."""
    from im import observability
    from im.server.metrics import ServerMetrics

    runtime, _ = home_with_history
    with postgres_plans.watching() as seen:
        text = ServerMetrics(runtime).render().decode()
        observability.metrics(runtime, "f")
        observability.status(runtime, "f")
    assert 'im_connector_incidents{connector="f"} 101.0' in text
    reads = [(query, params) for query, params in seen
             if query.lstrip().upper().startswith("SELECT") and any(
                 f" {table} " in f"{query} " for table in BIG_TABLES)]
    assert len(reads) >= 15
    used = set()
    for query, params in reads:
        plan = postgres_plans.plan(query, params)
        assert postgres_plans.whole_reads(plan) == [], (query, plan)
        # rows come in the index's order; the latest call's ties on `at` are sorted by id
        assert "Sort  (" not in plan.replace("Incremental Sort  (", ""), (query, plan)
        used |= postgres_plans.indexes(plan)
    # each figure by an index made for it: a range of the day, or the newest entry (the day's
    # deliveries by connector and time, or by connector and status: the planner picks either
    # by the rows it expects, both searches)
    either = {"outbox_connector_created", "outbox_connector_status"}
    assert used & either, used
    assert used - either == {"outbox_connector_errors", "outbox_delivered",
                             "calls_connector_at", "calls_errors", "calls_rate_limits",
                             "inbox_received", "inbox_processed",
                             "links_connector_updated"}, used


@pytest.mark.sqlite_only
def test_a_metrics_scrape_costs_the_same_over_five_times_the_history(home_with_history):
    """The same figures of today, over 100 and then 500 past incidents: the scrape says the
    same of today and takes exactly as many SQLite steps (counted by the VM, not timed)."""
    runtime, clock = home_with_history
    before, _, steps_before = _scrape(runtime)
    _history(runtime, clock, 400, 100)
    after, _, steps_after = _scrape(runtime)
    today = [line for line in before.splitlines()
             if line.startswith("im_connector_") and "incidents" not in line]
    assert today and today == [line for line in after.splitlines()
                               if line.startswith("im_connector_") and "incidents" not in line]
    assert 'im_connector_incidents{connector="f"} 501.0' in after
    assert steps_after == steps_before, (steps_before, steps_after)


def test_the_connectors_with_links_are_told_without_reading_the_links(tmp_path, clock):
    """`im report --include-all` asks which connectors have links, removed ones included:
    from the kept counts, not a pass over every link (the statements' plans are SQLite's;
    the answer is checked on either store)."""
    store = make_runtime(tmp_path).store
    for n, connector in enumerate(("pd", "pd", "jira")):
        made = store.insert_incident(title="x", description="", severity=Severity.SEV2,
                                     services=["api"], fields={}, correlation_id=f"c{n}",
                                     created_by="t", at=clock.now)
        store.upsert_link(Link(incident_id=made.id, connector=connector, service="api",
                               remote_id=f"R{n}"))
    store.delete_connector("jira")
    statements: list[str] = []
    if store.kind == "sqlite":
        store.conn.set_trace_callback(statements.append)
    try:
        assert store.read().links.linked_connectors() == {"pd", "jira"}
    finally:
        if store.kind == "sqlite":
            store.conn.set_trace_callback(None)
    for sql in statements:
        plan = [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql)]
        assert not any(line.split()[1] in BIG_TABLES for line in plan), (sql, plan)
    store.close()


@pytest.mark.sqlite_only
def test_a_migration_merged_after_a_later_one_ran_is_applied_then(tmp_path, monkeypatch):
    """A migration numbered before one a database ran already (merged later from another
    branch) is applied on the next start, and the kept counts go on being kept."""
    import im.storage.sqlite.migrations as migrations

    store = SqliteStore(tmp_path / "im.db")
    store.close()
    late = ("0011_merged_later", "CREATE TABLE merged_later (x INTEGER);")
    position = [name for name, _ in MIGRATIONS].index("0012_cost_follows_changes")
    monkeypatch.setattr(migrations, "MIGRATIONS",
                        [*MIGRATIONS[:position], late, *MIGRATIONS[position:]])
    again = SqliteStore(tmp_path / "im.db")
    assert sorted(again.applied_migrations()) == sorted(
        name for name, _ in migrations.MIGRATIONS)
    again.conn.execute("SELECT count(*) FROM merged_later").fetchone()
    again.insert_incident(title="x", description="", severity=Severity.SEV2, services=["api"],
                          fields={}, correlation_id="c", created_by="t",
                          at=datetime.now(UTC))
    kept, real = _kept(again.conn)
    assert kept == real and kept["incident_counts"] == [("open", "SEV-2", 1)]
    again.close()
