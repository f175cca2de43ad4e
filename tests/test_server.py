"""The server app built by create_app, through the test kit's HTTP client."""

import pytest
from litestar import get

from im import hookimpl
from im.testing import http_client, make_runtime


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
        assert client.get("/health").json() == {"status": "ok", "database": "ok"}
        assert client.get("/hello").json() == {"hello": "world"}


def test_api_needs_the_bearer_token(runtime):
    from im.tokens import api_token

    with http_client(runtime) as client:
        refused = client.get("/api/incidents")
        assert (refused.status_code, refused.json()) == (401, {
            "error": "a valid `Authorization: Bearer TOKEN` is required (`im api-token` shows it)"})
        assert client.get("/api/incidents",
                          headers={"Authorization": "Bearer wrong"}).status_code == 401
        token = api_token(runtime.store, create=False)
        ok = client.get("/api/incidents", headers={"Authorization": f"Bearer {token}"})
        assert (ok.status_code, ok.json()) == (200, [])


def test_api_incident_lifecycle(runtime, fake):
    from im.testing import run_cli
    from im.tokens import api_token

    run_cli(runtime, ["connector", "add", "fake", "f", "--config", '{"api_key": "k"}'])
    with http_client(runtime) as client:
        client.headers["Authorization"] = f"Bearer {api_token(runtime.store)}"
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
