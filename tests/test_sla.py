"""SLA timers, driven by a controllable clock: start, stop, re-target, breach once."""

import json
from datetime import timedelta

import msgspec
import pytest

from im import hookimpl, incidents
from im.sla import check_breaches
from im.connectors import ConnectorSettings
from im.models import Action, Origin
from im.testing import FakeConnector, FakeRemote, make_runtime, run_cli


class Breaches:
    def __init__(self):
        self.seen = []

    @hookimpl
    def sla_breached(self, incident, timer):
        self.seen.append((incident.id, timer.kind, timer.target_seconds))


class PagingCustom(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sla_mapping: dict[str, dict[str, str]] = {}


class PagingSettings(ConnectorSettings, frozen=True, kw_only=True):
    api_key: str = "k"
    custom: PagingCustom = PagingCustom()


class PagingPlugin:
    """A connector type (`paging`) whose SLA targets are its `custom.sla_mapping`."""

    @hookimpl
    def register_connectors(self, register):
        register(type("PagingConnector", (FakeConnector,), {
            "type": "paging", "Settings": PagingSettings, "remote": FakeRemote(),
            "sla_policy": lambda self, request: self.settings.custom.sla_mapping or None}))


def im(runtime, *args):
    return run_cli(runtime, list(args))


def test_default_targets_and_states(runtime, clock):
    start = clock.now
    incidents.declare(runtime, title="API down", severity="SEV-1", services=["api"])
    clock.advance(minutes=10)
    assert im(runtime, "sla").stdout.splitlines() == [
        "Incident  Severity  Timer    Due               State     Title",
        f"INC-1     SEV-1     ack      {start + timedelta(minutes=15):%Y-%m-%d %H:%M}  5m left   API down",
        f"INC-1     SEV-1     resolve  {start + timedelta(hours=1):%Y-%m-%d %H:%M}  50m left  API down",
        "(targets set by: SEV-1 default, SEV-2 default, SEV-3 default, SEV-4 default)",
    ]
    incidents.transition(runtime, "INC-1", Action.ACK)
    shown = im(runtime, "show", "INC-1").stdout
    assert "SLA:          ack met (10m), resolve 50m left" in shown


def test_breach_is_notified_once_everywhere(tmp_path, clock):
    from im.testing import FakePlugin

    breaches = Breaches()
    fake = FakePlugin()
    runtime = make_runtime(tmp_path, plugins=[fake, breaches], clock=clock)
    run_cli(runtime, ["connector", "add", "fake", "f", "--config", '{"api_key": "k"}'])
    im(runtime, "declare", "--sev", "SEV-2", "--title", "DB slow", "--service", "db,api")
    due = clock.now + timedelta(minutes=30)
    clock.advance(minutes=29)
    assert im(runtime, "sla", "check").stdout == "No new SLA breaches.\n"
    clock.advance(minutes=2)
    result = im(runtime, "sla", "check")
    assert result.stdout.splitlines()[0] == (
        "INC-1: SLA breached, not acknowledged within 30m (SEV-2)")
    assert im(runtime, "sla", "check").stdout == "No new SLA breaches.\n"
    assert breaches.seen == [("INC-1", "ack", 1800.0)]
    [event] = [e for e in runtime.store.timeline("INC-1") if e.kind == "sla_breached"]
    assert event.text == ("SLA breached: not acknowledged within 30m"
                          f" (SEV-2, due {due:%Y-%m-%d %H:%M})")
    # a note on every linked remote incident
    notes = [r["notes"] for r in fake.remote.incidents.values()]
    assert notes == [[event.text], [event.text]]
    assert "ack breached 1m ago" in im(runtime, "list").stdout


def test_acks_from_either_side_stop_the_timer_and_reopen_restarts(runtime, clock):
    incidents.declare(runtime, title="x", severity="SEV-3", services=["web"],
                      origin=Origin(actor="john", system="prod-paging"))
    clock.advance(minutes=30)
    incidents.transition(runtime, "INC-1", Action.ACK,
                         origin=Origin(actor="john", system="prod-paging"))
    clock.advance(hours=1)
    incidents.transition(runtime, "INC-1", Action.RESOLVE)
    assert "No SLA timers running" in im(runtime, "sla").stdout
    clock.advance(hours=30)
    incidents.transition(runtime, "INC-1", Action.REOPEN)
    rows = json.loads(im(runtime, "sla", "--json").stdout)
    assert [(r["kind"], r["state"]) for r in rows] == [("ack", "ack 2h left"),
                                                        ("resolve", "resolve 1d left")]
    assert im(runtime, "sla", "check").stdout == "No new SLA breaches.\n"


def test_severity_change_retargets_running_timers(runtime, clock):
    incidents.declare(runtime, title="x", severity="SEV-3", services=["web"])
    clock.advance(minutes=20)
    assert im(runtime, "severity", "--incident", "INC-1", "--sev", "SEV-1").stdout == (
        "INC-1 is now SEV-1\n")
    assert im(runtime, "sla", "check").stdout == (
        "INC-1: SLA breached, not acknowledged within 15m (SEV-1)\n")
    same = im(runtime, "severity", "--incident", "INC-1", "--sev", "SEV-1")
    assert (same.exit_code, same.stderr) == (1, "Error: INC-1 is SEV-1 already\n")


def test_policy_from_settings_file_and_bad_policies(tmp_path, clock):
    (tmp_path / "settings.json").write_text(json.dumps(
        {"sla": {"SEV-2": {"ack": "5m", "resolve": "1h"}}}))
    runtime = make_runtime(tmp_path, clock=clock)
    incidents.declare(runtime, title="x", severity="SEV-2", services=["web"])
    assert "ack 5m left" in im(runtime, "list").stdout
    (tmp_path / "settings.json").write_text(json.dumps({"sla": {"SEV-9": {"ack": "5m"}}}))
    broken = make_runtime(tmp_path, clock=clock)
    result = im(broken, "sla")
    assert result.stderr == ("Error: settings sla: unknown severity 'SEV-9'; use SEV-1 to"
                             " SEV-4\n")


def test_oversized_or_zero_targets_are_refused_by_name(tmp_path, clock):
    """A connector's targets (a paging connector refuses them already where they
    are configured; this one does not) and the settings file's: every command that reads the
    targets names the field, never an overflow."""
    runtime = make_runtime(tmp_path, plugins=[PagingPlugin()], clock=clock)
    incidents.declare(runtime, title="x", severity="SEV-1", services=["web"])
    for value, problem in [
            ("99999999999d", "'99999999999d' is too long; an SLA target is at most 365d"),
            ("366d", "'366d' is too long; an SLA target is at most 365d"),
            ("0m", "'0m' is no time; an SLA target must be longer than 0s")]:
        config = {"api_key": "k", "custom": {"sla_mapping": {"SEV-1": {"ack": value}}}}
        assert im(runtime, "connector", "add", "paging", "ops", "--config",
                  json.dumps(config)).exit_code == 0
        for command in (["sla"], ["list"]):
            result = im(runtime, *command)
            assert (result.exit_code, result.stderr) == (
                1, f"Error: ops sla_mapping.SEV-1.ack: {problem}\n"), command
        assert im(runtime, "connector", "remove", "ops", "--yes").exit_code == 0
    runtime.store.close()
    # The same in the settings file: every command that reads the targets names the field.
    (tmp_path / "settings.json").write_text(json.dumps(
        {"sla": {"SEV-1": {"ack": "99999999999d"}}}))
    broken = make_runtime(tmp_path, clock=clock)
    for command in (["sla"], ["list"], ["show", "INC-1"], ["sla", "check"]):
        result = im(broken, *command)
        assert (result.exit_code, result.stderr) == (
            1, ("Error: settings sla.SEV-1.ack: '99999999999d' is too long; an SLA target is"
                " at most 365d\n")), command
    (tmp_path / "settings.json").write_text(json.dumps({"sla": {"SEV-1": {"resolve": "0s"}}}))
    result = im(make_runtime(tmp_path, clock=clock), "sla")
    assert result.stderr == ("Error: settings sla.SEV-1.resolve: '0s' is no time; an SLA target"
                             " must be longer than 0s\n")


def test_an_ack_target_longer_than_the_resolve_target_is_refused(tmp_path, clock):
    """Refused where targets are saved (a connector's settings); in a settings file im only
    reads, it is said, and nothing else stops working (`im list` among them)."""
    (tmp_path / "settings.json").write_text(json.dumps(
        {"sla": {"SEV-2": {"ack": "5h", "resolve": "4h"}}}))
    result = im(make_runtime(tmp_path, clock=clock), "sla")
    assert (result.exit_code, result.stderr) == (
        0, "Note: SLA targets of SEV-2: ack 5h (settings file) is longer than resolve 4h"
           " (settings file); an incident is acknowledged before it is resolved\n")
    (tmp_path / "settings.json").write_text(json.dumps({"sla": {"SEV-2": {"resolve": "20m"}}}))
    runtime = make_runtime(tmp_path, clock=clock)
    result = im(runtime, "sla")
    assert (result.exit_code, result.stderr) == (
        0, "Note: SLA targets of SEV-2: ack 30m (default) is longer than resolve 20m"
           " (settings file); an incident is acknowledged before it is resolved\n")
    incidents.declare(runtime, title="x", severity="SEV-2", services=["web"])
    for command in (["list"], ["show", "INC-1"], ["sla", "check"]):
        assert im(runtime, *command).exit_code == 0, command
    (tmp_path / "settings.json").unlink()
    runtime = make_runtime(tmp_path, plugins=[PagingPlugin()], clock=clock)
    config = {"api_key": "k", "custom": {"sla_mapping": {"SEV-1": {"ack": "2h"}}}}
    added = im(runtime, "connector", "add", "paging", "ops", "--config", json.dumps(config))
    assert (added.exit_code, added.stderr) == (
        1, "Error: invalid settings: SLA targets of SEV-1: ack 2h (ops) is longer than resolve"
           " 1h (default); an incident is acknowledged before it is resolved\n")
    assert runtime.store.list_connectors() == []


def test_footer_says_what_set_each_severitys_targets(tmp_path, clock):
    (tmp_path / "settings.json").write_text(json.dumps(
        {"sla": {"SEV-2": {"ack": "1m"}, "SEV-4": {"ack": "2s", "resolve": "4s"}}}))
    runtime = make_runtime(tmp_path, plugins=[PagingPlugin()], clock=clock)
    config = {"api_key": "k", "custom": {"sla_mapping": {"SEV-1": {"ack": "10m"},
                                                         "SEV-2": {"resolve": "2h"}}}}
    assert im(runtime, "connector", "add", "paging", "ops", "--config",
              json.dumps(config)).exit_code == 0
    assert im(runtime, "sla").stdout == (
        "No SLA timers running (targets set by: SEV-1 default + ops, SEV-2 ops + settings file,"
        " SEV-3 default, SEV-4 settings file).\n")
    incidents.declare(runtime, title="x", severity="SEV-1", services=["web"])
    incidents.declare(runtime, title="y", severity="SEV-2", services=["web"])
    rows = json.loads(im(runtime, "sla", "--json").stdout)
    # A connector setting only one target of a severity leaves the other to the next source.
    assert [(r["incident"], r["kind"], r["target_seconds"]) for r in rows] == [
        ("INC-2", "ack", 60), ("INC-1", "ack", 600), ("INC-1", "resolve", 3600),
        ("INC-2", "resolve", 7200)]
    assert im(runtime, "sla").stdout.splitlines()[-1] == (
        "(targets set by: SEV-1 default + ops, SEV-2 ops + settings file, SEV-3 default,"
        " SEV-4 settings file)")


def test_each_breach_is_followed_by_its_own_notes(tmp_path, clock):
    from im.testing import FakePlugin

    (tmp_path / "settings.json").write_text(json.dumps(
        {"sla": {"SEV-4": {"ack": "2s", "resolve": "4s"}}}))
    fake = FakePlugin()
    runtime = make_runtime(tmp_path, plugins=[fake], clock=clock)
    run_cli(runtime, ["connector", "add", "fake", "f", "--config", '{"api_key": "k"}'])
    im(runtime, "declare", "--sev", "SEV-4", "--title", "Disk full", "--service", "db")
    clock.advance(seconds=5)
    assert im(runtime, "sla", "check").stdout.splitlines() == [
        "INC-1: SLA breached, not acknowledged within 2s (SEV-4)",
        "  f: Fake incident #1 sla_breach synced",
        "INC-1: SLA breached, not resolved within 4s (SEV-4)",
        "  f: Fake incident #1 sla_breach synced",
    ]
    [remote] = fake.remote.incidents.values()
    texts = [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sla_breached"]
    assert len(texts) == 2 and remote["notes"] == texts


@pytest.mark.sqlite_only
def test_a_check_with_nothing_new_due_writes_nothing(runtime, clock):
    """Breaches recorded by an earlier check are not written again: no write transaction."""
    for n in range(3):
        incidents.declare(runtime, title=f"API down {n}", severity="SEV-1", services=["api"])
    clock.advance(hours=2)  # every ack and resolve timer breached
    assert len(im(runtime, "sla", "check").stdout.splitlines()) >= 6
    statements = []
    runtime.store.conn.set_trace_callback(statements.append)
    try:
        assert im(runtime, "sla", "check").stdout == "No new SLA breaches.\n"
    finally:
        runtime.store.conn.set_trace_callback(None)
    assert [s for s in statements if s.startswith(("BEGIN", "INSERT", "UPDATE"))] == []


@pytest.mark.sqlite_only
def test_sla_check_with_more_open_incidents_than_sqlites_default_variable_limit(runtime, clock):
    """SQLite's default limit is 32,766 parameters a statement; `im sla`, `im sla --json` and
    `im list` read every open incident at once (and `sla check` the overdue ones), so no
    statement may take one parameter per incident."""
    import sqlite3

    conn = runtime.store.conn
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)
    count = 32_800
    old = (clock.now - timedelta(days=2)).isoformat(timespec="microseconds")
    recent = clock.now.isoformat(timespec="microseconds")
    with runtime.store.transaction():
        conn.executemany(
            "INSERT INTO incidents (number, title, severity, status, correlation_id,"
            " created_by, created_at, updated_at) VALUES (?, ?, 'SEV-3', 'open', ?, 'alice',"
            " ?, ?)", [(n, f"Incident {n}", f"c{n}", old if n <= 2 else recent,
                        old if n <= 2 else recent) for n in range(1, count + 1)])
        conn.executemany("INSERT INTO incident_services (number, position, service)"
                         " VALUES (?, 0, 'api')", [(n,) for n in range(1, count + 1)])
    result = im(runtime, "sla", "check")
    assert result.exit_code == 0, result.output
    # the two declared two days ago breached both targets; the rest are not due yet
    assert sorted(line.split(":")[0] for line in result.stdout.splitlines()
                  if "SLA breached" in line) == ["INC-1", "INC-1", "INC-2", "INC-2"]
    assert im(runtime, "sla", "check").stdout == "No new SLA breaches.\n"
    # every open incident's two timers, breached ones first
    listed = im(runtime, "sla")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert len(lines) == 1 + 2 * count + 1
    assert [line.split()[:3] for line in lines[1:5]] == [
        ["INC-2", "SEV-3", "ack"], ["INC-1", "SEV-3", "ack"], ["INC-2", "SEV-3", "resolve"],
        ["INC-1", "SEV-3", "resolve"]]
    assert {line.split()[0] for line in lines[1:-1]} == {
        f"INC-{n}" for n in range(1, count + 1)}
    as_json = im(runtime, "sla", "--json")
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert len(rows) == 2 * count
    assert {row["incident"] for row in rows} == {f"INC-{n}" for n in range(1, count + 1)}
    found = im(runtime, "list", "--status", "open", "--limit", "100000", "--json")
    assert found.exit_code == 0, found.output
    assert [(i["id"], i["services"]) for i in json.loads(found.stdout)] == [
        (f"INC-{n}", ["api"]) for n in range(count, 0, -1)]


def test_a_breach_note_refused_for_good_exits_3_once_every_breach_is_recorded(tmp_path,
                                                                             clock):
    """A connector refuses the first breach's note for good: the second breach is still
    recorded and delivered, and `im sla check` then exits with 3 (a change refused, kept in
    im), not 0."""
    from im.errors import ConnectorError
    from im.testing import FakePlugin

    (tmp_path / "settings.json").write_text(json.dumps(
        {"sla": {"SEV-4": {"ack": "2s", "resolve": "4s"}}}))
    fake = FakePlugin()
    runtime = make_runtime(tmp_path, plugins=[fake], clock=clock)
    run_cli(runtime, ["connector", "add", "fake", "f", "--config", '{"api_key": "k"}'])
    im(runtime, "declare", "--sev", "SEV-4", "--title", "Disk full", "--service", "db")
    clock.advance(seconds=5)
    fake.remote.failures.append(ConnectorError("Invalid Input Provided", retryable=False))
    result = im(runtime, "sla", "check")
    assert result.exit_code == 3
    assert result.stdout.splitlines() == [
        "INC-1: SLA breached, not acknowledged within 2s (SEV-4)",
        "INC-1: SLA breached, not resolved within 4s (SEV-4)",
        "  f: Fake incident #1 sla_breach synced",
    ]
    assert result.stderr == (
        "  ! f INC-1 sla_breach: Invalid Input Provided\n"
        "  1 change(s) refused for good and set aside; INC-1 keeps the change in im. Fix the"
        " cause, then `im connector sync f --retry-failed` sends it again\n")
    assert len([e for e in runtime.store.timeline("INC-1") if e.kind == "sla_breached"]) == 2
    assert [row.status for row in runtime.store.outbox(statuses=("failed",))] == ["failed"]


@pytest.mark.sqlite_only
def test_a_check_reads_the_overdue_timers_by_index_not_every_open_incident(runtime, clock):
    """`im serve` checks every 15 s: the statements of a check search incidents through
    incidents_ack_due and incidents_resolve_due (severity, start, of the incidents whose
    running timer was not breached), never scan them."""
    for n in range(20):
        incidents.declare(runtime, title=f"Incident {n}", severity="SEV-2", services=["api"])
    clock.advance(hours=1)
    check_breaches(runtime)
    statements: list[str] = []
    runtime.store.conn.set_trace_callback(statements.append)
    try:
        assert check_breaches(runtime) == []
    finally:
        runtime.store.conn.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().startswith("SELECT") and "FROM incidents" in s]
    assert reads
    for sql in reads:
        plan = " | ".join(row[3] for row in runtime.store.conn.execute(
            "EXPLAIN QUERY PLAN " + sql))
        assert "SCAN incidents" not in plan, (sql, plan)
        assert "incidents_ack_due" in plan or "incidents_resolve_due" in plan, (sql, plan)


