"""Workflow rules (table workflows) and the actions they queued (table workflow_runs)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from im.models import incident_number
from im.storage.sqlite.database import incident_id, lease_end, parse_ts, ts
from im.workflows import Conditions, Rule, Run, RunStatus, Step, Trigger

_RULE = "SELECT name, trigger, conditions, steps, enabled, created_at, updated_at FROM workflows"
_RUN = ("id, workflow, step, action, settings, number, trigger, event_id, status, attempts,"
        " next_attempt_at, last_error, created_at")
PENDING, RUNNING = RunStatus.PENDING.value, RunStatus.RUNNING.value
DONE, FAILED = RunStatus.DONE.value, RunStatus.FAILED.value
# a claim's own update: only while that claim holds the run (its attempt), when one is given
_HELD = f" AND (? IS NULL OR (status = '{RUNNING}' AND attempts = ?))"


def _rule(row: Sequence[Any]) -> Rule:
    return Rule(name=row[0], trigger=Trigger(row[1]),
                conditions=msgspec.json.decode(row[2], type=Conditions),
                steps=msgspec.json.decode(row[3], type=list[Step]), enabled=bool(row[4]),
                created_at=parse_ts(row[5]), updated_at=parse_ts(row[6]))


def _run(row: Sequence[Any]) -> Run:
    return Run(id=row[0], workflow=row[1], step=row[2], action=row[3],
               settings=json.loads(row[4]), incident_id=incident_id(row[5]),
               trigger=Trigger(row[6]), event_id=row[7], status=RunStatus(row[8]),
               attempts=row[9], next_attempt_at=parse_ts(row[10]),  # type: ignore[arg-type]
               last_error=row[11], created_at=parse_ts(row[12]))  # type: ignore[arg-type]


class SqliteWorkflows:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def save(self, rule: Rule) -> None:
        self.conn.execute(
            "INSERT INTO workflows (name, trigger, conditions, steps, enabled, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " trigger = excluded.trigger, conditions = excluded.conditions,"
            " steps = excluded.steps, enabled = excluded.enabled,"
            " updated_at = excluded.updated_at",
            (rule.name, rule.trigger.value, msgspec.json.encode(rule.conditions).decode(),
             msgspec.json.encode(rule.steps).decode(), int(rule.enabled),
             ts(rule.created_at), ts(rule.updated_at or rule.created_at)))  # type: ignore[arg-type]

    def get(self, name: str) -> Rule | None:
        row = self.conn.execute(f"{_RULE} WHERE name = ?", (name,)).fetchone()
        return _rule(row) if row else None

    def all(self) -> list[Rule]:
        return [_rule(row) for row in self.conn.execute(f"{_RULE} ORDER BY name")]

    def delete(self, name: str) -> bool:
        return self.conn.execute("DELETE FROM workflows WHERE name = ?",
                                 (name,)).rowcount == 1


class SqliteWorkflowRuns:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(self, *, workflow: str, step: int, action: str, settings: dict[str, Any],
            incident_id: str, trigger: str, event_id: int, at: datetime) -> int:
        return self.conn.execute(
            "INSERT INTO workflow_runs (workflow, step, action, settings, number, trigger,"
            " event_id, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (workflow, step, event_id) DO NOTHING",
            (workflow, step, action, json.dumps(settings), incident_number(incident_id),
             str(trigger), event_id, ts(at), ts(at))).rowcount

    def claim_next(self, *, now: datetime, lease_seconds: float,
                   incident_id: str | None = None, exclude: Sequence[int] = (),
                   deliveries_first_since: datetime | None = None) -> Run | None:
        clauses = [f"((status = '{PENDING}' AND next_attempt_at <= :now)"
                   f" OR (status = '{RUNNING}' AND lease_until < :now))"]
        params: dict[str, Any] = {"now": ts(now), "lease": lease_end(now, lease_seconds)}
        if deliveries_first_since is not None:
            # the outbox's open rows only, through its index on status
            clauses.append("(created_at < :since OR NOT EXISTS (SELECT 1 FROM outbox o"
                           " WHERE (o.status = 'delivering' OR (o.status = 'pending' AND o.attempts = 0))"
                           " AND o.number = workflow_runs.number"
                           " AND o.created_at <= workflow_runs.created_at))")
            params["since"] = ts(deliveries_first_since)
        if incident_id is not None:
            clauses.append("number = :number")
            params["number"] = incident_number(incident_id)
        if exclude:
            clauses.append(f"id NOT IN ({','.join(str(int(i)) for i in exclude)})")
        row = self.conn.execute(f"SELECT {_RUN} FROM workflow_runs WHERE"
                                f" {' AND '.join(clauses)} ORDER BY next_attempt_at, id"
                                " LIMIT 1", params).fetchone()
        if row is None:
            return None
        self.conn.execute(f"UPDATE workflow_runs SET status = '{RUNNING}',"
                          " lease_until = :lease, attempts = attempts + 1 WHERE id = :id",
                          {**params, "id": row[0]})
        run = _run(row)
        return msgspec.structs.replace(run, status=RunStatus.RUNNING, attempts=run.attempts + 1)

    def finish(self, run_id: int, *, at: datetime, attempt: int | None = None) -> bool:
        return self.conn.execute(f"UPDATE workflow_runs SET status = '{DONE}', done_at = ?,"
                                 " lease_until = NULL, last_error = NULL WHERE id = ?" + _HELD,
                                 (ts(at), run_id, attempt, attempt)).rowcount == 1

    def retry(self, run_id: int, *, error: str, next_attempt_at: datetime,
              attempt: int | None = None) -> bool:
        return self.conn.execute(f"UPDATE workflow_runs SET status = '{PENDING}',"
                                 " lease_until = NULL, last_error = ?, next_attempt_at = ?"
                                 " WHERE id = ?" + _HELD,
                                 (error, ts(next_attempt_at), run_id, attempt,
                                  attempt)).rowcount == 1

    def fail(self, run_id: int, *, error: str, at: datetime,
             attempt: int | None = None) -> bool:
        return self.conn.execute(f"UPDATE workflow_runs SET status = '{FAILED}',"
                                 " lease_until = NULL, last_error = ?, done_at = ?"
                                 " WHERE id = ?" + _HELD,
                                 (error, ts(at), run_id, attempt, attempt)).rowcount == 1

    def find(self, *, incident_id: str | None = None,
             statuses: Sequence[str] = ()) -> list[Run]:
        clauses: list[str] = []
        params: list[Any] = []
        if incident_id is not None:
            clauses.append("number = ?")
            params.append(incident_number(incident_id))
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params += [str(s) for s in statuses]
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return [_run(row) for row in self.conn.execute(
            f"SELECT {_RUN} FROM workflow_runs {where} ORDER BY id", params)]
