"""What im keeps and for how long: the `retention` settings, the hourly purge, `im db status`."""

import json
import re
from datetime import timedelta

import pytest

from im import housekeeping, incidents
from im.errors import ImError
from im.testing import make_runtime, run_cli, sql


def _delivered(runtime, connector, clock, title):
    """An incident whose change to `connector` was delivered now."""
    incident = incidents.declare(runtime, title=title, severity="SEV-3", services=["db"])
    with runtime.store.transaction() as tx:
        tx.outbox.add(connector=connector, incident_id=incident.id, service="db",
                      action="declare", payload={}, at=clock())
    row = max(runtime.store.outbox(connector=connector), key=lambda r: r.id)
    runtime.store.finish_outbox(row.id, at=clock())
    return row.id


def test_delivered_changes_past_their_keeping_time_are_forgotten_the_latest_kept(
        tmp_path, clock):
    """`retention.outbox_days: 30`: delivered changes 31 days old go but the latest of them for
    each connector (so a connector idle since still knows when it last delivered); one
    delivered yesterday stays; one still queued stays whatever its age."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text(json.dumps({"retention": {"outbox_days": 30}}))
    runtime = make_runtime(home, clock=clock)
    old = _delivered(runtime, "pd", clock, "old")
    older_kept = _delivered(runtime, "pd", clock, "old, the latest of those")
    alone = _delivered(runtime, "tickets", clock, "the only one of its connector")
    incident = incidents.declare(runtime, title="queued", severity="SEV-3", services=["db"])
    with runtime.store.transaction() as tx:
        tx.outbox.add(connector="pd", incident_id=incident.id, service="db", action="declare",
                      payload={}, at=clock())
    clock.advance(days=30)
    recent = _delivered(runtime, "pd", clock, "yesterday")
    clock.advance(days=1)
    latest = _delivered(runtime, "pd", clock, "today")
    assert housekeeping.purge(runtime)["outbox"] == 1
    kept = {r.id: r.status for r in runtime.store.outbox()}
    assert old not in kept
    assert {older_kept, alone, recent, latest} <= set(kept)
    assert sorted(kept.values()) == ["done", "done", "done", "done", "pending"]
    runtime.store.close()


def test_keys_seen_once_are_forgotten_once_they_expire(runtime, clock):
    assert runtime.first_time("short", seconds=60)
    assert runtime.first_time("long", seconds=3600)
    clock.advance(seconds=61)
    assert housekeeping.purge(runtime)["keys"] == 1
    assert sql(runtime, "SELECT key FROM seen_keys") == [("long",)]
    assert not runtime.first_time("long", seconds=3600)
    clock.advance(hours=1)
    assert housekeeping.purge(runtime)["keys"] == 1
    assert sql(runtime, "SELECT count(*) FROM seen_keys") == [(0,)]


@pytest.mark.sqlite_only
def test_the_purge_finds_delivered_changes_by_index(runtime):
    statements: list[str] = []
    runtime.store.conn.set_trace_callback(statements.append)
    housekeeping.purge(runtime)
    runtime.store.conn.set_trace_callback(None)
    [purge] = [s for s in statements if s.lstrip().startswith("DELETE FROM outbox")]
    plan = " | ".join(row[3] for row in runtime.store.conn.execute(
        "EXPLAIN QUERY PLAN " + purge))
    assert "SCAN outbox" not in plan, plan
    assert plan.count("INDEX outbox_done (status=? AND done_at<?)") == 2, plan
    [keys] = [s for s in statements if s.lstrip().startswith("DELETE FROM seen_keys")]
    plan = " | ".join(row[3] for row in runtime.store.conn.execute("EXPLAIN QUERY PLAN " + keys))
    assert "SCAN" not in plan and "seen_keys_expires" in plan, plan


def test_call_records_past_their_keeping_time_are_forgotten(tmp_path, clock):
    """`retention.calls_days: 10`: the calls of every connector made 11 days ago go, those
    made 9 days ago and today stay (and log lines keep to their own setting)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text(json.dumps({"retention": {"calls_days": 10}}))
    runtime = make_runtime(home, clock=clock)
    start = clock.now

    def call(connector, path):
        runtime.record_call(connector, method="GET", path=path, status=200, duration=0.001)

    call("pd", "/old")
    call("tickets", "/old")
    clock.advance(days=2)
    call("pd", "/nine days ago")
    clock.advance(days=9)
    call("pd", "/today")
    call("tickets", "/today")
    calls = runtime.store.read().calls
    assert [calls.counts_since(name, start)[0] for name in ("pd", "tickets")] == [3, 2]
    assert housekeeping.purge(runtime)["calls"] == 2
    assert housekeeping.purge(runtime)["calls"] == 0
    calls = runtime.store.read().calls
    assert [calls.counts_since(name, start)[0] for name in ("pd", "tickets")] == [2, 1]
    assert calls.counts_since("pd", clock.now - timedelta(days=10))[0] == 2
    runtime.store.close()


