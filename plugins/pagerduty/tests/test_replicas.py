"""Three `im serve` replicas on one PostgreSQL database, against the PagerDuty sandbox.

Each replica is the real executable on a port of its own, with an IM_HOME of its own (empty:
the connector is configured once, in the shared database) and the same IM_DATABASE_URL. The
tests send PagerDuty's signed deliveries to any replica, kill replicas with SIGKILL in the
middle of the work, and check what users care about: every acknowledged event stored and
applied once, every im incident with exactly one PagerDuty incident per service, nothing
delivered twice, and the cluster's singleton duties (polling) moving to a survivor.

Runs only against PostgreSQL (IM_TEST_DATABASE, set by .ci/run): SQLite is one server's store.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

if not os.environ.get("IM_TEST_DATABASE"):
    pytest.skip("needs PostgreSQL: set IM_TEST_DATABASE (.ci/run does)", allow_module_level=True)

import psycopg  # noqa: E402

from im import incidents  # noqa: E402
from im.models import Action, utcnow  # noqa: E402
from im.storage.postgres.database import WRITERS  # noqa: E402
from im.sync import deliver_outbox  # noqa: E402
from im.testing import sql  # noqa: E402

from .connector_kit import im, runtime_with_connector, wait_for  # noqa: E402
from .test_crash_safety import (  # noqa: E402,F401  (no_server_left_behind: a fixture)
    IM,
    STARTED,
    _up,
    free_port,
    no_server_left_behind,
)
from .test_reliability_crash import assert_one_remote_incident_per_service  # noqa: E402

CONNECTOR = "prod-pagerduty"
WEBHOOK = f"/connectors/{CONNECTOR}/webhook"
SERVICES = ["api", "db", "web", "payments"]
PD_STATUS = {"open": "triggered", "mitigated": "acknowledged", "resolved": "resolved"}
DUTIES = ("poll", "sla", "housekeeping")  # each run by one replica of the cluster

pytestmark = pytest.mark.usefixtures("quick_retries")


# -- the replicas --------------------------------------------------------------------------


def launch(home: Path, log_level: str, database_url: str | None = None) -> subprocess.Popen:
    """`im serve` in a process group of its own, its IM_HOME empty: all it knows is in the
    database IM_DATABASE_URL names (inherited from the test's environment)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(home.parent / f"{home.name}-{port}.log", "wb")
    env = {**os.environ, "IM_HOME": str(home)}
    if database_url is not None:
        env["IM_DATABASE_URL"] = database_url
    process = subprocess.Popen([IM, "serve", "--port", str(port), "--log-level", log_level],
                               env=env,
                               stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    STARTED.append(process)
    process.log_path = log.name  # type: ignore[attr-defined]
    process.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return process


def start_replicas(tmp_path: Path, *, log_level: str = "warning",
                   names: str = "abc") -> list[subprocess.Popen]:
    """Three replicas, started together (none gets a head start on queued work)."""
    replicas = [launch(tmp_path / f"replica-{name}", log_level) for name in names]
    wait_up(replicas)
    return replicas


def wait_up(replicas: list[subprocess.Popen]) -> None:
    for replica in replicas:
        answers: list[str] = []
        port = int(url_of(replica).rsplit(":", 1)[1])
        wait_for(lambda: _up(port, answers) or replica.poll() is not None, timeout=60)
        assert replica.poll() is None, log_of(replica)[-3000:]


def url_of(replica: subprocess.Popen) -> str:
    return replica.url  # type: ignore[attr-defined]


def log_of(replica: subprocess.Popen) -> str:
    return Path(replica.log_path).read_text(errors="replace")  # type: ignore[attr-defined]


def kill(replica: subprocess.Popen) -> None:
    """SIGKILL to the replica and anything it started, as a power cut would."""
    os.killpg(replica.pid, signal.SIGKILL)
    replica.wait(timeout=10)
    assert replica.returncode == -signal.SIGKILL


def stop_all(replicas: list[subprocess.Popen]) -> None:
    """SIGTERM to the live ones: a graceful stop, with no traceback logged by any replica."""
    live = [r for r in replicas if r.poll() is None]
    for replica in live:
        replica.send_signal(signal.SIGTERM)
    for replica in live:
        replica.wait(timeout=30)
        assert replica.returncode in (0, -signal.SIGTERM), log_of(replica)[-3000:]
    for replica in replicas:
        assert "Traceback" not in log_of(replica), log_of(replica)[-3000:]


# -- PagerDuty's deliveries ----------------------------------------------------------------


def responders_work(tmp_path: Path, pd: Any, receiver: Any, n_incidents: int = 10,
                    notes: int = 13) -> tuple[Any, dict[str, str], dict[str, list[str]], list]:
    """im declares incidents (pushed to PagerDuty); John acknowledges each in PagerDuty, adds
    notes, resolves two in three. The sandbox's signed deliveries of all of it are caught by
    `receiver` (the webhook subscription im made points there), for the test to send to the
    replicas as it likes. Polling is off: webhooks are the only way in.

    Returns the runtime, each incident's expected status, its notes and the deliveries (one
    per event)."""
    runtime = runtime_with_connector(tmp_path / "home", pd)
    runtime.update_connector_settings(CONNECTOR, {"sync_interval": "0s"})
    base = receiver.url.removesuffix("/webhook")
    result = im(runtime, "connector", "webhook", CONNECTOR, "--enable", "--url", base)
    assert result.exit_code == 0, result.output
    declared = [incidents.declare(runtime, title=f"outage {n}", severity="SEV-2",
                                  services=[SERVICES[n % len(SERVICES)]])
                for n in range(n_incidents)]
    report = deliver_outbox(runtime)
    assert report.delivered == n_incidents, report
    plans: dict[str, str] = {}
    written: dict[str, list[str]] = {}
    with pd.client(from_email="john.doe@company.com") as john:
        for n, incident in enumerate(declared):
            [link] = runtime.store.links(incident.id)
            path = f"/incidents/{link.remote_id}"
            john.put(path, json={"incident": {"type": "incident_reference",
                                              "status": "acknowledged"}}).raise_for_status()
            written[incident.id] = [f"{incident.id}: finding {k}" for k in range(notes)]
            for text in written[incident.id]:
                john.post(f"{path}/notes", json={"note": {"content": text}}).raise_for_status()
            plans[incident.id] = "mitigated"
            if n % 3:
                john.put(path, json={"incident": {"type": "incident_reference",
                                                  "status": "resolved"}}).raise_for_status()
                plans[incident.id] = "resolved"
    assert pd.wait_for_webhooks(timeout=30)
    by_event: dict[str, Any] = {}
    for delivery in receiver.received:
        if delivery.path.endswith(WEBHOOK):
            by_event.setdefault(delivery.json()["event"]["id"], delivery)
    deliveries = list(by_event.values())
    kinds = Counter(d.json()["event"]["event_type"] for d in deliveries)
    assert kinds["incident.annotated"] == n_incidents * notes, kinds
    return runtime, plans, written, deliveries


def forward(delivery: Any, replica: subprocess.Popen) -> tuple[int | None, str | None]:
    """Send one of the sandbox's deliveries, as it was signed, to a replica: its status and
    what it said (accepted, duplicate), or (None, None) when the connection failed."""
    headers = {k: v for k, v in delivery.headers.items()
               if k.startswith(("x-", "webhook-", "content-type", "user-agent"))}
    try:
        answer = httpx.post(url_of(replica) + WEBHOOK, content=delivery.body,
                            headers=headers, timeout=10)
    except httpx.HTTPError:
        return None, None
    said = answer.json().get("status") if answer.status_code == 202 else None
    return answer.status_code, said


def event_id(delivery: Any) -> str:
    return delivery.json()["event"]["id"]


def everything_applied(runtime: Any, deliveries: list, timeout: float = 60) -> None:
    try:
        wait_for(lambda: len(runtime.store.inbox(statuses=("done",))) == len(deliveries),
                 timeout=timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(str(Counter((r.status, r.error) for r in runtime.store.inbox())))


def repeated_lines(incident: Any, timeline: list) -> list[tuple[str, str, int]]:
    """Timeline lines written more often than once (work done twice). Only "PagerDuty
    assigned ..." comes once per linked PagerDuty incident (each create says whom)."""
    lines = Counter((e.kind, e.text) for e in timeline)
    return [(kind, text, count) for (kind, text), count in lines.items() if count > (
        len(incident.services) if text.startswith("PagerDuty assigned ") else 1)]


def assert_applied_once(runtime: Any, pd: Any, plans: dict[str, str],
                        written: dict[str, list[str]], deliveries: list) -> None:
    """Each event stored once and done; each incident in the state its events say, in both
    systems; each note once on its timeline; no timeline line twice; nothing sent back."""
    stored = sql(runtime, "SELECT delivery_id, COUNT(*), MIN(status) FROM inbox"
                 " WHERE connector = ? GROUP BY delivery_id", CONNECTOR)
    assert {row[0] for row in stored} == {event_id(d) for d in deliveries}
    assert {(row[1], row[2]) for row in stored} == {(1, "done")}
    with pd.client() as api:
        for incident_id, plan in plans.items():
            incident = runtime.store.get_incident(incident_id)
            timeline = runtime.store.timeline(incident_id)
            assert incident.status.value == plan, [(e.kind, e.text) for e in timeline]
            [link] = runtime.store.links(incident_id)
            remote = api.get(f"/incidents/{link.remote_id}").json()["incident"]
            assert remote["status"] == PD_STATUS[plan]
            notes = [e.text for e in timeline if e.kind == "note"]
            assert sorted(notes) == sorted(written[incident_id])
            assert repeated_lines(incident, timeline) == [], incident_id
            assert [r.action for r in runtime.store.outbox(incident_id=incident_id)] == [
                "declare"]


# -- 1. webhooks answered by any replica ---------------------------------------------------


def test_webhooks_spread_over_three_replicas_are_stored_and_applied_once(
        tmp_path, pd, pagerduty_webhook_receiver):
    runtime, plans, written, deliveries = responders_work(tmp_path, pd,
                                                          pagerduty_webhook_receiver)
    replicas = start_replicas(tmp_path)
    started = time.monotonic()
    # round robin; every fifth delivered at once to the next replica as well
    sends = [(n, replicas[n % 3]) for n in range(len(deliveries))]
    sends += [(n, replicas[(n + 1) % 3]) for n in range(0, len(deliveries), 5)]
    random.Random(3).shuffle(sends)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda send: (send[0], *forward(deliveries[send[0]], send[1])),
                                sends))
    assert {status for _, status, _ in answers} == {202}, Counter(a[1] for a in answers)
    said: dict[int, list[str]] = {}
    for n, _, what in answers:
        said.setdefault(n, []).append(what)
    # a delivery sent to two replicas is stored by one of them; the other says so
    assert {tuple(sorted(what)) for what in said.values()} == {
        ("accepted",), ("accepted", "duplicate")}
    assert sum(len(what) == 2 for what in said.values()) == len(range(0, len(deliveries), 5))
    everything_applied(runtime, deliveries)
    elapsed = time.monotonic() - started
    assert_applied_once(runtime, pd, plans, written, deliveries)
    stop_all(replicas)
    print(f"\n{len(deliveries)} events, {len(sends)} deliveries, all applied in {elapsed:.1f} s")


# -- 2. a replica killed in the middle of the stream ---------------------------------------


def writes_go_through() -> bool:
    """Whether the cluster's write lock is free now and then (each write holds it for a few
    milliseconds), rather than held for good by a frozen replica."""
    with psycopg.connect(os.environ["IM_DATABASE_URL"]) as conn:
        for _ in range(20):
            free = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (WRITERS,)).fetchone()
            conn.rollback()
            if free and free[0]:
                return True
            time.sleep(0.025)
    return False


