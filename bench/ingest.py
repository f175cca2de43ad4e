"""Webhook ingest: signed PagerDuty v3 events posted to a real `im serve` on loopback by wrk,
64 connections, against two baselines on the same server stack measured in the same run: a raw
ASGI app (the ceiling of the stack itself) and a bare Litestar endpoint. Reports durable
events/s (answered 2xx only after the commit), latency, and the lost and duplicated counts
checked in the database. With one worker, `im serve` also runs on the stack as it was before
im bounded requests (uvicorn's httptools protocol as it comes) and on uvicorn's h11 protocol:
the measurement behind the choice of stack (docs/server.md)."""

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

    from datetime import UTC, datetime

    # dated now: im quarantines events dated in the future and drops ones older than its
    # replay window
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with path.open("w") as out:
        for n in range(count):
            body = json.dumps({"event": {
                "id": f"01BENCH{n:010d}", "event_type": "incident.annotated",
                "resource_type": "incident", "occurred_at": now,
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


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user and system) used so far by a process and its children, summed: a
    figure that moves far less with the machine's other load than a rate does."""
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for one_pid in pids:
        try:
            fields = Path(f"/proc/{one_pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def backlog(home: Path) -> int:
    db = sqlite3.connect(home / "im.db", timeout=30)
    try:
        return db.execute("SELECT count(*) FROM inbox WHERE status IN ('pending',"
                          " 'processing')").fetchone()[0]
    finally:
        db.close()


def endpoint(events: Path, module: str, workers: int, seconds: int,
             connections: int) -> dict[str, float]:
    """A baseline app from this folder on uvicorn's httptools protocol (as `im serve`)."""
    port = free_port()
    server = subprocess.Popen([str(BIN / "uvicorn"), module, "--port", str(port),
                               "--http", "httptools", "--log-level", "warning",
                               "--no-access-log", "--workers", str(workers)],
                              cwd=Path(__file__).parent, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_up(f"http://127.0.0.1:{port}/")
        time.sleep(1 if workers > 1 else 0)  # every worker up
        result = wrk(f"http://127.0.0.1:{port}", SCRIPT, _args(events),
                     connections=connections, seconds=seconds)
    finally:
        server.terminate()
        server.wait()
    return {"rate": result.rate, "p50_ms": result.latency["50"],
            "p99_ms": result.latency["99"]}


def _args(events: Path) -> list[str]:
    return [str(events), "2", "/connectors/bench/webhook"]


SCRIPT = Path(__file__).with_name("webhook.lua")


def im_serve(events: Path, workers: int, seconds: int, connections: int,
             protocol: str | None = None, drain: bool | None = None) -> dict[str, object]:
    """`im serve` as shipped, or (protocol) on another of uvicorn's protocols, through
    serve_as.py; as shipped, also how long its background work takes to apply the burst."""
    home = Path(tempfile.mkdtemp(prefix="im-bench-home-"))
    prepare_home(home)
    port = free_port()
    command = [str(BIN / "im")] if protocol is None else [
        str(BIN / "python"), str(Path(__file__).with_name("serve_as.py")), protocol]
    server = subprocess.Popen([*command, "serve", "--port", str(port), "--log-level",
                               "warning", "--workers", str(workers)],
                              env={**os.environ, "IM_HOME": str(home)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    left, drained = 0, None
    try:
        wait_up(f"http://127.0.0.1:{port}/health")
        time.sleep(1 if workers > 1 else 0)
        cpu = tree_cpu_seconds(server.pid)
        result = wrk(f"http://127.0.0.1:{port}", SCRIPT, _args(events),
                     connections=connections, seconds=seconds)
        cpu = tree_cpu_seconds(server.pid) - cpu
        peak = tree_peak_rss_mib(server.pid)
        if drain if drain is not None else protocol is None:
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
        "peak_rss_mib": peak,
        # the applying of events in the background is in it too (the same for every stack)
        "cpu_us_per_request": cpu / max(1, result.requests) * 1e6,
        "backlog_after_burst": left, "backlog_applied_seconds": drained,
    }


def one(events: Path, workers: int, seconds: int, connections: int) -> dict[str, object]:
    """The two baselines, then `im serve`, each with `workers` HTTP processes."""
    raw = endpoint(events, "raw_asgi:app", workers, seconds, connections)
    bare = endpoint(events, "bare_app:app", workers, seconds, connections)
    shipped = im_serve(events, workers, seconds, connections)
    rate = float(shipped["durable_rate"])  # type: ignore[arg-type]
    entry: dict[str, object] = {
        "workers": workers, "raw": raw, "bare": bare, **shipped,
        "baseline_rate": bare["rate"], "ratio_to_baseline": rate / bare["rate"],
        "ratio_to_raw": rate / raw["rate"],
    }
    return entry


# The choice of stack, one worker: uvicorn's httptools protocol as it comes (the stack before
# im bounded requests) and as shipped, twice in ABBA order, so that drift in the machine's
# load falls on both alike (single runs of im serve differ by 20% on a shared machine), then
# h11.
STACK_ORDER = ("httptools", "shipped", "shipped", "httptools",
               "httptools", "shipped", "shipped", "httptools", "h11")


def stacks(events: Path, seconds: int, connections: int) -> list[dict[str, object]]:
    return [{"stack": stack, **im_serve(events, 1, seconds, connections,
                                        None if stack == "shipped" else stack, drain=False)}
            for stack in STACK_ORDER]


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
            "repo": str(REPO), "runs": runs, "stacks": stacks(events, seconds, connections)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
