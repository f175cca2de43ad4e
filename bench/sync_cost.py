"""Sync cost against the sandbox, at PagerDuty's real rate limit (960 requests a minute):
API calls per outbound create, ack and resolve; an inbound sync of 10,000 PagerDuty incidents
(list calls only, no per-incident calls, no 429s); CPU time per synced incident."""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

from im.inbound import poll
from im.testing import make_runtime, run_cli
from im_pagerduty.testing import run_sandbox

MAPPINGS = {"api": "PAPI001", "db": "PDAT001", "payments": "PPAY001", "default": "PGEN001"}


def _runtime(home: Path, pd: object) -> object:
    runtime = make_runtime(home, load_entrypoints=True, user="bench")
    config = {"base_url": pd.url, "api_key": pd.api_key,  # type: ignore[attr-defined]
              "sync_direction": "bidirectional", "enable_webhook": False,
              "custom": {"service_id": "PXXXXXX", "from_email": "ops@company.com",
                         "service_mappings": MAPPINGS}}
    result = run_cli(runtime, ["connector", "add", "pagerduty", "bench", "--config",
                               json.dumps(config)])
    assert result.exit_code == 0, result.output
    return runtime


def _calls(pd: object) -> list[dict[str, object]]:
    return pd.requests()  # type: ignore[attr-defined,no-any-return]


def run(incidents: int = 10_000) -> dict[str, object]:
    figures: dict[str, object] = {}
    with run_sandbox(rate_limit=960) as pd:
        runtime = _runtime(Path(tempfile.mkdtemp(prefix="im-bench-")), pd)
        for label, args in (
            ("create_3_services", ["declare", "--sev", "SEV-1", "--title", "x", "--service",
                                   "api,db,payments"]),
            ("create_1_service_warm", ["declare", "--sev", "SEV-2", "--title", "y",
                                       "--service", "api"]),
            ("ack_3_services", ["ack", "--incident", "INC-1"]),
            ("resolve_3_services", ["resolve", "--incident", "INC-1"]),
        ):
            pd.clear_requests()
            result = run_cli(runtime, args)
            assert result.exit_code == 0, result.output
            calls = _calls(pd)
            figures[label] = {"calls": len(calls),
                              "by_path": sorted({f"{c['method']} {c['path']}" for c in calls})}

    figures["inbound"] = inbound(incidents)
    figures["year_old_cursor"] = year_old_cursor()
    return figures


def inbound(incidents: int = 10_000) -> dict[str, object]:
    """One poll of a PagerDuty account holding `incidents` incidents, into a new home (on
    the store IM_DATABASE_URL names, else SQLite)."""
    # inbound: a PagerDuty account of its own holding the 10,000 incidents (made within the
    # last hour), so that the poll's listing holds exactly N
    with run_sandbox(rate_limit=960) as pd:
        runtime = _runtime(Path(tempfile.mkdtemp(prefix="im-bench-")), pd)
        pd.bulk_incidents(incidents, status="triggered", span_seconds=3600, service_id="PAPI001")
        pd.clear_requests()
        # this thread's CPU only: the sandbox answering runs in threads of its own
        cpu, wall = time.thread_time(), time.perf_counter()
        outcomes = poll(runtime, "bench")
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        calls = _calls(pd)
        lists = [c for c in calls if c["path"] in ("/incidents", "/log_entries")
                 and c["method"] == "GET"]
        # the log of changes in the poll's window (each new incident's trigger among them)
        log = [c for c in lists if c["path"] == "/log_entries"]
        # the listing of incidents created before the poll's window that are open now (the
        # hourly sweep, which a connector's first poll makes)
        older = [c for c in lists if "statuses" in str(c.get("query", ""))]
        per_incident = [c for c in calls if str(c["path"]).startswith("/incidents/")]
        return {
            "incidents": incidents, "outcomes": outcomes,
            # ceil(N/100) list calls plus one per 10,000-record window, for the incidents
            # created and for the log alike, and the sweep's one
            "list_calls": len(lists),
            "window_calls": len(lists) - len(older) - len(log), "log_calls": len(log),
            "older_open_calls": len(older),
            "bound": 2 * (math.ceil(incidents / 100) + math.ceil(incidents / 10_000)) + 1,
            "per_incident_calls": len(per_incident),
            "other_calls": sorted(f"{c['method']} {c['path']}" for c in calls
                                  if c not in lists and c not in per_incident),
            "status_429": sum(1 for c in calls if c.get("status") == 429),
            "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "cpu_ms_per_incident": round(cpu * 1000 / incidents, 3),
            "im_incidents": len(runtime.store.list_incidents()),  # type: ignore[attr-defined]
        }


def year_old_cursor(incidents: int = 2_000, users: int = 20_000) -> dict[str, object]:
    """A big, old account: 20,000 users and incidents created over the last year (half of
    them still open), polled by a connector whose cursor is a year old (im stopped for a
    year, a backup restored). PagerDuty lists at most 6 months at a time and at most 10,000
    records a listing: the poll must ask in parts, read no user listing, make no call per
    incident, and never be answered 4xx."""
    from datetime import UTC, datetime, timedelta

    with run_sandbox(rate_limit=960) as pd:
        runtime = _runtime(Path(tempfile.mkdtemp(prefix="im-bench-")), pd)
        pd.bulk_users(users)
        for status in ("resolved", "triggered"):
            pd.bulk_incidents(incidents // 2, status=status, span_seconds=364 * 86400,
                              service_id="PAPI001")
        year_ago = datetime.now(UTC) - timedelta(days=365)
        runtime.store.set_cursor("bench", year_ago.isoformat(),  # type: ignore[attr-defined]
                                 at=year_ago)
        pd.clear_requests()
        cpu, wall = time.thread_time(), time.perf_counter()
        outcomes = poll(runtime, "bench")
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        calls = _calls(pd)
        lists = [c for c in calls if c["path"] == "/incidents" and c["method"] == "GET"]
        return {
            "users": users, "incidents": incidents, "outcomes": outcomes,
            "list_calls": len(lists),
            # 100 a page, plus one more page per 180-day part of the year (2 or 3 parts)
            "bound": math.ceil(incidents / 100) + 3,
            "per_incident_calls": sum(1 for c in calls
                                      if str(c["path"]).startswith("/incidents/")),
            "user_listings": sum(1 for c in calls if c["path"] == "/users"
                                 and "query=" not in str(c.get("query", ""))),
            "user_lookups": sorted({f"{c['method']} {c['path']}" for c in calls
                                    if str(c["path"]).startswith("/users")}),
            "status_4xx": sum(1 for c in calls if 400 <= int(c.get("status") or 0) < 500),
            "cursor_moved": runtime.store.get_cursor("bench")  # type: ignore[attr-defined]
            > year_ago.isoformat(),
            "wall_seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
        }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=str))
