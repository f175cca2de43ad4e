"""The server app built by create_app, through the test kit's HTTP client."""

import sys
from pathlib import Path
import json
import time

import httpx
import pytest
from litestar import get

from im import hookimpl
from im.testing import http_client, make_runtime, run_cli, serve, sql

# the `im` executable of this Python (the conftest module's name is shared by every
# test folder's, so tests name it themselves)
IM = str(Path(sys.executable).parent / "im")


class RoutePlugin:
    @hookimpl
    def register_routes(self, register):
        @get("/hello", sync_to_thread=False)
        def hello() -> dict[str, str]:
            return {"hello": "world"}

        register(hello)


def test_health_and_plugin_routes(tmp_path):
    runtime = make_runtime(tmp_path, plugins=[RoutePlugin()])
    with http_client(runtime) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/health/ready").json() == {"status": "ok"}
        assert client.get("/health/live").json() == {"status": "ok"}
        assert client.get("/hello").json() == {"hello": "world"}


def test_api_needs_the_bearer_token(runtime):
    with http_client(runtime) as client:
        refused = client.get("/api/incidents")
        assert (refused.status_code, refused.json()) == (401, {
            "error": "a valid `Authorization: Bearer TOKEN` is required"
                     " (`im api-token create NAME` makes one)"})
        assert client.get("/api/incidents",
                          headers={"Authorization": "Bearer wrong"}).status_code == 401
        token = run_cli(runtime, ["api-token", "create", "ci"]).stdout.strip()
        ok = client.get("/api/incidents", headers={"Authorization": f"Bearer {token}"})
        assert (ok.status_code, ok.json()) == (200, [])


def test_named_tokens_read_only_and_revoked_at_once_on_a_running_server(runtime):
    made = run_cli(runtime, ["api-token", "create", "ci"])
    assert made.stderr == ("Created API token ci (read-write). It is shown only now: keep it"
                           " in your client's secrets.\n")
    writer = made.stdout.strip()
    reader = run_cli(runtime, ["api-token", "create", "grafana", "--read-only"]).stdout.strip()
    assert run_cli(runtime, ["api-token", "list"]).stdout.splitlines()[:1] == [
        "Name     Access      Created"]
    listed = json.loads(run_cli(runtime, ["api-token", "list", "--json"]).stdout)
    assert [(t["name"], t["read_only"]) for t in listed] == [("ci", False), ("grafana", True)]
    # only hashes are stored
    if runtime.store.kind == "sqlite":  # the database file, the write-ahead log included
        database = (runtime.home / "im.db").read_bytes() + b"".join(
            p.read_bytes() for p in runtime.home.glob("im.db-wal"))
    else:  # every row of every table
        tables = [row[0] for row in sql(runtime, "SELECT table_name FROM"
                                        " information_schema.tables WHERE table_schema ="
                                        " current_schema()")]
        assert "api_tokens" in tables
        database = repr([sql(runtime, f'SELECT * FROM "{table}"') for table in tables]).encode()
    assert writer.encode() not in database and reader.encode() not in database
    body = {"title": "API down", "severity": "SEV-1", "services": ["api"]}
    with serve(runtime) as url, httpx.Client(base_url=url) as client:
        as_reader = {"Authorization": f"Bearer {reader}"}
        as_writer = {"Authorization": f"Bearer {writer}"}
        assert client.get("/api/incidents", headers=as_reader).status_code == 200
        denied = client.post("/api/incidents", headers=as_reader, json=body)
        assert (denied.status_code, denied.json()) == (
            403, {"error": "token grafana is read-only"})
        assert client.post("/api/incidents", headers=as_writer, json=body).status_code == 201
        rotated = run_cli(runtime, ["api-token", "rotate", "ci"]).stdout.strip()
        assert client.get("/api/incidents", headers=as_writer).status_code == 401
        assert client.get("/api/incidents",
                          headers={"Authorization": f"Bearer {rotated}"}).status_code == 200
        assert run_cli(runtime, ["api-token", "revoke", "grafana"]).stdout == (
            "Revoked API token grafana\n")
        assert client.get("/api/incidents", headers=as_reader).status_code == 401
    assert len(runtime.store.list_incidents(limit=10)) == 1


def test_a_token_made_by_an_earlier_im_keeps_working_as_default(runtime):
    runtime.store.set_meta("api_token", "im_from-an-earlier-version")
    with http_client(runtime) as client:
        answer = client.get("/api/incidents",
                            headers={"Authorization": "Bearer im_from-an-earlier-version"})
        assert answer.status_code == 200
    assert runtime.store.get_meta("api_token") is None
    assert run_cli(runtime, ["api-token", "list"]).stdout.splitlines()[1].startswith(
        "default  read-write  ")


