"""Cost that follows what is asked, not how much history there is: im's commands on homes of
1,000, 10,000 and 100,000 incidents (1,000,000 when asked).

    .venv/bin/python bench/scale.py                       # 1k, 10k, 100k
    .venv/bin/python bench/scale.py --sizes 1000,10000    # what ./bench/run does by default
    .venv/bin/python bench/scale.py --sizes 1000,10000,100000,1000000 --pdf-at-1m

A home is built through im's own application layer (im.app: declare, ack, note, resolve,
close, sla checks; the connector added as `im connector add` adds it) on a fake clock that
spreads it over two years: 5% of the incidents still open (two in five of those mitigated),
about five timeline lines each, 1.8 services each on average and a PagerDuty link per
service. What the connector pushed is delivered as the outbox's own delivery records it (the
link, its "PagerDuty incident #N created" line, the call made, the row done) without a
network round trip, and the hourly purge runs as the clock moves, as under `im serve`.
Built homes are kept in bench/.homes/ by size and VERSION (bump it when the shape changes).

Each measurement copies the built home, starts a PagerDuty sandbox holding the open remote
incidents (the links of the open im incidents point at them), and runs the real CLI in
child processes (.venv/bin/im, IM_HOME set), warm: one run first, then the median of 5
(fewer for slow commands: the table says how many), the sizes in turn round after round so
that drift in a shared machine's load falls on each alike. Each figure is the wall time and
the CPU time of the command's process (steadier on a shared machine: the goals are judged on
it); peak memory is that of the child (its ru_maxrss, read by a small launcher process so
that the big parent's is not inherited; its address space is capped at MEMORY_CAP).
`GET /metrics` is scraped from a real `im serve` on loopback (CPU: the server's, averaged
over CPU_SCRAPES scrapes). Every child has a time limit.

The poll is timed twice: with nothing changed in PagerDuty since the last poll, and with
CHANGES remote incidents changed before each run (resolved, then reopened the next time: ten
open incidents of one link each added to the copy for it, declared minutes before), the same
number at every size, so that its cost can be set against the changes it applies rather than
the links of the history. A third poll row has the hourly sweep due (it lists every open
incident of six months too): its cost follows the open incidents. Before any command, one
poll in process with no deadline (`im serve` gives its polls none) brings the copy's cursor and
last sweep up to date, as a running `im serve` keeps them; its time is given with the home. After the scrapes of
`GET /metrics`, `im serve`'s CPU is read over IDLE_SECONDS without requests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BIN, free_port, machine, peak_rss_mib  # noqa: E402

VERSION = 1  # of the homes' shape: bump to have cached homes built again
HOMES = Path(__file__).resolve().with_name(".homes")
DEFAULT_SIZES = (1_000, 10_000, 100_000)
IM = str(BIN / "im")
CONNECTOR = "pd"
YEARS = 2
OPEN_EVERY = 20  # 5% of the incidents are open, evenly spread over the two years
WEB_URL = "https://sandbox.pagerduty.invalid"
# im services and the PagerDuty service each maps to (the demo seed's services)
SERVICES = {"api": "PAPI001", "auth": "PAPI001", "gateway": "PAPI001", "db": "PDAT001",
            "cache": "PDAT001", "queue": "PDAT001", "payments": "PPAY001",
            "billing": "PPAY001", "search": "PGEN001", "web": "PGEN001", "mobile": "PGEN001",
            "email": "PGEN001"}
MAPPINGS = {name: pd for name, pd in SERVICES.items() if pd != "PGEN001"}
SEVERITIES = (("SEV-1", 0.05), ("SEV-2", 0.2), ("SEV-3", 0.45), ("SEV-4", 0.3))
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
SYMPTOMS = ("error rate above 5%", "p99 latency over 2 s", "timeouts from upstream",
            "disk filling up", "certificate expiring", "replica lag", "5xx after deploy",
            "queue backing up", "login failures", "memory leak suspected")
BATCH = 500  # incidents per transaction while building
CHANGES = 10  # remote incidents changed before each run of the poll of POLL_CHANGED
POLL_CHANGED = f"im connector sync pd (one poll, {CHANGES} changes)"
# a poll that also lists every open incident of six months (once an hour): in step with them
POLL_SWEEP = "im connector sync pd (one poll with the hourly sweep)"
IDLE_AFTER, IDLE_SECONDS = 15, 45  # im serve's idle CPU: measured from 15 s after the scrapes


def settings(base_url: str = "http://127.0.0.1:9", api_key: str = "bench-not-used") -> dict:
    return {"base_url": base_url, "api_key": api_key, "sync_direction": "bidirectional",
            "enable_webhook": False,
            "custom": {"service_id": "PGEN001", "from_email": "ops@company.com",
                       "service_mappings": MAPPINGS}}


# -- building a home -----------------------------------------------------------------------


def home_path(size: int) -> Path:
    return HOMES / f"v{VERSION}-{size}"


def ensure_home(size: int) -> dict[str, Any]:
    """The built home of `size` incidents (built now if not cached); its build figures."""
    path = home_path(size)
    done = path / "built.json"
    if done.exists():
        figures = json.loads(done.read_text())
        figures["cached"] = True
        return figures
    HOMES.mkdir(exist_ok=True)
    (HOMES / ".gitignore").write_text("*\n")
    for stale in HOMES.glob("v*-*"):  # homes of an older shape are never used again
        if not stale.name.startswith(f"v{VERSION}-"):
            shutil.rmtree(stale, ignore_errors=True)
    building = path.with_name(path.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    print(f"building a home of {size:,} incidents...", file=sys.stderr)
    # in a process of its own: what building holds in memory never weighs on measurements
    subprocess.run([sys.executable, __file__, "--build", str(size), "--out", str(building)],
                   check=True, timeout=120 + size * 0.02)
    shutil.rmtree(path, ignore_errors=True)
    building.rename(path)
    figures = json.loads(done.read_text())
    figures["cached"] = False
    return figures


def build(size: int, home: Path) -> dict[str, Any]:
    from im.app import connectors, sla
    from im.app import incidents as app
    from im.housekeeping import purge
    from im.models import Link, Origin
    from im.testing import FakeClock, make_runtime

    started = time.perf_counter()
    rng = random.Random(size)
    end = datetime.now(UTC).replace(microsecond=0)
    first = end - timedelta(days=365 * YEARS)
    clock = FakeClock(first - timedelta(days=1))
    runtime = make_runtime(home, load_entrypoints=True, clock=clock, user="bench")
    store = runtime.store
    connectors.add(runtime, "pagerduty", CONNECTOR, settings())
    spacing = (end - first - timedelta(days=4)) / size
    numbers = iter(range(1, 10 ** 9))
    remote: dict[tuple[str, str], str] = {}  # (incident, service) -> remote id
    counts = {"timeline": 0, "links": 0, "open": 0, "mitigated": 0, "closed": 0}

    def deliver(at: datetime, incident_id: str | None = None) -> None:
        """What the outbox's delivery records for each queued change (sync._deliver)."""
        clock.now = at
        while (row := store.claim_outbox(now=at, lease_seconds=120, connector=CONNECTOR,
                                         incident_id=incident_id, due_only=False)
               ) is not None:
            key = (row.incident_id, row.service)
            if row.action == "declare":
                number = next(numbers)
                rid = f"Q{number:013d}"
                remote[key] = rid
                url = f"{WEB_URL}/incidents/{rid}"
                store.upsert_link(Link(incident_id=row.incident_id, connector=CONNECTOR,
                                       service=row.service, remote_id=rid,
                                       remote_number=str(number), remote_url=url,
                                       updated_at=at), initial_status="open")
                store.add_timeline(row.incident_id, at=at, kind="sync",
                                   text=f"PagerDuty incident #{number} created (high urgency,"
                                        f" service {SERVICES[row.service]}) {url}",
                                   actor=CONNECTOR, system=CONNECTOR,
                                   data={"action": "declare", "service": row.service})
                method, path, status = "POST", "/incidents", 201
            else:
                rid = remote[key]
                after = {"ack": "acknowledged", "resolve": "resolved",
                         "close": "resolved"}.get(row.action)
                if after:
                    store.upsert_link(Link(incident_id=row.incident_id, connector=CONNECTOR,
                                           service=row.service, remote_id=rid,
                                           remote_status=after, updated_at=at))
                method, status = ("PUT", 200) if after else ("POST", 201)
                path = f"/incidents/{rid}" + ("" if after else "/notes")
            store.record_call(connector=CONNECTOR, at=at, method=method, path=path,
                              status=status, duration_ms=80 + rng.random() * 200, error=None)
            store.finish_outbox(row.id, at=at)

    for batch_start in range(0, size, BATCH):
        with store.transaction():
            for index in range(batch_start, min(size, batch_start + BATCH)):
                at = first + spacing * index + spacing * rng.random() * 0.5
                clock.now = at
                severity = rng.choices([s for s, _ in SEVERITIES],
                                       [w for _, w in SEVERITIES])[0]
                count = rng.choices((1, 2, 3), (0.35, 0.5, 0.15))[0]
                services = rng.sample(sorted(SERVICES), count)
                who = Origin(actor=rng.choice(PEOPLE))
                incident = app.declare(runtime, title=f"{services[0]} {rng.choice(SYMPTOMS)}",
                                       severity=severity, services=services,
                                       description="Seen on the dashboards; paging the owners.",
                                       actor=who)
                deliver(at + timedelta(seconds=2), incident.id)
                minutes = rng.uniform(2, 40)
                if index % OPEN_EVERY == 0:  # still open
                    counts["open"] += 1
                    if rng.random() < 0.4:
                        clock.now = at + timedelta(minutes=minutes)
                        app.ack(runtime, incident.id, actor=who)
                        deliver(clock.now + timedelta(seconds=1), incident.id)
                        counts["mitigated"] += 1
                    if rng.random() < 0.5:
                        clock.now = at + timedelta(minutes=minutes + 5)
                        app.note(runtime, incident.id, "Still looking; next update in an hour",
                                 actor=who)
                        deliver(clock.now + timedelta(seconds=1), incident.id)
                    continue
                if rng.random() < 0.6:
                    clock.now = at + timedelta(minutes=minutes)
                    app.ack(runtime, incident.id, actor=who)
                    deliver(clock.now + timedelta(seconds=1), incident.id)
                if rng.random() < 0.4:
                    clock.now = at + timedelta(minutes=minutes + 10)
                    app.note(runtime, incident.id, "Rolled back the last deploy; watching",
                             actor=who)
                    deliver(clock.now + timedelta(seconds=1), incident.id)
                clock.now = at + timedelta(minutes=minutes + rng.uniform(15, 300))
                app.resolve(runtime, incident.id, note="Fixed", actor=who)
                deliver(clock.now + timedelta(seconds=1), incident.id)
                if rng.random() < 0.3:
                    clock.now += timedelta(days=rng.uniform(1, 3))
                    app.close(runtime, incident.id, actor=who)
                    deliver(clock.now + timedelta(seconds=1), incident.id)
                    counts["closed"] += 1
            # as `im serve` does as time goes by: breaches noted, old history purged
            clock.now = max(at, clock.now)
            sla.check_breaches(runtime)
            deliver(clock.now)
            purge(runtime)
        remote = {k: v for k, v in remote.items()
                  if int(k[0][4:]) % OPEN_EVERY == 1}  # open ones keep their links in mind
        if batch_start // BATCH % 20 == 0:
            done = min(size, batch_start + BATCH)
            print(f"  {done:,} incidents, {done / (time.perf_counter() - started):,.0f}/s",
                  file=sys.stderr)
    clock.now = end
    with store.transaction():
        sla.check_breaches(runtime)
        deliver(end)
        purge(runtime)
        store.set_cursor(CONNECTOR, end.isoformat(), at=end)  # polled just now
    seconds = time.perf_counter() - started
    # counted by the database: a million incidents' lines and links are not read into memory
    [(counts["timeline"],)] = store.rows("SELECT count(*) FROM timeline")
    [(counts["links"],)] = store.rows("SELECT count(*) FROM links WHERE connector = ?",
                                      (CONNECTOR,))
    store.close()
    figures = {"size": size, "version": VERSION, "first": first.isoformat(),
               "end": end.isoformat(), "build_seconds": round(seconds, 1),
               "build_rate": round(size / seconds), **counts,
               "db_mib": round(sum(p.stat().st_size for p in home.iterdir()) / 2 ** 20, 1)}
    (home / "built.json").write_text(json.dumps(figures, indent=2))
    return figures


