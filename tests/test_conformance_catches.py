"""Each rule of the conformance kit catches a connector that breaks it: here a fake connector
broken in one way each fails its rule, with the words the rule says it in."""

import time
import uuid

import msgspec
import pytest

from im import ConnectorError, PullResult, PushResult, RemoteRef
from im.testing import FakePlugin, FakeWebhookConnector
from im.testing.conformance import RULES, FakeRemoteAdapter, make_kit


def kit_for(tmp_path, connector):
    remote = FakeRemoteAdapter()
    return make_kit(tmp_path / "home", connector_type="fake",
                    plugins=[FakePlugin(remote.fake, connector=connector)], remote=remote,
                    settings={"api_key": "k", "sync_direction": "bidirectional",
                              "webhook_secret": remote.fake.SECRET})


class ForgetsWhatItMade(FakeWebhookConnector):
    """Creates a remote incident on every attempt: no look-up by the idempotency key."""

    def push(self, request):
        if request.action == "declare":
            self.remote.by_key.pop(request.idempotency_key, None)
        return super().push(request)


class LinksNothing(FakeWebhookConnector):
    def push(self, request):
        result = super().push(request)
        return PushResult(timeline=result.timeline) if request.action == "declare" else result


class GivesUpOnOutages(FakeWebhookConnector):
    """Takes every error for a final one."""

    def push(self, request):
        try:
            return super().push(request)
        except ConnectorError as error:
            raise ConnectorError(str(error)) from None


class RetriesRefusals(FakeWebhookConnector):
    """Takes every error for a passing one."""

    def push(self, request):
        try:
            return super().push(request)
        except ConnectorError as error:
            raise ConnectorError(str(error), retryable=True) from None


class NewestNoteFirst(FakeWebhookConnector):
    def push(self, request):
        result = super().push(request)
        if request.action == "note":
            notes = self.remote.incidents[request.link.remote_id]["notes"]
            notes.insert(0, notes.pop())
        return result


class NotesTwice(FakeWebhookConnector):
    """Posts a note again on every attempt (no idempotency key, no look)."""

    def push(self, request):
        result = super().push(request)
        if request.action == "note" and request.attempt > 1:
            self.remote.incidents[request.link.remote_id]["notes"].append(
                request.payload["note"])
        return result


class ResolvesOnlyTheFirst(FakeWebhookConnector):
    def push(self, request):
        if request.action == "resolve" and request.service != request.incident.services[0]:
            return PushResult()
        return super().push(request)


class WaitsForever(FakeWebhookConnector):
    """Waits for a slow remote, whatever the deadline."""

    def push(self, request):
        if self.remote.fault == "slow":
            time.sleep(self.remote.slow_seconds)
            self.remote.fault = None
        return super().push(request)


class SaysNoState(FakeWebhookConnector):
    def push(self, request):
        result = super().push(request)
        if request.action == "declare":
            return result
        return msgspec.structs.replace(result, link=RemoteRef(remote_id=result.link.remote_id))


class DropsAcks(FakeWebhookConnector):
    def webhook_changes(self, request):
        return [c for c in super().webhook_changes(request) if c.action != "acknowledged"]


class KnowsNoEchoes(FakeWebhookConnector):
    def webhook_changes(self, request):
        return [msgspec.structs.replace(c, echo=False)
                for c in super().webhook_changes(request)]


class DatesEventsOnReceipt(FakeWebhookConnector):
    def webhook_changes(self, request):
        return [msgspec.structs.replace(c, occurred_at=self.runtime.clock())
                for c in super().webhook_changes(request)]


class NewIdPerDelivery(FakeWebhookConnector):
    def parse_webhook(self, request):
        return msgspec.structs.replace(super().parse_webhook(request),
                                       delivery_id=uuid.uuid4().hex)


class TrustsAnyone(FakeWebhookConnector):
    def verify_webhook(self, request):
        return True


