"""One running sandbox: its account, clock, settings, faults, logs and webhook deliveries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec

from im_pagerduty.sandbox.config import SandboxConfig
from im_pagerduty.sandbox.delivery import Target, WebhookDeliveries
from im_pagerduty.sandbox.events import EventMaker
from im_pagerduty.sandbox.faults import Faults, FaultSwitch
from im_pagerduty.sandbox.ids import event_id
from im_pagerduty.sandbox.incidents import (
    Activity,
    Announcement,
    IncidentChanged,
    Incidents,
    acting_client,
)
from im_pagerduty.sandbox.links import Links
from im_pagerduty.sandbox.ratelimit import KeyRateLimiter
from im_pagerduty.sandbox.render import Renderer
from im_pagerduty.sandbox.requestlog import RequestLog
from im_pagerduty.sandbox.seed import SeedName, seed
from im_pagerduty.sandbox.store import Store
from im_pagerduty.sandbox.times import Clock


class Sandbox:
    def __init__(self, config: SandboxConfig, base_url: str = "http://127.0.0.1") -> None:
        if not config.api_keys:
            raise ValueError("the sandbox needs at least one API key")
        self.config = config
        self.base_url = base_url
        # set when the server begins to stop: requests held by injected latency are answered
        self._stopping = asyncio.Event()
        self.faults = FaultSwitch()
        self.requests = RequestLog(config.request_log_size)
        self.webhooks = WebhookDeliveries(
            store=lambda: self.store,
            settings=lambda: self.settings,
            faults=lambda: self.faults.current,
            clock=lambda: self.clock,
        )
        self._fill(config.seed)

    def _fill(self, seed_name: SeedName) -> None:
        self.settings = self.config
        self.seed_name = seed_name
        self.clock = Clock()
        self.store = Store()
        seed(self.store, seed_name, self.clock.now())
        self.limiter = KeyRateLimiter(
            self.settings.rate_limit, self.settings.rate_limit_window_seconds
        )
        self.operation_limiters = _operation_limiters(self.settings)
        self.incidents = Incidents(self.store, self.clock, self._announce)

    async def hold(self, seconds: float) -> None:
        """Wait as an injected latency does: `seconds`, or until the server begins to stop
        (a held request is then answered at once rather than cut off mid-way)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def stopping(self) -> None:
        self._stopping.set()

    def reset(self, seed_name: SeedName | None = None) -> None:
        """Back to a freshly started sandbox: data, clock, settings, faults and logs."""
        self.webhooks.clear()
        self.requests.clear()
        self.set_faults(Faults())
        self._fill(seed_name or self.config.seed)

    def apply_settings(self, settings: SandboxConfig) -> None:
        limits_changed = (settings.rate_limit, settings.rate_limit_window_seconds) != (
            self.settings.rate_limit,
            self.settings.rate_limit_window_seconds,
        )
        operations_changed = settings.operation_limits != self.settings.operation_limits
        self.settings = settings
        if limits_changed:
            self.limiter = KeyRateLimiter(settings.rate_limit, settings.rate_limit_window_seconds)
        if operations_changed:
            self.operation_limiters = _operation_limiters(settings)

    def set_faults(self, faults: Faults) -> None:
        self.faults.set(faults)
        self.webhooks.faults_changed()

    @property
    def links(self) -> Links:
        return Links(self.base_url, self.settings.web_url)

    def renderer(self) -> Renderer:
        return Renderer(self.store, self.links)

    def event_maker(self) -> EventMaker:
        return EventMaker(self.store, self.links)

    @property
    def account_owner_id(self) -> str:
        """The user an account API key acts as where no `From` is given (webhook pings)."""
        return next(iter(self.store.users))

    def _announce(self, announcement: Announcement) -> None:
        maker = self.event_maker()
        incident = announcement.incident
        via = acting_client.get()  # the integration the request stands for, if any
        if isinstance(announcement, IncidentChanged):
            event = maker.incident_event(
                event_id(),
                announcement.event_type,
                incident,
                announcement.agent_user_id,
                announcement.at,
                via,
            )
        elif isinstance(announcement, Activity):
            if via and announcement.client is None:
                announcement = msgspec.structs.replace(announcement, client=via)
            event = maker.activity_event(event_id(), announcement)
        else:
            event = maker.note_event(
                event_id(), announcement.note, incident, announcement.at, via
            )
        service = self.store.services.get(incident.service_id)
        self.webhooks.publish(
            event,
            Target(
                resource_id=incident.id,
                service_id=incident.service_id,
                team_ids=service.team_ids if service else (),
            ),
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Background work for the server's lifetime: deliveries and timed escalation."""
        await self.webhooks.start()
        ticker = asyncio.get_running_loop().create_task(self._escalate_forever())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await self.webhooks.stop()

    async def _escalate_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.escalation_check_seconds)
            self.incidents.escalate_due()


def _operation_limiters(settings: SandboxConfig) -> dict[str, KeyRateLimiter]:
    return {operation: KeyRateLimiter(limit.limit, limit.window_seconds)
            for operation, limit in settings.operation_limits.items()}
