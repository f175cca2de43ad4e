"""`im serve --workers 2` (the real executable): two HTTP worker processes and a supervisor
that does the background work. Webhooks the sandbox delivers are stored by the workers and
applied by the supervisor, the HTTP API's changes reach PagerDuty, /health and /metrics speak
for the whole server, and the workers never outlive a killed supervisor."""

import os
import re
import signal
import socket
import subprocess
import time

import httpx

from .connector_kit import im, remote_incidents, runtime_with_connector, wait_for
from .test_crash_safety import free_port, no_server_left_behind, start_server  # noqa: F401


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in found.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def test_two_workers_sync_both_ways_and_report_as_one_server(tmp_path, pd):
    home = tmp_path / "home"
    runtime = runtime_with_connector(home, pd)
    port = free_port()
    server = start_server(home, port, workers=2)
    base = f"http://127.0.0.1:{port}"
    try:
        result = im(runtime, "connector", "webhook", "prod-pagerduty", "--enable", "--url", base)
        assert result.exit_code == 0, result.output
        token = im(runtime, "api-token", "create", "tests").stdout.strip()
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                           timeout=10)

        # declared through a worker's HTTP API, delivered by the supervisor
        declared = api.post("/api/incidents", json={
            "title": "Checkout failing", "severity": "SEV-2", "services": ["payments"]})
        assert declared.status_code == 201, declared.text
        incident_id = declared.json()["incident"]["id"]
        [remote] = wait_for(lambda: remote_incidents(pd.client()), timeout=10)
        assert remote["service"]["id"] == "PPAY001"

        # a responder in PagerDuty: the webhooks reach a worker, the supervisor applies them
        with pd.client(from_email="john.doe@company.com") as john:
            john.put(f"/incidents/{remote['id']}", json={"incident": {
                "type": "incident_reference", "status": "acknowledged"}}).raise_for_status()
            john.post(f"/incidents/{remote['id']}/notes", json={
                "note": {"content": "Card processor timing out"}}).raise_for_status()
        assert pd.wait_for_webhooks(timeout=10)
        wait_for(lambda: runtime.store.get_incident(incident_id).status.value == "mitigated",
                 timeout=10)
        wait_for(lambda: any(e.text == "Card processor timing out"
                             for e in runtime.store.timeline(incident_id)), timeout=10)
        assert len(runtime.store.list_incidents()) == 1

        health = httpx.get(f"{base}/health", timeout=5)
        assert (health.status_code, health.json()["status"]) == (200, "ok")

        # every delivery was accepted by one worker or the other; any scrape counts them all
        delivered = pd.deliveries(outcome="delivered")
        assert len(delivered) >= 3  # triggered, acknowledged, annotated
        for _ in range(4):  # the scrapes land on either worker
            text = httpx.get(f"{base}/metrics", timeout=5).text
            counted = sum(float(v) for v in re.findall(
                r'^im_webhook_requests_total\{connector="prod-pagerduty",outcome="(?:accepted|'
                r'duplicate)"\} (\S+)$', text, flags=re.M))
            assert counted == len(delivered), text
    finally:
        workers = children(server.pid)
        # the supervisor dies alone: its workers must not outlive it and keep the port
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    assert workers, "no worker processes were found"
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # free again


def test_health_reports_a_supervisor_that_stopped_answering(tmp_path, pd):
    home = tmp_path / "home"
    runtime = runtime_with_connector(home, pd)
    token = im(runtime, "api-token", "create", "monitor", "--read-only").stdout.strip()
    port = free_port()
    server = start_server(home, port, workers=2)
    try:
        os.kill(server.pid, signal.SIGSTOP)  # frozen: its workers still answer HTTP
        started = time.monotonic()
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert (health.status_code, health.json()) == (503, {"status": "unavailable"})
        detailed = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10,
                             headers={"Authorization": f"Bearer {token}"})
        assert detailed.json()["reasons"] == ["background work not answering"]
        assert time.monotonic() - started < 10
    finally:
        os.kill(server.pid, signal.SIGCONT)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
