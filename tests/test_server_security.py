"""`im serve` on the open internet (issue #16): what an attacker on loopback can send, and what
it must not cost. Every flood here is bounded in requests and in time."""

import json
import secrets
import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager

import httpx
import pytest

from im.testing import FakePlugin, make_runtime, run_cli

FLOOD_SECONDS = 20.0  # no flood of this module runs longer, whatever the machine


@contextmanager
def served(app):
    """`app` (from create_app) as `im serve` runs it, on a free loopback port; its base URL."""
    import uvicorn

    from im.server import serving

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(serving(app), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on",
                                           proxy_headers=False))  # as `im serve` runs
    thread = threading.Thread(target=server.run, name="im-serve-security", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "im serve did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def with_fake_connector(tmp_path, server_settings):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "settings.json").write_text(json.dumps({"server": server_settings}))
    runtime = make_runtime(home, plugins=[FakePlugin()])
    result = run_cli(runtime, ["connector", "add", "fake", "f", "--config",
                               '{"api_key": "k", "enable_webhook": true}'])
    assert result.exit_code == 0, result.output
    return runtime


RANDOM_NAMES = 2000


@pytest.mark.parametrize("server_settings", [
    {"webhook_rate_limit": 0},  # every name reaches the connector lookup
    {"webhook_rate_limit": 1},  # nearly every name is answered 429
    {"webhook_allow": ["192.0.2.0/24"]},  # every name is answered 403
], ids=["no-limit", "rate-limited", "not-allowed"])
def test_random_connector_names_leave_metrics_and_the_connector_cache_flat(
        tmp_path, server_settings):
    from im.server import create_app

    runtime = with_fake_connector(tmp_path, server_settings)
    app = create_app(runtime)
    statuses: Counter[int] = Counter()
    with served(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + FLOOD_SECONDS

        def flood(count):
            for _ in range(count):
                assert time.monotonic() < deadline, "the flood took too long"
                name = secrets.token_hex(8)
                statuses[client.post(f"/connectors/{name}/webhook", content=b"{}"
                                     ).status_code] += 1

        flood(50)
        before = len(client.get("/metrics").content)
        flood(RANDOM_NAMES)
        after = len(client.get("/metrics").content)
        assert client.get("/health").status_code == 200
    runtime.store.close()
    assert set(statuses) <= {403, 404, 429}, statuses
    # a counter's value grows by a few digits; a series per name would be ~100 bytes each
    assert after - before < 1024, (before, after)
    assert len(app.state["connectors"]) <= 1  # `f` at most, never a random name


def test_unknown_connector_names_are_not_counted_by_name(tmp_path):
    """Labels of /metrics come from configured connectors only; refusals of others are counted
    by reason."""
    from im.server import create_app

    runtime = with_fake_connector(tmp_path, {"webhook_allow": ["192.0.2.0/24"]})
    app = create_app(runtime)
    with served(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        for name in ("nope", "f"):
            assert client.post(f"/connectors/{name}/webhook", content=b"{}").status_code == 403
        metrics = client.get("/metrics").text
    runtime.store.close()
    assert 'connector="nope"' not in metrics
    assert 'im_webhook_requests_total{connector="f",outcome="forbidden"} 1.0' in metrics
    assert 'im_webhook_refused_total{reason="forbidden"} 2.0' in metrics


def test_logs_filter_takes_like_wildcards_literally(runtime):
    """`im logs --filter %` finds the lines with a percent sign, not every line."""
    import logging

    from im.logs import install

    handler = install(runtime.store)
    try:
        log = logging.getLogger("im.server")
        log.warning("disk 97% full")
        log.warning("nothing special here")
        log.warning("file a_b.txt")
        log.warning("file axb.txt")
        handler.flush()
        for pattern, expected in (("%", ["disk 97% full"]), ("a_b", ["file a_b.txt"]),
                                  ("\\", [])):
            result = run_cli(runtime, ["logs", "--filter", pattern])
            assert result.exit_code == 0, result.output
            lines = [line for line in result.stdout.splitlines() if line.strip()]
            assert [m for m in ("disk 97% full", "nothing special here", "file a_b.txt",
                                "file axb.txt") if any(m in line for line in lines)] == expected
    finally:
        logging.getLogger("im").removeHandler(handler)
        handler.close()
