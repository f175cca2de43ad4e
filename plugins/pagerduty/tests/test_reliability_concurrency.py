"""Concurrency: several `im` CLI processes declare and note while `im serve` (another process)
receives webhooks for the same database, from the sandbox and from a load of signed posts, and
delivers its outbox. No process meets "database is locked", and no row is lost: the row counts
in SQLite are exactly what was done.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from im_pagerduty.webhooks import sign

from .connector_kit import im, runtime_with_connector, stored, wait_for
from .test_crash_safety import (  # noqa: F401  (no_server_left_behind: a fixture)
    IM,
    free_port,
    no_server_left_behind,
    note_event,
    start_server,
)

CONNECTOR = "prod-pagerduty"
WORKERS = 3  # CLI processes at a time
ROUNDS = 2  # each: declare an incident, note it, note the shared one
POSTS = 150  # signed webhook posts straight to `im serve`
PD_INCIDENTS = 5  # incidents a responder triggers in PagerDuty, each with a note


def count(home: Path, sql: str) -> int:
    return stored(home, sql)[0][0]


def cli_worker(home: Path, worker: int) -> list[tuple[list[str], int, str]]:
    env = {**os.environ, "IM_HOME": str(home), "IM_USER": f"cli-{worker}"}
    env.pop("IM_DEBUG", None)
    runs = []

    def run(*args: str) -> str:
        done = subprocess.run([IM, *args], env=env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)
        runs.append((list(args), done.returncode, done.stderr))
        return done.stdout

    for n in range(ROUNDS):
        out = run("declare", "--sev", "SEV-3", "--title", f"cli {worker}.{n}", "--service", "web")
        incident = out.split(":")[0].removeprefix("Declared ")
        run("note", "--incident", incident, f"cli note {worker}.{n}")
        run("note", "--incident", "INC-1", f"shared note {worker}.{n}")
    return runs


def test_cli_processes_and_im_serve_write_at_once_without_lock_errors_or_lost_rows(tmp_path, pd):
    started = time.monotonic()
    home = tmp_path / "home"
    runtime = runtime_with_connector(home, pd)
    pd.configure(rate_limit=100_000)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert im(runtime, "connector", "webhook", CONNECTOR, "--enable", "--url", url).exit_code == 0
    secret = runtime.connector(CONNECTOR).settings.custom.webhook_secrets[0]
    im(runtime, "declare", "--sev", "SEV-2", "--title", "shared", "--service", "db")
    shared_remote = runtime.store.links("INC-1")[0].remote_id
    runtime.store.close()
    server = start_server(home, port)
    endpoint = f"{url}/connectors/{CONNECTOR}/webhook"

    def post(n: int) -> int:
        body = note_event(shared_remote, n)
        return httpx.post(endpoint, content=body, timeout=30,
                          headers={"X-PagerDuty-Signature": sign(secret, body)}).status_code

    def responder() -> None:
        with pd.client(from_email="john.doe@company.com") as john:
            for n in range(PD_INCIDENTS):
                made = john.post("/incidents", json={"incident": {
                    "type": "incident", "title": f"pd {n}",
                    "service": {"id": "PAPI001", "type": "service_reference"}}})
                made.raise_for_status()
                john.post(f"/incidents/{made.json()['incident']['id']}/notes", json={
                    "note": {"content": f"pd note {n}"}}).raise_for_status()

    try:
        with ThreadPoolExecutor(WORKERS + 6) as pool:
            workers = [pool.submit(cli_worker, home, w) for w in range(WORKERS)]
            from_pd = pool.submit(responder)
            answers = list(pool.map(post, range(POSTS)))
            runs = [run for worker in workers for run in worker.result()]
            from_pd.result()
        busy = time.monotonic() - started
        assert answers == [202] * POSTS
        for args, code, stderr in runs:
            assert code == 0 and "locked" not in stderr and "Traceback" not in stderr, (
                args, code, stderr)
        # everything delivered both ways, then processed
        assert pd.wait_for_webhooks(timeout=30)
        wait_for(lambda: count(home, "SELECT count(*) FROM inbox WHERE status != 'done'") == 0
                 and count(home, "SELECT count(*) FROM outbox WHERE status != 'done'") == 0,
                 timeout=30)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    log = Path(server.log_path).read_text()
    assert "locked" not in log and "Traceback" not in log, log[-3000:]

    cli_incidents = WORKERS * ROUNDS
    assert count(home, "SELECT count(*) FROM incidents") == 1 + cli_incidents + PD_INCIDENTS
    notes = count(home, "SELECT count(*) FROM timeline WHERE kind = 'note'")
    assert notes == POSTS + 2 * cli_incidents + PD_INCIDENTS
    assert count(home, "SELECT count(DISTINCT text) FROM timeline WHERE kind = 'note'") == notes
    # every webhook the sandbox delivered was stored once, and so was every signed post
    # (the shared incident's own incident.triggered came before `im serve` was up: dropped)
    delivered = {d["event_id"] for d in pd.deliveries(outcome="delivered")}
    stored = count(home, "SELECT count(*) FROM inbox WHERE delivery_id NOT LIKE '01CRASH%'")
    assert stored == len(delivered) >= 2 * (PD_INCIDENTS + cli_incidents)
    assert count(home, "SELECT count(*) FROM inbox WHERE delivery_id LIKE '01CRASH%'") == POSTS
    # every CLI change reached PagerDuty once; nothing that came from it went back
    outbox = count(home, "SELECT count(*) FROM outbox")
    assert outbox == 1 + 3 * cli_incidents  # declare + note per incident, a shared note
    with pd.client() as api:
        shared = [n["content"] for n in api.get(f"/incidents/{shared_remote}/notes")
                  .json()["notes"]]
    assert sorted(shared) == sorted(f"shared note {w}.{n}" for w in range(WORKERS)
                                    for n in range(ROUNDS))
    print(f"\n{len(runs)} CLI runs in {WORKERS} processes at a time, {POSTS} signed posts,"
          f" {len(delivered)} sandbox deliveries; {busy:.1f}s of concurrent writes,"
          f" {time.monotonic() - started:.1f}s in all")
