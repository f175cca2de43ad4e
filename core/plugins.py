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
# The version of what plugins build on: the hooks, the Connector protocol and its structs,
# im.testing. A plugin says which it was built for (`IM_SDK = "1.0"` in the object its entry
# point names); it is loaded by an im whose SDK has the same major version and at least that
# minor one. A new minor version only adds; a new major one may break plugins.
SDK_VERSION = "1.0"


def _wanted() -> set[str] | None:
    """Entry-point names from IM_LOAD_PLUGINS (comma-separated; empty loads none), or None."""
    value = os.environ.get("IM_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering which distribution each installed plugin came from, the
    plugins it refused (by name: why, in one line) and what each plugin added (by name and
    kind: `connector types`, `commands`, `routes`)."""

    def __init__(self) -> None:
        super().__init__("im")
        self.distributions: dict[str, tuple[str, str]] = {}
        self.refused: dict[str, str] = {}
        self.contributions: dict[str, dict[str, list[str]]] = {}

    def contributed(self, plugin: str, kind: str, what: str) -> None:
        """Note that `plugin` added `what` (a connector type, a command, a route)."""
        found = self.contributions.setdefault(plugin, {}).setdefault(kind, [])
        if what not in found:
            found.append(what)


def _sdk(version: object) -> tuple[int, int] | None:
    """(major, minor) of an SDK version such as "1.0" (or "1", or "1.0.2"), None when it is
    not one."""
    parts = str(version).strip().split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() and len(p) <= 4 for p in parts):
        return None
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else 0


def sdk_refusal(plugin: object, label: str) -> str | None:
    """Why a plugin cannot be loaded by this im's SDK (None when it can). A plugin that
    declares no `IM_SDK` is loaded, as before versions were declared."""
    wanted = getattr(plugin, "IM_SDK", None)
    if wanted is None:
        return None
    needed, have = _sdk(wanted), _sdk(SDK_VERSION)
    assert have is not None
    if needed is None:
        return (f"plugin {label} declares IM_SDK = {wanted!r}, which is not an SDK version"
                f" such as {SDK_VERSION!r}: not loaded")
    if needed[0] != have[0] or needed[1] > have[1]:
        return (f"plugin {label} needs im SDK {wanted}; this im provides SDK {SDK_VERSION}:"
                f" not loaded")
    return None


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
            label = (f"{entry_point.name} ({entry_point.distribution}"
                     f" {entry_point.version})")
            # a plugin that cannot load is left out, said in one line; the core and the
            # other plugins work on (`im ack` at 3 a.m. must not need every plugin well)
            try:
                plugin = entry_point.load()
                refusal = sdk_refusal(plugin, label)
                if refusal is None:
                    pm.register(plugin, name=entry_point.name)
                    # (an `optionalhook` is pluggy's way to offer a hook a newer im may have)
                    unknown = sorted(caller.name for caller in pm.get_hookcallers(plugin) or []
                                     if not caller.has_spec() and not all(
                                         impl.optionalhook for impl in caller.get_hookimpls()
                                         if impl.plugin is plugin))
                    if unknown:
                        pm.unregister(name=entry_point.name)
                        refusal = (f"plugin {label} implements {', '.join(unknown)}, which im"
                                   f" has no hook for (see docs/plugin-hooks.md): not loaded")
            except Exception as error:
                if pm.has_plugin(entry_point.name):
                    pm.unregister(name=entry_point.name)
                refusal = (f"plugin {label} could not be loaded:"
                           f" {type(error).__name__}: {error}: not loaded")
            if refusal is not None:
                pm.refused[entry_point.name] = refusal
                continue
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


# what a plugin can add, each a key of every plugin `im plugins --json` describes (an empty
# list when it adds none, so every entry has the same keys)
KINDS = ("connector_types", "commands", "routes", "workflow_actions")


def describe_plugins(pm: PluginManager) -> list[dict[str, object]]:
    """Installed plugins (not the core's defaults): name, distribution and version, the SDK
    version each declares, the hooks it implements and what it added (as far as the caller
    has asked: see PluginManager.contributions); refused plugins with why."""
    described = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        if name in DEFAULT_PLUGINS or name is None:
            continue
        entry: dict[str, object] = {"name": name}
        if name in pm.distributions:
            entry["distribution"], entry["version"] = pm.distributions[name]
        entry["sdk"] = getattr(plugin, "IM_SDK", None)
        entry["hooks"] = sorted(hook.name for hook in pm.get_hookcallers(plugin) or [])
        added = pm.contributions.get(name, {})
        entry.update({kind: sorted(added.get(kind, [])) for kind in KINDS})
        described.append(entry)
    for name, why in pm.refused.items():
        described.append({"name": name, "refused": why})
    return sorted(described, key=lambda entry: str(entry["name"]))


def route_names(handler: Any, prefix: str = "") -> list[str]:
    """What a route handler, controller or router serves, as "METHODS /path" lines."""
    path = prefix.rstrip("/") + "/" + str(getattr(handler, "path", "") or "").strip("/")
    inner = getattr(handler, "route_handlers", None)
    if inner:  # a Router or Controller: its handlers under its path
        return [name for each in inner for name in route_names(each, path)]
    paths = sorted(getattr(handler, "paths", None) or [""])
    methods = " ".join(sorted(getattr(handler, "http_methods", None) or [])) or "*"
    return [f"{methods} {(path.rstrip('/') + '/' + p.strip('/')).rstrip('/') or '/'}"
            for p in paths]


def plugin_routes(pm: PluginManager, runtime: Any) -> list[Any]:
    """The route handlers plugins add to `im serve` (register_routes), each noted as the
    plugin's; a plugin that fails is an error naming it."""
    handlers: list[Any] = []

    def kwargs(plugin: str) -> dict[str, Any]:
        def register(handler: Any) -> None:
            handlers.append(handler)
            for name in route_names(handler):
                pm.contributed(plugin, "routes", name)
        return {"register": register, "runtime": runtime}

    failures = call_each(pm, "register_routes", kwargs)
    if failures:
        plugin, error = failures[0]
        from im.errors import ImError

        raise ImError(f"plugin {plugin} could not add its routes:"
                      f" {type(error).__name__}: {error}")
    return handlers


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


def call_each(pm: PluginManager, hook: str, kwargs: Callable[[str], dict[str, Any]], *,
              after: Callable[[str], None] | None = None) -> list[tuple[str, Exception]]:
    """Call a hook plugin by plugin, in pluggy's order, through pluggy (so IM_TRACE_PLUGINS
    shows the calls). `kwargs(plugin_name)` gives each call's arguments, so what a plugin
    registers can be attributed to it. One plugin's exception does not stop the others: the
    failures are returned as (plugin name, exception). `after(plugin_name)` is called after
    each plugin's call, whether it failed or not."""
    plugins = [impl.plugin for impl in getattr(pm.hook, hook).get_hookimpls()]
    failures = []
    for plugin in reversed(plugins):
        name = pm.get_name(plugin) or repr(plugin)
        caller = pm.subset_hook_caller(hook, [p for p in plugins if p is not plugin])
        try:
            caller(**kwargs(name))
        except Exception as error:
            failures.append((name, error))
        if after is not None:
            after(name)
    return failures
