"""Checks HTTP exchanges with the sandbox against PagerDuty's own OpenAPI document, with
openapi-core, after correcting the document's known artefacts the way the real API behaves.

Every correction is listed in ARTEFACTS with its evidence, and `test_sandbox_openapi.py`
checks that each one still corrects something the document really says.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SERVER = "https://api.pagerduty.com"
METHODS = ("get", "put", "post", "delete", "patch")

ARTEFACTS = {
    "content-type-on-reads": "Content-Type is marked required on reads; PagerDuty needs it on "
    "writes only and its official client sends it only with a body (API-NOTES §1).",
    "nullable-by-description": "Properties whose own description says they can be null "
    "(resolved_at, oncall start/end, layer end, service timeouts, alert_grouping) are not nullable.",
    "nullable-by-example": "Incident.priority and Incident.resolve_reason are null in the "
    "document's own examples but not nullable in its schemas.",
    "oncall-schedule-null": "Oncall.schedule is null for users a rule targets directly "
    "(API-NOTES §2, listOnCalls), the permanent on-calls whose start/end are null.",
    "references-in-requests": "Reference id/type are readOnly, yet requests must send them "
    "(every request example in the document does: service, assignee, user references).",
    "incident-body-string": "IncidentBody.details is typed object; the Incident Creation API only "
    "supports string bodies and every example sends one (API-NOTES §2).",
    "includes": "include[] replaces references with full objects (API-NOTES §1 Includes), "
    "but most schemas only allow the reference.",
    "overlapping-oneof": "Several oneOf lists overlap (Channel's five all-optional shapes, "
    "reference-or-object pairs), so no real body can match exactly one; checked as anyOf.",
    "acknowledge-log-entry": "AcknowledgeLogEntry requires type 'acknowledgement_log_entry' while "
    "LogEntry allows only 'acknowledge_log_entry': no entry can satisfy both.",
    "read-declared-201": "listScheduleOverrides, a read, declares only 201 (its collection "
    "copied from createScheduleOverride); reads answer 200 (API-NOTES §1: index and show "
    "return 200), with the collection the document describes.",
    "undeclared-errors": "updateIncident declares no 400 although PagerDuty documents 1001, 1002, "
    "1003, 1006 for it, and several operations omit 429 although every request is rate limited.",
}

# reference schema -> the full objects include[] may put in its place
_INCLUDED = {
    "UserReference": ["User"],
    "ServiceReference": ["Service"],
    "EscalationPolicyReference": ["EscalationPolicy"],
    "ScheduleReference": ["Schedule"],
    "PriorityReference": ["Priority"],
    "IncidentReference": ["Incident"],
    "AgentReference": ["User", "Service"],
    "EscalationTargetReference": ["User", "Schedule"],
}
_NULL_WORD = re.compile(r"`?\bnull\b`?")


_SCHEMAS = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _SCHEMAS + name}


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema's own `properties` dict (in place), also when it sits in an allOf part."""
    if "properties" in schema:
        return schema["properties"]  # type: ignore[no-any-return]
    return next(part["properties"] for part in schema["allOf"] if "properties" in part)  # type: ignore[no-any-return]


def _or_included(item: Any) -> Any:
    if isinstance(item, dict) and set(item) == {"$ref"} and item["$ref"].startswith(_SCHEMAS):
        name = item["$ref"].removeprefix(_SCHEMAS)
        if name in _INCLUDED:
            return {"anyOf": [item, *(_ref(full) for full in _INCLUDED[name])]}
    return item


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "object", "nullable": True, "enum": [None]}]}


