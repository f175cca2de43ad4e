"""im: self-hosted incident management. This module is the public API for plugin authors.

The names below load on first use (PEP 562), so `import im` and `from im import hookimpl`
(what every plugin does when `im` starts) stay cheap: msgspec and the connector API are
imported only when something asks for them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing before it is needed

__version__ = "0.1.0"

# Every public name and the module that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys((
        "AssigneeRequest", "Check", "CheckRequest", "Connector", "ConnectorSettings",
        "InboundChange", "MapOutboundRequest", "OncallRequest", "OncallResult", "PullRequest",
        "PullResult", "PushRequest", "PushResult", "RemoteAccount", "RemoteEvent",
        "RemoteIncidentReport", "RemoteIncidentRequest", "RemoteRef", "SettingsCheckRequest",
        "SettingsCheckResult", "SlaPolicyRequest",
        "WebhookEvent", "WebhookRequest", "WebhookSetupRequest", "WebhookSetupResult",
        "WebhookTestEvent", "WebhookTestRequest", "parse_duration", "prompt", "secret",
    ), "im.connectors"),
    **dict.fromkeys(("ConnectorError", "ImError", "InvalidInputError", "NotFoundError",
                     "TransitionError"), "im.errors"),
    "hookimpl": "im.hookspecs",
    **dict.fromkeys(("Action", "Incident", "Link", "Origin", "Severity", "Status",
                     "SyncDirection", "TimelineEvent"), "im.models"),
    "Runtime": "im.runtime",
}

__all__ = [
    "Action", "AssigneeRequest", "Check", "CheckRequest", "Connector", "ConnectorError", "ConnectorSettings",
    "ImError", "InboundChange", "Incident", "InvalidInputError", "Link",
    "MapOutboundRequest", "NotFoundError", "OncallRequest", "OncallResult",
    "Origin", "PullRequest", "PullResult", "PushRequest", "PushResult", "RemoteAccount",
    "RemoteEvent", "RemoteIncidentReport", "RemoteIncidentRequest", "RemoteRef", "Runtime",
    "SettingsCheckRequest", "SettingsCheckResult", "SlaPolicyRequest",
    "Severity", "Status", "SyncDirection", "TimelineEvent", "TransitionError", "WebhookEvent",
    "WebhookRequest", "WebhookSetupRequest", "WebhookSetupResult", "WebhookTestEvent",
    "WebhookTestRequest", "hookimpl", "parse_duration", "prompt", "secret",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:  # not ours: `from im import incidents` then imports the submodule
        raise AttributeError(f"module 'im' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # what type checkers and editors see: the plain imports
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
        RemoteAccount,
        RemoteEvent,
        RemoteIncidentReport,
        RemoteIncidentRequest,
        RemoteRef,
        SettingsCheckRequest,
        SettingsCheckResult,
        SlaPolicyRequest,
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
    from im.errors import (
        ConnectorError,
        ImError,
        InvalidInputError,
        NotFoundError,
        TransitionError,
    )
    from im.hookspecs import hookimpl
    from im.models import (
        Action,
        Incident,
        Link,
        Origin,
        Severity,
        Status,
        SyncDirection,
        TimelineEvent,
    )
    from im.runtime import Runtime
