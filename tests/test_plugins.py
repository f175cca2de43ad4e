"""The plugin system: a fresh manager per caller, entry points, tracing, `im plugins`."""

import sys
from pathlib import Path
from typing import Any
import json
import subprocess

import pluggy
import pytest

from im import Connector, hookimpl
from im.errors import ImError
from im.plugins import get_plugin_manager
from im.testing import FakeConnector, make_runtime

# the `im` executable of this Python (the conftest module's name is shared by every
# test folder's, so tests name it themselves)
IM = str(Path(sys.executable).parent / "im")



def test_every_caller_gets_its_own_manager():
    assert get_plugin_manager(load_entrypoints=False) is not get_plugin_manager(
        load_entrypoints=False)


def test_a_misspelled_hook_fails_at_start():
    class Typo:
        @hookimpl
        def register_conectors(self, register):
            pass

    with pytest.raises(pluggy.PluginValidationError):
        get_plugin_manager(load_entrypoints=False, plugins=(Typo(),))


def test_two_plugins_cannot_register_the_same_connector_type(tmp_path):
    class One:
        @hookimpl
        def register_connectors(self, register):
            register(FakeConnector)

    class Two:
        @hookimpl
        def register_connectors(self, register):
            register(type("Other", (Connector,), {"type": "fake"}))

    runtime = make_runtime(tmp_path, plugins=[One(), Two()])
    with pytest.raises(ImError, match="connector type 'fake' is registered by two plugins"):
        runtime.connector_types


def test_im_load_plugins_selects_entry_points(monkeypatch):
    monkeypatch.setenv("IM_LOAD_PLUGINS", "")
    assert get_plugin_manager().get_plugins() == set()
    monkeypatch.setenv("IM_LOAD_PLUGINS", "pagerduty")
    assert get_plugin_manager().get_plugin("pagerduty") is not None


