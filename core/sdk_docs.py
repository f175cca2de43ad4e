"""docs/connector-reference.md, generated from the code itself:
`python -m im.sdk_docs > docs/connector-reference.md`. A test regenerates it and compares, so
the reference of the connector protocol (every method of `im.Connector` with its exact
signature, every struct with its fields, the enums and errors) cannot drift from the code."""

from __future__ import annotations

import enum
import inspect
from typing import Any

HEADER = """# Connector reference

The connector protocol of im's plugin SDK, generated from the code (`python -m im.sdk_docs >
docs/connector-reference.md`; a test fails when this file is out of date). Everything here is
imported from `im`. How to write a connector: [writing-plugins.md](writing-plugins.md); the
hooks: [plugin-hooks.md](plugin-hooks.md); testing one: [testing-plugins.md](testing-plugins.md).
"""

# The structs, in the order a connector meets them.
STRUCTS = (
    "ConnectorSettings", "PushRequest", "PushResult", "RemoteRef", "PullRequest", "PullResult",
    "InboundChange", "WebhookRequest", "WebhookEvent", "WebhookSetupRequest",
    "WebhookSetupResult", "WebhookTestRequest", "WebhookTestEvent", "CheckRequest", "Check",
    "SettingsCheckRequest", "SettingsCheckResult", "AssigneeRequest", "MapOutboundRequest",
    "SlaPolicyRequest", "RemoteIncidentRequest", "RemoteIncidentReport", "RemoteEvent",
    "OncallRequest", "OncallResult", "RemoteAccount",
)
ENUMS = ("RemoteStatus", "ChangeKind", "SyncDirection")
ERRORS = ("ImError", "ConnectorError", "ConnectorHTTPError", "InvalidInputError",
          "NotFoundError", "UnhandledEventError")
FUNCTIONS = ("connector_client", "idempotency_key", "parse_idempotency_key", "parse_duration",
             "prompt", "secret")
CLASSES = ("RateBudget",)


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else ""


def _own_doc(cls: type) -> str:
    """The class's own docstring (not one inherited from a base)."""
    return inspect.cleandoc(cls.__dict__["__doc__"]) if cls.__dict__.get("__doc__") else ""


def _signature(function: Any, *, drop_self: bool = False) -> str:
    signature = inspect.signature(function)
    if drop_self:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    return str(signature).replace("'", "")


def _connector(parts: list[str]) -> None:
    from im.connectors import Connector

    parts.append("## `Connector`\n")
    parts.append(_own_doc(Connector) + "\n")
    parts.append("Class attributes:\n")
    parts.append("| attribute | type | default |\n|---|---|---|")
    for name, annotation in Connector.__annotations__.items():
        default = getattr(Connector, name, None) if hasattr(Connector, name) else "(required)"
        shown = ("(required)" if default == "(required)" else f"`{default!r}`"
                 if not isinstance(default, type) else f"`{default.__name__}`")
        annotation = str(annotation).replace("|", "\\|")
        parts.append(f"| `{name}` | `{annotation}` | {shown} |")
    parts.append("")
    parts.append(f"`__init__{_signature(Connector.__init__, drop_self=True)}`: the core builds "
                 "each configured connector; keep `name`, `settings` and `runtime` as given.\n")
    for name, member in Connector.__dict__.items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            parts.append(f"### `{name}` (property)\n")
            parts.append(_doc(member.fget) + "\n")
        elif inspect.isfunction(member):
            parts.append(f"### `{name}{_signature(member, drop_self=True)}`\n")
            doc = _doc(member)
            if doc:
                parts.append(doc + "\n")


def _default(field: Any) -> str:
    import msgspec

    if field.required:
        return "(required)"
    if field.default_factory is not msgspec.NODEFAULT:
        return f"`{field.default_factory()!r}`"
    value = field.default
    if isinstance(value, enum.Enum):
        return f"`{type(value).__name__}.{value.name}`"
    return f"`{value!r}`"


def _field_comments(cls: Any) -> dict[str, str]:
    """The comment lines right above each field in the class's source: what the field means."""
    import re

    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("im."):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        above: list[str] = []
        for line in lines[1:]:
            comment = re.match(r"^    # ?(.*)$", line)
            field = re.match(r"^    (\w+): ", line)
            if comment:
                above.append(comment.group(1))
            elif field:
                if above:
                    comments[field.group(1)] = " ".join(above)
                above = []
            else:
                above = []
    return comments


def _struct(name: str, cls: Any, parts: list[str]) -> None:
    import msgspec

    parts.append(f"### `{name}`\n")
    doc = _own_doc(cls)
    if doc:
        parts.append(doc + "\n")
    annotations: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        annotations.update(getattr(klass, "__annotations__", {}))
    comments = _field_comments(cls)
    parts.append("| field | type | default | meaning |\n|---|---|---|---|")
    for field in msgspec.structs.fields(cls):
        shown = str(annotations.get(field.name, "")).replace("|", "\\|")
        default = _default(field).replace("|", "\\|")
        meaning = comments.get(field.name, "").replace("|", "\\|")
        parts.append(f"| `{field.name}` | `{shown}` | {default} | {meaning} |")
    parts.append("")


def render() -> str:
    import im

    parts = [HEADER, f"SDK version: `{im.SDK_VERSION}` (`im.SDK_VERSION`; a plugin declares the "
                     "one it is built for with `IM_SDK`).\n"]
    _connector(parts)
    parts.append("## Structs\n")
    parts.append("Every method takes one request struct and returns a result struct, so the "
                 "core can add fields without breaking plugins. They are frozen msgspec "
                 "structs built with keyword arguments.\n")
    for name in STRUCTS:
        _struct(name, getattr(im, name), parts)
    parts.append("## Enums\n")
    for name in ENUMS:
        cls = getattr(im, name)
        parts.append(f"### `{name}`\n")
        doc = _own_doc(cls)
        if doc:
            parts.append(doc + "\n")
        parts.append(", ".join(f"`{member.name}` (`{member.value!r}`)" for member in cls) + "\n")
    parts.append("## Errors\n")
    for name in ERRORS:
        cls = getattr(im, name)
        init = cls.__dict__.get("__init__")
        signature = _signature(init, drop_self=True) if init else ""
        bases = ", ".join(base.__name__ for base in cls.__bases__)
        parts.append(f"### `{name}{signature}` ({bases})\n")
        doc = _own_doc(cls)
        if doc:
            parts.append(doc + "\n")
    parts.append("## Functions\n")
    for name in FUNCTIONS:
        function = getattr(im, name)
        parts.append(f"### `{name}{_signature(function)}`\n")
        doc = _doc(function)
        if doc:
            parts.append(doc + "\n")
    parts.append("## Classes\n")
    for name in CLASSES:
        cls = getattr(im, name)
        parts.append(f"### `{name}{_signature(cls).removesuffix(' -> None')}`\n")
        doc = _own_doc(cls)
        if doc:
            parts.append(doc + "\n")
        for method, member in cls.__dict__.items():
            if inspect.isfunction(member) and not method.startswith("_"):
                parts.append(f"#### `{method}{_signature(member, drop_self=True)}`\n")
                if _doc(member):
                    parts.append(_doc(member) + "\n")
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
