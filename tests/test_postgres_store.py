"""What the PostgreSQL store does for several servers on one database: claims that never give a
row to two servers, migrations that run once when servers start together, duties held by one
server at a time, wake-ups heard by the others, and rate-limit budgets they share. Each "server"
here is a store of its own (its own pool and connections), as each `im serve` process has.

Runs where a PostgreSQL server is given (IM_TEST_DATABASE; .ci/run starts one)."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from im.errors import StorageError
from im.models import Severity

if not os.environ.get("IM_TEST_DATABASE"):
    pytest.skip("needs PostgreSQL: set IM_TEST_DATABASE (.ci/run does)",
                allow_module_level=True)

from im.storage.postgres import PostgresStore  # noqa: E402  (psycopg is there)


@pytest.fixture
def url() -> str:
    return os.environ["IM_DATABASE_URL"]  # this test's own database (conftest.py)


@pytest.fixture
def servers(url):
    made: list[PostgresStore] = []

    def server() -> PostgresStore:
        made.append(PostgresStore(url))
        return made[-1]

    yield server
    for store in made:
        store.dispose()


@pytest.fixture
def empty_database():
    """A database with nothing in it, not even im's schema."""
    admin_url = os.environ["IM_TEST_DATABASE"]
    name = f"im_empty_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def declare(store: PostgresStore, n: int, clock_now) -> list[str]:
    ids = []
    with store.transaction() as tx:
        for i in range(n):
            incident = tx.incidents.add(title=f"incident {i}", description="",
                                        severity=Severity.SEV2, services=["api"], fields={},
                                        correlation_id=f"c{i}", created_by="alice",
                                        at=clock_now)
            tx.outbox.add(connector="remote", incident_id=incident.id, service="api",
                          action="declare", payload={}, at=clock_now)
            ids.append(incident.id)
    return ids


