"""`im report` over a home of N incidents (each with a timeline of five lines: declared,
assigned, acknowledged, a note, resolved), as JSON and as PDF: time and peak memory of the
report, each in a process of its own, as shipped (incidents read from the store a batch at a
time and written as they come) and, as the baseline in the same run, the same report built
whole in memory and rendered (`render(build_report(...))`, how `im report` made every report
before). `--before REV` also measures the code of a git revision (its `core/`), on the same
home: the report as that revision's `im report` made it.

    .venv/bin/python bench/report_json.py 10000 50000 [--before REV] [--formats json,pdf]
        [--modes "in memory,streamed"]

The home is built once per size, in one transaction through the store's repositories.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from common import BIN, REPO

BUILD = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from im.models import Severity, Status
from im.testing import make_runtime
count, days = int(sys.argv[2]), int(sys.argv[3])
runtime = make_runtime(Path(sys.argv[1]))
first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
    days=days - 1)
step = timedelta(days=days) / count
people = [f"responder{n}@example.com" for n in range(40)]
services = ["api", "db", "web", "queue", "auth", "search", "billing", "mail"]
severities = list(Severity)
with runtime.store.transaction() as tx:
    for n in range(count):
        at = first + step * n
        who = people[n % len(people)]
        incident = tx.incidents.add(
            title=f"Incident {n}: elevated error rate on checkout", description="",
            severity=severities[n % 4], services=[services[n % 8], services[(n + 1) % 8]]
            if n % 3 == 0 else [services[n % 8]], fields={}, correlation_id=f"bench-{n}",
            created_by="alice", at=at)
        add = tx.timeline.add
        add(incident.id, at=at, kind="declared", text="Declared", actor="alice", system="im")
        add(incident.id, at=at + timedelta(minutes=1), kind="assigned",
            text=f"Assigned to {who}", actor="alice", system="im", data={"assignee": who})
        add(incident.id, at=at + timedelta(minutes=2 + n % 17), kind="acknowledged",
            text="Acknowledged", actor=who, system="im")
        add(incident.id, at=at + timedelta(minutes=20), kind="note",
            text="Rolled back the last deploy; error rate falling", actor=who, system="im")
        if n % 10:
            resolved = at + timedelta(minutes=30 + n % 97)
            add(incident.id, at=resolved, kind="resolved", text="Resolved", actor=who,
                system="im")
            tx.incidents.update(incident.id, resolved, status=Status.RESOLVED.value,
                                resolved_at=resolved)
print(first.date().isoformat())
"""

MEASURE = """
import importlib.util, json, sys, time
from pathlib import Path
home, start, end, fmt, mode, code = sys.argv[1:7]
if code:  # another revision's im: its package, not the one installed
    spec = importlib.util.spec_from_file_location(
        "im", Path(code) / "__init__.py", submodule_search_locations=[code])
    module = importlib.util.module_from_spec(spec)
    sys.modules["im"] = module
    spec.loader.exec_module(module)
from im.reports import build_report, parse_period, render
from im.testing import make_runtime
runtime = make_runtime(Path(home))
runtime.store.list_connectors()  # the store opened (and migrated) before the clock starts
period = parse_period(start, end)
out = Path(home) / f"report.{fmt}"
started = time.perf_counter()
if mode == "streamed":
    from im.app.reports import write_report
    with out.open("wb") as file:
        written = write_report(runtime, file, period=period, format=fmt, fetch=False)
    incidents = written.report.summary.incidents
else:
    report = build_report(runtime, period, fetch=False)
    out.write_bytes(render(report, fmt))
    incidents = report.summary.incidents
seconds = time.perf_counter() - started
# VmHWM, not getrusage's ru_maxrss: Linux keeps the latter across exec
peak = next(int(line.split()[1]) for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(json.dumps({"seconds": seconds, "peak_mib": peak / 1024, "incidents": incidents,
                  "bytes": out.stat().st_size}))
"""

DAYS = 90  # the incidents are spread over the last 90 days; the report covers them all


def _python(script: str, *args: str, timeout: float = 3600) -> str:
    done = subprocess.run([str(BIN / "python"), "-c", script, *args], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout


def _revision(rev: str, into: Path) -> Path:
    """The `core/` (the `im` package) of a git revision, extracted under `into`."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev, "core"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "core"


MODES = ("in memory", "streamed")


def run(sizes: tuple[int, ...] = (10_000, 50_000), formats: tuple[str, ...] = ("json", "pdf"),
        before: str | None = None, modes: tuple[str, ...] = MODES) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    work = Path(tempfile.mkdtemp(prefix="im-bench-report-"))
    try:
        old = _revision(before, work / "before") if before else None
        for size in sizes:
            home = work / f"home-{size}"
            start = _python(BUILD, str(home), str(size), str(DAYS)).strip()
            end = _python("from datetime import UTC, datetime;"
                          " print(datetime.now(UTC).date())").strip()
            measured = ([("before", str(old))] if old else []) + [(m, "") for m in modes]
            for fmt in formats:
                for mode, code in measured:
                    figures = json.loads(_python(MEASURE, str(home), start, end, fmt,
                                                 "streamed" if mode == "streamed" else "whole",
                                                 code))
                    results.append({"incidents": size, "format": fmt, "mode": mode,
                                    **figures})
                    print(json.dumps(results[-1]), file=sys.stderr)
            shutil.rmtree(home)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def table(results: list[dict[str, object]]) -> list[str]:
    lines = ["| incidents | format | made | time | peak memory | file |",
             "|---|---|---|---|---|---|"]
    for e in results:
        lines.append(f"| {e['incidents']:,} | {e['format']} | {e['mode']}"
                     f" | {e['seconds']:.1f} s | {e['peak_mib']:.0f} MiB"
                     f" | {int(e['bytes']) / 1024 ** 2:.1f} MiB |")  # type: ignore[call-overload]
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 50_000])
    parser.add_argument("--formats", default="json,pdf")
    parser.add_argument("--before", help="also measure this git revision's im report")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="of: " + ", ".join(MODES) + " (default both)")
    options = parser.parse_args()
    found = run(tuple(options.sizes), tuple(options.formats.split(",")), options.before,
                tuple(options.modes.split(",")))
    print("\n".join(table(found)))
