"""On-call answers are computed from schedule layers, overrides and escalation rules."""

from datetime import UTC, datetime, timedelta

from im_pagerduty.sandbox.model import Layer, Override, Schedule
from im_pagerduty.sandbox.oncall import render_schedule, schedule_user_at

from .sandbox_calls import new_incident

T0 = datetime(2030, 1, 7, 0, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def handoff() -> datetime:
    """09:00 UTC the day after today: where the demo seed puts John's hand-over to Jane."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, tzinfo=UTC)


def oncalls(api, **params) -> list[tuple]:
    response = api.get("/oncalls", params=params)
    assert response.status_code == 200, response.text
    return [
        (
            o["escalation_policy"]["id"],
            o["escalation_level"],
            o["user"]["summary"],
            o["schedule"]["id"] if o["schedule"] else None,
            o["start"],
            o["end"],
        )
        for o in response.json()["oncalls"]
    ]


def test_now_john_until_nine_tomorrow_then_jane_and_the_lead_after_15_minutes(api):
    h = handoff()
    assert oncalls(api, **{"escalation_policy_ids[]": "PAPI_ESCALATION"}) == [
        ("PAPI_ESCALATION", 1, "John Doe", "PSPRIM1", iso(h - timedelta(days=7)), iso(h)),
        ("PAPI_ESCALATION", 2, "Team Lead", None, None, None),
    ]
    upcoming = oncalls(
        api,
        earliest="true",
        until=iso(h + timedelta(hours=1)),
        **{"escalation_policy_ids[]": "PAPI_ESCALATION"},
    )
    assert [(level, user, start) for _, level, user, _, start, _ in upcoming] == [
        (1, "John Doe", iso(h - timedelta(days=7))),
        (1, "Jane Smith", iso(h)),
        (2, "Team Lead", None),
    ]


def test_the_override_and_the_higher_layer_take_precedence(api):
    h = handoff()
    override = h + timedelta(days=1, hours=3)
    during = oncalls(
        api,
        since=iso(override + timedelta(hours=1)),
        until=iso(override + timedelta(hours=1)),
        **{"schedule_ids[]": "PSPRIM1", "escalation_policy_ids[]": "PXXXXXX"},
    )
    assert during == [
        ("PXXXXXX", 1, "John Doe", "PSPRIM1", iso(override), iso(override + timedelta(hours=6)))
    ]
    holiday = h + timedelta(days=7, hours=2)
    assert [
        o[2]
        for o in oncalls(
            api,
            since=iso(holiday),
            until=iso(holiday),
            **{"schedule_ids[]": "PSPRIM1", "escalation_policy_ids[]": "PXXXXXX"},
        )
    ] == ["Team Lead"]


def test_a_new_override_changes_who_is_on_call_and_who_gets_incidents(api):
    now = datetime.now(UTC).replace(microsecond=0)
    created = api.post(
        "/schedules/PSPRIM1/overrides",
        json={
            "overrides": [
                {
                    "start": iso(now - timedelta(minutes=1)),
                    "end": iso(now + timedelta(hours=2)),
                    "user": {"id": "PUJANE1", "type": "user_reference"},
                }
            ]
        },
    )
    assert created.status_code == 201
    assert created.json()[0]["override"]["user"]["id"] == "PUJANE1"
    current = oncalls(
        api, **{"escalation_policy_ids[]": "PAPI_ESCALATION", "user_ids[]": "PUJANE1"}
    )
    assert current == [
        (
            "PAPI_ESCALATION",
            1,
            "Jane Smith",
            "PSPRIM1",
            iso(now - timedelta(minutes=1)),
            iso(now + timedelta(hours=2)),
        )
    ]
    incident = new_incident(api, "PAPI001")
    assert [a["assignee"]["id"] for a in incident["assignments"]] == ["PUJANE1"]
    listed = api.get(
        "/schedules/PSPRIM1/overrides",
        params={"since": iso(now), "until": iso(now + timedelta(days=3))},
    )
    assert len(listed.json()["overrides"]) == 2


def test_the_clock_moves_the_answer(pd, api):
    h = handoff()
    pd.advance_clock((h - datetime.now(UTC)).total_seconds() + 60)
    assert oncalls(api, **{"escalation_policy_ids[]": "PAPI_ESCALATION"})[0][2:] == (
        "Jane Smith",
        "PSPRIM1",
        iso(h),
        iso(h + timedelta(days=1, hours=3)),
    )


def test_include_gives_full_users_and_policies(api):
    response = api.get(
        "/oncalls",
        params={
            "include[]": ["users", "escalation_policies", "schedules"],
            "escalation_policy_ids[]": "PAPI_ESCALATION",
        },
    )
    first = response.json()["oncalls"][0]
    assert first["user"]["type"] == "user" and first["user"]["email"] == "john.doe@company.com"
    assert first["escalation_policy"]["type"] == "escalation_policy"
    assert first["schedule"]["type"] == "schedule"


def test_schedule_renders_its_final_schedule(api):
    h = handoff()
    since, until = h - timedelta(hours=1), h + timedelta(days=2)
    schedule = api.get(
        "/schedules/PSPRIM1", params={"since": iso(since), "until": iso(until)}
    ).json()["schedule"]
    final = [
        (e["user"]["summary"], e["start"], e["end"])
        for e in schedule["final_schedule"]["rendered_schedule_entries"]
    ]
    override = h + timedelta(days=1, hours=3)
    assert final == [
        ("John Doe", iso(since), iso(h)),
        ("Jane Smith", iso(h), iso(override)),
        ("John Doe", iso(override), iso(override + timedelta(hours=6))),
        ("Jane Smith", iso(override + timedelta(hours=6)), iso(until)),
    ]
    assert schedule["final_schedule"]["rendered_coverage_percentage"] == 100.0
    assert [layer["name"] for layer in schedule["schedule_layers"]] == [
        "Weekly rotation",
        "Holiday cover",
    ]
    assert len(schedule["overrides_subschedule"]["rendered_schedule_entries"]) == 1
    assert api.get("/schedules/PNOPE00").status_code == 404


def test_rotation_arithmetic_layers_and_overrides():
    layer = Layer(
        id="L1",
        name="8h",
        start=T0,
        rotation_virtual_start=T0 - timedelta(hours=4),
        turn_length_seconds=8 * 3600,
        user_ids=("a", "b", "c"),
    )
    top = Layer(
        id="L2",
        name="top",
        start=T0 + timedelta(hours=30),
        end=T0 + timedelta(hours=32),
        rotation_virtual_start=T0,
        turn_length_seconds=3600,
        user_ids=("x", "x"),
    )
    schedule = Schedule(
        id="S",
        name="S",
        layers=(layer, top),
        overrides=(
            Override(
                id="O", start=T0 + timedelta(hours=5), end=T0 + timedelta(hours=6), user_id="z"
            ),
        ),
    )
    assert schedule_user_at(schedule, T0 - timedelta(seconds=1)) is None  # before the layer starts
    # vstart is 4h before T0, so T0 sits in a's turn, which ends at T0+4h.
    shifts = render_schedule(schedule, T0, T0 + timedelta(hours=36))
    assert [
        (s.user_id, (s.start - T0) / timedelta(hours=1), (s.end - T0) / timedelta(hours=1))
        for s in shifts
    ] == [
        ("a", 0, 4),
        ("b", 4, 5),
        ("z", 5, 6),
        ("b", 6, 12),
        ("c", 12, 20),
        ("a", 20, 28),
        ("b", 28, 30),
        ("x", 30, 32),
        ("b", 32, 36),
    ]
