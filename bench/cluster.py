"""Several `im serve` on one PostgreSQL database: signed PagerDuty webhook ingest with 1, 2 and 3
replicas on PostgreSQL against 1 on SQLite, each against its baseline measured just before it
(as many bare Litestar endpoints, driven alike); then the inbound sync of 10,000 incidents on
PostgreSQL beside the same on SQLite.

    .venv/bin/python bench/cluster.py [--write]   (--write: its section of bench/RESULTS.md)
    ./bench/run --cluster                         (with every other benchmark)

Starts a throwaway PostgreSQL cluster on loopback with .ci/postgres-up (stopped with
.ci/postgres-down whatever happens), or uses the server IM_BENCH_DATABASE names
(postgresql://USER@HOST:PORT/postgres: a database of its own is made, and dropped, per
configuration). With N replicas, N wrk run at once, one per replica, the connections split
among them, each posting its own share of the events; the rates are summed. After the burst,
the replicas apply what is left (bounded in time), then the database is checked: every event
answered 2xx stored once (inbox rows unique by delivery id) and applied once (a timeline note
each)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from common import BIN, REPO, WrkResult, ensure_wrk, free_port, wait_up
from ingest import SCRIPT, prepare_home, signed_events, tree_cpu_seconds, tree_peak_rss_mib

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADING = "## Several `im serve` on one PostgreSQL database (`bench/cluster.py`)"
# (store, replicas), in this order
CONFIGURATIONS = (("sqlite", 1), ("postgres", 1), ("postgres", 2), ("postgres", 3))
EVENTS = 200_000  # split among the replicas: none sends another's, none runs out in 10 s
DRAIN_SECONDS = 300  # the bound on waiting for the replicas to apply the burst
THREADS = 2  # wrk threads per wrk process
DELIVERY = re.compile(r"01BENCH(\d{10})$")


# -- PostgreSQL ---------------------------------------------------------------------------------

@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The admin URL of a PostgreSQL server: IM_BENCH_DATABASE, else a throwaway cluster."""
    given = os.environ.get("IM_BENCH_DATABASE")
    if given:
        yield given
        return
    folder = tempfile.mkdtemp(prefix="im-bench-pg-")
    try:
        started = subprocess.run([str(REPO / ".ci" / "postgres-up"), folder], text=True,
                                 stdout=subprocess.PIPE, timeout=600)
        if started.returncode != 0:
            raise RuntimeError(f".ci/postgres-up failed ({started.returncode})")
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(REPO / ".ci" / "postgres-down"), folder], timeout=120,
                       check=False)
        shutil.rmtree(folder, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.contextmanager
def fresh_database(admin_url: str, name: str) -> Iterator[str]:
    """A new, empty database on the server (im migrates it), dropped afterwards."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with contextlib.suppress(Exception):
            from im.storage.postgres import database

            database.close_all()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def environment(database_url: str | None) -> Iterator[None]:
    """IM_DATABASE_URL set to database_url (None: unset, the SQLite file) for the duration."""
    before = os.environ.pop("IM_DATABASE_URL", None)
    if database_url:
        os.environ["IM_DATABASE_URL"] = database_url
    try:
        yield
    finally:
        os.environ.pop("IM_DATABASE_URL", None)
        if before is not None:
            os.environ["IM_DATABASE_URL"] = before


class Database:
    """Read what the servers stored, on either store, one short query at a time."""

    def __init__(self, home: Path, url: str | None) -> None:
        self.home, self.url = home, url

    def rows(self, query: str) -> list[tuple]:  # type: ignore[type-arg]
        if self.url:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as db:
                return db.execute(query).fetchall()
        db = sqlite3.connect(self.home / "im.db", timeout=30)
        try:
            return db.execute(query).fetchall()
        finally:
            db.close()

    def backlog(self) -> int:
        return int(self.rows("SELECT count(*) FROM inbox WHERE status IN ('pending',"
                             " 'processing')")[0][0])


# -- wrk, N at once -----------------------------------------------------------------------------

def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


def share_files(events: Path, work: Path, replicas: int) -> list[Path]:
    """The events cut into `replicas` consecutive shares, a file each."""
    lines = events.read_text().splitlines(keepends=True)
    files, start = [], 0
    for n, size in enumerate(split(len(lines), replicas)):
        path = work / f"events-{replicas}-{n}.tsv"
        path.write_text("".join(lines[start:start + size]))
        files.append(path)
        start += size
    return files


def wrk_at_once(ports: list[int], shares: list[Path], connections: int,
                seconds: int) -> list[WrkResult]:
    """One wrk per port, all at once, the connections split among them."""
    runs = []
    for port, share, conns in zip(ports, shares, split(connections, len(ports)), strict=True):
        command = [ensure_wrk(), f"-t{THREADS}", f"-c{conns}", f"-d{seconds}s", "--latency",
                   "-s", str(SCRIPT), f"http://127.0.0.1:{port}", "--", str(share),
                   str(THREADS), "/connectors/bench/webhook"]
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
    results = []
    for process in runs:
        out, _ = process.communicate(timeout=seconds + 60)
        results.append(WrkResult(out))
    return results


def combined(results: list[WrkResult]) -> dict[str, float]:
    """Rates summed; latency: the worst replica's percentile."""
    return {"rate": sum(r.rate for r in results),
            "ok_rate": sum(r.ok / r.seconds for r in results),
            "requests": sum(r.requests for r in results),
            "ok": sum(r.ok for r in results),
            "non_2xx": sum(r.non_2xx for r in results),
            "socket_errors": sum(r.socket_errors for r in results),
            "p50_ms": max(r.latency["50"] for r in results),
            "p99_ms": max(r.latency["99"] for r in results)}


def stop(processes: list[subprocess.Popen]) -> None:  # type: ignore[type-arg]
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# -- one configuration --------------------------------------------------------------------------

def baseline(shares: list[Path], connections: int, seconds: int) -> dict[str, float]:
    """As many bare Litestar endpoints (one process each) as replicas, driven alike."""
    ports = [free_port() for _ in shares]
    servers = [subprocess.Popen([str(BIN / "uvicorn"), "bare_app:app", "--port", str(port),
                                 "--http", "httptools", "--log-level", "warning",
                                 "--no-access-log"], cwd=Path(__file__).parent,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for port in ports]
    try:
        for port in ports:
            wait_up(f"http://127.0.0.1:{port}/")
        return combined(wrk_at_once(ports, shares, connections, seconds))
    finally:
        stop(servers)


def replicas_run(store: str, replicas: int, shares: list[Path], work: Path,
                 database_url: str | None, connections: int, seconds: int,
                 server: int | None = None) -> dict[str, object]:
    """`replicas` x `im serve` on one database, the same prepared data, driven by wrk."""
    label = f"{store}-{replicas}"
    home = work / f"home-{label}"
    home.mkdir()
    with environment(database_url):
        prepare_home(home)
    homes = [home]
    for n in range(1, replicas):  # the same home (its settings); the data is in the database
        homes.append(work / f"home-{label}-{n}")
        shutil.copytree(home, homes[-1])
    ports = [free_port() for _ in homes]
    logs = [work / f"serve-{label}-{n}.log" for n in range(replicas)]
    servers = []
    env = {**os.environ}
    env.pop("IM_DATABASE_URL", None)
    if database_url:
        env["IM_DATABASE_URL"] = database_url
    db = Database(home, database_url)
    left, drained, peaks = 0, None, []
    try:
        for replica_home, port, log in zip(homes, ports, logs, strict=True):
            with log.open("w") as out:
                servers.append(subprocess.Popen(
                    [str(BIN / "im"), "serve", "--port", str(port), "--log-level", "warning",
                     "--workers", "1"], env={**env, "IM_HOME": str(replica_home)},
                    stdout=out, stderr=subprocess.STDOUT))
        for port in ports:
            wait_up(f"http://127.0.0.1:{port}/health", timeout=60)
        time.sleep(1)  # every replica's background work up (duties elected, listening)
        cpu = sum(tree_cpu_seconds(one.pid) for one in servers)
        database_cpu = tree_cpu_seconds(server) if server else 0.0
        burst = combined(wrk_at_once(ports, shares, connections, seconds))
        cpu = sum(tree_cpu_seconds(one.pid) for one in servers) - cpu
        database_cpu = tree_cpu_seconds(server) - database_cpu if server else 0.0
        left = db.backlog()
        started = time.monotonic()
        while time.monotonic() - started < DRAIN_SECONDS:
            if not db.backlog():
                drained = time.monotonic() - started
                break
            time.sleep(0.5)
        peaks = [tree_peak_rss_mib(one.pid) for one in servers]
        alive = sum(1 for one in servers if one.poll() is None)
    finally:
        stop(servers)
    return {**burst, **check(db, shares, replicas, int(burst["ok"])),
            "replicas": replicas, "store": store, "peak_rss_mib": peaks,
            # the replicas' CPU during the burst (PostgreSQL's own not counted), the applying
            # of events in the background included, per request answered; and as a share of
            # the burst's wall time (2.0: both cores all the time)
            "cpu_us_per_request": cpu / max(1, int(burst["requests"])) * 1e6,
            "cpu_cores_busy": cpu / seconds,
            # PostgreSQL's processes, where the server runs here
            "database_cpu_us_per_request": database_cpu / max(1, int(burst["requests"])) * 1e6,
            "database_cores_busy": database_cpu / seconds,
            "servers_alive_at_end": alive, "backlog_after_burst": left,
            "backlog_applied_seconds": drained, **log_errors(logs)}


def check(db: Database, shares: list[Path], replicas: int, ok: int) -> dict[str, int]:
    """Stored once, applied once: inbox rows by delivery id, timeline notes by their text (each
    event's note is its own, "bench note N"). Gaps: events missing before the last one stored
    in a wrk thread's sequence (each thread posts its events in order; one per connection at
    most may be left unanswered in flight when wrk stops, and wrk calls the script's request()
    once on its first thread to check it, so the first event of each wrk's share is never
    sent: one gap per replica is expected)."""
    stored, distinct = db.rows("SELECT count(*), count(DISTINCT delivery_id) FROM inbox")[0]
    left = db.backlog()
    notes, distinct_notes = db.rows("SELECT count(*), count(DISTINCT text) FROM timeline"
                                    " WHERE kind = 'note'")[0]
    numbers = set()
    for (delivery,) in db.rows("SELECT delivery_id FROM inbox"):
        match = DELIVERY.match(delivery)
        if match:
            numbers.add(int(match.group(1)))
    gaps, start = 0, 0
    for size in split(EVENTS, replicas):
        for thread in range(THREADS):
            sequence = range(start + thread, start + size, THREADS)
            held = [n in numbers for n in sequence]
            if any(held):
                last = len(held) - 1 - held[::-1].index(True)
                gaps += held[:last].count(False)
        start += size
    return {"stored": stored, "distinct_deliveries": distinct,
            "duplicated": stored - distinct,
            # by count (wrk does not say which events were answered): more 2xx answers than
            # rows stored would be acknowledged events lost
            "lost": max(0, ok - distinct),
            "gaps": gaps, "applied_notes": notes,
            "applied_twice": notes - distinct_notes,
            # applied: every stored event a note, once (when the backlog was applied)
            "not_applied": distinct - distinct_notes, "backlog_at_check": left}


def log_errors(logs: list[Path]) -> dict[str, object]:
    lines = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if "Traceback" in line or "ERROR" in line:
                lines.append(f"{log.name}: {line.strip()[:300]}")
    return {"log_errors": len(lines), "log_error_lines": lines[:20],
            "logs": [str(log) for log in logs]}


def ingest_all(admin_url: str, work: Path, connections: int,
               seconds: int) -> list[dict[str, object]]:
    server = postmaster(admin_url)
    events = work / "events.tsv"
    signed_events(events, EVENTS)
    runs = []
    for store, replicas in CONFIGURATIONS:
        print(f"  {store}, {replicas} x im serve...", file=sys.stderr)
        shares = share_files(events, work, replicas)
        base = baseline(shares, connections, seconds)
        if store == "sqlite":
            entry = replicas_run(store, replicas, shares, work, None, connections, seconds)
        else:
            with fresh_database(admin_url, f"im_bench_{replicas}") as url:
                entry = replicas_run(store, replicas, shares, work, url, connections, seconds,
                                     server)
        entry["baseline"] = base
        entry["durable_rate"] = entry["ok_rate"]
        entry["ratio_to_baseline"] = float(entry["ok_rate"]) / base["rate"]  # type: ignore[arg-type]
        print(json.dumps({k: v for k, v in entry.items() if k != "log_error_lines"}),
              file=sys.stderr)
        runs.append(entry)
    return runs


def sync_both(admin_url: str, incidents: int) -> list[dict[str, object]]:
    """bench/sync_cost.py's inbound sync, on SQLite then on a fresh PostgreSQL database."""
    import sync_cost

    runs = []
    with environment(None):
        print("  inbound sync on SQLite...", file=sys.stderr)
        runs.append({"store": "sqlite", **sync_cost.inbound(incidents)})
    with fresh_database(admin_url, "im_bench_sync") as url, environment(url):
        print("  inbound sync on PostgreSQL...", file=sys.stderr)
        runs.append({"store": "postgres", **sync_cost.inbound(incidents)})
    return runs


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def postmaster(admin_url: str) -> int | None:
    """The PostgreSQL server's main process, where it runs on this machine (its backends are
    its children): the parent of this connection's backend."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as db:
        backend = db.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        try:
            for line in Path(f"/proc/{backend}/status").read_text().splitlines():
                if line.startswith("PPid:"):
                    return int(line.split()[1])
        except OSError:
            pass
    return None


def postgres_version(admin_url: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as db:
        return str(db.execute("SHOW server_version").fetchone()[0]).split()[0]  # type: ignore[index]


def run(seconds: int = 10, connections: int = 64, incidents: int = 10_000) -> dict[str, object]:
    started, load_before = time.monotonic(), load()
    work = Path(tempfile.mkdtemp(prefix="im-bench-cluster-"))
    given = bool(os.environ.get("IM_BENCH_DATABASE"))
    with postgres_server() as admin_url:
        version = postgres_version(admin_url)
        runs = ingest_all(admin_url, work, connections, seconds)
        sync = sync_both(admin_url, incidents)
    return {"seconds": seconds, "connections": connections, "events": EVENTS,
            "drain_limit": DRAIN_SECONDS, "runs": runs, "sync": sync,
            "postgres": version, "throwaway": not given, "work": str(work),
            "load_before": load_before, "load_after": load(),
            "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
            "wall_seconds": time.monotonic() - started}


# -- bench/RESULTS.md ---------------------------------------------------------------------------

def markdown(result: dict) -> list[str]:  # type: ignore[type-arg]
    from common import machine

    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    lines = [
        HEADING,
        "",
        f"Run {result['date']} UTC ({result['wall_seconds']:.0f} s), {machine()},"
        f" PostgreSQL {result['postgres']}"
        + (" (a throwaway cluster from `.ci/postgres-up` on loopback: fsync, synchronous_commit"
           " and full_page_writes off)" if result["throwaway"] else "")
        + f". Load average {result['load_before']} when it began, {result['load_after']} when"
        " it ended, on 2 cores: "
        + ("the machine had other work running."
           if max(float(result["load_before"]), float(result["load_after"])) >= 1.5
           else "the machine was nearly idle."),
        "",
        f"wrk, {result['connections']} connections in all, {result['seconds']} s, distinct"
        " signed PagerDuty v3 `incident.annotated` events (bench/ingest.py's home of 500"
        " linked incidents and its events) posted to N `im serve --workers 1` on one database,"
        " each on its own port: with N replicas, N wrk at once, one per replica, the"
        " connections split among them, each posting its own share of the events; the rates"
        " are summed, the latency is the worst replica's. The baseline, just before each:"
        " as many bare Litestar endpoints (one process each), driven alike. Durable: answered"
        " 202 only after the commit. Then the replicas apply what the burst left (each claims"
        " events with SKIP LOCKED; at most"
        f" {result['drain_limit']} s), and the database is checked: every event answered 2xx"
        " stored once (inbox rows, unique by delivery id) and applied once (a timeline note"
        " each, by its text). CPU per request: that of the replicas' processes (the applying"
        " of events in the background included) and of PostgreSQL's during the burst, per"
        " request answered. On 2 cores, replicas share the same CPU and PostgreSQL takes"
        " its part of it: they cannot add throughput here; the figures show what a replica"
        " costs and that nothing is lost.",
        "",
        "| store | replicas | bare Litestar | `im serve`, durable | p50 | p99 | to bare Litestar"
        " | CPU per request: `im serve` + PostgreSQL | peak RSS per replica | left after the"
        " burst | applied in | lost | duplicated | applied twice |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        drained = r["backlog_applied_seconds"]
        lines.append(
            f"| {names[r['store']]} | {r['replicas']} | {r['baseline']['rate']:,.0f}/s"
            f" | {r['durable_rate']:,.0f}/s | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms"
            f" | {r['ratio_to_baseline']:.2f}"
            f" | {r['cpu_us_per_request']:.0f} + {r['database_cpu_us_per_request']:.0f} µs"
            f" | {', '.join(f'{p:.0f}' for p in r['peak_rss_mib'])} MiB"
            f" | {r['backlog_after_burst']:,}"
            f" | {f'{drained:.0f} s' if drained is not None else 'NOT within the bound'}"
            f" | {r['lost']} | {r['duplicated']} | {r['applied_twice']} |")
    lines.append("")
    for r in result["runs"]:
        lines.append(
            f"- {names[r['store']]}, {r['replicas']} replica{'s' * (r['replicas'] != 1)}:"
            f" answered 2xx {r['ok']:,} of {r['requests']:,}; stored {r['stored']:,}"
            f" ({r['distinct_deliveries']:,} distinct delivery ids); applied"
            f" {r['applied_notes']:,} notes, {r['not_applied']:,} stored events without one"
            f" ({r['backlog_at_check']:,} still to apply when checked); gaps in a wrk"
            f" thread's sequence before its last stored event: {r['gaps']} ({r['replicas']}"
            " expected: wrk calls the script once to check it, which takes each wrk's first"
            " event, never sent); cores busy during"
            f" the burst: {r['cpu_cores_busy']:.2f} in `im serve`,"
            f" {r['database_cores_busy']:.2f} in PostgreSQL; socket errors:"
            f" {r['socket_errors']}; servers' logs: {r['log_errors']} lines with Traceback or"
            f" ERROR; servers up at the end: {r['servers_alive_at_end']} of {r['replicas']}.")
    by = {(r["store"], r["replicas"]): r for r in result["runs"]}
    if ("sqlite", 1) in by and ("postgres", 1) in by:
        sq, pg = by[("sqlite", 1)], by[("postgres", 1)]
        lines += ["", f"One replica on PostgreSQL to one on SQLite:"
                      f" {pg['durable_rate'] / sq['durable_rate']:.2f} x the durable rate,"
                      f" {pg['ratio_to_baseline'] / sq['ratio_to_baseline']:.2f} x the ratio to"
                      " its baseline."]
    lines += [
        "",
        f"Inbound sync of {result['sync'][0]['incidents']:,} PagerDuty incidents (one poll,"
        " bench/sync_cost.py's, the sandbox at 960 requests a minute), on each store in the"
        " same run; CPU is the syncing thread's (PostgreSQL's own processes not counted):",
        "",
        "| store | wall | CPU | CPU per incident | list calls (bound) | per-incident calls"
        " | 429s | outcomes | im incidents |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["sync"]:
        lines.append(
            f"| {names[s['store']]} | {s['wall_seconds']} s | {s['cpu_seconds']} s"
            f" | {s['cpu_ms_per_incident']} ms | {s['list_calls']} ({s['bound']})"
            f" | {s['per_incident_calls']} | {s['status_429']} | {s['outcomes']}"
            f" | {s['im_incidents']:,} |")
    lines.append("")
    return lines


def section(text: str) -> str | None:
    """This benchmark's section of a RESULTS.md text, if it has one."""
    start = text.find(HEADING)
    if start < 0:
        return None
    end = text.find("\n## ", start + len(HEADING))
    return text[start:end if end >= 0 else len(text)].rstrip("\n") + "\n"


def write_section(lines: list[str]) -> None:
    """Put this section into bench/RESULTS.md in place of the one there, else at the end."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    new = "\n".join(lines).rstrip("\n") + "\n"
    old = section(text)
    if old is not None:
        text = text.replace(old, new)
    else:
        text = text.rstrip("\n") + "\n\n" + new
    RESULTS.write_text(text)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true",
                        help="put its section into bench/RESULTS.md")
    parser.add_argument("--seconds", type=int, default=10, help="each burst (default 10)")
    parser.add_argument("--incidents", type=int, default=10_000,
                        help="of the inbound sync (default 10,000)")
    options = parser.parse_args()
    result = run(options.seconds, incidents=options.incidents)
    print(json.dumps(result, indent=2, default=str))
    print("\n".join(markdown(result)))
    if options.write:
        write_section(markdown(result))
        print(f"wrote its section of {RESULTS}", file=sys.stderr)

if __name__ == "__main__":
    main()
