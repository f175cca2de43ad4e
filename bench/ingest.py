"""Webhook ingest: signed PagerDuty v3 events posted to a real `im serve` on loopback by wrk,
64 connections, against a bare Litestar endpoint on the same server stack measured in the same
run. Reports durable events/s (answered 2xx only after the commit), latency, and the lost and
duplicated counts checked in the database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from common import BIN, REPO, free_port, peak_rss_mib, wait_up, wrk

SECRET = "bench-secret"


def signed_events(path: Path, count: int) -> None:
    import hashlib
    import hmac

    with path.open("w") as out:
        for n in range(count):
            body = json.dumps({"event": {
                "id": f"01BENCH{n:010d}", "event_type": "incident.annotated",
                "resource_type": "incident", "occurred_at": "2026-11-28T10:00:00.000Z",
                "agent": None, "client": None,
                "data": {"incident": {"id": f"Q{n % INCIDENTS:06d}", "type": "incident_reference"},
                         "id": f"N{n}", "content": f"bench note {n}", "trimmed": False,
                         "type": "incident_note"}}}, separators=(",", ":"))
            signature = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
            out.write(f"v1={signature}\t{body}\n")


def prepare_home(home: Path) -> None:
    env = {**os.environ, "IM_HOME": str(home)}
    config = {"api_key": "bench", "base_url": "http://127.0.0.1:9", "enable_webhook": True,
              "sync_direction": "inbound", "sync_interval": "0s",
              "custom": {"service_id": "PXXXXXX", "from_email": "ops@company.com",
                         "webhook_secrets": [SECRET]}}
    subprocess.run([str(BIN / "im"), "connector", "add", "pagerduty", "bench", "--config",
                    json.dumps(config)], env=env, check=True, capture_output=True)
    (home / "settings.json").write_text(json.dumps({"server": {"webhook_rate_limit": 0}}))
    # The incidents the events are about, each linked to its PagerDuty incident, so that
    # applying an event is real work: a note on the incident's timeline.
    subprocess.run([str(BIN / "python"), "-c", LINKED, str(home), str(INCIDENTS)], env=env,
                   check=True)


INCIDENTS = 500
LINKED = """
import sys
from pathlib import Path
from im import incidents
from im.models import Link
from im.testing import make_runtime
runtime = make_runtime(Path(sys.argv[1]), load_entrypoints=True, user="bench")
with runtime.store.transaction():
    for n in range(int(sys.argv[2])):
        incident = incidents.declare(runtime, title=f"bench {n}", severity="SEV-3",
                                     services=["db"])
        runtime.store.upsert_link(Link(incident_id=incident.id, connector="bench",
                                       service="db", remote_id=f"Q{n:06d}"))
"""


def tree_peak_rss_mib(pid: int) -> float:
    """Peak resident size of a process and its children (the workers), summed."""
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    return sum(peak_rss_mib(p) for p in pids)


def backlog(home: Path) -> int:
    db = sqlite3.connect(home / "im.db", timeout=30)
    try:
        return db.execute("SELECT count(*) FROM inbox WHERE status IN ('pending',"
                          " 'processing')").fetchone()[0]
    finally:
        db.close()


def one(events: Path, workers: int, seconds: int, connections: int) -> dict[str, object]:
    """The bare endpoint, then `im serve`, both with `workers` HTTP processes."""
    script = Path(__file__).with_name("webhook.lua")
    args = [str(events), "2", "/connectors/bench/webhook"]
    port = free_port()
    bare = subprocess.Popen([str(BIN / "uvicorn"), "bare_app:app", "--port", str(port),
                             "--log-level", "warning", "--no-access-log",
                             "--workers", str(workers)],
                            cwd=Path(__file__).parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_up(f"http://127.0.0.1:{port}/")
        time.sleep(1 if workers > 1 else 0)  # every worker up
        baseline = wrk(f"http://127.0.0.1:{port}", script, args, connections=connections,
                       seconds=seconds)
    finally:
        bare.terminate()
        bare.wait()

    home = Path(tempfile.mkdtemp(prefix="im-bench-home-"))
    prepare_home(home)
    port = free_port()
    server = subprocess.Popen([str(BIN / "im"), "serve", "--port", str(port), "--log-level",
                               "warning", "--workers", str(workers)],
                              env={**os.environ, "IM_HOME": str(home)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(f"http://127.0.0.1:{port}/health")
        time.sleep(1 if workers > 1 else 0)
        result = wrk(f"http://127.0.0.1:{port}", script, args, connections=connections,
                     seconds=seconds)
        peak = tree_peak_rss_mib(server.pid)
        # how long the background work takes to apply what the burst left behind
        left = backlog(home)
        started = time.monotonic()
        while backlog(home) and time.monotonic() - started < 120:
            time.sleep(0.25)
        drained = time.monotonic() - started if not backlog(home) else None
    finally:
        server.terminate()
        server.wait(timeout=30)
    db = sqlite3.connect(home / "im.db")
    stored, distinct = db.execute(
        "SELECT count(*), count(DISTINCT delivery_id) FROM inbox").fetchone()
    db.close()
    sent_distinct = min(result.requests, EVENTS)
    return {
        "workers": workers,
        "baseline_rate": baseline.rate, "baseline_p50_ms": baseline.latency["50"],
        "baseline_p99_ms": baseline.latency["99"],
        "requests": result.requests, "answered_2xx": result.ok, "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
        # a 2xx is sent only after its event is committed: the answered rate is the durable
        # one (requests still in flight when wrk stops are stored but never counted)
        "durable_rate": result.ok / result.seconds, "stored": stored,
        "p50_ms": result.latency["50"], "p99_ms": result.latency["99"],
        # by count, wrk not saying which events were answered: more 2xx than stored rows
        # would be acknowledged events lost (the crash tests check by event id); nothing
        # stored twice
        "lost": max(0, min(result.ok, sent_distinct) - stored),
        "duplicated": stored - distinct,
        "ratio_to_baseline": (result.ok / result.seconds) / baseline.rate,
        "peak_rss_mib": peak,
        "backlog_after_burst": left, "backlog_applied_seconds": drained,
    }


EVENTS = 200_000


ROUNDS = 2


def run(seconds: int = 10, connections: int = 64, rounds: int = ROUNDS) -> dict[str, object]:
    """Each configuration `rounds` times, in turn (1 worker, 2 workers, 1 worker, ...), so the
    spread between rounds shows how much the machine's load moves the figures."""
    work = Path(tempfile.mkdtemp(prefix="im-bench-"))
    events = work / "events.tsv"
    signed_events(events, EVENTS)
    runs = []
    for round_ in range(1, rounds + 1):
        for workers in (1, 2):
            runs.append({"round": round_, **one(events, workers, seconds, connections)})
    return {"seconds": seconds, "connections": connections, "rounds": rounds,
            "repo": str(REPO), "runs": runs}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