def claims_of_a_stopped(victim: subprocess.Popen, runtime: Any, tries: int = 10) -> set[int]:
    """Freeze `victim` (SIGSTOP) at a moment it holds claimed events, and return them: the
    rows still processing a moment later, when the others have finished theirs. Tried a few
    times (SIGCONT in between); empty if it never held any. Not at a moment it holds the
    cluster's write lock: every replica's writes would wait for it (the others' claims
    would look like its own)."""
    def processing() -> set[int]:
        return {r.id for r in runtime.store.inbox(statuses=("processing",))}

    for _ in range(tries):
        os.killpg(victim.pid, signal.SIGSTOP)
        time.sleep(0.5)
        if not writes_go_through():
            os.killpg(victim.pid, signal.SIGCONT)
            time.sleep(0.1)
            continue
        first = processing()
        time.sleep(0.5)
        held = first & processing()
        if held:
            return held
        os.killpg(victim.pid, signal.SIGCONT)
        time.sleep(0.1)
    return set()


def test_sigkill_of_a_replica_mid_stream_loses_and_duplicates_nothing(
        tmp_path, pd, pagerduty_webhook_receiver):
    runtime, plans, written, deliveries = responders_work(tmp_path, pd,
                                                          pagerduty_webhook_receiver)
    replicas = start_replicas(tmp_path)
    victim = replicas[1]
    attempts: list[tuple[int, int, int | None, str | None]] = []

    started = time.monotonic()

    def send(n: int) -> bool:
        """PagerDuty's sender: on a failure, the delivery is retried (here, at once, to the
        next replica), until one acknowledges it. The stream is spread over about 8 s, so
        that it goes on while the replica is frozen and killed."""
        time.sleep(max(0.0, started + n * 0.05 - time.monotonic()))
        for attempt in range(6):
            index = (n + attempt) % 3
            status, said = forward(deliveries[n], replicas[index])
            attempts.append((n, index, status, said))
            if status is not None and 200 <= status < 300:
                return True
            time.sleep(0.05)
        return False

    half = len(deliveries) // 2
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(send, n) for n in range(half)]
        wait_for(lambda: sum(1 for a in attempts if a[1] == 1 and a[2] == 202) >= 15,
                 timeout=30, interval=0.001)
        held = claims_of_a_stopped(victim, runtime)
        kill(victim)
        # the stream goes on after the kill, whatever the machine's speed: the dead replica's
        # share fails and the sender retries it on another
        started = time.monotonic() - half * 0.05
        futures += [pool.submit(send, n) for n in range(half, len(deliveries))]
        sent = [future.result() for future in futures]
    assert all(sent)
    by_victim = {n for n, index, status, _ in attempts if index == 1 and status == 202}
    failed_on_victim = {n for n, index, status, _ in attempts if index == 1 and status is None}
    assert by_victim and failed_on_victim, (len(by_victim), len(failed_on_victim))
    # what the killed replica acknowledged was durable: stored, and applied by the others
    # (among them the events it had claimed, once their lease, im.inbound's
    # INBOX_LEASE_SECONDS, ran out)
    stored = {r.delivery_id for r in runtime.store.inbox()}
    assert {event_id(deliveries[n]) for n in by_victim} <= stored
    everything_applied(runtime, deliveries, timeout=60)
    assert_applied_once(runtime, pd, plans, written, deliveries)
    stop_all([r for r in replicas if r is not victim])
    retried_as_duplicates = sum(1 for a in attempts if a[3] == "duplicate")
    taken_over = {row_id for (row_id,) in sql(runtime, "SELECT id FROM inbox WHERE attempts > 1")}
    # the events it held, if the freeze caught it holding any (a dead server's claims taken
    # over after their lease is also shown, whatever the timing, by test_postgres_store)
    assert held <= taken_over, (held, taken_over)
    print(f"\n{len(deliveries)} events; the killed replica acknowledged {len(by_victim)},"
          f" failed {len(failed_on_victim)} (retried elsewhere, {retried_as_duplicates}"
          f" found already stored); it held {len(held)} claims when killed;"
          f" {len(taken_over)} events taken over after a lease")