def test_on_postgresql_a_check_reads_the_overdue_timers_by_index(runtime, clock,
                                                                 postgres_plans):
    """The same of the PostgreSQL store: each statement of a check searches the partial
    index of its timer's kind, by severity and start; none reads incidents whole."""
    for n in range(20):
        incidents.declare(runtime, title=f"Incident {n}", severity="SEV-2", services=["api"])
    clock.advance(hours=1)
    assert len(check_breaches(runtime)) == 20
    with postgres_plans.watching() as seen:
        assert check_breaches(runtime) == []
    reads = [(query, params) for query, params in seen
             if query.lstrip().startswith("SELECT") and "FROM incidents" in query]
    assert len(reads) == 8  # ack and resolve of each severity
    for query, params in reads:
        plan = postgres_plans.plan(query, params)
        index = "incidents_ack_due" if "ack_breached_start" in query else "incidents_resolve_due"
        assert postgres_plans.indexes(plan) == {index}, (query, plan)
        assert postgres_plans.whole_reads(plan) == [], (query, plan)
        assert "Index Cond: ((severity = 'SEV-" in plan, (query, plan)


def _check_steps(runtime):
    """SQLite's virtual-machine steps of one check: work, counted rather than timed."""
    steps = [0]

    def step():
        steps[0] += 1
        return 0

    runtime.store.conn.set_progress_handler(step, 1)
    try:
        assert check_breaches(runtime) == []
    finally:
        runtime.store.conn.set_progress_handler(None, 1)
    return steps[0]


