"""Reliability under injected faults: many incidents declared, acknowledged, noted and resolved
from im (CLI and core API) and from PagerDuty (a responder on the sandbox's REST API), while the
sandbox answers with 5xx bursts, random 5xx, 429 storms (with and without `ratelimit-*`
headers), dropped connections, timeouts (changes made but answered too late), added latency and
duplicated webhook deliveries, and `im serve` receives its webhooks. Once the faults are cleared and the queues drained, both systems must
agree: one PagerDuty incident per im incident and service, every note once on each side, the
same states, and nothing echoed back.

`IM_RELIABILITY_INCIDENTS` sets how many incidents the soak drives (default 200). Its database
lives on tmpfs (/dev/shm) where there is one: the soak checks sync, not the disk, and each
commit's fsync costs about 2 ms on a small VM, a third of the soak's time.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from im import incidents
from im.models import Action
from im.sync import deliver_outbox
from im.testing import serve
from im_pagerduty import client as pd_client
from im_pagerduty.connector import PagerDutyConnector

from .connector_kit import im, runtime_with_connector, wait_for

N_INCIDENTS = int(os.environ.get("IM_RELIABILITY_INCIDENTS", "200"))
CONNECTOR = "prod-pagerduty"
PD_SERVICES = ["PAPI001", "PDAT001", "PWEB001", "PPAY001"]
IM_SERVICES = ["api", "db", "web", "payments"]
# The spec's mapping of im status to PagerDuty status.
PD_STATUS = {"open": "triggered", "mitigated": "acknowledged", "resolved": "resolved",
             "closed": "resolved"}


# im's client gives up after CLIENT_TIMEOUT; the sandbox's late answers come after LATE_MS.
CLIENT_TIMEOUT = 0.5
LATE_MS = 800


@pytest.fixture(autouse=True)
def quick_client(monkeypatch, pd):
    """Short retries, no sleeping, and a rate limit out of the way (the 429s come from the
    injected storms, not from the volume of this test)."""
    monkeypatch.setattr(PagerDutyConnector, "client_options", {
        "max_attempts": 2, "sleep": lambda _s: None, "timeout": CLIENT_TIMEOUT,
        "rate_limit": 1_000_000})
    monkeypatch.setattr(pd_client, "_budgets", {})  # budgets are per key, made on first use
    pd.configure(rate_limit=1_000_000)


# -- the responder on the PagerDuty side ---------------------------------------------------


class Responder:
    """john.doe@company.com on PagerDuty's REST API. Faults hit him too: like any API user he
    retries 5xx, 429 and dropped connections (the sandbox injects them before a request is
    applied, so a retry never applies anything twice)."""

    def __init__(self, pd: Any) -> None:
        self.http = pd.client(from_email="john.doe@company.com")
        self.calls = 0
        self.retries = 0

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        for _ in range(200):
            self.calls += 1
            try:
                response = self.http.request(method, path, json=body)
            except httpx.TransportError:
                self.retries += 1
                continue
            if response.status_code == 429 or response.status_code >= 500:
                self.retries += 1
                time.sleep(0.002)
                continue
            assert response.is_success, (method, path, response.status_code, response.text)
            return response.json() if response.content else {}
        raise AssertionError(f"{method} {path} kept failing")

    def trigger(self, title: str, service_id: str) -> dict[str, Any]:
        return self.call("POST", "/incidents", {"incident": {
            "type": "incident", "title": title, "urgency": "high",
            "service": {"id": service_id, "type": "service_reference"}}})["incident"]

    def set_status(self, remote_id: str, status: str) -> None:
        self.call("PUT", f"/incidents/{remote_id}", {"incident": {
            "type": "incident_reference", "status": status}})

    def note(self, remote_id: str, text: str) -> None:
        self.call("POST", f"/incidents/{remote_id}/notes", {"note": {"content": text}})


# -- draining ------------------------------------------------------------------------------


def settle(pd: Any, runtime: Any, *, timeout: float = 60.0, use_cli: bool = False) -> int:
    """Faults off; deliver what is queued (backoff ignored), let every webhook arrive and be
    processed; repeat until nothing is pending anywhere. Returns the rounds it took."""
    pd.clear_faults()
    deadline = time.monotonic() + timeout
    rounds = 0
    while True:
        rounds += 1
        assert time.monotonic() < deadline, (
            "did not settle", runtime.store.outbox(statuses=("pending", "delivering")))
        if use_cli:
            result = im(runtime, "connector", "sync", CONNECTOR)
            assert result.exit_code == 0, result.output
        else:
            deliver_outbox(runtime, due_only=False)
        assert pd.wait_for_webhooks(timeout=15)
        wait_for(lambda: not runtime.store.inbox(statuses=("pending", "processing")),
                 timeout=30)
        if (not runtime.store.outbox(statuses=("pending", "delivering"))
                and pd.wait_for_webhooks(timeout=1)
                and not runtime.store.inbox(statuses=("pending", "processing"))):
            return rounds
        time.sleep(0.02)


# -- the plan ------------------------------------------------------------------------------


class Plan:
    """What happens to one incident, drawn from a seeded generator."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.n = n
        self.origin = rng.choices(["im-cli", "im-api", "pd"], weights=[1, 4, 4])[0]
        self.services = rng.sample(IM_SERVICES, rng.choice([1, 1, 2, 3]))
        self.pd_service = rng.choice(PD_SERVICES)
        self.ack = rng.choices([None, "im", "pd"], weights=[1, 5, 5])[0]
        self.ack_note = f"ack note {n}" if self.ack == "im" and rng.random() < 0.5 else ""
        self.im_notes = [f"im note {n}.{k}" for k in range(rng.choice([0, 1, 1, 2]))]
        self.pd_notes = [f"pd note {n}.{k}" for k in range(rng.choice([0, 1, 1, 2]))]
        self.resolve = rng.choices([None, "im", "pd"], weights=[2, 4, 4])[0]
        self.resolve_note = (f"resolve note {n}" if self.resolve == "im" and rng.random() < 0.5
                             else "")
        self.cli = rng.random() < 0.15  # im-side steps through the CLI rather than the API
        self.incident_id: str | None = None
        self.remote_id: str | None = None  # the incident made in PagerDuty (origin pd)

    @property
    def expected_status(self) -> str:
        if self.resolve:
            return "resolved"
        return "mitigated" if self.ack else "open"