class IgnoresUnknownTypes(FakeWebhookConnector):
    def webhook_changes(self, request):
        if b"teleported" in request.body:
            return []
        return super().webhook_changes(request)


class SwallowsBadBodies(FakeWebhookConnector):
    def webhook_changes(self, request):
        try:
            return super().webhook_changes(request)
        except ValueError:
            return []


class NamesTheFirstRemoteIncident(FakeWebhookConnector):
    """Every change is said to be about the incident's first remote incident."""

    def webhook_changes(self, request):
        changes = super().webhook_changes(request)
        fixed = []
        for change in changes:
            made = [remote_id for key, remote_id in self.remote.by_key.items()
                    if change.correlation_id and key.startswith(f"im-{change.correlation_id}-")]
            fixed.append(msgspec.structs.replace(change, remote_id=made[0]) if made else change)
        return fixed


class UnacknowledgesTheWholeIncident(FakeWebhookConnector):
    """Takes one remote incident going back to open for all those made for its im incident
    (as if the remote had one alert for it)."""

    def webhook_changes(self, request):
        changes = []
        for change in super().webhook_changes(request):
            made = [remote_id for key, remote_id in self.remote.by_key.items()
                    if change.correlation_id and key.startswith(f"im-{change.correlation_id}-")]
            if change.action != "unacknowledged" or not made:
                changes.append(change)
                continue
            changes += [msgspec.structs.replace(change, remote_id=remote_id,
                                                event_id=f"{change.event_id}:{remote_id}")
                        for remote_id in made]
        return changes


class ForgetsTheKey(FakeWebhookConnector):
    """Reads no idempotency key off a remote incident, by webhook or poll."""

    def webhook_changes(self, request):
        return [msgspec.structs.replace(c, correlation_id=None)
                for c in super().webhook_changes(request)]

    def pull(self, request):
        result = super().pull(request)
        return msgspec.structs.replace(result, changes=[
            msgspec.structs.replace(c, correlation_id=None) for c in result.changes])


class PullsNothing(FakeWebhookConnector):
    def pull(self, request):
        return PullResult(cursor=request.cursor)


class ListsEverythingOpenNow(FakeWebhookConnector):
    """Reports every remote incident open, as of now, whatever its state."""

    def pull(self, request):
        result = super().pull(request)
        now = self.runtime.clock()
        return msgspec.structs.replace(result, changes=[
            msgspec.structs.replace(c, action="triggered", remote_status="open",
                                    occurred_at=now, observed_at=None)
            for c in result.changes])


class RefusesWhatItDoesNotKnow(FakeWebhookConnector):
    def push(self, request):
        if request.action not in ("declare", "note", "ack", "resolve", "close", "reopen"):
            raise ConnectorError(f"{request.action} is not supported")
        return super().push(request)


class PollsPatiently(FakeWebhookConnector):
    """Waits for a slow remote, whatever the deadline."""

    def pull(self, request):
        if self.remote.fault == "slow":
            time.sleep(self.remote.slow_seconds)
            self.remote.fault = None
        return super().pull(request)


