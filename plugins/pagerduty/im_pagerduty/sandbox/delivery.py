"""Webhooks v3 delivery as PagerDuty does it.

- one event per POST, signed per subscription, `X-Webhook-Id` the same on every attempt;
- in order per subscription and incident: a queue per (subscription, resource) drained by one
  task, so a delivery being retried holds back later events of that incident only;
- retried on timeouts, connection errors, 5xx and 429; dropped on any other answer;
- three drops in a row disable the subscription and discard its queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

import httpx
import msgspec

from im_pagerduty.sandbox.config import SandboxConfig
from im_pagerduty.sandbox.events import Event, encode
from im_pagerduty.sandbox.faults import Faults
from im_pagerduty.sandbox.ids import webhook_id
from im_pagerduty.sandbox.model import WebhookSubscription
from im_pagerduty.sandbox.signing import signature_header
from im_pagerduty.sandbox.store import Store
from im_pagerduty.sandbox.times import Clock, format_event_time

USER_AGENT = "PagerDuty-Webhook/V3.0"
DROPS_BEFORE_DISABLE = 3

Outcome = Literal["delivered", "retrying", "dropped", "discarded", "duplicate"]


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    webhook_id: str
    subscription_id: str
    event_id: str
    event_type: str
    resource_id: str
    attempt: int
    at: str
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None


class PublishedEvent(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    event_type: str
    resource_id: str
    occurred_at: str
    subscription_ids: tuple[str, ...]
    body: msgspec.Raw


class _Pending(msgspec.Struct, kw_only=True):
    webhook_id: str
    subscription_id: str
    event_id: str
    event_type: str
    resource_id: str
    body: bytes
    cancelled: bool = False


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """What a subscription filter is matched against."""

    resource_id: str
    service_id: str | None = None
    team_ids: tuple[str, ...] = ()


class WebhookDeliveries:
    def __init__(
        self,
        *,
        store: Callable[[], Store],
        settings: Callable[[], SandboxConfig],
        faults: Callable[[], Faults],
        clock: Callable[[], Clock],
        log_size: int = 100_000,
    ) -> None:
        self._store = store
        self._settings = settings
        self._faults = faults
        self._clock = clock
        self._queues: dict[tuple[str, str], deque[_Pending]] = {}
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.attempts: deque[DeliveryAttempt] = deque(maxlen=log_size)
        self.published: deque[PublishedEvent] = deque(maxlen=log_size)
        self._client: httpx.AsyncClient | None = None
        self._unpaused: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None

    # lifecycle, on the server's event loop

    async def start(self) -> None:
        # trust_env=False: a proxy from the environment must never see loopback deliveries.
        self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self._unpaused = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.faults_changed()

    async def stop(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._client:
            await self._client.aclose()

    def clear(self) -> None:
        """Forget everything: queued deliveries are abandoned without a trace in the log."""
        for task in self._workers.values():
            task.cancel()
        self._workers.clear()
        self._queues.clear()
        if self._idle:
            self._idle.set()
        self.attempts.clear()
        self.published.clear()

    def faults_changed(self) -> None:
        if self._unpaused is None:
            return
        if self._faults().webhooks == "paused":
            self._unpaused.clear()
        else:
            self._unpaused.set()

    # publishing

    def publish(self, event: Event, target: Target) -> list[str]:
        """Queue `event` for every subscription that wants it; returns their ids."""
        body = encode(event)
        chosen = [
            sub
            for sub in self._store().subscriptions.values()
            if sub.active
            and not sub.temporarily_disabled
            and event.event_type in sub.events
            and _filter_matches(sub, target)
        ]
        for sub in chosen:
            self._enqueue(sub, event, target.resource_id, body)
        self._remember(event, target, body, chosen)
        return [sub.id for sub in chosen]

    def ping(self, sub: WebhookSubscription, event: Event) -> None:
        body = encode(event)
        self._enqueue(sub, event, sub.id, body)
        self._remember(event, Target(resource_id=sub.id), body, [sub])

    def _remember(
        self, event: Event, target: Target, body: bytes, subs: list[WebhookSubscription]
    ) -> None:
        self.published.append(
            PublishedEvent(
                event_id=event.id,
                event_type=event.event_type,
                resource_id=target.resource_id,
                occurred_at=event.occurred_at,
                subscription_ids=tuple(sub.id for sub in subs),
                body=msgspec.Raw(body),
            )
        )

    def _enqueue(
        self, sub: WebhookSubscription, event: Event, resource_id: str, body: bytes
    ) -> None:
        pending = _Pending(
            webhook_id=webhook_id(),
            subscription_id=sub.id,
            event_id=event.id,
            event_type=event.event_type,
            resource_id=resource_id,
            body=body,
        )
        key = (sub.id, resource_id)
        self._queues.setdefault(key, deque()).append(pending)
        if key not in self._workers:
            if self._idle:
                self._idle.clear()
            self._workers[key] = asyncio.get_running_loop().create_task(self._drain(key))

    # delivering

    async def _drain(self, key: tuple[str, str]) -> None:
        queue = self._queues[key]
        try:
            while queue:
                pending = queue[0]
                if not pending.cancelled:
                    await self._deliver(pending)
                queue.popleft()
        finally:
            # After a reset, a new worker may already own this key: leave it alone.
            if self._workers.get(key) is asyncio.current_task():
                del self._workers[key]
            if not queue and self._queues.get(key) is queue:
                del self._queues[key]
            if not self._workers and self._idle:
                self._idle.set()

    def _log(
        self,
        pending: _Pending,
        attempt: int,
        outcome: Outcome,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        self.attempts.append(
            DeliveryAttempt(
                webhook_id=pending.webhook_id,
                subscription_id=pending.subscription_id,
                event_id=pending.event_id,
                event_type=pending.event_type,
                resource_id=pending.resource_id,
                attempt=attempt,
                at=format_event_time(self._clock().now()),
                outcome=outcome,
                status_code=status,
                error=error,
            )
        )

    async def _deliver(self, pending: _Pending) -> None:
        attempt = 0
        while True:
            assert self._unpaused is not None
            await self._unpaused.wait()
            sub = self._store().subscriptions.get(pending.subscription_id)
            if pending.cancelled or sub is None or sub.temporarily_disabled:
                self._log(pending, attempt, "discarded", error="subscription deleted or disabled")
                return
            attempt += 1
            status, error = await self._send(pending, sub)
            if status is not None and 200 <= status < 300:
                self._log(pending, attempt, "delivered", status)
                self._count_drop(sub.id, reset=True)
                if self._faults().webhook_duplicates:
                    # At-least-once: the same webhook again, as PagerDuty may send it.
                    dup_status, dup_error = await self._send(pending, sub)
                    self._log(pending, attempt + 1, "duplicate", dup_status, dup_error)
                return
            retryable = status is None or status == 429 or status >= 500
            delays = self._settings().webhook_retry_delays
            if not retryable or attempt > len(delays):
                reason = error or f"answered {status}"
                if retryable:
                    reason += "; retries exhausted"
                self._log(pending, attempt, "dropped", status, reason)
                self._count_drop(sub.id, reset=False)
                return
            self._log(pending, attempt, "retrying", status, error)
            await asyncio.sleep(delays[attempt - 1])

    async def _send(
        self, pending: _Pending, sub: WebhookSubscription
    ) -> tuple[int | None, str | None]:
        if self._faults().webhooks == "failing":
            return None, "injected delivery failure"
        secrets = [sub.secret]
        if sub.previous_secret and (
            sub.previous_secret_until is None or self._clock().now() < sub.previous_secret_until
        ):
            secrets.append(sub.previous_secret)
        headers = {h.name: h.value for h in sub.custom_headers}
        headers.update(
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-PagerDuty-Signature": signature_header(secrets, pending.body),
                "X-Webhook-Id": pending.webhook_id,
                "X-Webhook-Subscription": sub.id,
            }
        )
        assert self._client is not None
        started = time.monotonic()
        try:
            response = await self._client.post(
                sub.url,
                content=pending.body,
                headers=headers,
                timeout=self._settings().webhook_timeout_seconds,
            )
        except httpx.TimeoutException:
            return None, f"timed out after {time.monotonic() - started:.2f}s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None

    def _count_drop(self, subscription_id: str, *, reset: bool) -> None:
        store = self._store()
        sub = store.subscriptions.get(subscription_id)
        if sub is None:
            return
        drops = 0 if reset else sub.consecutive_drops + 1
        if drops == sub.consecutive_drops:
            return
        disable = drops >= DROPS_BEFORE_DISABLE
        store.put_subscription(
            msgspec.structs.replace(
                sub,
                consecutive_drops=drops,
                temporarily_disabled=disable or sub.temporarily_disabled,
            )
        )
        if disable:
            for (sub_id, _), queue in self._queues.items():
                if sub_id == subscription_id:
                    for pending in queue:
                        pending.cancelled = True

    # for tests

    def pending(self) -> int:
        return sum(1 for queue in self._queues.values() for p in queue if not p.cancelled)

    async def wait_idle(self, timeout: float) -> bool:
        assert self._idle is not None
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


def _filter_matches(sub: WebhookSubscription, target: Target) -> bool:
    if sub.filter_type == "account_reference":
        return True
    if sub.filter_type == "service_reference":
        return target.service_id is not None and target.service_id == sub.filter_id
    return sub.filter_id in target.team_ids
