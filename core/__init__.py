"""im: self-hosted incident management. This module is the public API for plugin authors.

The names below load on first use (PEP 562), so `import im` and `from im import hookimpl`
(what every plugin does when `im` starts) stay cheap: msgspec and the connector API are
imported only when something asks for them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing before it is needed

__version__ = "0.1.0"

# Every public name and the module that defines it: what a plugin imports from im (from
# nowhere else but im.testing, in its tests).
_EXPORTS: dict[str, str] = {
    # the connector protocol: the class, its settings, and the structs its methods exchange
    **dict.fromkeys((
        "AssigneeRequest", "ChangeKind", "Check", "CheckRequest", "Connector",
        "ConnectorSettings", "InboundChange", "MapOutboundRequest", "OncallRequest",
        "OncallResult", "PullRequest", "PullResult", "PushRequest", "PushResult",
        "RemoteAccount", "RemoteEvent", "RemoteIncidentReport", "RemoteIncidentRequest",
        "RemoteRef", "RemoteStatus", "SettingsCheckRequest", "SettingsCheckResult",
        "SlaPolicyRequest", "WebhookEvent", "WebhookRequest", "WebhookSetupRequest",
        "WebhookSetupResult", "WebhookTestEvent", "WebhookTestRequest", "idempotency_key",
        "parse_duration", "parse_idempotency_key", "prompt", "secret",
    ), "im.connectors"),
    **dict.fromkeys(("ConnectorError", "ImError", "InvalidInputError", "NotFoundError",
                     "TransitionError", "UnhandledEventError"), "im.errors"),
    "hookimpl": "im.hookspecs",
    **dict.fromkeys(("Action", "Incident", "Link", "Origin", "Severity", "Status",
                     "SyncDirection", "TimelineEvent"), "im.models"),
    "Runtime": "im.runtime",
    # im's own rules, for a plugin that takes the same input
    "parse_service": "im.incidents",
    "parse_sla_target": "im.sla",
    "is_loopback": "im.net",
    # what a connector logs: secrets masked; and where im keeps its log records
    **dict.fromkeys(("redact_body", "redact_headers"), "im.redact"),
    "keep_logs_in": "im.logs",
    # calling an HTTP API: logged, recorded, bounded by the deadline and retried by im's rules
    **dict.fromkeys(("ConnectorClient", "ConnectorHTTPError", "connector_client"), "im.http"),
    # a rate limit a connector keeps to itself, before calling (ConnectorClient.request budget=)
    "RateBudget": "im.rate_budget",
    # for a plugin's commands (register_commands): the command line's own helpers. They live
    # in im.cli, loaded only when a plugin asks for one: the core never imports Typer.
    **dict.fromkeys(("command_group", "run_command"), "im.cli"),
    **dict.fromkeys(("print_json", "table"), "im.cli.output"),
    **dict.fromkeys(("deadline", "spinner"), "im.cli.waiting"),
    # for a plugin's routes (register_routes): the API's token check, as a Litestar guard
    "api_token_guard": "im.server.api",
    "SDK_VERSION": "im.plugins",
    # workflow actions (register_workflow_actions): the class and what it exchanges
    **dict.fromkeys(("ActionRequest", "ActionResult", "DefaultRule", "Trigger", "WorkflowAction"),
                    "im.workflows"),
}

__all__ = [
    "Action", "SDK_VERSION", "AssigneeRequest", "ChangeKind", "Check", "CheckRequest",
    "Connector", "ConnectorClient", "ConnectorError", "ConnectorHTTPError", "ConnectorSettings",
    "ImError", "InboundChange", "Incident", "RateBudget",
    "InvalidInputError", "Link", "MapOutboundRequest", "NotFoundError", "OncallRequest",
    "OncallResult", "Origin", "PullRequest", "PullResult", "PushRequest", "PushResult",
    "RemoteAccount", "RemoteEvent", "RemoteIncidentReport", "RemoteIncidentRequest",
    "RemoteRef", "RemoteStatus", "Runtime", "SettingsCheckRequest", "SettingsCheckResult",
    "Severity", "SlaPolicyRequest", "Status", "SyncDirection", "TimelineEvent",
    "TransitionError", "UnhandledEventError", "WebhookEvent", "WebhookRequest",
    "WebhookSetupRequest", "WebhookSetupResult", "WebhookTestEvent", "WebhookTestRequest",
    "api_token_guard", "command_group", "connector_client", "deadline", "hookimpl",
    "idempotency_key",
    "is_loopback", "keep_logs_in", "parse_duration", "parse_idempotency_key", "parse_service",
    "parse_sla_target", "print_json", "prompt", "redact_body", "redact_headers", "run_command",
    "secret", "spinner", "table",
    "ActionRequest", "ActionResult", "DefaultRule", "Trigger", "WorkflowAction",
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
    from im.cli import command_group, run_command
    from im.cli.output import print_json, table
    from im.cli.waiting import deadline, spinner
    from im.plugins import SDK_VERSION
    from im.server.api import api_token_guard
    from im.connectors import (
        AssigneeRequest,
        ChangeKind,
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
        RemoteStatus,
        SettingsCheckRequest,
        SettingsCheckResult,
        SlaPolicyRequest,
        WebhookEvent,
        WebhookRequest,
        WebhookSetupRequest,
        WebhookSetupResult,
        WebhookTestEvent,
        WebhookTestRequest,
        idempotency_key,
        parse_duration,
        parse_idempotency_key,
        prompt,
        secret,
    )
    from im.errors import (
        ConnectorError,
        ImError,
        InvalidInputError,
        NotFoundError,
        TransitionError,
        UnhandledEventError,
    )
    from im.hookspecs import hookimpl
    from im.http import ConnectorClient, ConnectorHTTPError, connector_client
    from im.incidents import parse_service
    from im.logs import keep_logs_in
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
    from im.net import is_loopback
    from im.rate_budget import RateBudget
    from im.redact import redact_body, redact_headers
    from im.runtime import Runtime
    from im.sla import parse_sla_target
    from im.workflows import ActionRequest, ActionResult, DefaultRule, Trigger, WorkflowAction
