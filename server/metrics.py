"""`GET /metrics`: Prometheus text, computed from the database when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from im.runtime import Runtime

if TYPE_CHECKING:
    from im.storage import Repositories


class StoreCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    # (name, help, labels, the label values then the count of each, read from the store)
    TABLE_GAUGES: tuple[tuple[str, str, list[str], Callable[[Repositories], Any]], ...] = (
        ("im_incidents", "Incidents by status and severity", ["status", "severity"],
         lambda reads: reads.incidents.count_by_status_and_severity()),
        ("im_outbox_rows", "Outbound changes by connector and state", ["connector", "status"],
         lambda reads: reads.outbox.count_by_connector_and_status()),
        ("im_inbox_events", "Inbound events by connector and state", ["connector", "status"],
         lambda reads: reads.inbox.count_by_connector_and_status()),
    )

    def collect(self) -> Iterator[Any]:
        reads = self.runtime.store.read()
        for name, text, labels, counts in self.TABLE_GAUGES:
            family = GaugeMetricFamily(name, text, labels=labels)
            for *values, count in counts(reads):
                family.add_metric(values, count)
            yield family
        yield from self._connectors()

    def _connectors(self) -> Iterator[Any]:
        """The figures of `im metrics connector` and `im connector status`, per connector."""
        from im import observability

        gauges = {
            "incidents": ("im_connector_incidents", "Incidents linked to the connector"),
            "success": ("im_connector_sync_success_ratio",
                        "Delivered changes over delivery attempts, last 24 h"),
            "sync_time": ("im_connector_sync_seconds_average",
                          "Average time from a local change to its delivery, last 24 h"),
            "calls": ("im_connector_api_calls_24h", "API calls made, last 24 h"),
            "errors": ("im_connector_sync_errors_24h",
                       "Failed API calls and quarantined events, last 24 h"),
            "rate": ("im_connector_rate_limit_usage_ratio",
                     "API calls in the last minute over the rate limit"),
            "events": ("im_connector_webhook_events_24h", "Webhook events received, last 24 h"),
            "queued": ("im_connector_queued_changes", "Changes waiting to be delivered"),
            "failed": ("im_connector_failed_changes", "Changes that could not be delivered"),
        }
        families = {key: GaugeMetricFamily(name, text, labels=["connector"])
                    for key, (name, text) in gauges.items()}
        for record in self.runtime.store.list_connectors():
            try:
                figures = observability.metrics(self.runtime, record.name)
                state = observability.status(self.runtime, record.name)
            except Exception:  # a broken connector must not break the scrape
                continue
            values = {
                "incidents": figures.total_incidents, "success": figures.sync_success_rate,
                "sync_time": figures.average_sync_seconds, "calls": figures.api_calls_24h,
                "errors": state.sync_errors_24h, "rate": figures.rate_limit_usage,
                "events": figures.webhook_events_24h, "queued": state.queued,
                "failed": state.failed,
            }
            for key, value in values.items():
                if value is not None:
                    families[key].add_metric([record.name], float(value))
        yield from families.values()


class ServerMetrics:
    def __init__(self, runtime: Runtime) -> None:
        from im.server.workers import metrics_collector

        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(runtime))
        # In a worker of `im serve --workers N`, every worker counts in files that the
        # collector sums, so a scrape answered by any worker shows the whole server's counts.
        summed = metrics_collector(self.registry)
        self.webhooks = Counter("im_webhook_requests", "Webhook requests by connector and"
                                " outcome", ["connector", "outcome"],
                                registry=None if summed else self.registry)
        # Refusals by reason alone: names from the URL never become labels.
        self.refusals = Counter("im_webhook_refused", "Webhook requests refused, by reason"
                                " (whatever connector name they gave)", ["reason"],
                                registry=None if summed else self.registry)
        self.throttled = Counter("im_webhook_refused_throttled", "Refused webhook requests"
                                 " answered 429: over the limit of refused requests",
                                 registry=None if summed else self.registry)

        self._webhook_counts: dict[tuple[str, str], Any] = {}
        self._refusal_counts: dict[str, Any] = {}

    def webhook(self, connector: str, outcome: str) -> None:
        """Count a webhook request to a configured connector (the labelled child is looked up
        once per pair; the caller never passes a name that is not a configured connector's)."""
        child = self._webhook_counts.get((connector, outcome))
        if child is None:
            child = self._webhook_counts[(connector, outcome)] = self.webhooks.labels(
                connector, outcome)
        child.inc()

    def refused(self, reason: str, throttled: bool) -> None:
        """Count a refused webhook request (`reason` is one of a few fixed words)."""
        child = self._refusal_counts.get(reason)
        if child is None:
            child = self._refusal_counts[reason] = self.refusals.labels(reason)
        child.inc()
        if throttled:
            self.throttled.inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
