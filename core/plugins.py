"""The plugin manager: hookspecs, the core's default plugins, then installed plugins."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import pluggy

from im import hookspecs

ENTRY_POINT_GROUP = "im.plugins"
DEFAULT_PLUGINS: tuple[str, ...] = ()


def _wanted() -> set[str] | None:
    """Entry-point names from IM_LOAD_PLUGINS (comma-separated; empty loads none), or None."""
    value = os.environ.get("IM_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering which distribution each installed plugin came from."""

    def __init__(self) -> None:
        super().__init__("im")
        self.distributions: dict[str, tuple[str, str]] = {}


def get_plugin_manager(*, load_entrypoints: bool = True,
                       plugins: tuple[object, ...] = ()) -> PluginManager:
    """A new plugin manager: every caller gets its own, there is no global one.

    `plugins` are registered as well (tests pass tiny plugin objects here).
    """
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        module = __import__(module_name, fromlist=["*"])
        pm.register(module, name=module_name)
    if load_entrypoints:
        # What pluggy's load_setuptools_entrypoints does (skip a name registered or blocked
        # already, load, register under the entry point's name), over installed_plugins()
        # instead of importlib.metadata: pluggy's made `im --help` 16-25 ms slower (a fifth).
        wanted = _wanted()
        for entry_point in installed_plugins():
            if wanted is not None and entry_point.name not in wanted:
                continue
            if pm.has_plugin(entry_point.name) or pm.is_blocked(entry_point.name):
                continue
            plugin = entry_point.load()
            pm.register(plugin, name=entry_point.name)
            pm.distributions[entry_point.name] = (entry_point.distribution,
                                                  entry_point.version)
    for plugin in plugins:
        if not pm.is_registered(plugin):  # a test may pass a plugin installed anyway
            pm.register(plugin)
    pm.check_pending()
    if os.environ.get("IM_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda message: sys.stderr.write(message))
        pm.enable_tracing()
    return pm


def describe_plugins(pm: PluginManager) -> list[dict[str, object]]:
    """Installed plugins (not the core's defaults): name, version and the hooks each implements."""
    described = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        if name in DEFAULT_PLUGINS:
            continue
        entry: dict[str, object] = {
            "name": name,
            "hooks": sorted(hook.name for hook in pm.get_hookcallers(plugin) or []),
        }
        if name in pm.distributions:
            entry["distribution"], entry["version"] = pm.distributions[name]
        described.append(entry)
    return sorted(described, key=lambda entry: str(entry["name"]))


class EntryPoint:
    """An `im.plugins` entry point of an installed distribution."""

    def __init__(self, name: str, value: str, distribution: str, version: str) -> None:
        self.name, self.value = name, value
        self.distribution, self.version = distribution, version

    def load(self) -> object:
        import importlib

        module, _, attribute = self.value.partition(":")
        loaded: object = importlib.import_module(module.strip())
        for part in filter(None, attribute.strip().split(".")):
            loaded = getattr(loaded, part)
        return loaded


def installed_plugins() -> list[EntryPoint]:
    """The `im.plugins` entry points on sys.path, first distribution of a name winning.

    Read straight from each `*.dist-info/entry_points.txt`: importlib.metadata costs 20-35 ms
    to import, a third of what `im --help` may take (tests check both agree).
    """
    found: dict[str, EntryPoint] = {}
    marker = f"[{ENTRY_POINT_GROUP}]".encode()
    for folder in sys.path:
        folder = folder or "."
        try:
            names = sorted(name for name in os.listdir(folder) if name.endswith(".dist-info"))
        except OSError:
            continue
        for name in names:
            try:  # bytes: most files are not ours, and decoding them is wasted work
                with open(f"{folder}/{name}/entry_points.txt", "rb") as file:
                    data = file.read()
            except OSError:
                continue
            if marker not in data:
                continue
            text = data.decode("utf-8", errors="replace")
            distribution, version = _distribution(os.path.join(folder, name))
            section = None
            for line in text.splitlines():
                line = line.strip()
                if line.startswith("["):
                    section = line.strip("[]").strip()
                elif section == ENTRY_POINT_GROUP and "=" in line and not line.startswith(
                        ("#", ";")):
                    key, _, value = line.partition("=")
                    found.setdefault(key.strip(), EntryPoint(key.strip(), value.strip(),
                                                             distribution, version))
    return list(found.values())


def _distribution(dist_info: str) -> tuple[str, str]:
    name = version = ""
    with open(os.path.join(dist_info, "METADATA"), encoding="utf-8") as file:
        for line in file:
            if line.startswith("Name:"):
                name = line[5:].strip()
            elif line.startswith("Version:"):
                version = line[8:].strip()
            if (name and version) or not line.strip():
                break
    return name, version


def call_each(pm: PluginManager, hook: str,
              kwargs: Callable[[str], dict[str, Any]]) -> list[tuple[str, Exception]]:
    """Call a hook plugin by plugin, in pluggy's order, through pluggy (so IM_TRACE_PLUGINS
    shows the calls). `kwargs(plugin_name)` gives each call's arguments, so what a plugin
    registers can be attributed to it. One plugin's exception does not stop the others: the
    failures are returned as (plugin name, exception)."""
    plugins = [impl.plugin for impl in getattr(pm.hook, hook).get_hookimpls()]
    failures = []
    for plugin in reversed(plugins):
        name = pm.get_name(plugin) or repr(plugin)
        caller = pm.subset_hook_caller(hook, [p for p in plugins if p is not plugin])
        try:
            caller(**kwargs(name))
        except Exception as error:
            failures.append((name, error))
    return failures
