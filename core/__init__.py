"""im: self-hosted incident management. This module is the public API for plugin authors."""

from im.connectors import (
    AssigneeRequest,
    Check,
    CheckRequest,
    Connector,
    ConnectorSettings,
    InboundChange,
    MapOutboundRequest,
    OncallRequest,
    OncallResult,
    PullRequest,
    PullResult,
    PushRequest,
    PushResult,
    RemoteEvent,
    RemoteIncidentReport,
    RemoteIncidentRequest,
    RemoteRef,
    SlaPolicyRequest,
    SyncDirection,
    WebhookEvent,
    WebhookRequest,
    WebhookSetupRequest,
    WebhookSetupResult,
    WebhookTestEvent,
    WebhookTestRequest,
    parse_duration,
    prompt,
    secret,
)
from im.errors import ConnectorError, ImError, InvalidInputError, NotFoundError, TransitionError
from im.hookspecs import hookimpl
from im.models import Action, Incident, Link, Origin, Severity, Status, TimelineEvent
from im.runtime import Runtime

__version__ = "0.1.0"

__all__ = [
    "Action", "AssigneeRequest", "Check", "CheckRequest", "Connector", "ConnectorError", "ConnectorSettings",
    "ImError", "InboundChange", "Incident", "InvalidInputError", "Link",
    "MapOutboundRequest", "NotFoundError", "OncallRequest", "OncallResult",
    "Origin", "PullRequest", "PullResult", "PushRequest", "PushResult", "RemoteEvent", "RemoteIncidentReport", "RemoteIncidentRequest", "RemoteRef", "Runtime",
    "SlaPolicyRequest",
    "Severity", "Status", "SyncDirection", "TimelineEvent", "TransitionError", "WebhookEvent",
    "WebhookRequest", "WebhookSetupRequest", "WebhookSetupResult", "WebhookTestEvent",
    "WebhookTestRequest", "hookimpl", "parse_duration", "prompt", "secret",
]