def test_api_incident_lifecycle(runtime, fake):
    run_cli(runtime, ["connector", "add", "fake", "f", "--config", '{"api_key": "k"}'])
    token = run_cli(runtime, ["api-token", "create", "ci"]).stdout.strip()
    with http_client(runtime) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        client.headers["X-Im-User"] = "bob"
        made = client.post("/api/incidents", json={
            "title": "API down", "severity": "SEV-1", "services": ["api", "db"]})
        assert made.status_code == 201, made.text
        assert made.json()["incident"]["id"] == "INC-1"
        acked = client.post("/api/incidents/INC-1/ack", json={"note": "on it"})
        assert acked.json()["incident"]["status"] == "mitigated"
        note = client.post("/api/incidents/INC-1/notes", json={"note": "cache flushed"})
        assert (note.status_code, note.json()["text"], note.json()["actor"]) == (
            201, "cache flushed", "bob")
        resolved = client.post("/api/incidents/INC-1/resolve")  # no body: no note
        assert resolved.json()["incident"]["status"] == "resolved"
        again = client.post("/api/incidents/INC-1/ack", json={})
        assert (again.status_code, again.json()) == (409, {
            "error": "cannot ack INC-1: it is resolved; from resolved you can close, reopen"})
        missing = client.get("/api/incidents/INC-9")
        assert (missing.status_code, missing.json()["error"]) == (
            404, "no incident INC-9; `im list` shows the incidents")
        bad = client.post("/api/incidents", json={"title": "x", "severity": "SEV-9",
                                                  "services": ["a"]})
        assert bad.status_code == 400 and "choose from SEV-1" in bad.json()["error"]
        # Every error has the one documented shape, Litestar's own included.
        incomplete = client.post("/api/incidents", json={"title": "x"})
        assert incomplete.status_code == 400
        assert list(incomplete.json()) == ["error"]
        assert "severity" in incomplete.json()["error"]
        garbled = client.post("/api/incidents", content=b"{not json",
                              headers={"Content-Type": "application/json"})
        assert garbled.status_code == 400 and list(garbled.json()) == ["error"]
        bodiless = client.post("/api/incidents", content=b"",
                               headers={"Content-Type": "application/json"})
        assert bodiless.status_code == 400
        assert bodiless.json()["error"].endswith("(a JSON body is required)")
        negative = client.get("/api/incidents", params={"limit": -1})
        assert (negative.status_code, negative.json()) == (400, {
            "error": "limit must be 1 or more, not -1"})
        listed = client.get("/api/incidents", params={"status": "resolved"}).json()
        assert [i["id"] for i in listed] == ["INC-1"]
        events = client.get("/api/incidents/INC-1/timeline").json()
        assert [e["kind"] for e in events] == ["declared", "acknowledged", "note", "resolved"]
    # The changes went into the outbox for the connector, like the CLI's.
    assert [r.action for r in runtime.store.outbox() if r.service == "api"] == [
        "declare", "ack", "note", "resolve"]


def test_openapi_schema_and_metrics(runtime):
    from im import incidents

    incidents.declare(runtime, title="x", severity="SEV-2", services=["db"])
    with http_client(runtime) as client:
        schema = client.get("/schema/openapi.json").json()
        assert "/api/incidents" in schema["paths"]
        metrics = client.get("/metrics").text
        assert 'im_incidents{severity="SEV-2",status="open"} 1.0' in metrics


def test_connector_figures_in_prometheus(runtime, fake):
    from im import incidents
    from im.testing import run_cli

    run_cli(runtime, ["connector", "add", "fake", "f", "--config", '{"api_key": "k"}'])
    run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "x", "--service", "db,api"])
    incidents.declare(runtime, title="y", severity="SEV-3", services=["web"])  # queued only
    with http_client(runtime) as client:
        metrics = client.get("/metrics").text
    assert 'im_connector_incidents{connector="f"} 1.0' in metrics
    assert 'im_connector_queued_changes{connector="f"} 1.0' in metrics
    assert 'im_connector_sync_success_ratio{connector="f"} 1.0' in metrics


def test_webhook_source_allowlist(tmp_path):
    import json

    from im.testing import FakePlugin

    (tmp_path / "settings.json").write_text(json.dumps(
        {"server": {"webhook_allow": ["10.0.0.0/8"]}}))
    runtime = make_runtime(tmp_path, plugins=[FakePlugin()])
    with http_client(runtime) as client:
        refused = client.post("/connectors/any/webhook", content=b"{}")
        assert refused.status_code == 403


def test_bad_server_settings_are_refused_by_name(tmp_path):
    import json

    from im.errors import ImError
    from im.server import create_app

    for settings, message in (
            ({"server": {"webhook_rate_limit": -5}},
             "settings server.webhook_rate_limit: -5 is negative (0 turns the limit off)"),
            ({"public_url": "ftp://x"}, "settings public_url: 'ftp://x' is not an http(s):// URL")):
        (tmp_path / "settings.json").write_text(json.dumps(settings))
        runtime = make_runtime(tmp_path)
        with pytest.raises(ImError) as refused:
            create_app(runtime)
            runtime.public_url  # noqa: B018 (what `im serve` reads as it starts)
        assert str(refused.value) == message
        runtime.store.close()