# -- a session against a built home --------------------------------------------------------

# The launcher of each CLI run: small, so that the child's ru_maxrss is its own (Linux keeps
# the highest of the process it was forked from across exec); the child's address space is
# capped (MEMORY_CAP), so that a command whose memory follows history fails rather than takes
# a shared machine's memory.
MEMORY_CAP = 8 * 2 ** 30
WRAP = r"""
import json, os, resource, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    cap = int(os.environ.pop("BENCH_MEMORY_CAP"))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
               "code": os.waitstatus_to_exitcode(status),
               "peak_mib": usage.ru_maxrss / 1024}, out)
"""
RUNS = 5
CPU_SCRAPES = 20


class Session:
    """A copy of a built home, a sandbox holding its open remote incidents, the CLI."""

    def __init__(self, size: int, figures: dict[str, Any], sandbox: Any, work: Path) -> None:
        self.size = size
        self.figures = figures
        self.sandbox = sandbox
        self.work = work
        self.home = work / "home"
        shutil.copytree(home_path(size), self.home)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("IM_") and not k.endswith("_DEBUG")}
        self.env.update(IM_HOME=str(self.home), IM_USER="bench")
        self.launch_env = {**self.env, "BENCH_MEMORY_CAP": str(MEMORY_CAP)}
        started = time.perf_counter()
        self.remote_open = self._point_links_at_sandbox()
        figures["remote_open"] = self.remote_open
        figures["sandbox_seconds"] = round(time.perf_counter() - started, 1)
        figures["first_poll_seconds"] = self._poll_as_im_serve_does()

    def _poll_as_im_serve_does(self) -> float:
        """The home as `im serve` keeps it, polled a moment ago: one poll in process with no
        deadline (im serve gives its polls none), which sweeps (the first of this account),
        so that the CLI's polls measured after it start from a current cursor. Its seconds."""
        from im.inbound import poll
        from im.testing import make_runtime

        runtime = make_runtime(self.home, load_entrypoints=True, user="bench")
        started = time.perf_counter()
        try:
            poll(runtime, CONNECTOR)
        finally:
            runtime.store.close()
        return round(time.perf_counter() - started, 1)

    def _point_links_at_sandbox(self) -> int:
        """The sandbox is a new PagerDuty account each run: make the open remote incidents
        there (each created when its im incident was) and point the links at them. Then
        CHANGES more open incidents, declared minutes ago with one link each: the ones
        `change_remote` changes (the same number at every size, each in the poll's window)."""
        from im.app import connectors
        from im.models import Link, Severity, Status
        from im.testing import make_runtime

        runtime = make_runtime(self.home, load_entrypoints=True, user="bench")
        try:
            connectors.update(runtime, CONNECTOR, merge={"base_url": self.sandbox.url,
                                                         "api_key": self.sandbox.api_key})
        except Exception as error:  # noqa: BLE001 (an older or newer rule: set them plainly)
            print(f"  (connector update: {error}; set directly)", file=sys.stderr)
            runtime.update_connector_settings(CONNECTOR, {"base_url": self.sandbox.url,
                                                          "api_key": self.sandbox.api_key})
        store = runtime.store
        now = datetime.now(UTC)
        made = 0
        self.changing: dict[str, str] = {}  # remote id: its status in PagerDuty
        with store.transaction():
            for incident in store.list_incidents(statuses=[Status.OPEN, Status.MITIGATED]):
                for link in store.links(incident.id, connector=CONNECTOR):
                    # im's word for an open remote incident ("triggered" in homes built
                    # before links kept im's words, until migration 0013 renames it)
                    status = {"open": "triggered", "triggered": "triggered",
                              "acknowledged": "acknowledged"}.get(link.remote_status or "")
                    if status is None:
                        continue
                    # one at a time, so that it is created when its im incident was: the
                    # poll lists by creation time
                    span = max((now - incident.created_at).total_seconds(), 1.0)
                    found = self.sandbox.bulk_incidents(
                        1, status=status, span_seconds=span,
                        service_id=SERVICES.get(link.service, "PGEN001"),
                        title=incident.title)["first"]
                    store.replace_link(Link(
                        incident_id=incident.id, connector=CONNECTOR, service=link.service,
                        remote_id=found["id"], remote_number=str(found["number"]),
                        remote_url=f"{WEB_URL}/incidents/{found['id']}",
                        remote_status=link.remote_status, updated_at=link.updated_at))
                    made += 1
            for n in range(CHANGES):
                incident = store.insert_incident(
                    title=f"api {SYMPTOMS[n % len(SYMPTOMS)]} (changing in PagerDuty)",
                    description="", severity=Severity.SEV3, services=["api"], fields={},
                    correlation_id=f"bench-changing-{n}", created_by="bench",
                    at=now - timedelta(minutes=5))
                found = self.sandbox.bulk_incidents(
                    1, status="triggered", span_seconds=300, service_id=SERVICES["api"],
                    title=incident.title)["first"]
                store.upsert_link(Link(
                    incident_id=incident.id, connector=CONNECTOR, service="api",
                    remote_id=found["id"], remote_number=str(found["number"]),
                    remote_url=f"{WEB_URL}/incidents/{found['id']}", remote_status="open",
                    updated_at=now))
                self.changing[found["id"]] = "triggered"
                made += 1
        store.close()
        return made

    def change_remote(self) -> None:
        """Before a poll of the row with a fixed number of changes: the CHANGES remote
        incidents made for it change state in PagerDuty, resolved if open, reopened if
        resolved; each is one change im applies (its incident resolved, or reopened)."""
        with self.sandbox.client() as client:
            for remote_id, status in list(self.changing.items()):
                after = "triggered" if status == "resolved" else "resolved"
                answer = client.put(f"/incidents/{remote_id}", json={"incident": {
                    "type": "incident_reference", "status": after}})
                answer.raise_for_status()
                self.changing[remote_id] = after

    def sweep_due(self) -> None:
        """Before a poll of the sweep's row: the hourly sweep due (as it is once an hour), so
        that the poll lists every open incident of its six months too."""
        import sqlite3

        with sqlite3.connect(self.home / "im.db") as db:
            db.execute("DELETE FROM meta WHERE key = ?", (f"pagerduty:{CONNECTOR}:swept_at",))
        db.close()

    def plan(self, *, pdf: bool) -> list[tuple[str, list[str] | None, dict[str, Any]]]:
        """(name, arguments of `im`, options of measure()); no arguments: GET /metrics."""
        first = datetime.fromisoformat(self.figures["first"])
        empty = (first - timedelta(days=60)).date(), (first - timedelta(days=31)).date()
        everything = (first - timedelta(days=1)).date(), datetime.now(UTC).date()
        slow = {"timeout": max(300, self.size * 0.015)}
        steps: list[tuple[str, list[str] | None, dict[str, Any]]] = [
            ("im list", ["list"], {}),
            ("im show INC-n", ["show", f"INC-{self.size // 2}"], {}),
            ("im declare", ["declare", "--sev", "SEV-3", "--title", "Scale check",
                            "--service", "api"], {}),
            ("im sla check", ["sla", "check"], {}),
            ("im sla", ["sla"], {}),
            ("im metrics connector pd", ["metrics", "connector", CONNECTOR], {}),
            ("im connector sync pd (one poll)", ["connector", "sync", CONNECTOR], {}),
            (POLL_CHANGED, ["connector", "sync", CONNECTOR], {"before": self.change_remote}),
            ("GET /metrics", None, {}),
            # after the server's figures: a sweep that fails leaves the next poll (the
            # server's first) to sweep
            (POLL_SWEEP, ["connector", "sync", CONNECTOR], {"before": self.sweep_due}),
            ("im report json, empty period",
             ["report", "-f", "json", "--start", str(empty[0]), "--end", str(empty[1]),
              "-o", str(self.work / "empty.json")], {}),
            ("im report json, all incidents",
             ["report", "-f", "json", "--start", str(everything[0]), "--end",
              str(everything[1]), "-o", str(self.work / "all.json")], slow),
        ]
        if pdf:
            # the JSON report just read the same rows: the cache is warm
            steps.append(("im report pdf, all incidents",
                          ["report", "-f", "pdf", "--start", str(everything[0]), "--end",
                           str(everything[1]), "-o", str(self.work / "all.pdf")],
                          {**slow, "warm": False}))
        return steps

    def run(self, args: list[str], *, timeout: float) -> dict[str, Any]:
        """One CLI run in a child process: seconds, CPU seconds, peak memory, exit code."""
        result = self.work / "run.json"
        result.unlink(missing_ok=True)
        with open(self.work / "stderr.txt", "wb") as err:
            child = subprocess.Popen([sys.executable, "-I", "-S", "-c", WRAP, str(result), IM,
                                      *args], env=self.launch_env, cwd=self.work,
                                     stdout=subprocess.DEVNULL, stderr=err,
                                     start_new_session=True)
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                return {"seconds": None, "error": f"over {timeout:.0f} s"}
        figures = json.loads(result.read_text())
        if figures["code"] != 0:
            text = (self.work / "stderr.txt").read_text(errors="replace").strip()
            return {"seconds": None, "error": f"exit {figures['code']}: {text[-300:]}"}
        return figures

    def scrape(self, runs: int = RUNS) -> dict[str, Any]:
        """`GET /metrics` of a real `im serve` on loopback: median of `runs` after one; the
        CPU time is the server process's during each scrape."""
        import httpx

        port = free_port()
        with open(self.work / "serve.log", "wb") as log:
            serve = subprocess.Popen([IM, "serve", "--port", str(port), "--log-level",
                                      "warning"], env=self.env, cwd=self.work, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if serve.poll() is not None:
                    return {"runs": 0, "error": "im serve stopped"}
                time.sleep(0.2)
            else:
                return {"runs": 0, "error": "im serve did not come up in 60 s"}
            time.sleep(2)  # its first background pass (a poll, a breach check) goes first
            times = []
            with httpx.Client(base_url=url, timeout=60) as client:
                for attempt in range(runs + 1):
                    started = time.perf_counter()
                    answer = client.get("/metrics")
                    seconds = time.perf_counter() - started
                    if answer.status_code != 200:
                        return {"runs": 0, "error": f"/metrics answered {answer.status_code}"}
                    if attempt:
                        times.append(seconds)
                    time.sleep(0.3)
                # the process's CPU time counts in ticks (10 ms): a block of scrapes, averaged
                cpu = _cpu_seconds(serve.pid)
                for _ in range(CPU_SCRAPES):
                    client.get("/metrics")
                cpu = (_cpu_seconds(serve.pid) - cpu) / CPU_SCRAPES
            # then idle: no request, its background work only (the SLA loop every 15 s,
            # deliveries, polls), once the first poll is surely done
            time.sleep(IDLE_AFTER)
            idle = _cpu_seconds(serve.pid)
            time.sleep(IDLE_SECONDS)
            idle = (_cpu_seconds(serve.pid) - idle) / IDLE_SECONDS
            return {"runs": runs, "seconds": statistics.median(times), "cpu": cpu,
                    "peak_mib": peak_rss_mib(serve.pid), "idle_share": idle}
        finally:
            os.killpg(serve.pid, signal.SIGTERM)
            try:
                serve.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(sessions: dict[int, Session], steps: dict[int, tuple[list[str], dict[str, Any]]]
            ) -> dict[int, dict[str, Any]]:
    """One command on every home, in rounds (one run on each home in turn, so that drift in
    the machine's load falls on every size alike): a warm-up round unless `warm` is off,
    then up to RUNS rounds; a home whose run takes over 4 s gets 3 runs, over 20 s one."""
    state = {size: {"done": [], "wanted": RUNS, "error": None, "warm": options.get("warm", True)}
             for size, (_, options) in steps.items()}

    def once(size: int) -> None:
        args, options = steps[size]
        mine = state[size]
        if options.get("before") is not None:  # not timed
            options["before"]()
        figures = sessions[size].run(args, timeout=options.get("timeout", 120))
        if figures["seconds"] is None:
            mine["error"] = figures["error"]
            return
        if figures["seconds"] > 20:
            mine["wanted"] = 1
        elif figures["seconds"] > 4:
            mine["wanted"] = min(mine["wanted"], 3)
        if mine["warm"]:
            mine["warm"] = False
        else:
            mine["done"].append(figures)

    for size in steps:
        if state[size]["warm"]:
            once(size)
    for _ in range(RUNS):
        for size in steps:
            mine = state[size]
            if mine["error"] is None and len(mine["done"]) < mine["wanted"]:
                once(size)
    results = {}
    for size, mine in state.items():
        done = mine["done"]
        if mine["error"] is not None or not done:
            results[size] = {"runs": len(done), "error": mine["error"] or "no run"}
            continue
        results[size] = {"runs": len(done),
                         "seconds": statistics.median(f["seconds"] for f in done),
                         "cpu": statistics.median(f["cpu"] for f in done),
                         "peak_mib": max(f["peak_mib"] for f in done)}
    return results


def run(sizes: tuple[int, ...] = DEFAULT_SIZES, *, pdf_at_1m: bool = False,
        rows: tuple[str, ...] = ()) -> dict[int, dict[str, Any]]:
    """Every command on every home; {size: {"home": build figures, command: figures}}."""
    from contextlib import ExitStack

    from im_pagerduty.testing import run_sandbox

    results: dict[int, dict[str, Any]] = {size: {"home": ensure_home(size)} for size in sizes}
    with ExitStack() as stack:
        sessions = {}
        for size in sizes:
            print(f"{size:,}: a copy of the home, the sandbox's open incidents...",
                  file=sys.stderr)
            sandbox = stack.enter_context(run_sandbox(rate_limit=100_000))
            work = Path(tempfile.mkdtemp(prefix=f"im-bench-scale-{size}-"))
            stack.callback(shutil.rmtree, work, ignore_errors=True)
            sessions[size] = Session(size, results[size]["home"], sandbox, work)
        plans = {size: [step for step in session.plan(pdf=size < 1_000_000 or pdf_at_1m)
                        if not rows or any(row in step[0] for row in rows)]
                 for size, session in sessions.items()}
        for index, (name, _, _) in enumerate(plans[sizes[0]]):
            print(f"{name}...", file=sys.stderr)
            started = time.perf_counter()
            if name == "GET /metrics":
                found = {size: session.scrape() for size, session in sessions.items()}
            else:
                found = measure(sessions, {size: (plan[index][1], plan[index][2])
                                           for size, plan in plans.items()
                                           if index < len(plan)})
            for size, figures in found.items():
                results[size][name] = figures
                print(f"  {label(size)}: {figures}", file=sys.stderr)
            print(f"  ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return results


# -- figures -------------------------------------------------------------------------------

MEMORY_ROWS = ("im connector sync pd (one poll)", POLL_CHANGED, POLL_SWEEP,
               "im report json, all incidents", "im report pdf, all incidents")


def label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def shown_time(figures: dict[str, Any]) -> str:
    if figures.get("error") == "not run":
        return "not run"
    if figures.get("seconds") is None:
        return f"failed ({figures.get('error', '?')})"[:80].replace("|", "/").replace("\n", " ")
    runs = figures["runs"]
    return (f"{ms(figures['seconds'])} ({ms(figures['cpu'])} CPU"
            + (f", {runs} run{'s' * (runs != 1)})" if runs != RUNS else ")"))


def growth(values: list[tuple[int, float | None]]) -> str:
    """The ratio of the largest size's figure to the smallest's, per tenfold size."""
    known = [(size, value) for size, value in values if value]
    if len(known) < 2:
        return "-"
    (small, low), (big, high) = known[0], known[-1]
    return f"{(high / low) ** (1 / math.log10(big / small)):.2f} x"


def table(sizes: list[int], results: dict[int, dict[str, Any]]) -> list[str]:
    names = [name for name in results[sizes[0]] if name != "home"]
    lines = ["| command | " + " | ".join(label(s) for s in sizes) + " | growth per 10x |",
             "|---|" + "---|" * len(sizes) + "---|"]
    for name in names:
        row = [results[s].get(name, {"seconds": None, "error": "not run"}) for s in sizes]
        lines.append(f"| `{name}` | " + " | ".join(shown_time(r) for r in row)
                     + f" | {growth([(s, r.get('seconds')) for s, r in zip(sizes, row)])}"
                     f" ({growth([(s, r.get('cpu')) for s, r in zip(sizes, row)])} CPU) |")
        if name in MEMORY_ROWS or name == "GET /metrics":
            what = "peak memory of im serve" if name == "GET /metrics" else "peak memory"
            lines.append(f"| `{name}`, {what} | " + " | ".join(
                f"{r['peak_mib']:.0f} MiB" if r.get("peak_mib") else "-" for r in row)
                + f" | {growth([(s, r.get('peak_mib')) for s, r in zip(sizes, row)])} |")
        if name == "GET /metrics":
            lines.append(f"| `im serve`, idle: its CPU over {IDLE_SECONDS} s without requests"
                         " | " + " | ".join(
                             f"{r['idle_share']:.1%} of a core" if "idle_share" in r else "-"
                             for r in row) + " | - |")
    return lines


JUDGED = (100_000, 1_000_000)  # the sizes the goals are judged at
MB = 10 ** 6 / 2 ** 20  # MiB in a megabyte


def _within(sizes: list[int], results: dict[int, dict[str, Any]], name: str, title: str,
            *, memory: bool = False) -> str:
    """`title`, then for each judged size whether the command's CPU time (and peak memory
    with `memory`) is within 2x of the smallest size's; a judged size not run says so. With
    neither judged size run, the largest size run is set against the smallest, said so."""
    small = sizes[0]
    low = results[small].get(name, {})
    if len(sizes) < 2 or not low.get("cpu"):
        return title + "not measured"

    def seen(figures: dict[str, Any]) -> str:
        return (f"{ms(figures['cpu'])} CPU, {ms(figures['seconds'])} wall"
                + (f", {figures['peak_mib']:.0f} MiB" if memory else ""))

    def ok(high: dict[str, Any]) -> bool:
        return high["cpu"] <= 2 * low["cpu"] and (
            not memory or high["peak_mib"] <= 2 * low["peak_mib"])

    parts = []
    for at in JUDGED:
        high = results.get(at, {}).get(name, {})
        if at not in sizes or not high.get("cpu"):
            parts.append(f"at {label(at)} not measured"
                         + (f" ({high['error']})" if high.get("error") else ""))
        else:
            parts.append(f"at {label(at)} {'yes' if ok(high) else 'no'} ({seen(high)})")
    big = sizes[-1]
    if not any(at in sizes for at in JUDGED) and results[big].get(name, {}).get("cpu"):
        high = results[big][name]
        parts.append(f"at {label(big)}, {'within' if ok(high) else 'beyond'} 2x"
                     f" ({seen(high)})")
    return title + "; ".join(parts) + f"; at {label(small)}: {seen(low)}"


def goals(sizes: list[int], results: dict[int, dict[str, Any]]) -> list[str]:
    """Judged at 100k and 1M, on CPU time (wall time on a shared machine drifts by more
    than 2 x)."""
    small = label(sizes[0])
    lines = [_within(sizes, results, name, f"- {short} within 2x of {small} (CPU time): ")
             for name, short in (("im sla check", "sla check"),
                                 ("GET /metrics", "GET /metrics"),
                                 ("im metrics connector pd", "metrics connector"))]
    listed = ", ".join(f"{results[s]['home'].get('remote_open', 0):,} at {label(s)}"
                       for s in sizes)
    lines.append(_within(
        sizes, results, POLL_CHANGED,
        f"- the poll follows the changes, not the links: {CHANGES} changes at every size,"
        f" within 2x of {small} (CPU time and peak memory; open PagerDuty incidents:"
        f" {listed}): ", memory=True))
    pdf = results.get(100_000, {}).get("im report pdf, all incidents")
    if pdf and pdf.get("seconds"):
        ok = pdf["seconds"] < 60 and pdf["peak_mib"] < 500 * MB
        lines.append(f"- PDF of 100k under 60 s and 500 MB: {'yes' if ok else 'no'}"
                     f" ({pdf['seconds']:.1f} s, {pdf['peak_mib']:.0f} MiB)")
    else:
        lines.append("- PDF of 100k under 60 s and 500 MB: not measured"
                     + (f" ({pdf['error']})" if pdf and pdf.get("error") else ""))
    json_1m = results.get(1_000_000, {}).get("im report json, all incidents")
    if json_1m and json_1m.get("peak_mib"):
        ok = json_1m["peak_mib"] < 300 * MB
        lines.append(f"- JSON report of 1M under 300 MB: {'yes' if ok else 'no'}"
                     f" ({json_1m['peak_mib']:.0f} MiB, {json_1m['seconds']:.1f} s)")
    else:
        lines.append("- JSON report of 1M under 300 MB: not measured"
                     + (f" ({json_1m['error']})" if json_1m and json_1m.get("error") else ""))
    memory = [(s, results[s].get("im report json, all incidents", {}).get("peak_mib"))
              for s in sizes]
    lines.append("- JSON report of all incidents, peak memory: " + ", ".join(
        f"{value:.0f} MiB at {label(s)}" if value else f"- at {label(s)}"
        for s, value in memory) + f" ({growth(memory)} per 10x)")
    return lines


def homes(sizes: list[int], results: dict[int, dict[str, Any]]) -> list[str]:
    lines = []
    for size in sizes:
        home = results[size]["home"]
        built = "cached" if home.get("cached") else "built now"
        lines.append(
            f"- {label(size)}: {home['size']:,} incidents from {home['first'][:10]} to"
            f" {home['end'][:10]} ({home['open']:,} open, {home['mitigated']:,} of them"
            f" mitigated), {home['timeline'] / home['size']:.1f} timeline lines and"
            f" {home['links'] / home['size']:.2f} links each, {home['db_mib']:.0f} MiB;"
            f" built in {home['build_seconds']:.0f} s ({home['build_rate']:,} incidents/s,"
            f" {built}); {home.get('remote_open', 0):,} open PagerDuty incidents in the"
            f" sandbox (made in {home.get('sandbox_seconds', 0):.0f} s); the first poll, which"
            f" sweeps, in process without a deadline as under `im serve`:"
            f" {home.get('first_poll_seconds', 0):.1f} s")
    return lines


def markdown(sizes: list[int], results: dict[int, dict[str, Any]]) -> list[str]:
    return [*table(sizes, results), "",
            "Each cell: the median wall time (and CPU time of the command's process) of 5 runs"
            " after one, unless said; the runs of every size in turn.", "",
            *goals(sizes, results), "", "Homes:", "", *homes(sizes, results)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                        help="incidents per home, comma-separated")
    parser.add_argument("--pdf-at-1m", action="store_true",
                        help="also the PDF report of a home of 1,000,000 incidents")
    parser.add_argument("--rows", default="",
                        help="only the rows whose command holds one of these, comma-separated")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.build:
        print(json.dumps(build(options.build, options.out)))
        return
    sizes = sorted(int(s.replace("_", "")) for s in options.sizes.split(",") if s.strip())
    results = run(tuple(sizes), pdf_at_1m=options.pdf_at_1m,
                  rows=tuple(r for r in options.rows.split(",") if r))
    print(f"Machine: {machine()}\n")
    print("\n".join(markdown(sizes, results)))


if __name__ == "__main__":
    main()
