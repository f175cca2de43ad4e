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
                "data": {"incident": {"id": f"Q{n % 5000:06d}", "type": "incident_reference"},
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


def run(seconds: int = 10, connections: int = 64) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="im-bench-"))
    events = work / "events.tsv"
    signed_events(events, 200_000)
    script = Path(__file__).with_name("webhook.lua")

    port = free_port()
    bare = subprocess.Popen([str(BIN / "uvicorn"), "bare_app:app", "--port", str(port),
                             "--log-level", "warning", "--no-access-log"],
                            cwd=Path(__file__).parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_up(f"http://127.0.0.1:{port}/")
        baseline = wrk(f"http://127.0.0.1:{port}", script,
                       [str(events), "2", "/connectors/bench/webhook"],
                       connections=connections, seconds=seconds)
    finally:
        bare.terminate()
        bare.wait()

    home = work / "home"
    prepare_home(home)
    port = free_port()
    server = subprocess.Popen([str(BIN / "im"), "serve", "--port", str(port), "--log-level",
                               "warning"], env={**os.environ, "IM_HOME": str(home)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(f"http://127.0.0.1:{port}/health")
        result = wrk(f"http://127.0.0.1:{port}", script,
                     [str(events), "2", "/connectors/bench/webhook"],
                     connections=connections, seconds=seconds)
        peak = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    time.sleep(0.2)
    db = sqlite3.connect(home / "im.db")
    stored, distinct = db.execute(
        "SELECT count(*), count(DISTINCT delivery_id) FROM inbox").fetchone()
    sent_distinct = min(result.requests, 200_000)
    return {
        "seconds": seconds, "connections": connections,
        "baseline_rate": baseline.rate, "baseline_p50_ms": baseline.latency["50"],
        "baseline_p99_ms": baseline.latency["99"],
        "requests": result.requests, "answered_2xx": result.ok, "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
        "durable_rate": stored / result.seconds, "stored": stored,
        "p50_ms": result.latency["50"], "p99_ms": result.latency["99"],
        # every 2xx must be a stored row; nothing stored twice
        "lost": max(0, min(result.ok, sent_distinct) - stored),
        "duplicated": stored - distinct,
        "ratio_to_baseline": (stored / result.seconds) / baseline.rate,
        "peak_rss_mib": peak,
        "repo": str(REPO),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
