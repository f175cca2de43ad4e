"""Read-only queries for reports: the incidents declared in a period with their services,
timelines and links, in four queries whatever the number of incidents."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from im.models import Incident, Link, TimelineEvent

if TYPE_CHECKING:
    from im.storage import Store


class PeriodData(msgspec.Struct, frozen=True, kw_only=True):
    incidents: list[Incident]
    timelines: dict[str, list[TimelineEvent]]
    links: dict[str, list[Link]]


def incidents_declared(store: Store, start: datetime, end: datetime) -> PeriodData:
    """Incidents declared in [start, end), oldest first, with their timelines and links."""
    reads = store.read()
    incidents = reads.incidents.declared_between(start, end)
    timelines = reads.timeline.of_incidents_declared_between(start, end)
    links = reads.links.of_incidents_declared_between(start, end)
    return PeriodData(incidents=incidents,
                      timelines={incident.id: timelines.get(incident.id, [])
                                 for incident in incidents},
                      links={incident.id: links.get(incident.id, []) for incident in incidents})