def im_step(runtime: Any, plan: Plan, action: str, note: str = "") -> None:
    assert plan.incident_id is not None
    if plan.cli:
        if action == "note":
            args = ["note", "--incident", plan.incident_id, note]
        else:
            args = [action, "--incident", plan.incident_id] + (["--note", note] if note else [])
        result = im(runtime, *args)
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    elif action == "note":
        incidents.add_note(runtime, plan.incident_id, note)
    else:
        incidents.transition(runtime, plan.incident_id, Action(action), note=note)


def remote_ids(runtime: Any, plan: Plan) -> list[str]:
    assert plan.incident_id is not None
    return [link.remote_id for link in runtime.store.links(plan.incident_id,
                                                            connector=CONNECTOR)]


# -- the soak ------------------------------------------------------------------------------


@pytest.fixture
def fast_home(tmp_path):
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path / "home"
        return
    folder = Path(tempfile.mkdtemp(prefix="im-soak-", dir=shm))
    try:
        yield folder / "home"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_faults_while_both_sides_work_leave_both_systems_in_agreement(fast_home, pd,
                                                                      monkeypatch):
    timed_out: Counter[str] = Counter()  # im's requests that got no answer in time
    record = pd_client.PagerDutyClient._record

    def counting(self, method, path, status, started, error, response=None):
        if error and "did not answer in time" in error:
            timed_out[f"{method} {path.rsplit('/', 1)[-1] if 'notes' in path else path}"] += 1
        record(self, method, path, status, started, error, response)

    monkeypatch.setattr(pd_client.PagerDutyClient, "_record", counting)
    started = time.monotonic()
    rng = random.Random(20261128)
    plans = [Plan(n, rng) for n in range(N_INCIDENTS)]
    runtime = runtime_with_connector(fast_home, pd)
    john = Responder(pd)
    timings: dict[str, float] = {}
    cli_queued = 0

    with serve(runtime) as url:
        enabled = im(runtime, "connector", "webhook", CONNECTOR, "--enable", "--url", url)
        assert enabled.exit_code == 0, enabled.output

        # 1. declare, from both sides: 5xx bursts, random 5xx, dropped connections and
        #    timeouts (the incident made, the answer too late)
        phase = time.monotonic()
        pd.set_faults(burst_5xx=40, drop_connections=15, error_rate=0.1,
                      late_answer_rate=0.03, late_answer_ms=LATE_MS, seed=1)
        for plan in plans:
            if plan.origin == "pd":
                plan.remote_id = john.trigger(f"PagerDuty incident {plan.n}", plan.pd_service)
                plan.remote_id = plan.remote_id["id"]
            elif plan.origin == "im-cli":
                result = im(runtime, "declare", "--sev", "SEV-2", "--title",
                            f"im incident {plan.n}", "--service", ",".join(plan.services))
                assert result.exit_code == 0 and "Traceback" not in result.output, result.output
                cli_queued += "queued" in result.stderr
                plan.incident_id = result.stdout.split(":")[0].removeprefix("Declared ")
            else:
                plan.incident_id = incidents.declare(
                    runtime, title=f"im incident {plan.n}", severity="SEV-3",
                    services=plan.services).id
        settle(pd, runtime)
        for plan in plans:
            if plan.origin == "pd":
                [link] = runtime.store.links(connector=CONNECTOR, remote_id=plan.remote_id)
                plan.incident_id = link.incident_id
        timings["declare"] = time.monotonic() - phase

        # 2. acknowledge: a 429 storm with PagerDuty's rate-limit headers, some 5xx
        phase = time.monotonic()
        pd.set_faults(storm_429=60, storm_429_headers=True, storm_429_reset_seconds=1,
                      error_rate=0.05, seed=2)
        for plan in plans:
            if plan.ack == "im":
                im_step(runtime, plan, "ack", plan.ack_note)
            elif plan.ack == "pd":
                for remote_id in remote_ids(runtime, plan):
                    john.set_status(remote_id, "acknowledged")
        settle(pd, runtime, use_cli=True)
        timings["ack"] = time.monotonic() - phase

        # 3. notes, from both sides at once: a 429 storm without headers, dropped connections,
        #    timeouts (the note posted, the answer too late) and every webhook delivered twice
        phase = time.monotonic()
        pd.set_faults(storm_429=60, storm_429_headers=False, drop_rate=0.05,
                      late_answer_rate=0.03, late_answer_ms=LATE_MS,
                      webhook_duplicates=True, seed=3)
        for plan in plans:
            targets = remote_ids(runtime, plan)
            for k in range(max(len(plan.im_notes), len(plan.pd_notes))):
                if k < len(plan.im_notes):
                    im_step(runtime, plan, "note", plan.im_notes[k])
                if k < len(plan.pd_notes):
                    john.note(rng.choice(targets), plan.pd_notes[k])
        settle(pd, runtime)
        timings["notes"] = time.monotonic() - phase

        # 4. resolve: latency, random 5xx and dropped connections
        phase = time.monotonic()
        pd.set_faults(latency_ms=2, error_rate=0.1, drop_rate=0.05, seed=4)
        for plan in plans:
            if plan.resolve == "im":
                im_step(runtime, plan, "resolve", plan.resolve_note)
            elif plan.resolve == "pd":
                for remote_id in remote_ids(runtime, plan):
                    john.set_status(remote_id, "resolved")
        settle(pd, runtime)
        timings["resolve"] = time.monotonic() - phase

    faults_met = Counter(r["fault"].split()[0] for r in pd.requests() if r["fault"])
    check = time.monotonic()
    check_agreement(runtime, pd, plans, john)
    timings["check"] = time.monotonic() - check
    print(f"\n{N_INCIDENTS} incidents in {time.monotonic() - started:.1f}s;"
          f" phases {({k: round(v, 1) for k, v in timings.items()})};"
          f" faults met {dict(faults_met)}; responder retries {john.retries};"
          f" CLI declares queued {cli_queued}; im's timeouts {dict(timed_out)}")
    # the faults really happened, to im and to the responder
    assert faults_met["server_error"] and faults_met["rate_limit"] and faults_met["drop"]
    # im gave up on creates and notes that PagerDuty had made, and still made each once
    assert timed_out["POST /incidents"] and timed_out["POST notes"], timed_out
    assert any(r.attempts > 1 for r in runtime.store.outbox())
    runtime.store.close()


