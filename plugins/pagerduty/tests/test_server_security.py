"""`im serve` on the open internet (issue #16), with real signed PagerDuty deliveries: floods of
refused requests beside a genuine sender, the log they leave, and replayed or future-dated
events. Every flood is bounded in requests and in time, on loopback only."""

import json
import logging
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

import httpx

from im.testing import serve
from im_pagerduty.webhooks import sign

from .connector_kit import im, pd_time, runtime_with_connector, wait_for
from .test_crash_safety import free_port, no_server_left_behind, start_server  # noqa: F401

SECRET = "security-secret"
ENDPOINT = "/connectors/prod-pagerduty/webhook"
FLOOD_SECONDS = 20.0  # no flood here runs longer than this, whatever the machine


def secured_runtime(tmp_path, pd, server_settings):
    home = tmp_path / "home"
    runtime = runtime_with_connector(home, pd)
    runtime.update_connector_settings("prod-pagerduty", {
        "enable_webhook": True, "custom.webhook_secrets": [SECRET]})
    home.mkdir(exist_ok=True)  # the database may be elsewhere (PostgreSQL): no file made it
    (home / "settings.json").write_text(json.dumps({"server": server_settings}))
    return runtime


def ping(event_id):
    """A genuine delivery: a body and its signature."""
    body = json.dumps({"event": {
        "id": event_id, "event_type": "pagey.ping", "resource_type": "pagey",
        "occurred_at": pd_time(), "agent": None, "client": None, "data": {}}}).encode()
    return body, {"X-PagerDuty-Signature": sign(SECRET, body)}


UNSIGNED = ping("01FLOOD")[0]
BAD_SIGNATURE = {"X-PagerDuty-Signature": "v1=" + "0" * 64}


class Flood:
    """Threads posting badly signed requests until stopped (at most `limit` each, and
    FLOOD_SECONDS); `answers` counts their statuses."""

    def __init__(self, url, *, threads=2, limit=5000, headers=()):
        self.url, self.limit = url, limit
        self.headers = list(headers) or [{}]
        self.answers: Counter[int] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(threads)]

    def _run(self, n):
        deadline = time.monotonic() + FLOOD_SECONDS
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for i in range(self.limit):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                extra = self.headers[(n + i) % len(self.headers)]
                status = client.post(ENDPOINT, content=UNSIGNED,
                                     headers={**BAD_SIGNATURE, **extra}).status_code
                self.answers[status] += 1

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        time.sleep(0.2)  # under way before the genuine sender starts
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=FLOOD_SECONDS)


def genuine_deliveries(url, count, *, headers=None, gap=0.02):
    """`count` signed deliveries, one every `gap` seconds (below the sender's limit); their
    answers' statuses."""
    statuses = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for n in range(count):
            body, signed = ping(f"01GENUINE{n:04d}")
            statuses.append(client.post(ENDPOINT, content=body,
                                        headers={**signed, **(headers or {})}).status_code)
            time.sleep(gap)
    return statuses


def test_an_unsigned_flood_from_the_senders_address_costs_no_genuine_delivery_its_answer(
        tmp_path, pd):
    """Behind a TLS proxy every sender has the proxy's address: the flood and PagerDuty share
    one. 80 genuine deliveries at 25/s, within the 50/s limit, while two threads flood."""
    runtime = secured_runtime(tmp_path, pd, {"webhook_rate_limit": 50})
    with serve(runtime, background=False) as url, Flood(url) as flood:
        statuses = genuine_deliveries(url, 80, gap=0.04)
    assert Counter(statuses) == {202: 80}
    assert sum(flood.answers.values()) > 100, flood.answers  # it did flood
    assert set(flood.answers) <= {401, 429}, flood.answers
    # over the limit of refused requests they are answered 429; nothing of them was stored
    assert flood.answers[429] > 0, flood.answers
    assert sorted(r.delivery_id for r in runtime.store.inbox()) == [
        f"01GENUINE{n:04d}" for n in range(80)]
    runtime.store.close()


