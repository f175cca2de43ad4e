"""The plugin system: a fresh manager per caller, entry points, tracing, `im plugins`."""

import json
import subprocess

import pluggy
import pytest

from im import Connector, hookimpl
from im.errors import ImError
from im.plugins import get_plugin_manager
from im.testing import FakeConnector, make_runtime

from conftest import IM


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
    result = subprocess.run([IM, "plugins"], env=im_env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    plugins = json.loads(result.stdout)
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
