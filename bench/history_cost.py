"""What a /metrics scrape and a poll's reading of im's own records cost on homes of growing
history: N incidents of the past months, 1.8 links each (nearly all resolved), each with a
delivered change, a processed webhook event and a call; plus today's ten open incidents.

Both must cost the same whatever N: /metrics reads counts kept as rows change and indexes of
time ranges (migration 0012); a poll reads the links im believes open (LinkRepository.open_
links), where it read every link the connector ever made (shown beside, as `links(connector)`).

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

from im.models import Link, Severity, Status
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
                               remote_id=f"OPEN{i}", remote_status="triggered",
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
        all_ms, every = _median_ms(lambda: runtime.store.links(connector="f"))
        rows.append({"incidents": n, "links": len(every), "made_s": made, "scrape_ms": scrape,
                     "open_links": len(found), "open_links_ms": open_ms,
                     "every_link_ms": all_ms})
        runtime.store.close()
    return rows


if __name__ == "__main__":
    sizes = tuple(int(arg) for arg in sys.argv[1:]) or (1_000, 10_000, 100_000)
    print("| incidents | links | /metrics scrape | a poll reads (open links) |"
          " before: every link of the connector |")
    print("|---|---|---|---|---|")
    for row in run(sizes):
        print(f"| {row['incidents']:,} | {row['links']:,} | {row['scrape_ms']:.1f} ms |"
              f" {row['open_links']} links, {row['open_links_ms']:.2f} ms |"
              f" {row['links']:,} links, {row['every_link_ms']:.0f} ms |", flush=True)