def test_behind_a_trusted_proxy_the_client_address_comes_from_the_forwarded_header(
        tmp_path, pd):
    """The allowlist and the limits see the address the proxy was connected from, and only a
    trusted proxy's word is taken for it."""
    pagerduty = {"X-Forwarded-For": "203.0.113.7"}
    # not trusted (no trusted_proxies): the header is the client's own claim, ignored
    runtime = secured_runtime(tmp_path, pd, {"webhook_allow": ["203.0.113.0/24"]})
    with serve(runtime, background=False) as url:
        body, signed = ping("01PROXY0")
        assert httpx.post(url + ENDPOINT, content=body,
                          headers={**signed, **pagerduty}).status_code == 403
    runtime.store.close()
    # trusted: the client is the rightmost address that is not a trusted proxy's; what the
    # client wrote left of it is not believed
    (tmp_path / "home" / "settings.json").write_text(json.dumps({"server": {
        "webhook_allow": ["203.0.113.0/24"], "trusted_proxies": ["127.0.0.1", "10.0.0.0/8"],
        "webhook_refused_limit": 5, "webhook_refused_limit_total": 20}}))
    from im.testing import make_runtime

    runtime = make_runtime(tmp_path / "home", load_entrypoints=True, user="alice")
    with serve(runtime, background=False) as url:
        for forwarded, status in (("203.0.113.7", 202), ("198.51.100.1, 203.0.113.7", 202),
                                  ("203.0.113.7, 10.0.0.3", 202),
                                  ("203.0.113.7, 198.51.100.1", 403), ("garbage", 403)):
            body, signed = ping(f"01PROXY{uuid.uuid4().hex[:8]}")
            assert httpx.post(url + ENDPOINT, content=body, headers={
                **signed, "X-Forwarded-For": forwarded}).status_code == status, forwarded
        # ten forwarded sources flooding: each has its limit of refused requests (5/s), and
        # together they have one (20/s), well under ten times 5; PagerDuty's deliveries,
        # through the same proxy, are all answered
        sources = [{"X-Forwarded-For": f"203.0.113.{n}"} for n in range(100, 110)]
        with Flood(url, headers=sources) as flood:
            statuses = genuine_deliveries(url, 40, headers=pagerduty)
        assert Counter(statuses) == {202: 40}
        assert flood.answers[429] > 0, flood.answers
        metrics = httpx.get(url + "/metrics").text
    runtime.store.close()
    assert 'im_webhook_refused_total{reason="bad_signature"}' in metrics
    assert "im_webhook_refused_throttled_total" in metrics


def test_a_flood_of_bad_signatures_is_logged_in_aggregate_with_its_count(tmp_path, pd):
    from im.logs import install

    runtime = secured_runtime(tmp_path, pd, {})
    handler = install(runtime.store)
    try:
        with serve(runtime, background=False) as url, httpx.Client(base_url=url) as client:
            deadline = time.monotonic() + FLOOD_SECONDS
            sent = 0
            while sent < 1500 and time.monotonic() < deadline:
                assert client.post(ENDPOINT, content=UNSIGNED,
                                   headers=BAD_SIGNATURE).status_code in (401, 429)
                sent += 1
            metrics = client.get("/metrics").text
        handler.flush()  # the server stopped: what it counted is logged
    finally:
        logging.getLogger("im").removeHandler(handler)
        handler.close()
    rows = runtime.store.logs(component="webhook")
    runtime.store.close()
    # one line at the first refusal, one with the count of the rest (at most one an interval)
    assert 1 <= len(rows) <= 3, [r["message"] for r in rows]
    assert rows[0]["message"] == (
        "webhook for prod-pagerduty from 127.0.0.1 refused: bad or missing signature")
    assert sum(r["data"].get("refused", 0) for r in rows[1:]) == sent - 1
    assert rows[-1]["message"].startswith(
        "webhook for prod-pagerduty from 127.0.0.1 refused ")
    assert f'im_webhook_refused_total{{reason="bad_signature"}} {float(sent)}' in metrics


def note_event(link, event_id, text, at):
    return json.dumps({"event": {
        "id": event_id, "event_type": "incident.annotated", "resource_type": "incident",
        "occurred_at": at, "agent": None, "client": None, "data": {
            "incident": {"id": link.remote_id, "type": "incident_reference"},
            "id": "PNOTE01", "type": "incident_note", "content": text}}}).encode()


def ack_event(link, event_id, at):
    return json.dumps({"event": {
        "id": event_id, "event_type": "incident.acknowledged", "resource_type": "incident",
        "occurred_at": at, "agent": None, "client": None, "data": {
            "id": link.remote_id, "type": "incident", "number": 1, "status": "acknowledged",
            "title": "x", "html_url": link.remote_url, "incident_key": None,
            "service": {"id": "PAPI001", "type": "service_reference"},
            "assignees": [], "urgency": "high", "priority": None}}}).encode()


def test_a_replayed_body_with_new_unsigned_headers_is_stored_and_applied_once(tmp_path, pd):
    from im.inbound import process_inbox

    runtime = secured_runtime(tmp_path, pd, {})
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "api")
    [link] = runtime.store.links("INC-1")
    # no event id of its own: only the signed body tells one delivery from another
    body = note_event(link, "", "replayed note", pd_time())
    with serve(runtime, background=False) as url, httpx.Client(base_url=url) as client:
        answers = [client.post(ENDPOINT, content=body, headers={
            "X-PagerDuty-Signature": sign(SECRET, body), "X-Webhook-Id": uuid.uuid4().hex,
            "User-Agent": f"replayer/{n}"}).json()["status"] for n in range(3)]
    assert answers == ["accepted", "duplicate", "duplicate"]
    assert len(runtime.store.inbox()) == 1
    process_inbox(runtime)
    notes = [e.text for e in runtime.store.timeline("INC-1") if e.kind == "note"]
    assert notes == ["replayed note"]
    runtime.store.close()