def corrected(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of the document with every artefact in ARTEFACTS corrected."""
    spec = copy.deepcopy(document)
    schemas = spec["components"]["schemas"]

    # nullable-by-description
    for node in _walk(spec):
        properties = node.get("properties")
        if not isinstance(properties, dict):
            continue
        for prop in properties.values():
            if (
                isinstance(prop, dict)
                and "type" in prop
                and _NULL_WORD.search(prop.get("description") or "")
            ):
                prop["nullable"] = True
    incident, oncall = _properties(schemas["Incident"]), _properties(schemas["Oncall"])
    # nullable-by-example, oncall-schedule-null
    for props, name in ((incident, "priority"), (incident, "resolve_reason"), (oncall, "schedule")):
        props[name] = _nullable(props[name])

    # references-in-requests
    base = schemas["Tag"]["allOf"][0]["properties"]
    for name in ("id", "type"):
        base[name].pop("readOnly", None)
    # incident-body-string
    schemas["IncidentBody"]["properties"]["details"] = {
        "anyOf": [{"type": "string"}, {"type": "object"}]
    }
    # acknowledge-log-entry
    schemas["AcknowledgeLogEntry"]["allOf"][1]["properties"]["type"]["enum"] = [
        "acknowledge_log_entry"
    ]

    # includes: each bare reference becomes "the reference or the object"
    for node in list(_walk(spec)):
        for key, value in list(node.items()):
            if isinstance(value, list):
                node[key] = [_or_included(item) for item in value]
            else:
                node[key] = _or_included(value)
    # overlapping-oneof
    for node in _walk(spec):
        if "oneOf" in node and isinstance(node["oneOf"], list):
            node["anyOf"] = node.pop("oneOf")
            node.pop("discriminator", None)

    # read-declared-201
    overrides = spec["paths"]["/schedules/{id}/overrides"]["get"]["responses"]
    overrides.setdefault("200", overrides["201"])

    # undeclared-errors
    for item in spec["paths"].values():
        for method in METHODS:
            operation = item.get(method)
            if operation:
                operation["responses"].setdefault(
                    "429", {"$ref": "#/components/responses/TooManyRequests"}
                )
    spec["paths"]["/incidents/{id}"]["put"]["responses"].setdefault(
        "400", {"$ref": "#/components/responses/ArgumentError"}
    )
    return spec


class _Request:
    def __init__(self, request: httpx.Request, path: str) -> None:
        self.method = request.method.lower()
        self.host_url = SERVER
        self.path = path
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
            path={},
        )
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "")


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.data = response.content
        self.headers = Headers(list(response.headers.items()))
        self.content_type = response.headers.get("content-type", "")


def _errors(exc: BaseException) -> str:
    lines: list[str] = []

    def walk(errors: Any, depth: int) -> None:
        for error in errors:
            lines.append("  " * depth + f"{list(error.absolute_path)}: {error.message[:200]}")
            if error.context and depth < 2:
                walk(error.context, depth + 1)

    cause: BaseException | None = exc
    while cause is not None:
        if getattr(cause, "schema_errors", None):
            walk(cause.schema_errors, 1)
        cause = cause.__cause__
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300] + (
        "\n" + "\n".join(lines) if lines else ""
    )


class OpenApiCheck:
    """Validates every exchange of an httpx client (use `hook` as a response event hook)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.spec = corrected(document)
        self.api = OpenAPI.from_dict(self.spec, config=Config(spec_validator_cls=None))
        self.problems: list[str] = []
        self.refused_requests: list[str] = []
        self._expect_invalid = False
        self.operations: set[tuple[str, str]] = set()
        self.exchanges = 0
        self._templates = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), path)
            for path in document["paths"]
        ]

    @contextlib.contextmanager
    def invalid_requests(self) -> Iterator[None]:
        """Requests sent on purpose against the document: their refusal is recorded, not a
        problem; their responses are still checked."""
        self._expect_invalid = True
        try:
            yield
        finally:
            self._expect_invalid = False

    @classmethod
    def load(cls, shared: Path) -> OpenApiCheck:
        return cls(json.loads((shared / "rest-api-v2.openapiv3.json").read_text()))

    def template(self, path: str) -> str | None:
        matches = [template for pattern, template in self._templates if pattern.match(path)]
        # /users/me before /users/{id}: the fewest parameters wins
        return min(matches, key=lambda t: t.count("{")) if matches else None

    def _headers(self, request: httpx.Request, operation: dict[str, Any]) -> list[str]:
        """Accept/Content-Type/Authorization are header parameters OpenAPI tells validators to
        ignore, so they are checked here, Content-Type only where there is a body."""
        found = []
        for parameter in operation.get("parameters", []):
            if "$ref" in parameter:
                target: Any = self.document
                for part in parameter["$ref"].lstrip("#/").split("/"):
                    target = target[part]
                parameter = target
            if parameter.get("in") != "header" or not parameter.get("required"):
                continue
            name = parameter["name"]
            if name == "Content-Type" and not request.content:
                continue  # content-type-on-reads
            if name not in request.headers:
                found.append(f"missing required header {name}")
        if request.headers.get("accept") != "application/vnd.pagerduty+json;version=2":
            found.append("Accept is not the v2 media type")
        return found

    def hook(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        path = request.url.path
        template = self.template(path)
        label = f"{request.method} {path}?{request.url.query.decode()} -> {response.status_code}"
        if template is None:
            self.problems.append(f"{label}: no such path in the document")
            return
        operation = self.document["paths"][template].get(request.method.lower())
        if operation is None:
            self.problems.append(f"{label}: no such operation in the document")
            return
        self.exchanges += 1
        self.operations.add((request.method, template))
        self.problems.extend(f"{label}: {problem}" for problem in self._headers(request, operation))
        wrapped = _Request(request, path)
        try:
            self.api.validate_request(wrapped)
        except Exception as exc:  # noqa: BLE001  (every openapi-core error is a finding)
            (self.refused_requests if self._expect_invalid else self.problems).append(
                f"{label}: request: {_errors(exc)}"
            )
        else:
            if self._expect_invalid:
                self.problems.append(f"{label}: an invalid request passed the document")
        try:
            self.api.validate_response(wrapped, _Response(response))
        except Exception as exc:  # noqa: BLE001
            self.problems.append(f"{label}: response: {_errors(exc)}")
