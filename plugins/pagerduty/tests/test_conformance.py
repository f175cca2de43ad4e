"""The PagerDuty connector against the conformance kit (im.testing.conformance), with the
sandbox as its remote: faults through its fault injection, webhooks through a subscription
to a small receiver, which the kit posts to im's own webhook route."""

import json
import time
from datetime import UTC, datetime

import pytest

import im_pagerduty
from im import ChangeKind
from im.testing.conformance import (
    ConnectorContract,
    Delivery,
    Fault,
    RemoteAdapter,
    RemoteIncident,
    a_create_retried_after_a_lost_answer_makes_no_second_incident,
    a_note_whose_answer_was_lost_is_posted_once,
)
from im_pagerduty.connector import PagerDutyConnector
from im_pagerduty.webhooks import sign, state

from .connector_kit import config
from .sandbox_calls import subscribe

RESPONDER = "john.doe@company.com"
SLOW_MS = 3000
LATE_MS = 3500


class PagerDutySandbox(RemoteAdapter):
    faults = frozenset(Fault)

    def __init__(self, pd, receiver):
        self.pd = pd
        self.receiver = receiver
        with pd.client() as api:
            self.secret = subscribe(api, receiver.url)["delivery_method"]["secret"]
        self._seen = 0
        self._slow_until = 0.0
        self._late = False

    def incidents(self):
        with self.pd.client() as api:
            found = api.get("/incidents", params={"date_range": "all", "limit": 100}).json()
            return [RemoteIncident(
                remote_id=i["id"], status=state(i["status"]),
                notes=[n["content"] for n in sorted(
                    api.get(f"/incidents/{i['id']}/notes").json()["notes"],
                    key=lambda n: n["created_at"])])
                for i in found["incidents"]]

    def fail(self, fault):
        if fault == Fault.DOWN:
            self.pd.set_faults(drop_rate=1.0)
        elif fault == Fault.SERVER_ERROR:
            self.pd.set_faults(error_rate=1.0, error_status=503)
        elif fault == Fault.REFUSED:
            self.pd.set_faults(refuse_rate=1.0, paths=("/incidents",))
        elif fault == Fault.LOST_ANSWER:
            # the create done at once, answered after the client gave up (its timeout is
            # 2 s here); not the calls before it (priorities), which would stop the push
            # before the create
            self.pd.set_faults(late_answer_rate=1.0, late_answer_ms=LATE_MS, paths=("/incidents",))
            self._slow_until = time.monotonic() + LATE_MS / 1000
            self._late = True
        elif fault == Fault.SLOW:
            self.pd.set_faults(latency_ms=SLOW_MS)
            self._slow_until = time.monotonic() + SLOW_MS / 1000

    def recover(self):
        self.pd.clear_faults()
        # requests still held back by the sandbox are carried out before the kit goes on
        time.sleep(max(0.0, self._slow_until - time.monotonic()) + 0.1)
        if self._late:
            # a late answer goes LATE_MS after its request, which came after fail(): wait
            # for it (the sandbox logs a request as it answers), at most a few seconds
            deadline = time.monotonic() + LATE_MS / 1000 + 5
            while time.monotonic() < deadline and not any(
                    r.get("fault") == "late_answer" for r in self.pd.requests()):
                time.sleep(0.05)
            self._late = False

    def change(self, remote_id, action, *, text=""):
        with self.pd.client(from_email=RESPONDER) as responder:
            if action == ChangeKind.NOTE:
                responder.post(f"/incidents/{remote_id}/notes",
                               json={"note": {"content": text}}).raise_for_status()
            else:
                # triggered again, an acknowledged incident is unacknowledged
                status = {ChangeKind.ACKNOWLEDGED: "acknowledged",
                          ChangeKind.UNACKNOWLEDGED: "triggered",
                          ChangeKind.RESOLVED: "resolved"}[action]
                responder.put(f"/incidents/{remote_id}", json={"incident": {
                    "type": "incident_reference", "status": status}}).raise_for_status()

    def deliveries(self):
        assert self.pd.wait_for_webhooks(timeout=10)
        count = len(self.receiver.received)  # the receiver records just after it answers
        time.sleep(0.05)
        while len(self.receiver.received) != count:
            count = len(self.receiver.received)
            time.sleep(0.05)
        sent = self.receiver.received[self._seen:]
        self._seen += len(sent)
        return [Delivery(body=hook.body, headers={
            k: v for k, v in hook.headers.items() if k.startswith("x-") or k == "content-type"})
            for hook in sent]

    def sign(self, body):
        return {"x-pagerduty-signature": sign(self.secret, body),
                "content-type": "application/json"}

    def unknown_event(self, remote_id):
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return json.dumps({"event": {
            "id": "01UNKNOWNEVENTTYPE", "event_type": "incident.teleported",
            "resource_type": "incident", "occurred_at": at, "agent": None, "client": None,
            "data": {"id": remote_id, "type": "incident"}}}).encode()


class TestPagerDutyConnector(ConnectorContract):
    connector_type = "pagerduty"
    assignee = RESPONDER

    @pytest.fixture
    def remote(self, pd, pagerduty_webhook_receiver, monkeypatch):
        # one try per call, and a short timeout: the outbox retries, and a lost answer is lost;
        # short, not tight: a loaded 2-core machine once took longer than 0.5 s to answer a
        # listing after an outage, and the rule failed on a delivery that was only slow
        monkeypatch.setattr(PagerDutyConnector, "client_options",
                            {"max_attempts": 1, "timeout": 2.0})
        return PagerDutySandbox(pd, pagerduty_webhook_receiver)

    def plugins(self, remote):
        return [im_pagerduty]

    def settings(self, remote):
        settings = config(remote.pd, webhook_secrets=[remote.secret])
        return {**settings, "enable_webhook": True}

    def test_the_lost_answer_is_a_create_made_and_answered_too_late(self, kit):
        """The kit's lost answer is the real thing here: the sandbox made the incident and
        answered after the client gave up; the retry found it by its incident_key."""
        a_create_retried_after_a_lost_answer_makes_no_second_incident(kit)
        creates = kit.remote.pd.requests(method="POST", path="/incidents")
        assert [r["fault"] for r in creates] == ["late_answer"]
        assert kit.remote.pd.requests(method="GET", path="/incidents")

    def test_the_lost_note_answer_is_a_note_posted_and_answered_too_late(self, kit):
        a_note_whose_answer_was_lost_is_posted_once(kit)
        notes = kit.remote.pd.requests(method="POST", path="/incidents/*")
        assert [r["fault"] for r in notes] == ["late_answer"]
