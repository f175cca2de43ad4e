"""On-call look-ups: who is on call for a service now, who is next, and the escalation, asked
of the connectors whose type keeps on-call schedules.

Which connectors are asked, in which order, within which time, and what happens when one
fails are decided here, so `im oncall` and any other front end (a chat command, an HTTP
route) answer the same question the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from im.app.busy import Busy, unseen
from im.connectors import Connector, OncallRequest, OncallResult
from im.errors import ConnectorError, NotFoundError
from im.incidents import parse_service

if TYPE_CHECKING:
    from im.runtime import Runtime

__all__ = ["OnCall", "lookup"]


class OnCall(msgspec.Struct, frozen=True, kw_only=True):
    """The answer: the connector that gave it, and what it said."""

    connector: str
    result: OncallResult


def lookup(runtime: Runtime, service: str, *, connector: str | None = None,
           deadline: float | None = None, busy: Busy = unseen) -> OnCall:
    """Who is on call for `service` (one im service name, checked as every service name is).

    Asks `connector` only, or else every enabled connector in the order they are listed,
    skipping those whose type keeps no on-call schedules; the first answer is the answer.
    `deadline` (time.monotonic()) is one for the whole look-up, however many connectors it
    asks; `busy` is shown around each question. A connector that fails is passed over for the
    next; when none answers, a ConnectorError says what each said ("NAME: error; ..."), and a
    NotFoundError says that no connector keeps schedules."""
    name = parse_service(service)
    names = [connector] if connector else [record.name for record in
                                           runtime.store.list_connectors() if record.enabled]
    errors = []
    for candidate in names:
        instance = runtime.connector(candidate)
        if type(instance).oncall is Connector.oncall:
            continue  # this connector type has no on-call schedules
        try:
            with busy(f"Asking {candidate}"):
                result = instance.oncall(OncallRequest(service=name, at=runtime.clock(),
                                                       deadline=deadline))
        except ConnectorError as error:
            errors.append(f"{candidate}: {error}")
            continue
        return OnCall(connector=candidate, result=result)
    if errors:
        raise ConnectorError("; ".join(errors))
    raise NotFoundError("no connector with on-call schedules is configured"
                        " (`im connector list`)")
