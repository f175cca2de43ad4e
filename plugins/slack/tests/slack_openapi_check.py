"""Checks HTTP exchanges with the Slack sandbox against Slack's own Web API description
(OpenAPI 2.0, ../shared/slack/web-api.openapiv2.json), after correcting the document's known
artefacts the way the real API behaves.

openapi-core reads OpenAPI 3 only, and this document's schemas use draft-04 forms that
validators read differently (`items` as a list of alternatives on non-arrays), so the check is
a small one of its own, in the spirit of the PagerDuty one: the operation exists for the HTTP
method; every argument is one the method knows, typed as it says; the required ones are
there; and every answer matches the success schema (`ok: true`) or the error schema (`ok:
false`, its `error` among those the method lists), field by field wherever the schema says
something. Every correction is listed in ARTEFACTS, and `test_slack_sandbox_openapi.py` checks that
each one still corrects something the document really says.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

ARTEFACTS = {
    "token-in-header": "Every method declares its `token` as a header (or query) parameter "
    "named `token`; Slack reads a bot token from `Authorization: Bearer` (or a `token` "
    "argument), so either satisfies it.",
    "json-structured-arguments": "`blocks` and `attachments` are typed string (the form "
    "encoding of a JSON array), as is views.open's `view` (of an object); a JSON body sends "
    "the array or object itself, as Slack's docs and SDK do.",
    "views-open-post": "views.open is declared as GET only; Slack's docs give POST as its "
    "method (a form or JSON body) and its SDK posts JSON, so the check takes a POST with the "
    "GET's arguments.",
    "undeclared-errors": "Error enums are incomplete: `missing_scope` (a method's scope "
    "missing), `ratelimited`, `not_in_channel` of conversations.archive and the like are "
    "answered by Slack but missing from some methods' lists, and views.open lists none; each "
    "method's additions are in COMMON_ERRORS and EXTRA_ERRORS.",
    "rate-limit-answers": "No operation declares HTTP 429; Slack answers it with `Retry-After` "
    "and `{\"ok\": false, \"error\": \"ratelimited\"}`.",
    "fields-newer-than-document": "Closed schemas (additionalProperties false) of 2021 lack "
    "fields Slack answers today: a bot message's `app_id`, an edited message's `edited`, and "
    "the `response_metadata.next_cursor` of conversations.history and conversations.replies "
    "(cursor pagination, though both take a `cursor` argument); listed in NEWER_FIELDS.",
    "replies-message-fields": "conversations.replies types its messages as two closed shapes "
    "of its own (the thread's first message, a reply) that leave out fields of the document's "
    "message object (`objs_message`, which conversations.history's messages are): a bot "
    "message's `bot_id`, a Block Kit message's `blocks`; each shape is given the fields of "
    "`objs_message` it lacks.",
    "update-blocks-object": "chat.update's answer types `message.blocks` as an object; it is "
    "the message's array of blocks, as in every other message schema of the document.",
    "error-extra-fields": "Error schemas forbid other fields, yet Slack's `missing_scope` "
    "answers carry `needed` and `provided`.",
}

# Errors Slack answers (docs.slack.dev method pages) that a method's enum leaves out.
COMMON_ERRORS = {"missing_scope", "not_authed", "invalid_auth", "ratelimited"}
EXTRA_ERRORS = {
    "chat.postMessage": {"invalid_blocks"},
    "chat.update": {"invalid_blocks"},
    "chat.postEphemeral": {"invalid_blocks"},
    "conversations.archive": {"not_in_channel"},
    "conversations.history": {"not_in_channel"},
    # a cursor not made by an earlier page, as for users.conversations and
    # conversations.members, whose lists in the document have it
    "conversations.list": {"invalid_cursor"},
    # docs.slack.dev's views.open page (the document's error schema has no list at all)
    "views.open": {"invalid_arguments", "invalid_trigger_id", "exchanged_trigger_id",
                   "expired_trigger_id"},
}
# The sandbox's own choice where Slack documents nothing: a reply to a thread that does not
# exist is refused rather than posted, so a test catches a wrong thread_ts.
SANDBOX_ERRORS = {"chat.postMessage": {"thread_not_found"}}
# Fields Slack answers that the document's closed schemas leave out: (method or "*", a
# pattern of the field's path in the answer).
NEWER_FIELDS = [
    ("*", re.compile(r"^(\.message|\.messages\[\d+\])\.(app_id|edited)$")),
    ("conversations.history", re.compile(r"^\.response_metadata$")),
    ("conversations.replies", re.compile(r"^\.response_metadata$")),
]
_TYPES: dict[str, Any] = {
    "string": str, "object": dict, "array": list, "boolean": bool, "null": type(None),
}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = document
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def schema_problems(document: dict[str, Any], value: Any, schema: dict[str, Any],
                    where: str = "") -> list[str]:
    """What in `value` the schema says otherwise, as `where: problem` lines."""
    schema = _resolve(document, schema)
    alternatives = schema.get("items") if "type" not in schema else None
    if isinstance(alternatives, list):  # draft-04 artefact: a list of shapes, any one fits
        found = [schema_problems(document, value, alt, where) for alt in alternatives]
        return [] if any(not f for f in found) else min(found, key=len)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(value, kind) for kind in kinds):
            return [f"{where or '.'}: {value!r:.60} is not {'/'.join(kinds)}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where or '.'}: {value!r:.60} is not one of {schema['enum']}"[:300]]
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"],
                                                                        value):
        return [f"{where or '.'}: {value!r} does not match {schema['pattern']}"]
    problems: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [f"{where}.{name}: missing" for name in schema.get("required", [])
                     if name not in value]
        for name, item in value.items():
            if name in properties:
                problems += schema_problems(document, item, properties[name], f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}.{name}: not in the schema")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            problems += schema_problems(document, item, schema["items"], f"{where}[{index}]")
    return problems


def _argument_problem(value: Any, parameter: dict[str, Any], from_json: bool) -> str | None:
    kind = parameter.get("type", "string")
    if from_json:
        if kind == "string" and parameter["name"] in ("blocks", "attachments") and isinstance(
                value, list):
            return None  # json-structured-arguments
        if kind == "string" and parameter["name"] == "view" and isinstance(value, dict):
            return None  # json-structured-arguments
        if kind == "number" and isinstance(value, str):
            kind = "number-text"
        elif not _is(value, kind):
            return f"{value!r:.60} is not {kind}"
        if kind != "number-text":
            return None
    text = str(value)
    if kind == "boolean" and text.lower() not in ("true", "false", "1", "0"):
        return f"{text!r} is not a boolean"
    if kind == "integer" and not re.fullmatch(r"-?\d+", text):
        return f"{text!r} is not an integer"
    if kind in ("number", "number-text") and not re.fullmatch(r"-?\d+(\.\d+)?", text):
        return f"{text!r} is not a number"
    return None


def corrected(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of the document with the artefacts that are in its schemas corrected."""
    spec = copy.deepcopy(document)
    message = spec["paths"]["/chat.update"]["post"]["responses"]["200"]["schema"]
    # update-blocks-object
    message["properties"]["message"]["properties"]["blocks"] = {"type": "array"}
    # views-open-post
    views_open = spec["paths"]["/views.open"]
    views_open.setdefault("post", copy.deepcopy(views_open["get"]))
    # replies-message-fields
    message_fields = spec["definitions"]["objs_message"]["properties"]
    for shape in replies_message_shapes(spec):
        shape["properties"] = {**message_fields, **shape["properties"]}
    return spec