def test_an_event_dated_in_the_future_is_quarantined_not_applied(tmp_path, pd):
    from im.inbound import FUTURE_TOLERANCE, process_inbox

    runtime = secured_runtime(tmp_path, pd, {})
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "api")
    [link] = runtime.store.links("INC-1")
    ahead = ack_event(link, "01FUTURE", pd_time(FUTURE_TOLERANCE + timedelta(hours=1)))
    with serve(runtime, background=False) as url:
        answer = httpx.post(url + ENDPOINT, content=ahead,
                            headers={"X-PagerDuty-Signature": sign(SECRET, ahead)})
        assert (answer.status_code, answer.json()) == (202, {"status": "accepted"})
    report = process_inbox(runtime)
    assert (report.processed, report.quarantined) == (0, 1)
    [row] = runtime.store.inbox()
    assert row.status == "quarantined"
    assert row.error.startswith("FutureEventError: event dated ")
    assert "ahead of im's clock (tolerance 5m)" in row.error
    assert runtime.store.get_incident("INC-1").status.value == "open"
    # a clock a little ahead, within the tolerance, is no reason to hold an event back
    soon = ack_event(link, "01SOON", pd_time(timedelta(seconds=30)))
    runtime.store.store_inbox(connector="prod-pagerduty", delivery_id="01SOON",
                              event_type="incident.acknowledged", body=soon,
                              at=runtime.clock())
    assert process_inbox(runtime).processed == 1
    assert runtime.store.get_incident("INC-1").status.value == "mitigated"
    runtime.store.close()


def test_the_last_count_of_refusals_is_kept_when_im_serve_is_stopped(tmp_path, pd):
    """The real executable, stopped with SIGTERM: uvicorn ends the process with the signal,
    so nothing at exit would write what was counted since the first refusal."""
    runtime = secured_runtime(tmp_path, pd, {})
    port = free_port()
    server = start_server(tmp_path / "home", port)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for _ in range(5):
            assert client.post(ENDPOINT, content=UNSIGNED,
                               headers=BAD_SIGNATURE).status_code == 401
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=20)
    messages = [r["message"] for r in runtime.store.logs(component="webhook")]
    runtime.store.close()
    assert messages == [
        "webhook for prod-pagerduty from 127.0.0.1 refused: bad or missing signature",
        messages[1]]
    assert messages[1].startswith("webhook for prod-pagerduty from 127.0.0.1 refused 4 more"
                                  " times in the last ")


def test_slow_clients_by_the_hundred_leave_health_and_signed_deliveries_answered(tmp_path, pd):
    """A real `im serve` allowed 256 open files (so at most 192 client connections), and 600
    clients that connect, start a request head and stall: each newcomer takes the place of the
    longest-waiting one, so /health and signed deliveries are answered at once, the server
    never runs out of file descriptors, and the cap is logged. (Before, the stalled clients
    held every descriptor: nothing was answered until they went away.)"""
    import os
    import resource
    import socket
    import subprocess

    from .test_crash_safety import IM, STARTED

    runtime = secured_runtime(tmp_path, pd, {})
    runtime.store.close()
    port, log_path = free_port(), tmp_path / "serve.log"

    def few_files():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [IM, "serve", "--port", str(port), "--log-level", "warning"],
            env={**os.environ, "IM_HOME": str(tmp_path / "home")}, stdout=subprocess.DEVNULL,
            stderr=log, start_new_session=True, preexec_fn=few_files)
    STARTED.append(process)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _live(url) or process.poll() is not None, timeout=60)
    assert process.poll() is None, log_path.read_text()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))  # this test's 600
    stalled: list[socket.socket] = []
    try:
        deadline = time.monotonic() + FLOOD_SECONDS
        for _ in range(600):
            assert time.monotonic() < deadline, "the stalled clients took too long to connect"
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            stalled.append(sock)
            try:
                sock.sendall(b"POST /connectors/prod-pagerduty/webhook HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                pass  # already made room for a newer one
        health = httpx.get(f"{url}/health", timeout=5)
        statuses = genuine_deliveries(url, 20, gap=0)
        files = len(os.listdir(f"/proc/{process.pid}/fd"))
    finally:
        for sock in stalled:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert health.status_code == 200, health.text
    assert statuses == [202] * 20
    assert files <= 256, files
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    text = log_path.read_text()
    assert "Too many open files" not in text
    assert "client connections open, the cap (server.max_connections)" in text, text[-2000:]


def _live(url):
    try:
        return httpx.get(f"{url}/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_outbound_connector_refuses_webhooks_it_would_never_apply(tmp_path, pd):
    """An outbound connector applies nothing that comes in: its deliveries are refused (404,
    as for webhooks turned off), not stored to be ignored for ever."""
    runtime = secured_runtime(tmp_path, pd, {})
    runtime.update_connector_settings("prod-pagerduty", {"sync_direction": "outbound"})
    body, signed = ping("01OUTBOUND")
    with serve(runtime, background=False) as url, httpx.Client(base_url=url) as client:
        answer = client.post(ENDPOINT, content=body, headers=signed)
    assert (answer.status_code, answer.json()) == (404, {"error": "no webhook for this connector"})
    assert runtime.store.inbox() == []
    runtime.store.close()