@pytest.mark.sqlite_only
def test_a_check_with_nothing_new_due_does_not_read_the_breaches_of_long_ago(tmp_path, clock):
    """Open incidents whose timers were breached long ago (and notified) are not read again by
    every check: one with 200 of them costs what one with 5 does."""
    from im.testing import make_runtime

    costs = []
    for count in (5, 200):
        runtime = make_runtime(tmp_path / f"home-{count}", clock=clock)
        for n in range(count):
            incidents.declare(runtime, title=f"Incident {n}", severity="SEV-2",
                              services=["api"])
        clock.advance(days=2)
        assert len(check_breaches(runtime)) == 2 * count  # ack and resolve, once each
        costs.append(_check_steps(runtime))
        runtime.store.close()
    assert costs[1] <= costs[0] * 1.2, costs


@pytest.mark.sqlite_only
def test_breaches_recorded_before_the_upgrade_are_not_read_again(tmp_path, clock):
    import sqlite3

    from im.storage.sqlite import SqliteStore
    from im.testing import make_runtime

    runtime = make_runtime(tmp_path / "home", clock=clock)
    for n in range(3):
        incidents.declare(runtime, title=f"Incident {n}", severity="SEV-2", services=["api"])
    clock.advance(days=2)
    assert len(check_breaches(runtime)) == 6
    runtime.store.close()
    conn = sqlite3.connect(tmp_path / "home" / "im.db")
    with conn:  # the database as an im before migration 0014 left it
        conn.execute("DROP INDEX incidents_ack_due")
        conn.execute("DROP INDEX incidents_resolve_due")
        conn.execute("ALTER TABLE incidents DROP COLUMN ack_breached_start")
        conn.execute("ALTER TABLE incidents DROP COLUMN resolve_breached_start")
        conn.execute("CREATE INDEX incidents_sla_due"
                     " ON incidents(status, severity, coalesce(reopened_at, created_at))")
        conn.execute("DELETE FROM migrations WHERE name = '0014_sla_unbreached'")
    conn.close()
    store = SqliteStore(tmp_path / "home" / "im.db")
    marked = store.conn.execute("SELECT count(*) FROM incidents WHERE ack_breached_start IS NOT"
                                " NULL AND resolve_breached_start IS NOT NULL").fetchone()[0]
    store.close()
    assert marked == 3
    runtime = make_runtime(tmp_path / "home", clock=clock)
    assert check_breaches(runtime) == []
    runtime.store.close()