BROKEN = {
    "declare_makes_and_links_the_remote_incident": (
        LinksNothing, "the links im stored are not the remote incidents the declare made"),
    "a_create_retried_after_a_crash_makes_no_second_incident": (
        ForgetsWhatItMade, "a create retried after a crash made a second remote incident"),
    "a_create_retried_after_a_lost_answer_makes_no_second_incident": (
        ForgetsWhatItMade, "a create retried after a lost answer made 2 remote incidents"),
    "an_unreachable_remote_keeps_changes_queued": (
        GivesUpOnOutages, r"an outage \(connection refused\) failed the declare instead of"
                          " keeping it queued"),
    "a_server_error_keeps_changes_queued": (
        GivesUpOnOutages, r"an outage \(a 5xx answer\) failed the declare"),
    "a_refused_change_fails_visibly_and_is_not_retried": (
        RetriesRefusals, r"a change the remote refused for good \(4xx\) was left pending"),
    "changes_of_an_incident_reach_the_remote_in_order": (
        NewestNoteFirst, "the notes first, second, third reached the remote as"
                         r" \['third', 'second', 'first'\]"),
    "a_retried_note_is_posted_once": (
        NotesTwice, "a note retried after a crash is on the remote 2 times"),
    "a_note_whose_answer_was_lost_is_posted_once": (
        NotesTwice, "a note retried after a lost answer is on the remote 2 times"),
    "resolving_resolves_every_remote_incident": (
        ResolvesOnlyTheFirst, r"resolving INC-1 left its remote incident F2 \(payments\) open"),
    "a_push_keeps_to_its_deadline": (
        WaitsForever, "a push waited 3.0 s for a slow remote though its deadline was 1 s"),
    "the_link_says_the_remote_state_in_ims_words": (
        SaysNoState, "after im's ack the link says the remote incident is open, but the"
                     " remote has it acknowledged"),
    "a_responders_change_in_the_remote_reaches_im": (
        DropsAcks, "a responder acknowledged the remote incident and INC-1 is open"),
    "ims_own_changes_coming_back_are_echoes": (
        KnowsNoEchoes, "im's own note came back from the remote and is on the timeline 2"
                       " times"),
    "a_stale_event_is_not_applied": (
        DatesEventsOnReceipt, "a late acknowledgement, older than the resolve already"
                              " applied, left INC-1 resolved and its link acknowledged"),
    "a_duplicate_delivery_is_applied_once": (
        NewIdPerDelivery, "one note delivered twice is on the timeline 2 times"),
    "an_unsigned_or_forged_webhook_is_refused": (
        TrustsAnyone, "a webhook without a signature was answered 202, not refused"),
    "an_unknown_event_type_is_quarantined": (
        IgnoresUnknownTypes, "an event of a type the connector does not handle was done, not"
                             " quarantined"),
    "a_webhook_with_a_bad_body_is_quarantined": (
        SwallowsBadBodies, "a webhook the connector cannot read was done, not quarantined"),
    "an_incident_resolves_when_each_remote_incident_is_resolved": (
        NamesTheFirstRemoteIncident, "both remote incidents of INC-1 were resolved and it is"
                                     " open"),
    "unacknowledging_one_remote_incident_leaves_the_others_acknowledgement": (
        UnacknowledgesTheWholeIncident, "one of INC-1's two acknowledged remote incidents went"
                                        " back to open and INC-1 is open, not mitigated"),
    "a_webhook_links_the_incident_a_lost_answer_made": (
        ForgetsTheKey, r"a remote incident im created, whose answer was lost, became another im"
                       r" incident \(INC-2\) when its webhook told of it"),
    "a_poll_brings_a_responders_change": (
        PullsNothing, "a responder acknowledged the remote incident, a poll came, and INC-1 is"
                      " open, not mitigated"),
    "a_poll_links_the_incident_a_lost_answer_made": (
        ForgetsTheKey, r"became another im incident \(INC-2\) when a poll told of it"),
    "a_poll_takes_ims_own_changes_for_known": (
        ListsEverythingOpenNow, "a poll reporting im's own changes applied them again"),
    "every_kind_of_change_is_delivered": (
        RefusesWhatItDoesNotKnow, "im's severity of INC-1 was failed"),
    "a_poll_keeps_to_its_deadline": (
        PollsPatiently, "a poll waited 3.0 s for a slow remote though its deadline was 1 s"),
}


def test_every_rule_has_a_connector_that_breaks_it():
    assert sorted(BROKEN) == sorted(rule.__name__ for rule in RULES)


@pytest.mark.parametrize("rule", RULES, ids=[rule.__name__ for rule in RULES])
def test_the_rule_catches_a_connector_that_breaks_it(rule, tmp_path):
    broken, words = BROKEN[rule.__name__]
    kit = kit_for(tmp_path, broken)
    try:
        with pytest.raises(AssertionError, match=words):
            rule(kit)
    finally:
        kit.runtime.store.close()