@pytest.mark.sqlite_only
def test_the_purge_finds_old_call_records_by_index(runtime):
    """Calls are recorded by connector; the purge asks for those of every connector made
    before a time, through calls_at, never by reading every call ever made."""
    statements: list[str] = []
    runtime.store.conn.set_trace_callback(statements.append)
    housekeeping.purge(runtime)
    runtime.store.conn.set_trace_callback(None)
    [purge] = [s for s in statements if s.lstrip().startswith("DELETE FROM calls")]
    plan = " | ".join(row[3] for row in runtime.store.conn.execute(
        "EXPLAIN QUERY PLAN " + purge))
    assert plan == "SEARCH calls USING INDEX calls_at (at<?)", plan


def test_on_postgresql_the_purge_finds_old_call_records_by_index(runtime, postgres_plans):
    with postgres_plans.watching() as seen:
        housekeeping.purge(runtime)
    [(purge, params)] = [s for s in seen if s[0].lstrip().startswith("DELETE FROM calls")]
    plan = postgres_plans.plan(purge, params)
    assert "Seq Scan" not in plan and postgres_plans.indexes(plan) == {"calls_at"}, plan


@pytest.mark.parametrize(("retention", "says"), [
    ({"outbox_days": 0}, "settings retention.outbox_days: must be a whole number of days, at"
                         " least 1, not 0"),
    ({"logs_days": "two weeks"}, "settings retention.logs_days: must be a whole number of"
                                 " days, at least 1, not 'two weeks'"),
    ({"outbox": 30}, "settings retention: unknown key 'outbox' (known: outbox_days, logs_days,"
                     " calls_days)"),
    ([30], 'settings retention: must be an object such as {"outbox_days": 30}'),
])
def test_a_bad_retention_setting_is_refused_in_one_line_at_start(tmp_path, retention, says):
    from im.server import create_app

    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text(json.dumps({"retention": retention}))
    runtime = make_runtime(home)
    with pytest.raises(ImError) as raised:
        create_app(runtime, background=True)
    assert str(raised.value) == says
    result = run_cli(runtime, ["db", "status"])
    assert (result.exit_code, result.stderr) == (1, f"Error: {says}\n")
    runtime.store.close()


def test_db_status_shows_sizes_rows_and_what_is_kept(runtime):
    run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service",
                      "api,web"])
    result = run_cli(runtime, ["db", "status"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"Size: [\d.]+ (B|KiB|MiB)( \(write-ahead log: [\d.]+ (B|KiB|MiB)\))?",
                        lines[2]), lines[2]
    rows = {line.split()[0]: line.split()[1] for line in lines[5:] if line and
            not line.startswith("Kept")}
    assert lines[4].split() == ["Table", "Rows", "Size"]
    assert (rows["incidents"], rows["incident_services"], rows["timeline"]) == ("1", "2", "1")
    assert lines[-1] == ("Kept: delivered changes 30 days, log lines 14 days, call records 30"
                         " days (the settings file's `retention`); processed webhook events 8"
                         " days (the replay window and a day).")
    data = json.loads(run_cli(runtime, ["db", "status", "--json"]).stdout)
    assert data["retention"] == {"outbox_days": 30, "logs_days": 14, "calls_days": 30}
    assert {t["name"]: t["rows"] for t in data["size"]["tables"]}["incidents"] == 1
