"""The SQLite store, im's embedded default: one file, `$IM_HOME/im.db`."""

from im.storage.sqlite.database import APPLICATION_ID, SqliteStore

__all__ = ["APPLICATION_ID", "SqliteStore"]
