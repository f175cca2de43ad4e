"""The Runtime: settings, plugin manager, store and connectors, built once per process.

The CLI and `im serve` each build one and pass it down; nothing in the core is global, so tests
build a fresh Runtime on a temporary home for every test.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from im.clock import utcnow
from im.errors import ImError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from im.connectors import Connector
    from im.plugins import PluginManager
    from im.storage import Store
    from im.workflows import WorkflowAction
    from im.storage.postgres import PostgresStore

log = logging.getLogger("im")


def default_home() -> Path:
    """`IM_HOME`, or the user's data directory (e.g. ~/.local/share/im)."""
    if os.environ.get("IM_HOME"):
        return Path(os.environ["IM_HOME"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("im", appauthor=False))


def _login_name() -> str:
    import getpass

    return getpass.getuser()


def debug_variable(type_name: str) -> str:
    """The environment variable that turns a connector type's debug switches on: its name in
    capitals, with any character a shell variable cannot have as `_` (`acme-ops` is
    `ACME_OPS_DEBUG`)."""
    return re.sub(r"[^A-Z0-9_]", "_", type_name.upper()) + "_DEBUG"


def url_scheme(url: str) -> str:
    """What a database URL that is not PostgreSQL's says it is, never the rest of it (which
    may hold a password)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,30}", scheme):
        return repr(scheme)
    return "a URL without postgresql://"


def open_postgres(url: str) -> PostgresStore:
    """The PostgreSQL store at `url`; a clear error where its driver is not installed."""
    try:
        from im.storage.postgres import PostgresStore
    except ImportError:
        raise InvalidInputError("a postgresql:// database needs im's postgres extra (psycopg 3"
                                " and its pool): pip install './[postgres]' in im's clone"
                                ) from None
    return PostgresStore(url)


class Runtime:
    def __init__(self, home: Path | None = None, *, pm: PluginManager | None = None,
                 clock: Callable[[], datetime] = utcnow, user: str | None = None) -> None:
        self.home = home if home is not None else default_home()
        self._pm = pm
        self.clock = clock
        self._user = user

    # The plugin manager, the store and the connector API are imported on first use, so that
    # building a Runtime (as every `im` command does, `im --help` included) costs nothing.
    @cached_property
    def pm(self) -> PluginManager:
        if self._pm is not None:
            return self._pm
        from im.plugins import get_plugin_manager

        return get_plugin_manager()

    @property
    def database_url(self) -> str | None:
        """The PostgreSQL database im keeps its data in: IM_DATABASE_URL or the settings'
        `database_url`; None for the SQLite file in the home folder (the default)."""
        # read afresh, not kept: opening the store must not fix the settings before a caller
        # has written them
        value = os.environ.get("IM_DATABASE_URL") or self._read_settings().get("database_url")
        if not value:
            return None
        value = str(value)
        if not value.startswith(("postgresql://", "postgres://")):
            where = ("IM_DATABASE_URL" if os.environ.get("IM_DATABASE_URL")
                     else "settings database_url")
            raise InvalidInputError(f"{where}: im keeps its data in SQLite (leave it unset)"
                                    " or PostgreSQL (postgresql://USER@HOST/DATABASE); not"
                                    f" {url_scheme(value)}")
        return value

    @cached_property
    def store(self) -> Store:
        url = self.database_url
        self.make_home()  # the settings, and what a connector keeps there, whatever the store
        if url is not None:
            return open_postgres(url)
        from im.storage.sqlite import SqliteStore

        return SqliteStore(self.home / "im.db")

    def make_home(self) -> None:
        """Create the home folder (readable by its owner only) if it does not exist."""
        try:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:
            raise InvalidInputError(f"im's data folder (IM_HOME) {self.home} exists and is"
                                    " not a folder") from None
        except OSError as error:
            raise InvalidInputError(f"cannot use {self.home} as im's data folder (IM_HOME):"
                                    f" {error.strerror or error}") from None

    @cached_property
    def settings(self) -> dict[str, Any]:
        """`$IM_HOME/settings.json`, such as `{"user": ..., "connectors": {"TYPE": {...}}}`."""
        return self._read_settings()

    def _read_settings(self) -> dict[str, Any]:
        path = self.home / "settings.json"
        if not path.exists():
            return {}
        import json

        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise InvalidInputError(f"cannot read {path}: {error}") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"{path} must hold a JSON object")
        return data

    @property
    def user(self) -> str:
        """Who is acting: IM_USER, the settings file's `user`, or the login name."""
        if self._user:
            return self._user
        return os.environ.get("IM_USER") or self.settings.get("user") or _login_name()

    @property
    def public_url(self) -> str | None:
        """Where outside systems reach `im serve`: IM_PUBLIC_URL or the settings' public_url."""
        value = os.environ.get("IM_PUBLIC_URL") or self.settings.get("public_url")
        if not value:
            return None
        from im.net import is_http_url

        if not is_http_url(str(value)):
            where = "IM_PUBLIC_URL" if os.environ.get("IM_PUBLIC_URL") else "settings public_url"
            raise InvalidInputError(f"{where}: {value!r} is not an http(s):// URL")
        return str(value).rstrip("/")

    def public_url_for(self, connector: str) -> str | None:
        """The public URL for a connector's webhooks: IM_PUBLIC_URL / settings, else the one
        given to `im connector webhook NAME --enable --url`, else the last one given to that
        command for any connector (one `im serve` takes every connector's webhooks)."""
        return (self.public_url or self.store.get_meta(f"public_url:{connector}")
                or self.store.get_meta("public_url"))

    @cached_property
    def installation_id(self) -> str:
        """A random id of this im home, made once. What im makes in a remote system that it
        later finds again by name (a webhook subscription, say) carries it, so that another
        installation's objects on the same account are never taken for this one's."""
        import secrets

        with self.store.transaction():
            value = self.store.get_meta("installation_id")
            if value is None:
                value = secrets.token_hex(4)
                self.store.set_meta("installation_id", value)
        return value

    def remember_public_url(self, connector: str, url: str) -> None:
        """Keep the public URL given for a connector's webhooks (`--url`)."""
        url = url.rstrip("/")
        self.store.set_meta(f"public_url:{connector}", url)
        self.store.set_meta("public_url", url)

    @cached_property
    def connector_types(self) -> dict[str, type[Connector]]:
        found: dict[str, type[Connector]] = {}
        owners: dict[str, str] = {}

        def register(connector_class: type[Connector], *, plugin: str = "?") -> None:
            type_name = getattr(connector_class, "type", None)
            if not isinstance(type_name, str) or not type_name:
                raise ImError(f"connector class {connector_class!r} has no `type` name")
            if type_name in found and found[type_name] is not connector_class:
                raise ImError(f"connector type {type_name!r} is registered by two plugins:"
                              f" {owners[type_name]} and {plugin}")
            found[type_name] = connector_class
            owners[type_name] = plugin
            self.pm.contributed(plugin, "connector_types", type_name)

        from im.plugins import call_each

        failures = call_each(self.pm, "register_connectors", lambda plugin: {
            "register": lambda cls: register(cls, plugin=plugin)})
        if failures:  # a broken connector plugin is an error, not a missing type
            plugin, error = failures[0]
            if isinstance(error, ImError):
                raise error
            raise ImError(f"plugin {plugin} could not register its connector types:"
                          f" {type(error).__name__}: {error}") from error
        return found

    @cached_property
    def workflow_actions(self) -> dict[str, type[WorkflowAction]]:
        """The actions plugins provide to workflow rules, by name."""
        found: dict[str, type[WorkflowAction]] = {}
        owners: dict[str, str] = {}

        def register(action_class: type[WorkflowAction], *, plugin: str = "?") -> None:
            name = getattr(action_class, "name", None)
            if not isinstance(name, str) or not name:
                raise ImError(f"workflow action class {action_class!r} has no `name`")
            if name in found and found[name] is not action_class:
                raise ImError(f"workflow action {name!r} is registered by two plugins:"
                              f" {owners[name]} and {plugin}")
            found[name] = action_class
            owners[name] = plugin
            self.pm.contributed(plugin, "workflow_actions", name)

        from im.plugins import call_each

        failures = call_each(self.pm, "register_workflow_actions", lambda plugin: {
            "register": lambda cls: register(cls, plugin=plugin)})
        for plugin, error in failures:  # the others' actions still run
            log.warning("plugin %s could not register its workflow actions: %s: %s", plugin,
                        type(error).__name__, error)
        return found

    def connector_type(self, type_name: str) -> type[Connector]:
        try:
            return self.connector_types[type_name]
        except KeyError:
            known = ", ".join(sorted(self.connector_types)) or "none installed"
            raise NotFoundError(
                f"unknown connector type {type_name!r} (available: {known})"
            ) from None

    def connector(self, name: str) -> Connector:
        """A configured connector, built from its stored settings (env: secrets resolved)."""
        record = self.store.get_connector(name)
        if record is None:
            names = ", ".join(r.name for r in self.store.list_connectors()) or "none configured"
            raise NotFoundError(f"no connector named {name!r} (configured: {names})")
        return self.build_connector(record.name, record.type, record.settings)

    def build_connector(self, name: str, type_name: str, settings: dict[str, Any], *,
                        debug_overrides: bool = True) -> Connector:
        """A connector built from settings not (yet) stored, such as a change to check
        (without the settings file's debug switches, `debug_overrides=False`: it is then not
        read)."""
        from im.connector_config import validate

        cls = self.connector_type(type_name)
        if debug_overrides:
            settings = self._debug_overrides(type_name, settings)
        decoded = validate(cls.Settings, settings, resolve_env=True)
        return cls(name, decoded, self)

    def _debug_overrides(self, type_name: str, settings: dict[str, Any]) -> dict[str, Any]:
        """Debug switches from outside the stored settings: the settings file's
        `connectors.<type>` section and the `<TYPE>_DEBUG=true` environment variable (see
        debug_variable)."""
        overrides = {key: value for key, value in
                     (self.settings.get("connectors", {}).get(type_name) or {}).items()
                     if key in ("debug", "log_requests", "log_responses")}
        if os.environ.get(debug_variable(type_name), "").lower() in ("1", "true", "yes"):
            overrides.update(debug=True, log_requests=True, log_responses=True)
        return {**settings, **overrides} if overrides else settings

    def record_call(self, connector: str, *, method: str, path: str, status: int | None,
                    duration: float, error: str | None = None, rate_limit: int | None = None,
                    rate_remaining: int | None = None) -> None:
        """Note a call a connector made to its remote system (for status, health, metrics)."""
        try:
            self.store.record_call(connector=connector, at=self.clock(), method=method,
                                   path=path, status=status, duration_ms=duration * 1000,
                                   error=error, rate_limit=rate_limit,
                                   rate_remaining=rate_remaining)
        except Exception:  # telemetry never fails the call it describes
            log.exception("could not record a call of %s", connector)

    def first_time(self, key: str, *, seconds: float) -> bool:
        """Whether `key` is seen for the first time: True once, then False for `seconds`
        (by `clock`). For what may arrive more than once (a request replayed, a delivery
        sent again): act only on True. The key is kept in the database, so every process
        and every server of a cluster agrees, and two asking at once are not both told
        True. Name keys after their owner (`chat:team-chat:...`); at most 255 characters
        (hash what is longer). Expired keys are forgotten by `im serve`'s hourly
        housekeeping."""
        if not key or len(key) > 255:
            raise ValueError("a first_time key has 1 to 255 characters; hash a longer one")
        if seconds <= 0:
            raise ValueError("a first_time key is kept for more than 0 seconds")
        from datetime import timedelta

        now = self.clock()
        return self.store.first_time(key, now=now, expires_at=now + timedelta(seconds=seconds))

    def shared_rate_limits(self) -> Any:
        """Where a connector keeps its remote API's rate-limit budget so that every im process
        on the database spends the same one: a `limits` storage for a
        `limits.strategies.FixedWindowRateLimiter` where several servers share a database
        (PostgreSQL), else None (each process keeps its own, in memory)."""
        return self.store.shared_rate_limits()

    def update_connector_settings(self, name: str, changes: dict[str, Any]) -> None:
        """Set settings of a connector by dotted path, validated like every change."""
        from im.connector_config import set_path, validate
        from im.models import ConnectorRecord

        with self.store.transaction():
            record = self.store.get_connector(name)
            if record is None:
                raise NotFoundError(f"no connector named {name!r}")
            settings = record.settings
            for path, value in changes.items():
                settings = set_path(settings, path, value)
            validate(self.connector_type(record.type).Settings, settings)
            self.store.save_connector(ConnectorRecord(
                name=record.name, type=record.type, settings=settings, enabled=record.enabled,
                created_at=record.created_at, updated_at=self.clock()))

    def announce(self, hook: str, **kwargs: Any) -> None:
        """Call a broadcast hook; one failing implementation never stops the others."""
        from im.plugins import call_each

        for plugin, error in call_each(self.pm, hook, lambda _plugin: kwargs):
            log.error("plugin %s failed in %s: %s: %s", plugin, hook, type(error).__name__,
                      error, exc_info=error)
