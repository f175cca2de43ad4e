"""The conformance kit: the contract every connector keeps, as tests a plugin runs.

Subclass `ConnectorContract` in your plugin's tests, say which connector type to add with which
settings, and give an adapter to your fake remote system (a `RemoteAdapter`); every rule
below becomes a test of your class, run against the core's real machinery (the command line,
the outbox, the webhook route, the inbox), and a broken rule fails saying in plain words which
rule it is and what to do:

    import pytest
    from im.testing.conformance import ConnectorContract

    class TestMyConnector(ConnectorContract):
        connector_type = "acme"

        @pytest.fixture
        def remote(self, acme_fake):          # your fake remote, behind a RemoteAdapter
            return AcmeRemote(acme_fake)

        def plugins(self, remote):
            return [im_acme]

        def settings(self, remote):
            return {"api_key": "k", "base_url": remote.url}

A rule needs what it tests: the outbound rules run for a connector that pushes, the webhook
ones only for one that takes webhooks and pulls (it overrides `verify_webhook`; its
`sync_direction` pulls), the polling ones for one that overrides `pull`; a rule that needs a
fault your adapter cannot make (`faults`) is skipped with a one-line reason. The rules are
plain functions (`RULES`), each taking a `Kit`: a test can also run one against a connector
of its own making.
"""

from __future__ import annotations

import enum
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

from im.connectors import ChangeKind, Connector, RemoteStatus
from im.errors import ConnectorError
from im.models import Link
from im.runtime import Runtime
from im.testing import (
    OUTBOX_LEASE_SECONDS,
    CliResult,
    FakeClock,
    FakeRemote,
    http_client,
    make_runtime,
    run_cli,
)


class Fault(enum.StrEnum):
    """Outages an adapter may be able to make its fake remote have (`RemoteAdapter.fail`)."""

    DOWN = "down"  # unreachable: connection refused (retrying fixes it)
    SERVER_ERROR = "server_error"  # answers 5xx (retrying fixes it)
    REFUSED = "refused"  # refuses the change for good: a 4xx (retrying cannot fix it)
    LOST_ANSWER = "lost_answer"  # does the change, but the answer never comes (a timeout)
    SLOW = "slow"  # answers, but only after a few seconds