def replies_message_shapes(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The two shapes conversations.replies gives a message: the thread's first, a reply."""
    answer = document["paths"]["/conversations.replies"]["get"]["responses"]["200"]["schema"]
    shapes: list[dict[str, Any]] = answer["properties"]["messages"]["items"]["items"]
    return shapes


def _newer_field(method: str, problem: str) -> bool:
    where, _, what = problem.partition(": ")
    return what == "not in the schema" and any(
        scope in ("*", method) and pattern.match(where) for scope, pattern in NEWER_FIELDS)


class OpenApiCheck:
    """Checks every exchange of an httpx client (use `hook` as a response event hook)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = corrected(document)
        self.problems: list[str] = []
        self.refused_requests: list[str] = []
        self.methods: set[str] = set()
        self.errors_seen: set[tuple[str, str]] = set()
        self.exchanges = 0
        self._expect_invalid = False

    @classmethod
    def load(cls, shared: Path) -> OpenApiCheck:
        return cls(json.loads((shared / "web-api.openapiv2.json").read_text()))

    @contextlib.contextmanager
    def invalid_requests(self) -> Iterator[None]:
        """Requests sent on purpose against the document (a required argument left out, an
        unknown method): their refusal is recorded, not a problem; answers are still checked."""
        self._expect_invalid = True
        try:
            yield
        finally:
            self._expect_invalid = False

    def reset(self) -> None:
        self.problems.clear()
        self.refused_requests.clear()
        self.exchanges = 0

    def request_problems(self, request: httpx.Request, operation: dict[str, Any]) -> list[str]:
        arguments: dict[str, Any] = dict(parse_qsl(request.url.query.decode(),
                                                   keep_blank_values=True))
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        from_json = content_type == "application/json"
        problems = []
        if request.content:
            if content_type not in operation.get("consumes", []):
                problems.append(f"{content_type} is not among {operation.get('consumes')}")
            if from_json:
                arguments.update(json.loads(request.content))
            else:
                arguments.update(parse_qsl(request.content.decode(), keep_blank_values=True))
        parameters = {p["name"]: p for p in operation.get("parameters", [])}
        bearer = request.headers.get("authorization", "").startswith("Bearer ")
        for name, parameter in parameters.items():
            present = name in arguments or (name == "token" and bearer)  # token-in-header
            if parameter.get("required") and not present:
                problems.append(f"required argument {name} missing")
        for name, value in arguments.items():
            if name not in parameters:
                problems.append(f"argument {name} unknown to the method")
                continue
            problem = _argument_problem(value, parameters[name],
                                        from_json and name not in request.url.params)
            if problem:
                problems.append(f"argument {name}: {problem}")
        return problems

    def answer_problems(self, name: str, operation: dict[str, Any],
                        response: httpx.Response) -> list[str]:
        if response.status_code == 429:  # rate-limit-answers
            problems = []
            if not response.headers.get("retry-after", "").isdigit():
                problems.append("429 without a Retry-After in seconds")
            if response.json() != {"ok": False, "error": "ratelimited"}:
                problems.append(f"429 body {response.text[:100]}")
            return problems
        if response.status_code >= 500:
            return []  # an outage (an injected fault), not an answer of the API
        if response.status_code != 200:
            return [f"HTTP {response.status_code} where Slack answers 200"]
        body = response.json()
        if body.get("ok") is True:
            found = schema_problems(self.document, body, operation["responses"]["200"]["schema"])
            return [p for p in found if not _newer_field(name, p)]
        schema = _resolve(self.document, operation["responses"]["default"]["schema"])
        error = body.get("error")
        self.errors_seen.add((name, str(error)))
        listed = set(schema["properties"].get("error", {}).get("enum", []))
        problems = []
        known = (listed | COMMON_ERRORS | EXTRA_ERRORS.get(name, set())
                 | SANDBOX_ERRORS.get(name, set()))
        if error not in known:
            problems.append(f"error {error!r} is not listed for {name}")
        rest = {k: v for k, v in body.items() if k != "error"}
        if error == "missing_scope":  # error-extra-fields
            rest = {k: v for k, v in rest.items() if k not in ("needed", "provided")}
            if not (isinstance(body.get("needed"), str) and isinstance(body.get("provided"),
                                                                       str)):
                problems.append("missing_scope without needed/provided")
        return problems + schema_problems(
            self.document, rest, {**schema, "required": ["ok"],
                                  "properties": {k: v for k, v in schema["properties"].items()
                                                 if k != "error"}})

    def hook(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        name = request.url.path.rsplit("/", 1)[-1]
        label = f"{request.method} {name} -> {response.status_code}"
        operation = self.document["paths"].get(f"/{name}", {}).get(request.method.lower())
        if operation is None:
            (self.refused_requests if self._expect_invalid else self.problems).append(
                f"{label}: no such operation in the document")
            return
        self.exchanges += 1
        self.methods.add(name)
        found = self.request_problems(request, operation)
        if found and self._expect_invalid:
            self.refused_requests += [f"{label}: {p}" for p in found]
        elif found:
            self.problems += [f"{label}: request: {p}" for p in found]
        elif self._expect_invalid:
            self.problems.append(f"{label}: an invalid request passed the document")
        self.problems += [f"{label}: answer: {p}"
                          for p in self.answer_problems(name, operation, response)]
