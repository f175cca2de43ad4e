"""im's storage: the only package that speaks SQL.

- `Store` (store.py): the store as the rest of im uses it: `transaction()` yields a unit of
  work whose repositories share that transaction, `read()` gives repositories for reading,
  and shortcuts run one repository call each.
- interfaces.py: the repositories, one per aggregate, and the unit of work, as Protocols: what
  an implementation provides.
- records.py: outbox and inbox rows and their states.
- sqlite/: the SQLite implementation (`SqliteStore`), im's embedded default.

The names load on first use (PEP 562): `from im.storage import Store` loads neither the
Protocols nor a repository that the command does not use.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing for it

# Every public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    "Store": "im.storage.store",
    **dict.fromkeys(("InboxRow", "InboxStatus", "OutboxRow", "OutboxStatus"),
                    "im.storage.records"),
    **dict.fromkeys(("BreachRepository", "CallRepository", "ConnectorRepository",
                     "CursorRepository", "InboxRepository", "IncidentRepository",
                     "LinkRepository", "LogRepository", "MetaRepository", "OutboxRepository",
                     "Repositories", "TimelineRepository", "TokenRepository", "UnitOfWork"),
                    "im.storage.interfaces"),
    **dict.fromkeys(("APPLICATION_ID", "SqliteStore"), "im.storage.sqlite.database"),
}

__all__ = [
    "APPLICATION_ID", "BreachRepository", "CallRepository", "ConnectorRepository",
    "CursorRepository", "InboxRepository", "InboxRow", "InboxStatus", "IncidentRepository",
    "LinkRepository", "LogRepository", "MetaRepository", "OutboxRepository", "OutboxRow",
    "OutboxStatus", "Repositories", "SqliteStore", "Store", "TimelineRepository",
    "TokenRepository", "UnitOfWork",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'im.storage' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # what type checkers and editors see: the plain imports
    from im.storage.interfaces import (
        BreachRepository,
        CallRepository,
        ConnectorRepository,
        CursorRepository,
        InboxRepository,
        IncidentRepository,
        LinkRepository,
        LogRepository,
        MetaRepository,
        OutboxRepository,
        Repositories,
        TimelineRepository,
        TokenRepository,
        UnitOfWork,
    )
    from im.storage.records import InboxRow, InboxStatus, OutboxRow, OutboxStatus
    from im.storage.sqlite.database import APPLICATION_ID, SqliteStore
    from im.storage.store import Store
