"""A PDF report of one incident with a long timeline: time and peak memory by number of
timeline lines, as shipped (long tables laid out in chunks, short cells without a Paragraph)
and, as the baseline in the same run, as one table (reportlab lays the rest of a table out
again at every page break: O(lines x pages)). Each measurement in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import BIN

ONE = """
import json, sys, tempfile, time
from datetime import UTC, datetime
from pathlib import Path
from im import incidents
from im.app.reports import make_report
from im.reports import as_pdf, parse_period
from im.testing import make_runtime
lines, chunked = int(sys.argv[1]), sys.argv[2] == "chunked"
if not chunked:
    as_pdf.CHUNK_ROWS = 10 ** 9
runtime = make_runtime(Path(sys.argv[3]))
incident = incidents.declare(runtime, title="A long night", severity="SEV-1", services=["db"])
with runtime.store.transaction():
    for n in range(lines - 1):
        incidents.add_note(runtime, incident.id, f"Status update {n}: replica lag and queue"
                           " depth checked again; failover not needed yet")
day = datetime.now(UTC).date().isoformat()
started = time.perf_counter()
made = make_report(runtime, period=parse_period(day, day), format="pdf", fetch=False)
# VmHWM, not getrusage's ru_maxrss: Linux keeps the latter across exec, so a child started by
# a big parent would report the parent's peak
peak = next(int(line.split()[1]) for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(json.dumps({"seconds": time.perf_counter() - started, "bytes": len(made.data),
                  "peak_mib": peak / 1024}))
"""

SIZES = {"baseline": (5_000, 10_000), "chunked": (5_000, 10_000, 50_000)}


def one(lines: int, layout: str) -> dict[str, float]:
    home = tempfile.mkdtemp(prefix="im-bench-pdf-")
    done = subprocess.run([str(BIN / "python"), "-c", ONE, str(lines), layout, home],
                          capture_output=True, text=True, timeout=900, check=True)
    return json.loads(done.stdout)


def run() -> list[dict[str, object]]:
    return [{"lines": lines, "layout": layout, **one(lines, layout)}
            for layout, sizes in SIZES.items() for lines in sizes]


if __name__ == "__main__":
    json.dump(run(), sys.stdout, indent=2)
