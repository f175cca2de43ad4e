"""`GET /metrics`: Prometheus text, computed from the database when scraped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from im.runtime import Runtime


class StoreCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        conn = self.runtime.store.conn
        incidents = GaugeMetricFamily("im_incidents", "Incidents by status and severity",
                                      labels=["status", "severity"])
        for status, severity, count in conn.execute(
                "SELECT status, severity, count(*) FROM incidents GROUP BY status, severity"):
            incidents.add_metric([status, severity], count)
        yield incidents
        outbox = GaugeMetricFamily("im_outbox_rows", "Outbound changes by connector and state",
                                   labels=["connector", "status"])
        for connector, status, count in conn.execute(
                "SELECT connector, status, count(*) FROM outbox GROUP BY connector, status"):
            outbox.add_metric([connector, status], count)
        yield outbox
        inbox = GaugeMetricFamily("im_inbox_events", "Inbound events by connector and state",
                                  labels=["connector", "status"])
        for connector, status, count in conn.execute(
                "SELECT connector, status, count(*) FROM inbox GROUP BY connector, status"):
            inbox.add_metric([connector, status], count)
        yield inbox


class ServerMetrics:
    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(runtime))
        self.webhooks = Counter("im_webhook_requests", "Webhook requests by connector and"
                                " outcome", ["connector", "outcome"], registry=self.registry)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
