"""Remote incidents linked to im incidents (table links)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from im.models import Link, incident_number
from im.storage.sqlite.database import incident_id, parse_ts, ts

# A remote incident im believes open: the condition of the partial index links_open.
OPEN_REMOTE = "remote_status IN ('open', 'acknowledged')"
_COLUMNS = ("number, connector, service, remote_id, remote_number, remote_url, remote_status,"
            " updated_at, remote_updated_at")

_QUALIFIED = ", ".join(f"links.{column.strip()}" for column in _COLUMNS.split(","))


def _link(row: Sequence[Any]) -> Link:
    return Link(incident_id=incident_id(row[0]), connector=row[1], service=row[2],
                remote_id=row[3], remote_number=row[4], remote_url=row[5],
                remote_status=row[6], updated_at=parse_ts(row[7]),
                remote_updated_at=parse_ts(row[8]))


class SqliteLinks:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def upsert(self, link: Link, *, initial_status: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO links (number, connector, service, remote_id, remote_number,"
            " remote_url, remote_status, updated_at, remote_updated_at)"
            " VALUES (:number, :connector, :service, :remote_id, :remote_number,"
            " :remote_url, coalesce(:remote_status, :initial_status), :updated_at,"
            " :remote_updated_at)"
            " ON CONFLICT (number, connector, service) DO UPDATE SET"
            " remote_id = excluded.remote_id,"
            " remote_number = coalesce(excluded.remote_number, remote_number),"
            " remote_url = coalesce(excluded.remote_url, remote_url),"
            " remote_status = coalesce(:remote_status, remote_status),"
            " remote_updated_at = coalesce(excluded.remote_updated_at, remote_updated_at),"
            " updated_at = excluded.updated_at",
            {"number": incident_number(link.incident_id),
             "connector": link.connector, "service": link.service,
             "remote_id": link.remote_id, "remote_number": link.remote_number,
             "remote_url": link.remote_url, "remote_status": link.remote_status,
             "initial_status": initial_status,
             "updated_at": ts(link.updated_at or datetime.now(UTC)),
             "remote_updated_at": ts(link.remote_updated_at)
             if link.remote_updated_at else None},
        )

    def replace(self, link: Link) -> None:
        self.conn.execute(
            "UPDATE links SET remote_id = ?, remote_number = ?, remote_url = ?,"
            " remote_status = ?, updated_at = ?, remote_updated_at = ?"
            " WHERE number = ? AND connector = ? AND service = ?",
            (link.remote_id, link.remote_number, link.remote_url, link.remote_status,
             ts(link.updated_at or datetime.now(UTC)),
             ts(link.remote_updated_at) if link.remote_updated_at else None,
             incident_number(link.incident_id), link.connector, link.service))

    def move(self, link: Link, service: str) -> None:
        self.conn.execute(
            "UPDATE links SET service = ? WHERE number = ? AND connector = ? AND service = ?",
            (service, incident_number(link.incident_id), link.connector, link.service))

    def find(self, incident_id: str | None = None, *, connector: str | None = None,
             remote_id: str | None = None) -> list[Link]:
        clauses: list[str] = []
        params: list[Any] = []
        if incident_id is not None:
            clauses.append("number = ?")
            params.append(incident_number(incident_id))
        if connector is not None:
            clauses.append("connector = ?")
            params.append(connector)
        if remote_id is not None:
            clauses.append("remote_id = ?")
            params.append(remote_id)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_link(row) for row in self.conn.execute(
            f"SELECT {_COLUMNS} FROM links {where} ORDER BY number, connector, service", params)]

    def of_incidents(self, incident_ids: Sequence[str]) -> dict[str, list[Link]]:
        found: dict[str, list[Link]] = {}
        for row in self.conn.execute(
                f"SELECT {_COLUMNS} FROM links WHERE number IN (SELECT value FROM json_each(?))"
                " ORDER BY number, connector, service",
                (json.dumps([incident_number(i) for i in incident_ids]),)):
            link = _link(row)
            found.setdefault(link.incident_id, []).append(link)
        return found

    def open_links(self, connector: str, *, declared_since: datetime) -> list[Link]:
        # links_open holds only the open links (its WHERE is this one's, word for word, so
        # the planner can use it); each is joined to its incident by number
        return [_link(row) for row in self.conn.execute(
            f"SELECT {_QUALIFIED}"
            f" FROM links JOIN incidents ON incidents.number = links.number"
            f" WHERE links.connector = :connector AND {OPEN_REMOTE}"
            " AND incidents.created_at >= :since ORDER BY links.number, links.service",
            {"connector": connector, "since": ts(declared_since)})]

    def linked_connectors(self) -> set[str]:
        # kept as links change (migration 0012): not a pass over every link
        return {row[0] for row in self.conn.execute(
            "SELECT connector FROM linked_incidents WHERE n > 0")}

    def incidents_linked(self, connector: str, *, updated_since: datetime | None = None
                         ) -> int:
        if updated_since is None:  # kept as links change (triggers of migration 0012)
            row = self.conn.execute("SELECT n FROM linked_incidents WHERE connector = ?",
                                    (connector,)).fetchone()
            return int(row[0]) if row else 0
        # the links updated since then only, through links_connector_updated
        row = self.conn.execute("SELECT count(DISTINCT number) FROM links WHERE"
                                " connector = ? AND updated_at >= ?",
                                (connector, ts(updated_since))).fetchone()
        return int(row[0])