def test_servers_claiming_at_once_never_get_the_same_change(servers, clock):
    stores = [servers(), servers()]
    declare(stores[0], 40, clock.now)
    claimed: list[tuple[int, int]] = []
    guard = threading.Lock()

    def claim_all(store: PostgresStore, worker: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = store.claim_outbox(now=clock.now, lease_seconds=120)
            if row is None:
                return
            with guard:
                claimed.append((row.id, worker))
            store.finish_outbox(row.id, at=clock.now)

    threads = [threading.Thread(target=claim_all, args=(stores[i % 2], i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ids = [row_id for row_id, _ in claimed]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 40
    assert {row.status for row in stores[0].outbox()} == {"done"}


def test_a_change_claimed_by_a_server_that_died_is_taken_over_after_its_lease(servers, clock):
    first, second = servers(), servers()
    declare(first, 1, clock.now)
    claimed = first.claim_outbox(now=clock.now, lease_seconds=120)
    assert claimed is not None
    first.dispose()  # the server is gone; its claim stays until the lease runs out
    assert second.claim_outbox(now=clock.now + timedelta(seconds=119), lease_seconds=120) is None
    again = second.claim_outbox(now=clock.now + timedelta(seconds=121), lease_seconds=120)
    assert again is not None and again.id == claimed.id and again.attempts == 2


def test_changes_of_one_incident_go_in_order_across_servers(servers, clock):
    first, second = servers(), servers()
    [incident] = declare(first, 1, clock.now)
    with first.transaction() as tx:
        tx.outbox.add(connector="remote", incident_id=incident, service="api", action="ack",
                      payload={}, at=clock.now)
    declared = first.claim_outbox(now=clock.now, lease_seconds=120)
    assert declared is not None and declared.action == "declare"
    # the ack waits while its incident's declare is being delivered, on whichever server
    assert second.claim_outbox(now=clock.now, lease_seconds=120) is None
    first.finish_outbox(declared.id, at=clock.now)
    acked = second.claim_outbox(now=clock.now, lease_seconds=120)
    assert acked is not None and acked.action == "ack"


def test_a_delivery_received_by_two_servers_is_stored_once(servers, clock):
    first, second = servers(), servers()
    assert first.store_inbox_many([("remote", "d1", "x", b"{}", clock.now)]) == [True]
    assert second.store_inbox_many([("remote", "d1", "x", b"{}", clock.now),
                                    ("remote", "d2", "x", b"{}", clock.now),
                                    ("remote", "d2", "x", b"{}", clock.now)]) == [
        False, True, False]
    assert [row.delivery_id for row in first.inbox()] == ["d1", "d2"]


def test_a_key_asked_of_two_servers_is_new_to_one_of_them(servers, clock):
    first, second = servers(), servers()
    expires = clock.now + timedelta(minutes=10)
    assert first.first_time("k1", now=clock.now, expires_at=expires) is True
    assert second.first_time("k1", now=clock.now, expires_at=expires) is False
    later = clock.now + timedelta(minutes=11)
    assert second.first_time("k1", now=later, expires_at=later + timedelta(minutes=10))
    assert first.first_time("k1", now=later, expires_at=later) is False


def test_servers_starting_together_migrate_once(empty_database):
    stores = [PostgresStore(empty_database) for _ in range(3)]
    errors: list[BaseException] = []

    def start(store: PostgresStore) -> None:
        try:
            store.applied_migrations()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=start, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        from im.storage.postgres.migrations import MIGRATIONS

        assert stores[0].applied_migrations() == [name for name, _ in MIGRATIONS]
    finally:
        for store in stores:
            store.dispose()


def test_a_database_of_another_program_is_left_as_it_is(empty_database):
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int)")
    store = PostgresStore(empty_database)
    with pytest.raises(StorageError, match="holds tables of another program"):
        store.applied_migrations()
    with psycopg.connect(empty_database, autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public'")]
    assert tables == ["orders"]


def test_an_unreachable_database_is_one_clear_error():
    store = PostgresStore("postgresql://im:secret@127.0.0.1:1/im")
    with pytest.raises(StorageError) as error:
        store.applied_migrations()
    message = str(error.value)
    assert message.startswith("cannot connect to the database at postgresql://im:***@127.0.0.1:1/im")
    assert "secret" not in message and "\n" not in message


def test_one_server_at_a_time_holds_a_duty_and_another_takes_it_when_it_dies(servers):
    first, second = servers(), servers()
    lead, other = first.leadership("poll:pd"), second.leadership("poll:pd")
    assert lead.acquire() is True
    assert other.acquire() is False
    assert lead.acquire() is True  # still its own
    assert second.leadership("sla").acquire() is True  # another duty is another lock
    lead._conn.close()  # the server's connection dies with it
    deadline = time.monotonic() + 10  # the database server ends that session a moment later
    while not other.acquire() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert other.acquire() is True
    assert lead.acquire() is False


def test_work_stored_by_one_server_wakes_the_others_once_committed(servers, clock):
    first, second = servers(), servers()
    listener = second.listener()
    try:
        assert listener.wait(timeout=0.2) == set()
        with first.transaction():
            first.store_inbox_many([("remote", "d1", "x", b"{}", clock.now)])
            assert listener.wait(timeout=0.3) == set()  # not before the commit
        assert listener.wait(timeout=5) == {"inbox"}
        # a change queued is delivered by the process that queued it (a command says what
        # the remote made of it): the servers are not woken to race it for the row
        declare(first, 1, clock.now)
        assert listener.wait(timeout=0.5) == set()
        # a duplicate stores nothing, and wakes nobody
        first.store_inbox_many([("remote", "d1", "x", b"{}", clock.now)])
        assert listener.wait(timeout=0.3) == set()
    finally:
        listener.close()


def test_servers_spend_one_rate_limit_budget(servers):
    from limits import RateLimitItemPerMinute
    from limits.strategies import FixedWindowRateLimiter

    item = RateLimitItemPerMinute(5)
    one, two = (FixedWindowRateLimiter(servers().shared_rate_limits()) for _ in range(2))
    hits = [limiter.hit(item, "connector:key") for limiter in (one, two, one, two, one, two)]
    assert hits == [True, True, True, True, True, False]
    reset, remaining = two.get_window_stats(item, "connector:key")
    assert remaining == 0 and 0 < reset - time.time() <= 60
    assert one.hit(item, "another key") is True


def test_a_shared_budget_says_when_it_resets_by_this_hosts_clock(servers, monkeypatch):
    """The window is counted by the database's clock; a host whose clock is off still waits
    the seconds left, not the difference of the two clocks."""
    from limits import RateLimitItemPerMinute
    from limits.strategies import FixedWindowRateLimiter

    item = RateLimitItemPerMinute(1)
    limiter = FixedWindowRateLimiter(servers().shared_rate_limits())
    assert limiter.hit(item, "k") and not limiter.hit(item, "k")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # this host an hour behind
    reset, _ = limiter.get_window_stats(item, "k")
    assert 0 < reset - time.time() <= 60


def test_incidents_linked_are_counted_right_whatever_the_statement(servers, clock):
    """The count /metrics reads is kept by a trigger: right when one statement writes or
    removes several links of an incident (a copy, a cleanup), as when each is written alone."""
    store = servers()
    declare(store, 2, clock.now)
    store.rows("INSERT INTO links (number, connector, service, remote_id, updated_at)"
               " SELECT n, 'remote', s, 'R' || n || s, now() FROM"
               " (VALUES (1, 'api'), (1, 'db'), (2, 'api')) AS v(n, s)")
    assert store.read().links.incidents_linked("remote") == 2
    store.rows("UPDATE links SET number = 2 WHERE number = 1 AND service = 'db'")
    assert store.read().links.incidents_linked("remote") == 2
    store.rows("DELETE FROM links WHERE number = 2")
    assert store.read().links.incidents_linked("remote") == 1
    store.rows("DELETE FROM links")
    assert store.read().links.incidents_linked("remote") == 0


def test_a_server_stores_a_delivery_while_another_is_in_the_middle_of_a_write(servers, clock):
    """Answering a sender never waits for another server applying a batch of events (which
    holds the writers' lock): storing deliveries, call records and log lines does not take
    it."""
    first, second = servers(), servers()
    holding, release = threading.Event(), threading.Event()

    def long_write() -> None:
        with first.transaction():
            holding.set()
            release.wait(timeout=20)

    writer = threading.Thread(target=long_write)
    writer.start()
    try:
        assert holding.wait(timeout=10)
        started = time.monotonic()
        assert second.store_inbox_many([("remote", "d1", "x", b"{}", clock.now)]) == [True]
        second.record_call(connector="remote", at=clock.now, method="GET", path="/x",
                           status=200, duration_ms=5.0, error=None)
        second.add_logs([{"at": clock.now, "level": "INFO", "levelno": 20,
                          "component": "im.webhook", "connector": "remote",
                          "message": "stored", "data": {}}])
        waited = time.monotonic() - started
    finally:
        release.set()
        writer.join(timeout=30)
    assert waited < 5, f"storing waited {waited:.1f} s for the other server's write"
    assert [row.delivery_id for row in first.inbox()] == ["d1"]


def test_a_server_frozen_in_a_write_holds_the_others_up_only_so_long(servers, clock,
                                                                      monkeypatch):
    """A server frozen (SIGSTOP, a paused VM) inside a write transaction would hold the
    writers' lock, and every other server's writes, for as long as it stays frozen: the
    database ends a transaction idle that long (30 s; 1 s here), and the others go on."""
    from im.storage.postgres import database

    monkeypatch.setattr(database, "IDLE_IN_TRANSACTION", "1s")
    frozen, other = servers(), servers()
    holding, resumed = threading.Event(), []

    def freeze_in_a_write() -> None:
        try:
            with frozen.transaction() as tx:
                tx.meta.set("written by", "the frozen server")
                holding.set()
                time.sleep(3)  # frozen: not a statement sent
                tx.meta.set("still", "there")
        except Exception as error:  # noqa: BLE001 - what the frozen server meets on waking
            resumed.append(error)

    thread = threading.Thread(target=freeze_in_a_write)
    thread.start()
    assert holding.wait(timeout=10)
    started = time.monotonic()
    with other.transaction() as tx:
        tx.meta.set("written by", "another server")
    waited = time.monotonic() - started
    thread.join(timeout=30)
    assert waited < 2.5, waited
    assert other.get_meta("written by") == "another server"
    assert other.get_meta("still") is None  # nothing of the frozen server's transaction
    assert resumed and isinstance(resumed[0], psycopg.Error)


def test_servers_storing_deliveries_of_several_connectors_at_once_never_deadlock(servers,
                                                                                 clock):
    """Deliveries are stored without the writers' lock, by several servers at once; the
    counts /metrics reads change in one order whatever the batches' (a deadlock made
    PostgreSQL abort one batch a second, and its senders were answered an error)."""
    stores = [servers(), servers()]
    errors: list[BaseException] = []
    names = ["c1", "c2", "c3"]

    def store_batches(worker: int) -> None:
        order = names if worker % 2 else list(reversed(names))
        store = stores[worker % 2]
        for batch in range(40):
            try:
                store.store_inbox_many([(name, f"{worker}-{batch}-{name}", "x", b"{}",
                                         clock.now) for name in order])
            except BaseException as error:  # noqa: BLE001 - counted below
                errors.append(error)

    threads = [threading.Thread(target=store_batches, args=(n,)) for n in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [], f"{len(errors)} batches failed: {errors[0]!r}"
    assert time.monotonic() - started < 60
    counts = {(c, s): n for c, s, n in stores[0].read().inbox.count_by_connector_and_status()}
    assert counts == {(name, "pending"): 160 for name in names}
    claimed = stores[1].claim_inbox(now=clock.now, lease_seconds=20, limit=50)
    counts = {(c, s): n for c, s, n in stores[0].read().inbox.count_by_connector_and_status()}
    assert sum(n for (c, s), n in counts.items() if s == "processing") == len(claimed) == 50
    assert sum(counts.values()) == 480


def test_names_come_in_the_same_order_whatever_the_databases_collation(clock):
    """On a database made with a language's collation (as most are), lists by name come in
    code-point order, as on SQLite: `im connector list` and the API page the same way."""
    from im.models import ConnectorRecord

    admin_url = os.environ["IM_TEST_DATABASE"]
    name = f"im_en_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu"
                      " ICU_LOCALE 'en' LOCALE 'C'")
    store = PostgresStore(urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}")))
    try:
        names = ["pd_b", "Zeta", "pd2", "alpha", "pd-a"]
        for connector in names:
            store.save_connector(ConnectorRecord(name=connector, type="fake", settings={},
                                                 created_at=clock.now, updated_at=clock.now))
        assert [record.name for record in store.list_connectors()] == sorted(names)
    finally:
        store.dispose()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_server_frozen_in_the_middle_of_a_claim_does_not_hold_up_deliveries(servers, clock):
    """A server that claimed events and froze before committing holds those rows, and no
    count another server's deliveries need: they are stored at once."""
    first, second = servers(), servers()
    first.store_inbox_many([("remote", "d1", "x", b"{}", clock.now)])
    holding, release = threading.Event(), threading.Event()

    def claim_and_freeze() -> None:
        with first.transaction() as tx:
            assert len(tx.inbox.claim(now=clock.now, lease_seconds=20)) == 1
            holding.set()
            release.wait(timeout=20)

    thread = threading.Thread(target=claim_and_freeze)
    thread.start()
    try:
        assert holding.wait(timeout=10)
        started = time.monotonic()
        assert second.store_inbox_many([("remote", "d2", "x", b"{}", clock.now)]) == [True]
        waited = time.monotonic() - started
    finally:
        release.set()
        thread.join(timeout=30)
    assert waited < 2, f"storing waited {waited:.1f} s for the frozen claim"
    assert sorted(second.read().inbox.count_by_connector_and_status()) == [
        ("remote", "pending", 1), ("remote", "processing", 1)]


def test_readiness_is_answered_within_seconds_when_the_database_cannot_be_reached(
        empty_database, clock):
    """A load balancer asks /health/ready often: with the database refusing connections, the
    check says so in seconds, not after the pool's 30 s wait."""
    store = PostgresStore(empty_database)
    try:
        store.probe_write(clock.now)  # reachable: fine
        name = urlsplit(empty_database).path.lstrip("/")
        with psycopg.connect(os.environ["IM_TEST_DATABASE"], autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        for _ in range(2):  # the connection the database ended, then a new one it refuses
            started = time.monotonic()
            with pytest.raises(Exception):  # noqa: B017 - whichever the pool or driver raises
                store.probe_write(clock.now)
            assert time.monotonic() - started < 8
    finally:
        store.dispose()
