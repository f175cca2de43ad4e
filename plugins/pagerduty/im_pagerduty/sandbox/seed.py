"""Starting data: `demo` is the account the product spec shows, `none` an empty account.

The demo schedule is placed relative to the moment of seeding, so that whenever the sandbox
starts, John Doe is on call until 09:00 UTC the next day and Jane Smith takes over then.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Literal

from im_pagerduty.sandbox.model import (
    EscalationPolicy,
    EscalationRule,
    Layer,
    Override,
    Priority,
    Schedule,
    Service,
    Target,
    User,
)
from im_pagerduty.sandbox.store import Store

SeedName = Literal["demo", "none"]
SEEDS: tuple[SeedName, ...] = ("demo", "none")

OPS = User(id="PUOPS01", name="Operations", email="ops@company.com", role="admin")
JOHN = User(id="PUJOHN1", name="John Doe", email="john.doe@company.com")
JANE = User(id="PUJANE1", name="Jane Smith", email="jane.smith@company.com")
LEAD = User(id="PULEAD1", name="Team Lead", email="team-lead@company.com")

PRIMARY_SCHEDULE_ID = "PSPRIM1"


def next_handoff(now: datetime) -> datetime:
    """09:00 UTC on the calendar day after `now`."""
    return datetime.combine((now + timedelta(days=1)).date(), time(9), tzinfo=UTC)


def seed(store: Store, name: SeedName, now: datetime) -> None:
    store.put_user(OPS)
    if name == "none":
        return
    for user in (JOHN, JANE, LEAD):
        store.put_user(user)

    handoff = next_handoff(now)
    week = timedelta(days=7)
    store.put_schedule(
        Schedule(
            id=PRIMARY_SCHEDULE_ID,
            name="Primary On-Call",
            description="Weekly rotation, hand-off at 09:00 UTC",
            layers=(
                # John's turn is the week ending at the hand-off, Jane's the week after.
                Layer(
                    id="PLWEEK1",
                    name="Weekly rotation",
                    start=handoff - 2 * week,
                    rotation_virtual_start=handoff - week,
                    turn_length_seconds=int(week.total_seconds()),
                    user_ids=(JOHN.id, JANE.id),
                ),
                # A higher layer for one day: the team lead covers a holiday a week out.
                Layer(
                    id="PLHOLI1",
                    name="Holiday cover",
                    start=handoff + week,
                    end=handoff + week + timedelta(days=1),
                    rotation_virtual_start=handoff + week,
                    turn_length_seconds=86400,
                    user_ids=(LEAD.id,),
                ),
            ),
            # John covers six hours of Jane's second day.
            overrides=(
                Override(
                    id="POVR001",
                    start=handoff + timedelta(days=1, hours=3),
                    end=handoff + timedelta(days=1, hours=9),
                    user_id=JOHN.id,
                ),
            ),
        )
    )

    def two_level_policy(policy_id: str, name: str, rule_prefix: str) -> EscalationPolicy:
        return EscalationPolicy(
            id=policy_id,
            name=name,
            num_loops=0,
            rules=(
                EscalationRule(
                    id=f"{rule_prefix}1",
                    delay_minutes=15,
                    targets=(Target(kind="schedule", id=PRIMARY_SCHEDULE_ID),),
                ),
                EscalationRule(
                    id=f"{rule_prefix}2",
                    delay_minutes=30,
                    targets=(Target(kind="user", id=LEAD.id),),
                ),
            ),
        )

    store.put_escalation_policy(two_level_policy("PXXXXXX", "Default", "PRDEF0"))
    store.put_escalation_policy(two_level_policy("PAPI_ESCALATION", "API Escalation", "PRAPI0"))

    created = now - timedelta(days=365)
    for service_id, service_name, policy_id in (
        ("PXXXXXX", "Default Service", "PXXXXXX"),
        ("PAPI001", "API Service", "PAPI_ESCALATION"),
        ("PDAT001", "Database Service", "PXXXXXX"),
        ("PWEB001", "Web Service", "PXXXXXX"),
        ("PPAY001", "Payments Service", "PXXXXXX"),
        ("PGEN001", "General Service", "PXXXXXX"),
    ):
        store.put_service(
            Service(
                id=service_id,
                name=service_name,
                escalation_policy_id=policy_id,
                created_at=created,
            )
        )

    for order in range(1, 6):
        store.put_priority(
            Priority(
                id=f"PPRIO0{order}", name=f"P{order}", description=f"Priority {order}", order=order
            )
        )
