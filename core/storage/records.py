"""What the queues hold, as every store returns it: outbox and inbox rows and their states.

The states are StrEnums whose values are the words stored, so a row written before they were
enums reads the same, and code comparing a row's status with "failed" keeps working.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec


class OutboxStatus(enum.StrEnum):
    """An outbound change: pending -> delivering (claimed, with a lease) -> done | failed."""

    PENDING = "pending"
    DELIVERING = "delivering"
    DONE = "done"
    FAILED = "failed"  # set aside after its last attempt; `--retry-failed` queues it again


class InboxStatus(enum.StrEnum):
    """A received event: pending -> processing (claimed, with a lease) -> done | quarantined."""

    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    QUARANTINED = "quarantined"  # could not be applied; `im connector replay` tries again


class OutboxRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    connector: str
    incident_id: str
    service: str
    action: str
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    # while a worker delivers the row (status `delivering`): when its claim runs out
    lease_until: datetime | None = None
    # the system the change came from: "im", or the connector it came through (None: a row
    # queued before im kept it)
    origin_system: str | None = None


class InboxRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    connector: str
    delivery_id: str
    event_type: str
    body: bytes
    received_at: datetime
    status: InboxStatus
    attempts: int
    error: str | None


class TableSize(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    rows: int
    bytes: int  # its pages and its indexes' pages


class DatabaseSize(msgspec.Struct, frozen=True, kw_only=True):
    location: str  # a file's path, or a server's address
    bytes: int  # on disk, the write-ahead log included
    log_bytes: int  # of which the write-ahead log (SQLite's WAL)
    tables: list[TableSize]
