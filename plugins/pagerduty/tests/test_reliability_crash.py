"""Crash safety of outbound delivery: `im serve` (the real executable) killed with SIGKILL while
it delivers a queue of changes to PagerDuty. After a restart, every im incident has exactly one
PagerDuty incident per service and nothing is applied twice.

Two kinds of kill: at a random point of a long queue, and at an injected point, after
PagerDuty applied a call and before im recorded it as done (the test holds the store's writers'
lock while the call is in flight, so `im serve` cannot record it, then kills it). A claimed row is
taken up again once its lease (`im.testing.OUTBOX_LEASE_SECONDS`, two minutes) has run out; rather than
wait, the tests deliver it with a clock moved past the lease, as the restarted server would.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from im import incidents
from im.models import Action, utcnow
from im.sync import deliver_outbox
from im.testing import OUTBOX_LEASE_SECONDS, make_runtime

from .connector_kit import im, runtime_with_connector, stored, wait_for
from .test_crash_safety import free_port, no_server_left_behind, start_server  # noqa: F401
from .test_reliability_faults import all_remote_incidents

CONNECTOR = "prod-pagerduty"
SERVICES = ["api", "db", "web", "payments"]


pytestmark = pytest.mark.usefixtures("quick_retries")


def after_the_lease(home: Path):
    """A runtime whose clock is past any lease a killed server held."""
    return make_runtime(home, load_entrypoints=True, user="alice",
                        clock=lambda: utcnow() + timedelta(seconds=OUTBOX_LEASE_SECONDS + 1))


def rows_by_status(home: Path) -> Counter[str]:
    return Counter(status for (status,) in stored(home, "SELECT status FROM outbox"))


def kill(server) -> None:
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    assert server.returncode == -signal.SIGKILL


def stop(server) -> str:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    log = Path(server.log_path).read_text()
    assert server.returncode in (0, -signal.SIGTERM) and "Traceback" not in log, log[-3000:]
    return log


def drain_after_the_lease(home: Path) -> None:
    late = after_the_lease(home)
    deadline = time.monotonic() + 30
    while late.store.outbox(statuses=("pending", "delivering")):
        assert time.monotonic() < deadline, late.store.outbox(statuses=("pending", "delivering"))
        deliver_outbox(late, due_only=False)
    late.store.close()


def assert_one_remote_incident_per_service(runtime, pd) -> list[dict]:
    remote = all_remote_incidents(pd)
    by_key = Counter(i["incident_key"] for i in remote)
    expected = {}
    for incident in runtime.store.list_incidents():
        links = {link.service: link.remote_id for link in runtime.store.links(incident.id)}
        assert sorted(links) == sorted(incident.services), incident.id
        for service, remote_id in links.items():
            key = f"im-{incident.correlation_id}-{service}"
            assert by_key[key] == 1, (incident.id, service, by_key[key])
            expected[remote_id] = key
    assert {i["id"]: i["incident_key"] for i in remote} == expected
    return remote


def test_sigkill_mid_delivery_then_restart_creates_and_applies_everything_once(tmp_path, pd):
    home = tmp_path / "home"
    runtime = runtime_with_connector(home, pd)
    pd.configure(rate_limit=100_000)
    # Queued while PagerDuty fails ...
    pd.set_faults(error_rate=1.0)
    for n in range(2):
        result = im(runtime, "declare", "--sev", "SEV-2", "--title", f"outage {n}",
                    "--service", "api,db")
        assert result.exit_code == 0 and "queued" in result.stderr, result.output
    pd.clear_faults()
    # ... and while no server runs: declare, acknowledge, resolve
    rng = random.Random(7)
    plans = {}
    for n in range(40):
        incident = incidents.declare(runtime, title=f"incident {n}", severity="SEV-3",
                                     services=rng.sample(SERVICES, rng.choice([1, 2, 3])))
        plans[incident.id] = rng.choice(["open", "mitigated", "resolved"])
        if plans[incident.id] != "open":
            incidents.transition(runtime, incident.id, Action.ACK)
        if plans[incident.id] == "resolved":
            incidents.transition(runtime, incident.id, Action.RESOLVE)
    total = len(runtime.store.outbox())

    port = free_port()
    server = start_server(home, port)
    wait_for(lambda: rows_by_status(home)["done"] >= total // 3, timeout=30, interval=0.002)
    kill(server)
    at_kill = rows_by_status(home)
    assert 0 < at_kill["done"] < total, at_kill

    restarted = start_server(home, port)
    try:
        # the restarted server delivers everything but what the killed one had claimed (and
        # what follows it for the same incident, which waits for it)
        claimed = {r.incident_id for r in runtime.store.outbox(statuses=("delivering",))}
        wait_for(lambda: not [r for r in runtime.store.outbox(statuses=("pending",))
                              if r.incident_id not in claimed], timeout=30)
        drain_after_the_lease(home)
    finally:
        stop(restarted)

    remote = assert_one_remote_incident_per_service(runtime, pd)
    statuses = {i["id"]: i["status"] for i in remote}
    pd_status = {"open": "triggered", "mitigated": "acknowledged", "resolved": "resolved"}
    for incident_id, plan in plans.items():
        timeline = [(e.kind, e.text, e.actor) for e in runtime.store.timeline(incident_id)]
        assert runtime.store.get_incident(incident_id).status.value == plan, timeline
        for link in runtime.store.links(incident_id):
            assert statuses[link.remote_id] == pd_status[plan], (incident_id, link.service)
    rows = runtime.store.outbox()
    assert len(rows) == total and {r.status for r in rows} == {"done"}
    # each create reached PagerDuty once (a replayed one links the incident it finds)
    creates = [r for r in pd.requests(method="POST", path="/incidents") if r["status"] == 201]
    assert len(creates) == len(remote)
    print(f"\nat the kill: {dict(at_kill)} of {total} rows")


def hold_the_write_lock_while_a_call_is_in_flight(home: Path, pd, method: str, path: str):
    """Once `im serve` has claimed a row and its call is on the wire (slowed down by the
    sandbox), take the store's writers' lock (a write transaction: SQLite's BEGIN IMMEDIATE
    under the writers' lock file, or PostgreSQL's advisory lock of writers), and keep it until
    PagerDuty has applied the call: `im serve` then cannot record anything. Returns what
    holds it (close() lets it go)."""
    wait_for(lambda: rows_by_status(home)["delivering"], timeout=20, interval=0.002)
    lock = _WriteLock(home)
    wait_for(lambda: [r for r in pd.requests(method=method, path=path)
                      if r["status"] and r["status"] < 300], timeout=10, interval=0.01)
    return lock


class _WriteLock:
    def __init__(self, home: Path) -> None:
        self.store = make_runtime(home).store
        self.transaction = self.store.transaction()
        self.transaction.__enter__()

    def close(self) -> None:
        self.transaction.__exit__(None, None, None)
        self.store.close()


def test_sigkill_after_pagerduty_created_an_incident_before_im_recorded_it(tmp_path, pd):
    home = tmp_path / "home"
    # no priorities: the POST is the create's first call, the one the write lock is timed on
    # (a call before it would be recorded in the store, under the lock, and never end)
    runtime = runtime_with_connector(home, pd, priority_mapping={})
    incident = incidents.declare(runtime, title="Database down", severity="SEV-1",
                                 services=["db", "api"])
    pd.set_faults(latency_ms=400, paths=["/incidents"])
    server = start_server(home, free_port())
    lock = hold_the_write_lock_while_a_call_is_in_flight(home, pd, "POST", "/incidents")
    kill(server)
    lock.close()
    pd.clear_faults()
    [made] = all_remote_incidents(pd)  # PagerDuty has it; im has no link yet
    assert runtime.store.links(incident.id) == []
    assert [r.status for r in runtime.store.outbox()] == ["delivering", "pending"]

    drain_after_the_lease(home)
    remote = assert_one_remote_incident_per_service(runtime, pd)
    assert len(remote) == 2
    link = next(l for l in runtime.store.links(incident.id) if l.remote_id == made["id"])
    assert any(e.text.startswith(f"PagerDuty incident #{made['incident_number']} linked")
               for e in runtime.store.timeline(incident.id)), link


def test_sigkill_after_pagerduty_added_a_note_before_im_recorded_it(tmp_path, pd):
    home = tmp_path / "home"
    runtime = runtime_with_connector(home, pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    incidents.add_note(runtime, "INC-1", "Replica lag is the cause")
    notes_path = f"/incidents/{link.remote_id}/notes"
    pd.set_faults(latency_ms=400, paths=[notes_path])
    server = start_server(home, free_port())
    lock = hold_the_write_lock_while_a_call_is_in_flight(home, pd, "POST", notes_path)
    kill(server)
    lock.close()
    pd.clear_faults()
    drain_after_the_lease(home)
    with pd.client() as api:
        notes = [n["content"] for n in api.get(notes_path).json()["notes"]]
    assert notes == ["Replica lag is the cause"]
