"""Structured logs of the CLI and `im serve` (table logs, `im logs`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from im.storage.sqlite.database import parse_ts, ts


class SqliteLogs:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add_many(self, entries: Sequence[dict[str, Any]]) -> None:
        self.conn.executemany(
            "INSERT INTO logs (at, level, levelno, component, connector, message, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(ts(e["at"]), e["level"], e["levelno"], e["component"], e["connector"],
              e["message"], json.dumps(e["data"], default=str)) for e in entries])

    def find(self, *, since: datetime | None = None, min_level: int = 0,
             component: str | None = None, text: str | None = None, after_id: int = 0,
             limit: int = 1000) -> list[dict[str, Any]]:
        clauses = ["id > :after", "levelno >= :level"]
        params: dict[str, Any] = {"after": after_id, "level": min_level, "limit": limit}
        if since is not None:
            clauses.append("at >= :since")
            params["since"] = ts(since)
        if component:
            clauses.append("component = :component")
            params["component"] = component
        if text:
            # the text is matched as written: LIKE's own wildcards (% and _) are escaped
            clauses.append("(component LIKE :text ESCAPE '\\' OR coalesce(connector, '')"
                           " LIKE :text ESCAPE '\\' OR message LIKE :text ESCAPE '\\'"
                           " OR data LIKE :text ESCAPE '\\')")
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["text"] = f"%{escaped}%"
        rows = self.conn.execute(
            "SELECT id, at, level, component, connector, message, data FROM (SELECT * FROM logs"
            f" WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT :limit) ORDER BY id",
            params).fetchall()
        return [{"id": r[0], "at": parse_ts(r[1]), "level": r[2], "component": r[3],
                 "connector": r[4], "message": r[5], "data": json.loads(r[6])} for r in rows]

    def purge(self, *, before: datetime) -> int:
        return self.conn.execute("DELETE FROM logs WHERE at < ?", (ts(before),)).rowcount