def test_im_logs_keep_being_written_while_a_server_runs_in_the_process(runtime):
    """uvicorn's own logging set-up closes every log handler there is; a server started in
    a process (im demo, the tests' serve) must leave the one that keeps im's logs alone."""
    import logging
    import time

    from im.logs import install

    handler = install(runtime.store)
    try:
        with serve(runtime):
            logging.getLogger("im.server").warning("written while serving")
            deadline = time.monotonic() + 10
            while not [row for row in runtime.store.logs(limit=50)
                       if row["message"] == "written while serving"]:
                assert time.monotonic() < deadline, "the log line was never written"
                time.sleep(0.1)
    finally:
        logging.getLogger("im").removeHandler(handler)
        handler.close()


def test_readiness_fails_when_the_database_takes_no_write(runtime, monkeypatch):
    """A database that refuses writes (full, read only, damaged) is not `ok`: readiness tries
    a write, as webhooks need one. Liveness still answers; the reason is for a token's holder
    only. (The disk is made to refuse here by the store's write failing as SQLite reports a
    full disk.)"""
    import sqlite3

    from im.server import READINESS_SECONDS

    token = run_cli(runtime, ["api-token", "create", "monitor", "--read-only"]).stdout.strip()
    with serve(runtime) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}

        disk_full = [True]
        probe_write = runtime.store.probe_write

        def full(at):
            if disk_full[0]:
                raise sqlite3.OperationalError("database or disk is full")
            probe_write(at)

        monkeypatch.setattr(runtime.store, "probe_write", full)
        time.sleep(READINESS_SECONDS)  # the last answer is reused this long
        refused = client.get("/health")
        assert (refused.status_code, refused.json()) == (503, {"status": "unavailable"})
        assert client.get("/health/ready").status_code == 503
        detailed = client.get("/health", headers={"Authorization": f"Bearer {token}"})
        assert detailed.json() == {"status": "unavailable",
                                   "reasons": ["database: database or disk is full"]}
        assert client.get("/health/live").json() == {"status": "ok"}
        disk_full[0] = False  # space again
        time.sleep(READINESS_SECONDS)
        assert client.get("/health").json() == {"status": "ok"}


def test_the_schema_declares_the_bearer_scheme_and_metrics_can_need_a_token(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text(json.dumps({"server": {"metrics_token": True}}))
    runtime = make_runtime(home)
    token = run_cli(runtime, ["api-token", "create", "prometheus", "--read-only"]).stdout.strip()
    with http_client(runtime) as client:
        schema = client.get("/schema/openapi.json").json()
        assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
        assert schema["paths"]["/api/incidents"]["get"]["security"] == [{"BearerToken": []}]
        assert client.get("/metrics").status_code == 401
        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scraped.status_code == 200 and b"im_incidents" in scraped.content
    runtime.store.close()


def _self_signed(folder):
    """A certificate and key for 127.0.0.1, made with openssl."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed here")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_im_serve_serves_tls_and_refuses_a_bad_pair_in_one_line(tmp_path, im_env):
    import socket
    import ssl
    import subprocess

    
    cert, key = _self_signed(tmp_path)
    bad = subprocess.run([IM, "serve", "--tls-cert", str(cert), "--tls-key", str(cert)],
                         env=im_env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith(f"Error: cannot use {cert} with")
    assert len(bad.stderr.splitlines()) == 1
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([IM, "serve", "--port", str(port), "--tls-cert", str(cert),
                               "--tls-key", str(key), "--log-level", "warning"],
                              env=im_env, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr.readline() == f"im serve listening on https://127.0.0.1:{port}\n"
        trusted = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"https://127.0.0.1:{port}/health/live", verify=trusted)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "im serve did not answer over TLS"
                time.sleep(0.2)
        assert answer.json() == {"status": "ok"}
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_im_serve_with_workers_refuses_bad_server_settings_before_it_listens(im_env,
                                                                             tmp_path):
    """The workers each build the app, which checks the `server` settings: im serve checks
    them first, so a bad one is one line and exit 1, not a traceback from every worker
    after "listening"."""
    import socket
    import subprocess

    
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "settings.json").write_text(json.dumps({"server": {"max_connections": 0}}))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run([IM, "serve", "--port", str(port), "--workers", "2"],
                          env={**im_env, "IM_HOME": str(home)}, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (
        1, "", "Error: settings server.max_connections: must be a whole number of at least 1"
               " (client connections per process), not 0\n")


def test_listening_beyond_loopback_without_tls_is_warned_of(im_env):
    """Checked without serving anything: the port on all addresses is taken (bound, never
    listening), so im serve warns, then stops at the busy port."""
    import socket
    import subprocess

    
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        port = taken.getsockname()[1]
        done = subprocess.run([IM, "serve", "--host", "0.0.0.0", "--port", str(port)],
                              env=im_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Warning: listening on 0.0.0.0 without TLS: API tokens and webhooks cross the network"
        " in clear unless a TLS proxy is in front; give --tls-cert and --tls-key, or keep"
        " --host 127.0.0.1 behind the proxy",
        f"Error: cannot listen on 0.0.0.0:{port}: Address already in use"]