def all_remote_incidents(pd: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with pd.client() as api:
        while True:
            page = api.get("/incidents", params={"date_range": "all", "limit": 100,
                                                 "offset": len(found)}).json()
            found += page["incidents"]
            if not page["more"]:
                return found


def check_agreement(runtime: Any, pd: Any, plans: list[Plan], john: Responder) -> None:
    store = runtime.store
    remote = {i["id"]: i for i in all_remote_incidents(pd)}
    by_key = Counter(i["incident_key"] for i in remote.values())

    # no im incident was made twice (PagerDuty's echo of im's own creates, duplicates)
    assert len(store.list_incidents()) == len(plans)
    assert sorted(p.incident_id for p in plans) == sorted(i.id for i in store.list_incidents())

    # exactly one PagerDuty incident per im incident and service, and nothing else
    linked: set[str] = set()
    for plan in plans:
        incident = store.get_incident(plan.incident_id)
        links = store.links(incident.id, connector=CONNECTOR)
        if plan.origin == "pd":
            assert [link.remote_id for link in links] == [plan.remote_id]
        else:
            assert sorted(link.service for link in links) == sorted(plan.services)
            for link in links:
                key = f"im-{incident.correlation_id}-{link.service}"
                assert by_key[key] == 1, (incident.id, key, by_key[key])
                assert remote[link.remote_id]["incident_key"] == key
        linked.update(link.remote_id for link in links)
    assert linked == set(remote), "PagerDuty holds incidents no im incident is linked to"

    # the states agree, and are what the plan says
    for plan in plans:
        incident = store.get_incident(plan.incident_id)
        assert incident.status.value == plan.expected_status, (incident.id, plan.__dict__)
        for link in store.links(incident.id, connector=CONNECTOR):
            assert remote[link.remote_id]["status"] == PD_STATUS[incident.status.value], (
                incident.id, link.remote_id)

    # every note once on each side
    with pd.client() as api:
        for plan in plans:
            incident = store.get_incident(plan.incident_id)
            im_notes = Counter(e.text for e in store.timeline(incident.id) if e.kind == "note")
            assert im_notes == Counter(plan.im_notes + plan.pd_notes), incident.id
            from_im = Counter(plan.im_notes + [n for n in (plan.ack_note, plan.resolve_note)
                                                if n])
            pd_total: Counter[str] = Counter()
            for link in store.links(incident.id, connector=CONNECTOR):
                notes = Counter(n["content"] for n in api.get(
                    f"/incidents/{link.remote_id}/notes").json()["notes"])
                assert notes - Counter(plan.pd_notes) == from_im, (incident.id, link.service)
                pd_total += notes - from_im
            assert pd_total == Counter(plan.pd_notes), incident.id

    # nothing echoed: the outbox holds exactly the im-side changes, one row per service, all
    # delivered; nothing that came from PagerDuty was queued for it
    expected: Counter[tuple[str, str]] = Counter()
    for plan in plans:
        width = 1 if plan.origin == "pd" else len(plan.services)
        actions = ([] if plan.origin == "pd" else ["declare"]) + (
            ["ack"] if plan.ack == "im" else []) + ["note"] * len(plan.im_notes) + (
            ["resolve"] if plan.resolve == "im" else [])
        for action in actions:
            expected[(plan.incident_id, action)] += width
    rows = store.outbox(connector=CONNECTOR)
    assert Counter((r.incident_id, r.action) for r in rows) == expected
    assert {r.status for r in rows} == {"done"}
    pd_texts = {n for p in plans for n in p.pd_notes}
    assert not [r for r in rows if r.payload.get("note") in pd_texts]
    # every webhook event was applied (none quarantined), once
    inbox = store.inbox(connector=CONNECTOR)
    assert {r.status for r in inbox} == {"done"}
    assert len({r.delivery_id for r in inbox}) == len(inbox)


# -- single faults, one at a time, deterministic -------------------------------------------


def _notes(pd: Any, remote_id: str) -> list[str]:
    with pd.client() as api:
        return [n["content"] for n in api.get(f"/incidents/{remote_id}/notes").json()["notes"]]


def _status(pd: Any, remote_id: str) -> str:
    with pd.client() as api:
        return api.get(f"/incidents/{remote_id}").json()["incident"]["status"]


def test_timeouts_are_retried_and_apply_each_change_once(tmp_path, pd, monkeypatch):
    """Every request of every outbound change times out once (PagerDuty slower than the
    client's timeout), then PagerDuty recovers: each change reaches it exactly once."""
    options = {**PagerDutyConnector.client_options, "max_attempts": 1, "timeout": 0.1}
    monkeypatch.setattr(PagerDutyConnector, "client_options", options)
    runtime = runtime_with_connector(tmp_path / "home", pd)
    incident = incidents.declare(runtime, title="Slow", severity="SEV-2", services=["db", "api"])
    steps = [lambda: None,
             lambda: incidents.transition(runtime, incident.id, Action.ACK, note="Looking"),
             lambda: incidents.add_note(runtime, incident.id, "Replica lag"),
             lambda: incidents.transition(runtime, incident.id, Action.RESOLVE)]
    timeouts = 0
    for step in steps:
        step()
        pd.set_faults(latency_ms=300)
        report = deliver_outbox(runtime, due_only=False)
        timeouts += sum("did not answer in time" in e for e in report.errors)
        assert report.delivered == 0
        pd.clear_faults()
        while runtime.store.outbox(statuses=("pending",)):
            deliver_outbox(runtime, due_only=False)
    assert timeouts == 4
    remote = all_remote_incidents(pd)
    assert sorted(i["incident_key"] for i in remote) == sorted(
        f"im-{incident.correlation_id}-{s}" for s in ("db", "api"))
    assert {i["status"] for i in remote} == {"resolved"}
    for item in remote:
        assert _notes(pd, item["id"]) == ["Looking", "Replica lag"]
    assert {r.status for r in runtime.store.outbox()} == {"done"}


def _passes_then_fails(draws: random.Random) -> bool:
    """Whether the sandbox's fault draws (error_rate 0.5) let one request pass, then fail the
    next."""
    return draws.random() >= 0.5 > draws.random()


def test_resolve_note_is_posted_once_when_the_status_change_fails(tmp_path, pd, monkeypatch):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    incidents.transition(runtime, "INC-1", Action.RESOLVE, note="Index rebuilt")
    # a fault pattern in which the first request (the note) passes and the second (the
    # status change) answers 500
    seed = next(s for s in range(1000) if _passes_then_fails(random.Random(s)))
    options = {**PagerDutyConnector.client_options, "max_attempts": 1}
    monkeypatch.setattr(PagerDutyConnector, "client_options", options)
    pd.clear_requests()
    pd.set_faults(error_rate=0.5, seed=seed)
    assert deliver_outbox(runtime).retrying == 1
    assert [(r["method"], r["status"]) for r in pd.requests()] == [("POST", 200), ("PUT", 500)]
    pd.clear_faults()
    assert deliver_outbox(runtime, due_only=False).delivered == 1
    assert _status(pd, link.remote_id) == "resolved"
    assert _notes(pd, link.remote_id) == ["Index rebuilt"]


def test_an_event_processed_while_the_api_fails_is_retried_not_quarantined(tmp_path, pd):
    from im.inbound import process_inbox
    from im_pagerduty import directory

    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    Responder(pd).note(link.remote_id, "Replica lag is the cause")
    [event] = [e for e in pd.events("incident.annotated")]
    runtime.store.store_inbox(connector=CONNECTOR, delivery_id=event["event_id"],
                              event_type="incident.annotated",
                              body=json.dumps(event["body"]).encode(),
                              at=runtime.clock())
    directory.forget(runtime.connector(CONNECTOR).client)  # the 5-minute cache ran out
    pd.set_faults(error_rate=1.0)
    process_inbox(runtime)
    assert runtime.store.inbox(statuses=("quarantined",)) == []
    pd.clear_faults()
    process_inbox(runtime)
    assert [e.text for e in runtime.store.timeline("INC-1") if e.kind == "note"] == [
        "Replica lag is the cause"]


def test_a_note_repeating_an_earlier_text_is_posted_even_after_a_failed_attempt(
        tmp_path, pd, monkeypatch):
    runtime = runtime_with_connector(tmp_path / "home", pd)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    [link] = runtime.store.links("INC-1")
    im(runtime, "note", "--incident", "INC-1", "Still investigating")
    options = {**PagerDutyConnector.client_options, "max_attempts": 1}
    monkeypatch.setattr(PagerDutyConnector, "client_options", options)
    incidents.add_note(runtime, "INC-1", "Still investigating")  # half an hour later
    pd.set_faults(burst_5xx=1)
    assert deliver_outbox(runtime).retrying == 1
    pd.clear_faults()
    assert deliver_outbox(runtime, due_only=False).delivered == 1
    timeline = [e.text for e in runtime.store.timeline("INC-1") if e.kind == "note"]
    assert timeline == ["Still investigating"] * 2
    assert _notes(pd, link.remote_id) == ["Still investigating"] * 2