class RemoteIncident(msgspec.Struct, frozen=True, kw_only=True):
    """A remote incident as the fake remote has it: its id (what a link's `remote_id` is),
    its state in im's words, and its notes (their text, oldest first)."""

    remote_id: str
    status: RemoteStatus | None = None
    notes: list[str] = []


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook delivery as the remote sent it: the headers that matter (its signature)
    and the raw body."""

    headers: dict[str, str]
    body: bytes


class RemoteAdapter:
    """What the kit needs of your fake remote. Override what it supports; `faults` says which
    outages `fail` can make (the rules needing another are skipped, saying why)."""

    faults: ClassVar[frozenset[Fault]] = frozenset()

    def incidents(self) -> list[RemoteIncident]:
        """Every incident the remote has now."""
        raise NotImplementedError

    def fail(self, fault: Fault) -> None:
        """Have the remote fail every call in this way until `recover()`."""
        raise NotImplementedError

    def recover(self) -> None:
        """End the outage `fail` began (and wait for what the remote still does of it)."""

    # inbound: for a connector that takes webhooks

    def change(self, remote_id: str, action: ChangeKind, *, text: str = "") -> None:
        """A responder (not im's own user) makes a change in the remote's own app:
        `ChangeKind.ACKNOWLEDGED`, `UNACKNOWLEDGED` (an acknowledged incident back to open,
        as the remote's app or its acknowledgement timeout does it), `RESOLVED`, or `NOTE`
        (with `text`). Raise NotImplementedError for one the remote cannot make: the rule
        needing it is skipped, saying so."""
        raise NotImplementedError

    def deliveries(self) -> list[Delivery]:
        """The webhook deliveries the remote sent since the last call, in the order sent
        (waiting for those still on their way)."""
        raise NotImplementedError

    def sign(self, body: bytes) -> dict[str, str]:
        """The headers with which the remote would deliver `body` (its signature)."""
        raise NotImplementedError

    def unknown_event(self, remote_id: str) -> bytes:
        """The body of an event about `remote_id` of a type the connector does not handle
        (one the remote may add some day)."""
        raise NotImplementedError


class Kit:
    """One rule's world: an im (`runtime`, with its `clock`) with the connector `name`
    configured, and the adapter to its remote (`remote`)."""

    def __init__(self, runtime: Runtime, name: str, remote: RemoteAdapter, clock: FakeClock,
                 services: Sequence[str] = ("api", "payments"),
                 assignee: str | None = None) -> None:
        self.runtime = runtime
        self.name = name
        self.remote = remote
        self.clock = clock
        self.services = list(services)
        self.assignee = assignee

    # what the connector can do

    @property
    def connector(self) -> Connector:
        return self.runtime.connector(self.name)

    def needs(self, fault: Fault) -> None:
        if fault not in self.remote.faults:
            pytest.skip(f"the remote's adapter cannot make this outage ({fault.value}): add"
                        f" Fault.{fault.name} to its faults, and make it in fail(), to run"
                        " this rule")

    def needs_inbound(self) -> None:
        connector = self.connector
        if type(connector).verify_webhook is Connector.verify_webhook:
            pytest.skip(f"{connector.type} takes no webhooks (it does not override"
                        " verify_webhook): a webhook rule")
        if not connector.settings.sync_direction.pulls:
            pytest.skip(f"{self.name} is configured {connector.settings.sync_direction.value}:"
                        " set a sync_direction that pulls to run the webhook rules")
        if not connector.settings.enable_webhook:
            pytest.skip(f"{self.name} has enable_webhook off: turn it on to run the webhook"
                        " rules")

    def needs_pull(self) -> None:
        connector = self.connector
        if type(connector).pull is Connector.pull:
            pytest.skip(f"{connector.type} does not poll (it does not override pull): a"
                        " polling rule")
        if not connector.settings.sync_direction.pulls:
            pytest.skip(f"{self.name} is configured {connector.settings.sync_direction.value}:"
                        " set a sync_direction that pulls to run the polling rules")

    def poll(self) -> dict[str, int]:
        """Poll the connector as `im serve` does; how many changes had each outcome."""
        from im.inbound import poll

        return poll(self.runtime, self.name, deadline=time.monotonic() + 10)

    @property
    def per_service(self) -> bool:
        return type(self.connector).remote_incident_per == "service"

    # im, as users drive it

    def im(self, *args: str) -> CliResult:
        return run_cli(self.runtime, list(args))

    def declare(self, services: Sequence[str] | None = None, title: str = "Checkout errors"
                ) -> str:
        result = self.im("declare", "--sev", "SEV-2", "--title", title, "--service",
                         ",".join(services or self.services[:1]))
        match = re.search(r"Declared (INC-\d+)", result.stdout)
        assert match, f"im declare failed: {result.output}"
        return match.group(1)

    def queue_declare(self, services: Sequence[str] | None = None) -> str:
        """Declare without delivering: the change waits in the outbox."""
        from im import incidents

        return incidents.declare(self.runtime, title="Checkout errors", severity="SEV-2",
                                 services=list(services or self.services[:1])).id

    def deliver(self, budget: float | None = None) -> Any:
        """Deliver the connector's queued changes now (not waiting for their backoff)."""
        from im.sync import deliver_outbox

        return deliver_outbox(self.runtime, connector=self.name, due_only=False,
                              budget=budget)

    def links(self, incident_id: str) -> list[Link]:
        return self.runtime.store.links(incident_id, connector=self.name)

    def rows(self, incident_id: str, action: str | None = None) -> list[Any]:
        return [row for row in self.runtime.store.outbox(connector=self.name,
                                                         incident_id=incident_id)
                if action is None or row.action == action]

    def notes_on_timeline(self, incident_id: str, text: str) -> int:
        return sum(1 for entry in self.runtime.store.timeline(incident_id)
                   if entry.kind == "note" and entry.text == text)

    @contextmanager
    def crash_after_push(self) -> Iterator[None]:
        """The process dies after the next push did its work, before the delivery is
        recorded (the database rolls the delivery back as it would)."""
        store = self.runtime.store

        class Crash(Exception):
            pass

        def crash(*args: Any, **kwargs: Any) -> None:
            raise Crash("the power went out")

        store.finish_outbox = crash  # type: ignore[method-assign]
        try:
            yield
        except Crash:
            pass
        finally:
            del store.finish_outbox

    def after_lease(self) -> None:
        """Past the dead process's hold on the change it was delivering."""
        self.clock.advance(seconds=OUTBOX_LEASE_SECONDS + 1)

    # the remote

    def remote_ids(self) -> set[str]:
        return {incident.remote_id for incident in self.remote.incidents()}

    def remote_incident(self, remote_id: str) -> RemoteIncident:
        found = [i for i in self.remote.incidents() if i.remote_id == remote_id]
        assert found, f"the remote has no incident {remote_id}, which im links"
        return found[0]

    # webhooks

    def post(self, delivery: Delivery) -> int:
        with http_client(self.runtime) as client:
            answer = client.post(f"/connectors/{self.name}/webhook", content=delivery.body,
                                 headers=delivery.headers)
        return int(answer.status_code)

    def process(self) -> Any:
        from im.inbound import process_inbox

        return process_inbox(self.runtime, connector=self.name)

    def flush(self) -> list[Delivery]:
        """Post what the remote sent to im's webhook route and apply it; returns it."""
        sent = self.remote.deliveries()
        for delivery in sent:
            status = self.post(delivery)
            assert status == 202, (
                f"a delivery signed by the remote was answered {status}, not 202: check"
                f" verify_webhook against the adapter's signature ({delivery.body[:200]!r})")
        self.process()
        return sent

    def responder(self, remote_id: str, action: ChangeKind, text: str = "") -> None:
        try:
            self.remote.change(remote_id, action, text=text)
        except NotImplementedError:
            pytest.skip(f"the remote's adapter cannot make a responder's change {action.value}"
                        " (its change() raised NotImplementedError): a rule needing it")
        time.sleep(0.002)  # the remote's clock moves on between two changes


Rule = Callable[[Kit], None]
RULES: list[Rule] = []


def rule(function: Rule) -> Rule:
    RULES.append(function)
    return function


def _delivered(kit: Kit, incident_id: str, what: str) -> None:
    for row in kit.rows(incident_id):
        assert row.status == "done", (
            f"{what}: the {row.action} of {incident_id} was not delivered ({row.status},"
            f" {row.last_error})")


# -- outbound -------------------------------------------------------------------------------


@rule
def declare_makes_and_links_the_remote_incident(kit: Kit) -> None:
    """A declare makes one remote incident (per service, or per incident as the connector's
    `remote_incident_per` says) and im links it, open."""
    before = kit.remote_ids()
    incident = kit.declare(kit.services[:2])
    _delivered(kit, incident, "a declare with the remote up")
    made = kit.remote_ids() - before
    wanted = 2 if kit.per_service else 1
    assert len(made) == wanted, (
        f"a declare on two services made {len(made)} remote incident(s), not {wanted}"
        f" (remote_incident_per = {type(kit.connector).remote_incident_per!r})")
    links = kit.links(incident)
    assert {link.remote_id for link in links} == made, (
        "the links im stored are not the remote incidents the declare made: return"
        " PushResult(link=RemoteRef(remote_id=...)) naming the incident made")
    for link in links:
        assert link.remote_status == RemoteStatus.OPEN, (
            f"a new remote incident's link says {link.remote_status}, not open")


@rule
def a_create_retried_after_a_crash_makes_no_second_incident(kit: Kit) -> None:
    """A create retried after a crash (the remote made the incident, im never recorded it)
    finds the incident it made, by the idempotency key, and links it: one remote incident."""
    before = kit.remote_ids()
    with kit.crash_after_push():
        kit.im("declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service",
               kit.services[0])
    made = kit.remote_ids() - before
    assert len(made) == 1, f"the push before the crash made {len(made)} remote incidents"
    kit.after_lease()
    kit.deliver()
    _delivered(kit, "INC-1", "a create retried after a crash")
    again = kit.remote_ids() - before
    assert len(again) == 1, (
        "a create retried after a crash made a second remote incident: push must find the"
        " incident it made with the idempotency key (PushRequest.idempotency_key)")
    assert [link.remote_id for link in kit.links("INC-1")] == list(made), (
        "a create retried after a crash did not link the remote incident it had made")


@rule
def a_create_retried_after_a_lost_answer_makes_no_second_incident(kit: Kit) -> None:
    """A create whose answer was lost (the remote made it, then timed out) stays queued, and
    its retry links the incident made: one remote incident."""
    kit.needs(Fault.LOST_ANSWER)
    before = kit.remote_ids()
    kit.remote.fail(Fault.LOST_ANSWER)
    incident = kit.declare()
    kit.remote.recover()
    [row] = kit.rows(incident)
    assert row.status == "pending", (
        f"a create whose answer was lost was {row.status}, not kept queued: a timeout is"
        " retryable (ConnectorError(..., retryable=True))")
    kit.deliver()
    _delivered(kit, incident, "a create retried after a lost answer")
    made = kit.remote_ids() - before
    assert len(made) == 1, (
        f"a create retried after a lost answer made {len(made)} remote incidents: push must"
        " find the incident it made with the idempotency key (PushRequest.idempotency_key)")
    assert [link.remote_id for link in kit.links(incident)] == list(made)


def _outage_queues(kit: Kit, fault: Fault, words: str) -> None:
    kit.needs(fault)
    before = kit.remote_ids()
    kit.remote.fail(fault)
    incident = kit.declare()
    kit.im("note", "Written during the outage", "--incident", incident)
    rows = kit.rows(incident)
    for row in rows:
        assert row.status == "pending", (
            f"an outage ({words}) {row.status} the {row.action} instead of keeping it queued:"
            " raise ConnectorError(..., retryable=True) for what retrying can fix")
        assert row.last_error or not row.attempts, (
            f"the {row.action} kept queued says nothing of why")
    kit.remote.recover()
    kit.deliver()
    _delivered(kit, incident, f"changes queued during an outage ({words})")
    made = kit.remote_ids() - before
    assert len(made) == 1, f"the outage's create, delivered later, made {len(made)} incidents"
    count = kit.remote_incident(made.pop()).notes.count("Written during the outage")
    assert count == 1, (
        f"a note queued during an outage reached the remote {count} time(s), not once")


@rule
def an_unreachable_remote_keeps_changes_queued(kit: Kit) -> None:
    """An unreachable remote (connection refused) leaves the changes queued, and a later
    delivery sends each once."""
    _outage_queues(kit, Fault.DOWN, "connection refused")


@rule
def a_server_error_keeps_changes_queued(kit: Kit) -> None:
    """A remote answering 5xx leaves the changes queued, and a later delivery sends each
    once."""
    _outage_queues(kit, Fault.SERVER_ERROR, "a 5xx answer")


@rule
def a_refused_change_fails_visibly_and_is_not_retried(kit: Kit) -> None:
    """A change the remote refuses for good (a 4xx) fails the outbox row, with the reason,
    and is not tried again and again."""
    kit.needs(Fault.REFUSED)
    kit.remote.fail(Fault.REFUSED)
    result = kit.im("declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service",
                    kit.services[0])
    [row] = kit.rows("INC-1")
    assert row.status == "failed", (
        f"a change the remote refused for good (4xx) was left {row.status}, to be retried"
        " forever: raise ConnectorError(..., retryable=False) for what retrying cannot fix")
    assert row.last_error, "the failed change says nothing of why"
    assert result.exit_code == 3, f"im declare exited {result.exit_code}, not 3"
    kit.remote.recover()
    kit.deliver()
    assert [r.status for r in kit.rows("INC-1")] == ["failed"]


@rule
def changes_of_an_incident_reach_the_remote_in_order(kit: Kit) -> None:
    """Changes of one incident reach the remote in the order they were made, also when they
    waited out an outage."""
    incident = kit.declare()
    outage = next((f for f in (Fault.DOWN, Fault.SERVER_ERROR) if f in kit.remote.faults),
                  None)
    if outage is not None:
        kit.remote.fail(outage)
    for text in ("first", "second", "third"):
        kit.im("note", text, "--incident", incident)
    if outage is not None:
        kit.remote.recover()
        kit.deliver()
    _delivered(kit, incident, "notes made one after another")
    [link] = kit.links(incident)
    notes = [n for n in kit.remote_incident(link.remote_id).notes
             if n in ("first", "second", "third")]
    assert notes == ["first", "second", "third"], (
        f"the notes first, second, third reached the remote as {notes}: push each change"
        " when it is delivered, in the order im delivers them")


@rule
def a_retried_note_is_posted_once(kit: Kit) -> None:
    """A note retried after a crash (posted, never recorded) is on the remote once."""
    incident = kit.declare()
    with kit.crash_after_push():
        kit.im("note", "Rolling back deploy 4812", "--incident", incident)
    kit.after_lease()
    kit.deliver()
    _delivered(kit, incident, "a note retried after a crash")
    [link] = kit.links(incident)
    count = kit.remote_incident(link.remote_id).notes.count("Rolling back deploy 4812")
    assert count == 1, (
        f"a note retried after a crash is on the remote {count} times: a retry"
        " (PushRequest.attempt > 1) must find the note an earlier attempt posted (the"
        " remote's idempotency key, or the notes posted since PushRequest.queued_at)")


@rule
def a_note_whose_answer_was_lost_is_posted_once(kit: Kit) -> None:
    """A note whose answer was lost (the remote posted it, then timed out) stays queued, and
    its retry does not post it again."""
    kit.needs(Fault.LOST_ANSWER)
    incident = kit.declare()
    kit.remote.fail(Fault.LOST_ANSWER)
    kit.im("note", "Failing over to the replica", "--incident", incident)
    kit.remote.recover()
    [row] = kit.rows(incident, "note")
    assert row.status == "pending", (
        f"a note whose answer was lost was {row.status}, not kept queued: a timeout is"
        " retryable (ConnectorError(..., retryable=True))")
    kit.deliver()
    _delivered(kit, incident, "a note retried after a lost answer")
    [link] = kit.links(incident)
    count = kit.remote_incident(link.remote_id).notes.count("Failing over to the replica")
    assert count == 1, (
        f"a note retried after a lost answer is on the remote {count} times: a retry"
        " (PushRequest.attempt > 1) must find the note an earlier attempt posted (the"
        " remote's idempotency key, or the notes posted since PushRequest.queued_at)")


@rule
def resolving_resolves_every_remote_incident(kit: Kit) -> None:
    """Resolving an incident with several remote incidents (one per service) resolves each
    of them."""
    incident = kit.declare(kit.services[:2])
    kit.im("resolve", "--incident", incident, "--note", "Rolled back")
    _delivered(kit, incident, "a resolve")
    for link in kit.links(incident):
        status = kit.remote_incident(link.remote_id).status
        assert status == RemoteStatus.RESOLVED, (
            f"resolving {incident} left its remote incident {link.remote_id} ({link.service})"
            f" {status}: every remote incident of the incident is resolved")


@rule
def a_push_keeps_to_its_deadline(kit: Kit) -> None:
    """A push does not wait past its deadline for a slow remote: it raises a retryable
    ConnectorError, and the change stays queued."""
    kit.needs(Fault.SLOW)
    incident = kit.queue_declare()
    kit.remote.fail(Fault.SLOW)
    started = time.monotonic()
    kit.deliver(budget=1.0)
    took = time.monotonic() - started
    kit.remote.recover()
    assert took < 2.5, (
        f"a push waited {took:.1f} s for a slow remote though its deadline was 1 s away:"
        " give up at PushRequest.deadline with ConnectorError(..., retryable=True)")
    [row] = kit.rows(incident)
    assert row.status == "pending", (
        f"a push that ran out of time left the change {row.status}, not queued: raise"
        " ConnectorError(..., retryable=True)")
    kit.deliver()
    _delivered(kit, incident, "a change that ran out of time, delivered later")


@rule
def the_link_says_the_remote_state_in_ims_words(kit: Kit) -> None:
    """After each push the link says the remote incident's state as the remote has it, in
    im's words (im.RemoteStatus): open, acknowledged, resolved."""
    incident = kit.declare()
    for command, wanted in ((None, RemoteStatus.OPEN), ("ack", RemoteStatus.ACKNOWLEDGED),
                            ("resolve", RemoteStatus.RESOLVED)):
        if command:
            kit.im(command, "--incident", incident)
        _delivered(kit, incident, f"an {command or 'declare'}")
        [link] = kit.links(incident)
        remote = kit.remote_incident(link.remote_id).status
        assert remote == wanted, (
            f"after im's {command or 'declare'} the remote incident is {remote}, not {wanted}")
        assert link.remote_status == wanted, (
            f"after im's {command or 'declare'} the link says the remote incident is"
            f" {link.remote_status}, but the remote has it {wanted}: return the state in"
            " PushResult.link (RemoteRef(remote_status=im.RemoteStatus...))")


@rule
def every_kind_of_change_is_delivered(kit: Kit) -> None:
    """Every kind of change im makes is delivered (note, ack, severity, assign, resolve,
    reopen, close), and so is one a later im may add: a connector with nothing to do for one
    does nothing, it never fails it."""
    from im import incidents

    incident = kit.declare()
    kit.im("note", "Checking the replicas", "--incident", incident)
    kit.im("ack", "--incident", incident)
    kit.im("severity", "--incident", incident, "--sev", "SEV-1")
    if kit.assignee:
        kit.im("assign", "--incident", incident, "--to", kit.assignee)
    kit.im("resolve", "--incident", incident, "--note", "Failed over")
    kit.im("reopen", "--incident", incident)
    kit.im("close", "--incident", incident)
    store = kit.runtime.store
    with store.transaction() as tx:  # an action of a later im
        incidents.enqueue_all(kit.runtime, tx, incidents.get(kit.runtime, incident),
                              "postmortem", {"note": "Written up"}, system="")
    kit.deliver()
    for row in kit.rows(incident):
        assert row.status == "done", (
            f"im's {row.action} of {incident} was {row.status} ({row.last_error}): deliver"
            " every action; for one the remote has nothing for (or one you do not know yet),"
            " return PushResult() rather than raise; one the remote refused means the push"
            " sent what it does not take (a state or field in the wrong words): fix the push,"
            " do not hide the refusal")


@rule
def a_poll_keeps_to_its_deadline(kit: Kit) -> None:
    """A poll does not wait past its deadline for a slow remote: it gives up in time, with
    a retryable ConnectorError."""
    from im.inbound import poll

    kit.needs_pull()
    kit.needs(Fault.SLOW)
    kit.declare()
    kit.remote.fail(Fault.SLOW)
    started = time.monotonic()
    try:
        poll(kit.runtime, kit.name, deadline=started + 1.0)
    except ConnectorError as error:
        assert error.retryable, (
            f"a poll that ran out of time raised a final error ({error}): raise"
            " ConnectorError(..., retryable=True)")
    finally:
        took = time.monotonic() - started
        kit.remote.recover()
    assert took < 2.5, (
        f"a poll waited {took:.1f} s for a slow remote though its deadline was 1 s away: give"
        " up at PullRequest.deadline with ConnectorError(..., retryable=True)")


# -- inbound --------------------------------------------------------------------------------


def _declared_and_settled(kit: Kit, services: Sequence[str] | None = None) -> tuple[str, Link]:
    incident = kit.declare(services)
    kit.flush()  # im's own create coming back
    return incident, kit.links(incident)[0]


@rule
def a_responders_change_in_the_remote_reaches_im(kit: Kit) -> None:
    """A responder's acknowledgement and note in the remote, delivered by webhook, mitigate
    the incident and add the note, attributed to the connector."""
    kit.needs_inbound()
    incident, link = _declared_and_settled(kit)
    kit.responder(link.remote_id, ChangeKind.ACKNOWLEDGED)
    kit.responder(link.remote_id, ChangeKind.NOTE, "Replica lag is the cause")
    kit.flush()
    status = kit.runtime.store.get_incident(incident).status.value
    assert status == "mitigated", (
        f"a responder acknowledged the remote incident and {incident} is {status}, not"
        " mitigated: webhook_changes must give ChangeKind.ACKNOWLEDGED for its remote_id")
    notes = [e for e in kit.runtime.store.timeline(incident)
             if e.kind == "note" and e.text == "Replica lag is the cause"]
    assert len(notes) == 1 and notes[0].system == kit.name, (
        f"a responder's note in the remote reached {incident}'s timeline {len(notes)} times"
        " (once, from the connector, is right)")


@rule
def ims_own_changes_coming_back_are_echoes(kit: Kit) -> None:
    """im's own changes, coming back by webhook, are recognised as echoes (confirmed, not
    applied again)."""
    kit.needs_inbound()
    incident, _ = _declared_and_settled(kit)
    kit.im("note", "Said in im", "--incident", incident)
    kit.im("ack", "--incident", incident)
    kit.flush()
    count = kit.notes_on_timeline(incident, "Said in im")
    assert count == 1, (
        f"im's own note came back from the remote and is on the timeline {count} times: mark"
        " changes made by the user im acts as InboundChange(echo=True)")
    from_remote = [e.kind for e in kit.runtime.store.timeline(incident)
                   if e.system == kit.name and e.kind in ("acknowledged", "note")]
    assert from_remote == [], (
        f"im's own changes came back as the remote's ({from_remote}): mark them echo=True")
    assert [r.action for r in kit.rows(incident)] == ["declare", "note", "ack"], (
        "an echo went back out to the remote")


@rule
def a_stale_event_is_not_applied(kit: Kit) -> None:
    """An event older than one already applied (delivered late, out of order) does not roll
    the state back."""
    kit.needs_inbound()
    incident, link = _declared_and_settled(kit)
    kit.responder(link.remote_id, ChangeKind.ACKNOWLEDGED)
    kit.responder(link.remote_id, ChangeKind.RESOLVED)
    sent = kit.remote.deliveries()
    assert len(sent) >= 2, f"the remote sent {len(sent)} webhook(s) for an ack and a resolve"
    for delivery in reversed(sent):  # the resolve first, the ack late
        assert kit.post(delivery) == 202
        kit.process()
    status = kit.runtime.store.get_incident(incident).status.value
    [link] = kit.links(incident)
    assert (status, link.remote_status) == ("resolved", RemoteStatus.RESOLVED), (
        f"a late acknowledgement, older than the resolve already applied, left {incident}"
        f" {status} and its link {link.remote_status}: InboundChange.occurred_at must be when"
        " the remote made the change (the event's own time), not when im received it")


@rule
def a_duplicate_delivery_is_applied_once(kit: Kit) -> None:
    """The same webhook delivered twice (a sender's retry) is applied once."""
    kit.needs_inbound()
    incident, link = _declared_and_settled(kit)
    kit.responder(link.remote_id, ChangeKind.NOTE, "Said once")
    for delivery in kit.remote.deliveries():
        assert kit.post(delivery) == 202
        assert kit.post(delivery) == 202, "a delivery sent again was not acknowledged"
    kit.process()
    count = kit.notes_on_timeline(incident, "Said once")
    assert count == 1, (
        f"one note delivered twice is on the timeline {count} times: parse_webhook's"
        " delivery_id must come from what the signature covers (the event's own id), the"
        " same on every delivery of the event")


@rule
def an_unsigned_or_forged_webhook_is_refused(kit: Kit) -> None:
    """A webhook without the remote's signature, or with a body changed after signing, is
    refused (401) and changes nothing."""
    kit.needs_inbound()
    incident, link = _declared_and_settled(kit)
    kit.responder(link.remote_id, ChangeKind.NOTE, "Forged?")
    [*_, genuine] = kit.remote.deliveries()
    stored = len(kit.runtime.store.inbox(connector=kit.name))
    unsigned = kit.post(Delivery(headers={"content-type": "application/json"},
                                 body=genuine.body))
    assert unsigned == 401, (
        f"a webhook without a signature was answered {unsigned}, not refused (401):"
        " verify_webhook must check the signature over the raw body")
    forged = kit.post(Delivery(headers=genuine.headers, body=genuine.body + b" "))
    assert forged == 401, (
        f"a webhook whose body was changed after signing was answered {forged}, not refused"
        " (401): verify_webhook must check the signature over the raw body")
    assert len(kit.runtime.store.inbox(connector=kit.name)) == stored
    kit.process()
    assert kit.notes_on_timeline(incident, "Forged?") == 0
    assert kit.post(genuine) == 202, "the genuine delivery was refused"


@rule
def an_unknown_event_type_is_quarantined(kit: Kit) -> None:
    """An authentic event of a type the connector does not handle is quarantined for replay
    (im.UnhandledEventError), neither lost nor a crash."""
    kit.needs_inbound()
    incident, link = _declared_and_settled(kit)
    body = kit.remote.unknown_event(link.remote_id)
    assert kit.post(Delivery(headers=kit.remote.sign(body), body=body)) == 202
    report = kit.process()
    [row] = [r for r in kit.runtime.store.inbox(connector=kit.name) if r.body == body]
    assert row.status == "quarantined", (
        f"an event of a type the connector does not handle was {row.status}, not"
        " quarantined (lost): raise im.UnhandledEventError from webhook_changes")
    assert "UnhandledEventError" in (row.error or ""), (
        f"an event of an unknown type was quarantined for {row.error}: raise"
        " im.UnhandledEventError for it")
    assert report.quarantined == 1


@rule
def a_webhook_with_a_bad_body_is_quarantined(kit: Kit) -> None:
    """An authentic webhook whose body the connector cannot read is quarantined, and the
    events after it are applied."""
    kit.needs_inbound()
    incident, link = _declared_and_settled(kit)
    body = b'{"not": "an event of this remote"}'
    answer = kit.post(Delivery(headers=kit.remote.sign(body), body=body))
    assert answer == 202, f"an authentic webhook with a bad body was answered {answer}"
    kit.responder(link.remote_id, ChangeKind.NOTE, "After the bad one")
    kit.flush()
    [row] = [r for r in kit.runtime.store.inbox(connector=kit.name) if r.body == body]
    assert row.status == "quarantined", (
        f"a webhook the connector cannot read was {row.status}, not quarantined: raise"
        " ValueError from webhook_changes for a body it cannot read")
    assert kit.notes_on_timeline(incident, "After the bad one") == 1, (
        "the event after a bad one was not applied")


@rule
def an_incident_resolves_when_each_remote_incident_is_resolved(kit: Kit) -> None:
    """With several remote incidents (one per service), a responder resolving one leaves the
    incident open; resolving the last resolves it."""
    kit.needs_inbound()
    if not kit.per_service:
        pytest.skip("the connector makes one remote incident per im incident")
    incident, _ = _declared_and_settled(kit, kit.services[:2])
    first, second = kit.links(incident)
    kit.responder(first.remote_id, ChangeKind.RESOLVED)
    kit.flush()
    status = kit.runtime.store.get_incident(incident).status.value
    assert status != "resolved", (
        f"one of {incident}'s two remote incidents was resolved and so was {incident}: each"
        " change must name its own remote incident (InboundChange.remote_id)")
    kit.responder(second.remote_id, ChangeKind.RESOLVED)
    kit.flush()
    status = kit.runtime.store.get_incident(incident).status.value
    assert status == "resolved", (
        f"both remote incidents of {incident} were resolved and it is {status}: each change"
        " must name its own remote incident (InboundChange.remote_id)")


@rule
def unacknowledging_one_remote_incident_leaves_the_others_acknowledgement(kit: Kit) -> None:
    """With several remote incidents (one per service), all acknowledged, a responder
    unacknowledging one (back to open) leaves the incident mitigated: another is still
    acknowledged."""
    kit.needs_inbound()
    if not kit.per_service:
        pytest.skip("the connector makes one remote incident per im incident")
    incident, _ = _declared_and_settled(kit, kit.services[:2])
    first, second = kit.links(incident)
    kit.responder(first.remote_id, ChangeKind.ACKNOWLEDGED)
    kit.responder(second.remote_id, ChangeKind.ACKNOWLEDGED)
    kit.flush()
    status = kit.runtime.store.get_incident(incident).status.value
    assert status == "mitigated", (
        f"a responder acknowledged both remote incidents of {incident} and it is {status}, not"
        " mitigated: webhook_changes must give ChangeKind.ACKNOWLEDGED for each remote_id")
    kit.responder(second.remote_id, ChangeKind.UNACKNOWLEDGED)
    kit.flush()
    status = kit.runtime.store.get_incident(incident).status.value
    assert status == "mitigated", (
        f"one of {incident}'s two acknowledged remote incidents went back to open and"
        f" {incident} is {status}, not mitigated (the other is still acknowledged): an"
        " unacknowledge must name only its own remote incident (InboundChange.remote_id)")
    states = {link.remote_id: link.remote_status for link in kit.links(incident)}
    assert states == {first.remote_id: RemoteStatus.ACKNOWLEDGED,
                      second.remote_id: RemoteStatus.OPEN}, (
        f"{second.remote_id} went back to open, {first.remote_id} is still acknowledged, and"
        f" im's links say {states}: give the unacknowledge (ChangeKind.UNACKNOWLEDGED, or the"
        " state it leads to) for the remote incident it happened to")


@rule
def a_webhook_links_the_incident_a_lost_answer_made(kit: Kit) -> None:
    """A remote incident im created whose answer was lost is linked to its im incident when
    its webhook comes (by the idempotency key it carries), never made a second im incident."""
    kit.needs_inbound()
    kit.needs(Fault.LOST_ANSWER)
    kit.remote.fail(Fault.LOST_ANSWER)
    incident = kit.declare()
    kit.remote.recover()
    kit.flush()
    _linked_once(kit, incident, "its webhook")


def _linked_once(kit: Kit, incident: str, how: str) -> None:
    made = [i.id for i in kit.runtime.store.list_incidents()]
    assert made == [incident], (
        f"a remote incident im created, whose answer was lost, became another im incident"
        f" ({', '.join(i for i in made if i != incident)}) when {how} told of it: set"
        " InboundChange.correlation_id (and service) from the idempotency key the remote"
        " incident carries (im.parse_idempotency_key)")
    assert kit.links(incident), (
        f"{how} told of the remote incident {incident}'s create made, and im did not link it:"
        " set InboundChange.correlation_id from the idempotency key it carries")
    kit.deliver()
    _delivered(kit, incident, "a create retried after its remote incident was linked")
    assert len(kit.links(incident)) == 1


@rule
def a_poll_brings_a_responders_change(kit: Kit) -> None:
    """A poll finds what a responder changed in the remote (the safety net for a webhook
    that never came)."""
    kit.needs_pull()
    incident = kit.declare()
    [link] = kit.links(incident)
    kit.responder(link.remote_id, ChangeKind.ACKNOWLEDGED)
    kit.poll()
    status = kit.runtime.store.get_incident(incident).status.value
    assert status == "mitigated", (
        f"a responder acknowledged the remote incident, a poll came, and {incident} is"
        f" {status}, not mitigated: pull must report the remote incident's state")
    kit.responder(link.remote_id, ChangeKind.RESOLVED)
    kit.poll()
    status = kit.runtime.store.get_incident(incident).status.value
    assert status == "resolved", (
        f"a responder resolved the remote incident, a poll came, and {incident} is {status}")


@rule
def a_poll_links_the_incident_a_lost_answer_made(kit: Kit) -> None:
    """A remote incident im created whose answer was lost is linked to its im incident by a
    poll (by the idempotency key it carries), never made a second im incident."""
    kit.needs_pull()
    kit.needs(Fault.LOST_ANSWER)
    kit.remote.fail(Fault.LOST_ANSWER)
    incident = kit.declare()
    kit.remote.recover()
    kit.poll()
    _linked_once(kit, incident, "a poll")


@rule
def a_poll_takes_ims_own_changes_for_known(kit: Kit) -> None:
    """A poll reporting what im itself did (its create, ack and resolve) changes nothing and
    makes no im incident."""
    kit.needs_pull()
    incident = kit.declare()
    kit.im("ack", "--incident", incident)
    kit.im("resolve", "--incident", incident)
    _delivered(kit, incident, "im's own changes")
    before = len(kit.runtime.store.timeline(incident))
    outcomes = kit.poll()
    assert [i.id for i in kit.runtime.store.list_incidents()] == [incident], (
        f"a poll made an im incident of a remote incident im made ({outcomes}): set"
        " InboundChange.correlation_id from the idempotency key, and report the state im's"
        " link already has")
    changed = [e.text for e in kit.runtime.store.timeline(incident)[before:]]
    assert kit.runtime.store.get_incident(incident).status.value == "resolved" and not [
        o for o in outcomes if o in ("applied", "created")], (
        f"a poll reporting im's own changes applied them again ({outcomes}; {changed}):"
        " report the remote state with when it changed (occurred_at) and when the poll read"
        " it (observed_at)")


# -- running the rules ----------------------------------------------------------------------


class MovingClock(FakeClock):
    """The wall clock, which a rule can move on (`advance`) past a lease: a remote's own
    times (its events, what a poll lists) then make sense to im."""

    def __init__(self) -> None:
        super().__init__(datetime.now(UTC))
        self._offset = self.now - datetime.now(UTC)

    def __call__(self) -> datetime:
        self.now = datetime.now(UTC) + self._offset
        return self.now

    def advance(self, **delta: float) -> datetime:
        self._offset += timedelta(**delta)
        return self()


def make_kit(home: Path, *, connector_type: str, settings: dict[str, Any],
             plugins: Sequence[object], remote: RemoteAdapter, name: str = "under-test",
             services: Sequence[str] = ("api", "payments"), assignee: str | None = None) -> Kit:
    """An im on `home` with the connector added as `im connector add` adds it."""
    clock = MovingClock()
    runtime = make_runtime(home, plugins=plugins, clock=clock, user="alice")
    result = run_cli(runtime, ["connector", "add", connector_type, name, "--config",
                               json.dumps(settings)])
    assert result.exit_code == 0, f"im connector add failed: {result.output}"
    return Kit(runtime, name, remote, clock, services, assignee)


class ConnectorContract:
    """Subclass it as `Test...` in your tests: every rule of RULES is a test of it.

    Set `connector_type`; give a `remote` fixture (a RemoteAdapter), `plugins(remote)` (the
    plugins im loads: your module) and `settings(remote)` (what `im connector add` is given).
    `services` are the im services incidents are declared on (two are used); `assignee`, a
    person the remote knows, whom `im assign` assigns (None: no assignment is made)."""

    connector_type: ClassVar[str]
    services: ClassVar[Sequence[str]] = ("api", "payments")
    assignee: ClassVar[str | None] = None

    def plugins(self, remote: RemoteAdapter) -> Sequence[object]:
        raise NotImplementedError

    def settings(self, remote: RemoteAdapter) -> dict[str, Any]:
        raise NotImplementedError

    @pytest.fixture
    def remote(self) -> RemoteAdapter:
        raise NotImplementedError("give your ConnectorContract a `remote` fixture")

    @pytest.fixture
    def kit(self, tmp_path: Path, remote: RemoteAdapter) -> Iterator[Kit]:
        kit = make_kit(tmp_path / "home", connector_type=self.connector_type,
                       settings=self.settings(remote), plugins=self.plugins(remote),
                       remote=remote, services=self.services, assignee=self.assignee)
        yield kit
        kit.runtime.store.close()


def _as_test(function: Rule) -> Callable[[Any, Kit], None]:
    def test(self: Any, kit: Kit) -> None:
        function(kit)

    test.__name__ = f"test_{function.__name__}"
    test.__doc__ = function.__doc__
    return test


for _rule in RULES:
    setattr(ConnectorContract, f"test_{_rule.__name__}", _as_test(_rule))


# -- the fake connector's adapter ----------------------------------------------------------


class FakeRemoteAdapter(RemoteAdapter):
    """The adapter to im.testing's FakeRemote (FakeConnector, FakeWebhookConnector)."""

    faults = frozenset(Fault)
    STATES = {"open": RemoteStatus.OPEN, "acknowledged": RemoteStatus.ACKNOWLEDGED,
              "resolved": RemoteStatus.RESOLVED}

    def __init__(self, remote: FakeRemote | None = None) -> None:
        self.fake = remote or FakeRemote()
        self._seen = 0

    def incidents(self) -> list[RemoteIncident]:
        return [RemoteIncident(remote_id=remote_id, status=self.STATES.get(str(i["status"])),
                               notes=list(i["notes"]))
                for remote_id, i in self.fake.incidents.items()]

    def fail(self, fault: Fault) -> None:
        self.fake.fault = fault.value

    def recover(self) -> None:
        self.fake.fault = None

    def change(self, remote_id: str, action: ChangeKind, *, text: str = "") -> None:
        if action == ChangeKind.NOTE:
            self.fake.change(remote_id, note=text)
        elif action == ChangeKind.UNACKNOWLEDGED:  # back to open, said as an unacknowledge
            self.fake.incidents[remote_id]["status"] = "open"
            self.fake.emit(remote_id, "incident.unacknowledged", "responder@fake.example")
        else:
            self.fake.change(remote_id, status=action.value)

    def deliveries(self) -> list[Delivery]:
        sent = self.fake.sent[self._seen:]
        self._seen = len(self.fake.sent)
        return [Delivery(headers=headers, body=body) for headers, body in sent]

    def sign(self, body: bytes) -> dict[str, str]:
        return self.fake.sign(body)

    def unknown_event(self, remote_id: str) -> bytes:
        return msgspec.json.encode({
            "id": "E-new", "type": "incident.teleported", "incident": remote_id,
            "at": self.fake.now().isoformat(), "actor": "responder@fake.example"})


def rules_markdown() -> str:
    """The rules as docs/testing-plugins.md lists them: one line each, from their docstrings."""
    return "".join(f"- `{rule.__name__}`: {' '.join((rule.__doc__ or '').split())}\n"
                   for rule in RULES)