# -- 3. a replica killed in the middle of outbox delivery ----------------------------------


def outbox_counts(runtime: Any) -> Counter[str]:
    return Counter(dict(sql(runtime, "SELECT status, COUNT(*) FROM outbox GROUP BY status")))


def test_sigkill_of_a_replica_mid_delivery_creates_and_applies_everything_once(tmp_path, pd):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    runtime.update_connector_settings(CONNECTOR, {"sync_interval": "0s"})
    pd.configure(rate_limit=100_000)
    replicas = start_replicas(tmp_path)
    victim = replicas[0]
    # PagerDuty is slow: changes queue up faster than they are delivered
    pd.set_faults(latency_ms=80)
    rng = random.Random(17)
    plans: dict[str, str] = {}
    for n in range(60):
        incident = incidents.declare(runtime, title=f"incident {n}", severity="SEV-3",
                                     services=rng.sample(SERVICES, rng.choice([1, 2, 3])))
        plans[incident.id] = rng.choice(["open", "mitigated", "resolved"])
        if plans[incident.id] != "open":
            incidents.transition(runtime, incident.id, Action.ACK)
        if plans[incident.id] == "resolved":
            incidents.transition(runtime, incident.id, Action.RESOLVE)
    total = len(runtime.store.outbox())
    # in the middle of the queue, while each replica has a row claimed and its call on the
    # wire: hold the cluster's write lock (no replica can record anything meanwhile) until
    # PagerDuty has answered, then kill one. Its change is made in PagerDuty, not in im.
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, outbox_counts(runtime)
        if outbox_counts(runtime)["done"] < total // 3:
            time.sleep(0.005)
            continue
        lock = psycopg.connect(os.environ["IM_DATABASE_URL"])
        lock.execute("SELECT pg_advisory_xact_lock(%s)", (WRITERS,))
        at_kill = Counter(dict(lock.execute(
            "SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall()))
        if at_kill["delivering"] == 3:
            break
        lock.rollback()
        lock.close()
    time.sleep(0.5)  # the calls in flight (80 ms) are answered
    kill(victim)
    lock.rollback()
    lock.close()
    assert 0 < at_kill["done"] < total, at_kill

    # the two others deliver everything but the killed one's claim (and what follows it for
    # the same incident): a claim stays with its holder until its lease runs out
    def left_over() -> list[tuple[int, str]] | None:
        rows = runtime.store.outbox(statuses=("pending", "delivering"))
        claimed = {r.incident_id for r in rows if r.status == "delivering"}
        if any(r.incident_id not in claimed for r in rows):
            return None
        return sorted((r.id, r.status) for r in rows)

    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, outbox_counts(runtime)
        before = left_over()
        time.sleep(2.5)  # more than the replicas' outbox loop's interval, and many deliveries
        if before is not None and left_over() == before:
            break
    stuck = [row_id for row_id, status in before if status == "delivering"]
    stuck_actions = [r.action for r in runtime.store.outbox() if r.id in stuck]
    assert len(stuck) == 1, before  # a replica delivers one row at a time
    leases = sql(runtime, "SELECT lease_until FROM outbox WHERE status = 'delivering'")
    assert all(lease > utcnow() + timedelta(seconds=60) for (lease,) in leases), leases
    # ... and once it has run out (moved into the past here rather than waited for, two
    # minutes), the survivors take the claim over and deliver the rest
    sql(runtime, "UPDATE outbox SET lease_until = ? WHERE status = 'delivering'",
        utcnow() - timedelta(seconds=1))
    wait_for(lambda: outbox_counts(runtime)["done"] == total, timeout=30, interval=0.1)
    pd.clear_faults()
    stop_all(replicas[1:])

    remote = assert_one_remote_incident_per_service(runtime, pd)
    statuses = {i["id"]: i["status"] for i in remote}
    for incident_id, plan in plans.items():
        timeline = runtime.store.timeline(incident_id)
        assert runtime.store.get_incident(incident_id).status.value == plan
        for link in runtime.store.links(incident_id):
            assert statuses[link.remote_id] == PD_STATUS[plan], (incident_id, link.service)
        assert repeated_lines(runtime.store.get_incident(incident_id), timeline) == []
    # each create reached PagerDuty once (a replayed one links the incident it finds)
    creates = [r for r in pd.requests(method="POST", path="/incidents") if r["status"] == 201]
    assert len(creates) == len(remote)
    # each status change reached PagerDuty once per linked incident, but for the one the
    # killed replica may have made before it died (repeated by the survivor: idempotent)
    changes = Counter(r["path"] for r in pd.requests(method="PUT", path="/incidents/*")
                      if r["status"] and r["status"] < 300)
    expected = Counter()
    for incident_id, plan in plans.items():
        for link in runtime.store.links(incident_id):
            expected[f"/incidents/{link.remote_id}"] = {"open": 0, "mitigated": 1,
                                                        "resolved": 2}[plan]
    extra = {path: changes[path] - expected[path] for path in changes
             if changes[path] != expected[path]}
    assert sum(extra.values()) <= len(stuck) and min(extra.values(), default=0) >= 0, extra
    print(f"\nat the kill: {dict(at_kill)} of {total} rows; the killed replica's claims: "
          f"{stuck_actions}; repeated calls: {extra}")


# -- 4. singleton duties move --------------------------------------------------------------


def polls(pd: Any, since: datetime) -> list[datetime]:
    """When the cluster polled PagerDuty since `since`: each poll lists the incidents created
    since its cursor (sorted by creation, any status: one such listing a poll), then the open
    ones (by time windows too, but naming the statuses)."""
    return sorted(datetime.fromisoformat(r["at"].replace("Z", "+00:00"))
                  for r in pd.requests(method="GET", path="/incidents")
                  if "sort_by=created_at" in r["query"] and "statuses" not in r["query"]
                  and datetime.fromisoformat(r["at"].replace("Z", "+00:00")) >= since)


def assert_once_per_interval(times: list[datetime], window: float) -> None:
    """sync_interval 2s, checked by the poller's loop every second: a poll every 2 to 3 s,
    never two within the interval (three pollers would make three times as many)."""
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert window / 3 - 1 <= len(times) <= window / 2 + 1, times
    assert min(gaps) >= 1.9, gaps


def test_polling_runs_in_one_replica_and_moves_when_it_dies(tmp_path, pd):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    runtime.update_connector_settings(CONNECTOR, {"sync_interval": "2s"})
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    replicas = start_replicas(tmp_path, log_level="info")

    def leaders(among: list[subprocess.Popen], duty: str = "poll") -> list[subprocess.Popen]:
        """The replicas that run `duty` now (said so last in their log)."""
        now_runs = f"this server now runs {duty} for the cluster"
        no_longer = f"this server no longer runs {duty} for the cluster"
        return [r for r in among if log_of(r).rfind(now_runs) > log_of(r).rfind(no_longer)]

    def one_of_each(among: list[subprocess.Popen]) -> bool:
        return all(len(leaders(among, duty)) == 1 for duty in DUTIES)

    [leader] = wait_for(lambda: leaders(replicas), timeout=15)
    wait_for(lambda: one_of_each(replicas), timeout=15)
    window = 9.0
    since = utcnow()
    time.sleep(window)
    assert leaders(replicas) == [leader] and one_of_each(replicas)
    before = polls(pd, since)
    assert_once_per_interval(before, window)

    kill(leader)
    killed_at = time.monotonic()
    survivors = [r for r in replicas if r is not leader]
    [successor] = wait_for(lambda: leaders(survivors), timeout=15, interval=0.1)
    took_over = time.monotonic() - killed_at
    # the other duties the killed replica ran (SLA checks, housekeeping) moved as well
    wait_for(lambda: one_of_each(survivors), timeout=15, interval=0.1)
    since = utcnow()
    time.sleep(window)
    assert leaders(survivors) == [successor] and one_of_each(survivors)
    after = polls(pd, since)
    assert_once_per_interval(after, window)
    stop_all(survivors)
    print(f"\npolls in {window:.0f} s: {len(before)} before the kill, {len(after)} after;"
          f" taken over in {took_over:.1f} s")


# -- 5. the fault run, with three replicas behind a load balancer --------------------------


class RoundRobin:
    """A load balancer on loopback in front of the replicas: each request goes to the next
    replica; one that refuses the connection (dead) is skipped, as a balancer's health
    check would; one that fails mid-request is answered 502 (the sender retries)."""

    def __init__(self, replicas: list[subprocess.Popen]) -> None:
        import itertools
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        turn = itertools.cycle(range(len(replicas)))
        lock = threading.Lock()
        self.sent: Counter[int] = Counter()
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                status, content = 502, b""
                for _ in range(len(replicas)):
                    with lock:
                        index = next(turn)
                    try:
                        answer = httpx.post(url_of(replicas[index]) + self.path,
                                            content=body, headers=headers, timeout=30)
                    except httpx.ConnectError:
                        continue
                    except httpx.HTTPError:
                        break
                    balancer.sent[index] += 1
                    status, content = answer.status_code, answer.content
                    break
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except OSError:
                    pass  # the sender gave up waiting (it retries)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_faults_with_three_replicas_leave_both_systems_in_agreement(tmp_path, pd, monkeypatch):
    """test_reliability_faults' soak (N_INCIDENTS, default 200): im and a responder work on
    both sides through 5xx bursts, 429 storms, dropped connections, late answers and
    duplicated webhooks; PagerDuty's webhooks reach three replicas through a load balancer,
    the replicas deliver the outbox alongside the CLI. In the notes phase one replica is
    killed with SIGKILL. Once settled, both systems agree as with one server."""
    from im_pagerduty import client as pd_client
    from im_pagerduty.connector import PagerDutyConnector

    from .test_reliability_faults import (
        CLIENT_TIMEOUT,
        LATE_MS,
        N_INCIDENTS,
        Plan,
        Responder,
        check_agreement,
        im_step,
        remote_ids,
        settle,
    )

    monkeypatch.setattr(PagerDutyConnector, "client_options", {
        "max_attempts": 2, "sleep": lambda _s: None, "timeout": CLIENT_TIMEOUT,
        "rate_limit": 1_000_000})
    monkeypatch.setattr(pd_client, "_budgets", {})
    pd.configure(rate_limit=1_000_000)
    started = time.monotonic()
    rng = random.Random(20261206)
    plans = [Plan(n, rng) for n in range(N_INCIDENTS)]
    runtime = runtime_with_connector(tmp_path / "home", pd)
    john = Responder(pd)
    replicas = start_replicas(tmp_path)
    balancer = RoundRobin(replicas)
    timings: dict[str, float] = {}
    try:
        enabled = im(runtime, "connector", "webhook", CONNECTOR, "--enable", "--url",
                     balancer.url)
        assert enabled.exit_code == 0, enabled.output

        phase = time.monotonic()
        pd.set_faults(burst_5xx=40, drop_connections=15, error_rate=0.1,
                      late_answer_rate=0.03, late_answer_ms=LATE_MS, seed=1)
        for plan in plans:
            if plan.origin == "pd":
                plan.remote_id = john.trigger(f"PagerDuty incident {plan.n}",
                                              plan.pd_service)["id"]
            elif plan.origin == "im-cli":
                result = im(runtime, "declare", "--sev", "SEV-2", "--title",
                            f"im incident {plan.n}", "--service", ",".join(plan.services))
                assert result.exit_code == 0 and "Traceback" not in result.output, result.output
                plan.incident_id = result.stdout.split(":")[0].removeprefix("Declared ")
            else:
                plan.incident_id = incidents.declare(
                    runtime, title=f"im incident {plan.n}", severity="SEV-3",
                    services=plan.services).id
        settle(pd, runtime, timeout=120)
        for plan in plans:
            if plan.origin == "pd":
                [link] = runtime.store.links(connector=CONNECTOR, remote_id=plan.remote_id)
                plan.incident_id = link.incident_id
        timings["declare"] = time.monotonic() - phase

        phase = time.monotonic()
        pd.set_faults(storm_429=60, storm_429_headers=True, storm_429_reset_seconds=1,
                      error_rate=0.05, seed=2)
        for plan in plans:
            if plan.ack == "im":
                im_step(runtime, plan, "ack", plan.ack_note)
            elif plan.ack == "pd":
                for remote_id in remote_ids(runtime, plan):
                    john.set_status(remote_id, "acknowledged")
        settle(pd, runtime, timeout=120, use_cli=True)
        timings["ack"] = time.monotonic() - phase

        # notes from both sides, every webhook delivered twice; half-way, a replica dies
        phase = time.monotonic()
        pd.set_faults(storm_429=60, storm_429_headers=False, drop_rate=0.05,
                      late_answer_rate=0.03, late_answer_ms=LATE_MS,
                      webhook_duplicates=True, seed=3)
        for n, plan in enumerate(plans):
            if n == len(plans) // 2:
                kill(replicas[2])
            targets = remote_ids(runtime, plan)
            for k in range(max(len(plan.im_notes), len(plan.pd_notes))):
                if k < len(plan.im_notes):
                    im_step(runtime, plan, "note", plan.im_notes[k])
                if k < len(plan.pd_notes):
                    john.note(rng.choice(targets), plan.pd_notes[k])
        # what the killed replica had claimed waits for its lease (the inbox's, 20 s; the
        # outbox's, two minutes, is moved into the past rather than waited for)
        sql(runtime, "UPDATE outbox SET lease_until = ? WHERE status = 'delivering'"
            " AND lease_until > ?", utcnow() - timedelta(seconds=1),
            utcnow() + timedelta(seconds=60))
        settle(pd, runtime, timeout=120)
        timings["notes"] = time.monotonic() - phase

        phase = time.monotonic()
        pd.set_faults(latency_ms=2, error_rate=0.1, drop_rate=0.05, seed=4)
        for plan in plans:
            if plan.resolve == "im":
                im_step(runtime, plan, "resolve", plan.resolve_note)
            elif plan.resolve == "pd":
                for remote_id in remote_ids(runtime, plan):
                    john.set_status(remote_id, "resolved")
        settle(pd, runtime, timeout=120)
        timings["resolve"] = time.monotonic() - phase
        stop_all(replicas[:2])
    finally:
        balancer.close()

    faults_met = Counter(r["fault"].split()[0] for r in pd.requests() if r["fault"])
    check_agreement(runtime, pd, plans, john)
    assert faults_met["server_error"] and faults_met["rate_limit"] and faults_met["drop"]
    # the replicas did the work: each received its share of the webhooks
    assert all(balancer.sent[index] for index in range(3)), balancer.sent
    print(f"\n{N_INCIDENTS} incidents in {time.monotonic() - started:.1f}s;"
          f" phases {({k: round(v, 1) for k, v in timings.items()})};"
          f" faults met {dict(faults_met)}; webhooks per replica {dict(balancer.sent)}")
    runtime.store.close()


# -- a replica frozen, not dead -------------------------------------------------------------


def test_a_frozen_replica_does_not_stop_the_others_storing_webhooks(
        tmp_path, pd, pagerduty_webhook_receiver):
    runtime, plans, written, deliveries = responders_work(tmp_path, pd,
                                                          pagerduty_webhook_receiver)
    replicas = start_replicas(tmp_path)
    frozen, other = replicas[0], replicas[1]
    # the stream to the one to freeze keeps it writing; freeze it while it holds the lock
    stream = iter(deliveries[:-1])
    with ThreadPoolExecutor(4) as pool:
        sending = [pool.submit(lambda: [forward(d, frozen) for d in stream]) for _ in range(4)]
        for _ in range(200):
            os.killpg(frozen.pid, signal.SIGSTOP)
            if not writes_go_through():
                break
            os.killpg(frozen.pid, signal.SIGCONT)
            time.sleep(0.003)
        else:
            pytest.fail("never froze the replica while it held the write lock")
        try:
            # another replica, alive and well, is sent the last event
            started = time.monotonic()
            status, _ = forward(deliveries[-1], other)
            answered_in = time.monotonic() - started
        finally:
            kill(frozen)  # its senders' connections fail, and they stop
            for future in sending:
                future.result()
    stop_all(replicas[1:])
    assert status == 202 and answered_in < 9, (status, answered_in)


# -- a replica's host gone -----------------------------------------------------------------


class Network:
    """The network between one replica and PostgreSQL: a TCP relay on loopback that can go
    silent, as when the replica's host loses power or its link: no FIN, no RST, nothing, the
    database's end of each connection left open."""

    def __init__(self, url: str) -> None:
        import socket
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.silent = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        self.url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}").geturl()
        self.held: list[Any] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.held += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: Any, sink: Any) -> None:
        import socket

        while not self.silent.is_set():
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if self.silent.is_set():
                return  # nothing passes any more, and nothing is closed
            if not data:  # closed at one end: closed at the other (shutdown sends the FIN
                try:        # at once, though another thread waits on the socket)
                    sink.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            try:
                sink.sendall(data)
            except OSError:
                return

    def go_silent(self) -> None:
        self.silent.set()

    def close(self) -> None:
        self.listener.close()
        for sock in self.held:
            sock.close()


def test_duties_move_when_a_replicas_host_dies(tmp_path, pd):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    runtime.update_connector_settings(CONNECTOR, {"sync_interval": "2s"})
    network = Network(os.environ["IM_DATABASE_URL"])
    try:
        # the first replica, through the network that will fail, takes every duty
        doomed = launch(tmp_path / "replica-a", "info", database_url=network.url)
        wait_up([doomed])
        wait_for(lambda: "this server now runs poll for the cluster" in log_of(doomed),
                 timeout=15)
        others = start_replicas(tmp_path, log_level="info", names="bc")
        network.go_silent()
        kill(doomed)
        try:
            # the database ends the silent holder's session after HEARTBEAT_TIMEOUT (10 s)
            # without a word from it; a survivor takes the duty at its next try (2 s)
            wait_for(lambda: any("this server now runs poll for the cluster" in log_of(r)
                                 for r in others), timeout=25, interval=0.2)
        finally:
            stop_all(others)
    finally:
        network.close()
