"""What a /metrics scrape and a poll's reading of im's own records cost on homes of growing
history: N incidents of the past months (5% still open, their SLA breaches recorded), 1.8 links
each (nearly all resolved), each with a delivered change, a processed webhook event and a call;
plus today's ten open incidents.

All must cost the same whatever N: /metrics and `im metrics connector` read counts kept as rows
change and indexes of time ranges (migration 0012); `im sla check` with nothing new due reads
the overdue timers by index (0014); a poll reads the links im believes open (LinkRepository.
open_links), where it read every link the connector ever made (shown beside, up to 100k).

    .venv/bin/python bench/history_cost.py [N ...]     (default: 1000 10000 100000)
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from im import observability
from im.models import Link, Severity, Status
from im.sla import check_breaches
from im.server.metrics import ServerMetrics
from im.testing import FakePlugin, make_runtime, run_cli

BATCH = 5_000  # incidents per transaction while the home is made
RUNS = 5


def _home(n: int) -> Any:
    runtime = make_runtime(Path(tempfile.mkdtemp(prefix="im-bench-")) / "home",
                           plugins=[FakePlugin()])
    result = run_cli(runtime, ["connector", "add", "fake", "f", "--config",
                               json.dumps({"api_key": "k"})])
    assert result.exit_code == 0, result.output
    store = runtime.store
    now = datetime.now(UTC)
    first = now - timedelta(days=170)
    step = timedelta(days=160) / max(n, 1)
    for start in range(0, n, BATCH):
        with store.transaction() as tx:
            for i in range(start, min(n, start + BATCH)):
                at = first + i * step
                made = tx.incidents.add(title=f"old {i}", description="",
                                        severity=Severity.SEV3, services=["api"], fields={},
                                        correlation_id=f"old-{i}", created_by="bench", at=at)
                if i % 20:  # 5% still open, their SLA timers long overdue
                    tx.incidents.update(made.id, at, status=Status.CLOSED, closed_at=at)
                for service in ("api", "db")[:1 + (i % 5 != 0)]:  # 1.8 links each
                    tx.links.upsert(Link(incident_id=made.id, connector="f", service=service,
                                         remote_id=f"R{i}{service}", remote_status="resolved",
                                         updated_at=at))
                tx.outbox.add(connector="f", incident_id=made.id, service="api",
                              action="resolve", payload={}, at=at)
                row = tx.outbox.claim_next(now=at, lease_seconds=60, connector="f",
                                           incident_id=made.id)
                assert row is not None
                tx.outbox.finish(row.id, at=at)
                tx.inbox.add_many([("f", f"old-{i}", "x", b"{}", at)])
                [event] = tx.inbox.claim(now=at, lease_seconds=60, connector="f")
                tx.inbox.finish(event.id, at=at)
                tx.calls.add(connector="f", at=at, method="GET", path="/incidents",
                             status=200, duration_ms=1.0, error=None)
    for i in range(10):  # today's open incidents
        made = store.insert_incident(title=f"open {i}", description="",
                                     severity=Severity.SEV2, services=["api"], fields={},
                                     correlation_id=f"open-{i}", created_by="bench", at=now)
        store.upsert_link(Link(incident_id=made.id, connector="f", service="api",
                               remote_id=f"OPEN{i}", remote_status="open",
                               updated_at=now))
    return runtime


def _median_ms(action: Any) -> tuple[float, Any]:
    times, value = [], None
    for _ in range(RUNS):
        began = time.perf_counter()
        value = action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), value


def run(sizes: tuple[int, ...] = (1_000, 10_000, 100_000)) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        began = time.perf_counter()
        runtime = _home(n)
        made = time.perf_counter() - began
        metrics = ServerMetrics(runtime)
        scrape, _ = _median_ms(metrics.render)
        horizon = datetime.now(UTC) - timedelta(days=181)
        open_ms, found = _median_ms(lambda: runtime.store.open_links("f",
                                                                      declared_since=horizon))
        check_breaches(runtime)  # the breaches of the overdue timers, recorded once
        sla_ms, _ = _median_ms(lambda: check_breaches(runtime))
        figures_ms, figures = _median_ms(lambda: observability.metrics(runtime, "f"))
        # what a poll read before: every link (skipped past 100k: 1.8M objects at 1M)
        all_ms, links = _median_ms(lambda: len(runtime.store.links(connector="f"))) if (
            n <= 100_000) else (None, figures.total_incidents)
        rows.append({"incidents": n, "links": links, "made_s": made, "scrape_ms": scrape,
                     "open_links": len(found), "open_links_ms": open_ms,
                     "every_link_ms": all_ms, "sla_check_ms": sla_ms,
                     "metrics_connector_ms": figures_ms})
        runtime.store.close()
    return rows


if __name__ == "__main__":
    sizes = tuple(int(arg) for arg in sys.argv[1:]) or (1_000, 10_000, 100_000)
    print("| incidents | /metrics scrape | sla check (nothing new due) | metrics connector |"
          " a poll reads (open links) | before: every link of the connector |")
    print("|---|---|---|---|---|---|")
    for row in run(sizes):
        every = (f"{row['links']:,} links, {row['every_link_ms']:.0f} ms"
                 if row["every_link_ms"] is not None else "not read (too many)")
        print(f"| {row['incidents']:,} | {row['scrape_ms']:.1f} ms |"
              f" {row['sla_check_ms']:.1f} ms | {row['metrics_connector_ms']:.1f} ms |"
              f" {row['open_links']} links, {row['open_links_ms']:.2f} ms | {every} |",
              flush=True)