def test_im_plugins_lists_installed_plugins_as_json(im_env):
    im_env.pop("IM_LOAD_PLUGINS", None)
    result = subprocess.run([IM, "plugins", "--json"], env=im_env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    plugins = json.loads(result.stdout)["plugins"]
    pagerduty = next(p for p in plugins if p["name"] == "pagerduty")
    assert pagerduty["distribution"] == "im-pagerduty"
    assert pagerduty["version"] == "0.1.0"
    assert "register_commands" in pagerduty["hooks"]


def test_trace_plugins_writes_hook_calls_to_stderr(im_env):
    im_env["IM_TRACE_PLUGINS"] = "1"
    im_env.pop("IM_LOAD_PLUGINS", None)
    result = subprocess.run([IM, "list"], env=im_env, capture_output=True, text=True)
    assert result.returncode == 0
    assert "register_commands" in result.stderr


def test_entry_point_scan_agrees_with_importlib_metadata():
    from importlib import metadata

    from im.plugins import ENTRY_POINT_GROUP, installed_plugins

    expected = {(ep.name, ep.value, ep.dist.metadata["Name"], ep.dist.version)
                for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    found = {(ep.name, ep.value, ep.distribution, ep.version) for ep in installed_plugins()}
    assert found == expected and ("pagerduty", "im_pagerduty", "im-pagerduty", "0.1.0") in found


class AcmePlugin:
    """A plugin adding one of everything, as a stranger's would."""

    __name__ = "acme"
    IM_SDK = "1.0"

    @hookimpl
    def register_connectors(self, register):
        register(type("AcmeConnector", (FakeConnector,), {"type": "acme"}))

    @hookimpl
    def register_commands(self, cli, runtime):
        import typer

        from im import command_group

        group = typer.Typer(help="Acme tools.")

        @group.command("sync")
        def sync() -> None:
            """Sync with Acme."""

        cli.add_typer(group, name="acme")

        @command_group(cli, "connector").command("acme-check")
        def acme_check() -> None:
            """Check an Acme connector."""

    @hookimpl
    def register_routes(self, register, runtime):
        from litestar import get, post

        from im import api_token_guard

        guard = [api_token_guard(runtime)]

        @get("/acme/incidents", guards=guard, sync_to_thread=True)
        def count() -> dict[str, int]:
            return {"incidents": len(runtime.store.list_incidents())}

        @post("/acme/ping", guards=guard, sync_to_thread=False)
        def ping() -> dict[str, str]:
            return {"pong": runtime.user}

        register(count)
        register(ping)


def test_im_plugins_lists_what_each_plugin_adds(tmp_path):
    from im.testing import run_cli

    runtime = make_runtime(tmp_path, plugins=[AcmePlugin()])
    listed = json.loads(run_cli(runtime, ["plugins", "--json"]).stdout)
    assert listed["sdk"] == "1.0"
    [acme] = listed["plugins"]
    assert acme == {
        "name": "acme", "sdk": "1.0",
        "hooks": ["register_commands", "register_connectors", "register_routes"],
        "connector_types": ["acme"],
        "commands": ["im acme", "im connector acme-check"],
        "routes": ["GET /acme/incidents", "POST /acme/ping"],
        "workflow_actions": []}
    assert run_cli(runtime, ["plugins"]).stdout.splitlines() == [
        "im SDK 1.0", "",
        "acme, SDK 1.0",
        "  connector types: acme",
        "  commands: im acme, im connector acme-check",
        "  routes: GET /acme/incidents, POST /acme/ping",
        "  hooks: register_commands, register_connectors, register_routes"]


def test_a_plugin_route_has_the_runtime_and_can_need_an_api_token(tmp_path):
    from im.testing import http_client, run_cli

    runtime = make_runtime(tmp_path, plugins=[AcmePlugin()])
    run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Disk full", "--service", "db"])
    token = run_cli(runtime, ["api-token", "create", "ops"]).stdout.strip()
    reader = run_cli(runtime, ["api-token", "create", "dash", "--read-only"]).stdout.strip()
    with http_client(runtime) as client:
        assert client.get("/acme/incidents").status_code == 401
        ok = client.get("/acme/incidents", headers={"Authorization": f"Bearer {token}"})
        assert (ok.status_code, ok.json()) == (200, {"incidents": 1})
        refused = client.post("/acme/ping", headers={"Authorization": f"Bearer {reader}"})
        assert (refused.status_code, refused.json()) == (
            403, {"error": "token dash is read-only"})
        assert client.post("/acme/ping", headers={"Authorization": f"Bearer {token}"}
                           ).status_code == 201


def test_a_plugin_route_that_changes_an_incident_wakes_the_delivery_of_the_change(tmp_path):
    """A plugin's front end changes incidents through im.app and calls the `after_change`
    it is given: the change is delivered at once, as one made through the HTTP API (here a
    worker of `im serve --workers N`, which tells the process that delivers)."""
    from litestar import post
    from litestar.di import NamedDependency

    from im.app import incidents
    from im.models import Origin
    from im.server import create_app
    from litestar.testing import TestClient

    class Chat:
        @hookimpl
        def register_routes(self, register, runtime):
            @post("/chat/ack/{incident_id:str}", sync_to_thread=True)
            def ack(incident_id: str,
                    after_change: NamedDependency[Any]) -> dict[str, str]:
                incident = incidents.ack(runtime, incident_id,
                                         actor=Origin(actor="jane@company.com", system="im"))
                after_change()
                return {"status": incident.status.value}

            register(ack)

    class Supervisor:
        told: list[str] = []

        def notify(self, kind: str) -> None:
            self.told.append(kind)

    runtime = make_runtime(tmp_path, plugins=[Chat()])
    from im.testing import run_cli

    run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Disk full", "--service", "db"])
    supervisor = Supervisor()
    with TestClient(app=create_app(runtime, supervisor=supervisor)) as client:
        answer = client.post("/chat/ack/INC-1")
    assert (answer.status_code, answer.json()) == (201, {"status": "mitigated"})
    assert supervisor.told == ["outbox"]


def _install(site, name, module_source, *, version="0.1"):
    """An installed distribution `name` whose `im.plugins` entry point is module `name_im`."""
    module = f"{name.replace('-', '_')}_im"
    (site / f"{module}.py").write_text(module_source)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[im.plugins]\n{name} = {module}\n")


def test_a_plugin_that_cannot_work_with_this_im_is_refused_in_one_line(tmp_path, im_env):
    site = tmp_path / "site"
    site.mkdir()
    _install(site, "acme-next", 'IM_SDK = "2.0"\n')
    _install(site, "acme-newer", 'IM_SDK = "1.9"\n')
    _install(site, "acme-broken", 'import a_module_nobody_has\n')
    _install(site, "acme-typo", 'from im import hookimpl\n\n\n@hookimpl\n'
                                'def register_conectors(register):\n    pass\n')
    _install(site, "acme-fine", 'IM_SDK = "1.0.2"\nfrom im import hookimpl\n\n\n'
                                '@hookimpl(optionalhook=True)\ndef a_hook_of_a_later_im():\n'
                                '    pass\n')
    im_env.pop("IM_LOAD_PLUGINS", None)
    im_env["PYTHONPATH"] = str(site)
    result = subprocess.run([IM, "list"], env=im_env, capture_output=True, text=True)
    # the core and the other plugins work on; each refusal is one line, naming the plugin
    assert result.returncode == 0 and result.stdout == "No incidents.\n", result
    assert result.stderr.splitlines() == [
        "Warning: plugin acme-broken (acme-broken 0.1) could not be loaded:"
        " ModuleNotFoundError: No module named 'a_module_nobody_has': not loaded",
        "Warning: plugin acme-newer (acme-newer 0.1) needs im SDK 1.9; this im provides SDK"
        " 1.0: not loaded",
        "Warning: plugin acme-next (acme-next 0.1) needs im SDK 2.0; this im provides SDK"
        " 1.0: not loaded",
        "Warning: plugin acme-typo (acme-typo 0.1) implements register_conectors, which im"
        " has no hook for (see docs/plugin-hooks.md): not loaded"]
    listed = json.loads(subprocess.run([IM, "plugins", "--json"], env=im_env,
                                       capture_output=True, text=True).stdout)
    by_name = {p["name"]: p for p in listed["plugins"]}
    assert sorted(n for n, p in by_name.items() if "refused" in p) == [
        "acme-broken", "acme-newer", "acme-next", "acme-typo"]
    assert by_name["acme-fine"]["sdk"] == "1.0.2" and "refused" not in by_name["acme-fine"]
    assert by_name["pagerduty"]["connector_types"] == ["pagerduty"]


def test_im_plugins_lists_the_others_when_one_fails_in_its_hooks(tmp_path):
    from im.testing import run_cli

    class Broken:
        __name__ = "broken"

        @hookimpl
        def register_connectors(self, register):
            raise ImportError("No module named 'acme_client'")

        @hookimpl
        def register_routes(self, register):
            raise RuntimeError("routes unavailable")

    runtime = make_runtime(tmp_path, plugins=[AcmePlugin(), Broken()])
    result = run_cli(runtime, ["plugins", "--json"])
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "Warning: plugin broken could not register its connector types: ImportError: No module"
        " named 'acme_client'",
        "Warning: plugin broken could not add its routes: RuntimeError: routes unavailable"]
    listed = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert listed["acme"]["routes"] == ["GET /acme/incidents", "POST /acme/ping"]
    assert listed["broken"]["hooks"] == ["register_connectors", "register_routes"]
