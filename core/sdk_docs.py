"""docs/connector-reference.md, generated from the code itself:
`python -m im.sdk_docs > docs/connector-reference.md`. A test regenerates it and compares, so
the reference of the connector protocol (every method of `im.Connector` with its exact
signature, every struct with its fields and what each means, the enums with what each member
means, the errors, the HTTP client's methods) cannot drift from the code.

What a field, class attribute or enum member means is the comment right above it in its
class (or at the end of its line): written once, next to the code it describes."""

from __future__ import annotations

import ast
import enum
import inspect
import textwrap
from typing import Any

HEADER = """# Connector reference

The connector protocol of im's plugin SDK, generated from the code (`python -m im.sdk_docs >
docs/connector-reference.md`; a test fails when this file is out of date). Everything here is
imported from `im`. How to write a connector: [writing-plugins.md](writing-plugins.md); the
hooks: [plugin-hooks.md](plugin-hooks.md); testing one: [testing-plugins.md](testing-plugins.md).
"""

# The structs, in the order a connector meets them.
STRUCTS = (
    "ConnectorSettings", "Incident", "Link", "TimelineEvent", "PushRequest", "PushResult",
    "RemoteRef", "PullRequest", "PullResult",
    "InboundChange", "WebhookRequest", "WebhookEvent", "WebhookSetupRequest",
    "WebhookSetupResult", "WebhookTestRequest", "WebhookTestEvent", "CheckRequest", "Check",
    "SettingsCheckRequest", "SettingsCheckResult", "AssigneeRequest", "MapOutboundRequest",
    "SlaPolicyRequest", "RemoteIncidentRequest", "RemoteIncidentReport", "RemoteEvent",
    "OncallRequest", "OncallResult", "RemoteAccount",
)
ENUMS = ("RemoteStatus", "ChangeKind", "SyncDirection", "Action", "Severity", "Status")
# Fields whose values are an enum's though typed `str` (so that a later im may add values):
# the values are listed under the struct's table.
FIELD_VALUES = {("PushRequest", "action"): "Action"}
ERRORS = ("ImError", "ConnectorError", "ConnectorHTTPError", "InvalidInputError",
          "NotFoundError", "UnhandledEventError")
FUNCTIONS = ("idempotency_key", "parse_idempotency_key", "parse_duration", "prompt", "secret")
# The HTTP client's methods, in the order a connector uses them.
CLIENT_METHODS = ("get", "post", "put", "patch", "delete", "request", "until", "mask", "close")
CLASSES = ("RateBudget",)


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else ""


def _own_doc(cls: type) -> str:
    """The class's own docstring (not one inherited from a base)."""
    return inspect.cleandoc(cls.__dict__["__doc__"]) if cls.__dict__.get("__doc__") else ""


class _Named:
    """A default shown by its name (`time.sleep`), not its repr (`<built-in function sleep>`)."""

    def __init__(self, function: Any) -> None:
        self.name = f"{function.__module__}.{function.__qualname__}"

    def __repr__(self) -> str:
        return self.name


def _signature(function: Any, *, drop_self: bool = False) -> str:
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())[1 if drop_self else 0:]
    parameters = [p.replace(default=_Named(p.default)) if inspect.isbuiltin(p.default) else p
                  for p in parameters]
    return str(signature.replace(parameters=parameters)).replace("'", "")


def _connector(parts: list[str]) -> None:
    from im.connectors import Connector

    parts.append("## `Connector`\n")
    parts.append(_own_doc(Connector) + "\n")
    parts.append("Class attributes:\n")
    parts.append("| attribute | type | default | meaning |\n|---|---|---|---|")
    comments = member_comments(Connector)
    for name, annotation in Connector.__annotations__.items():
        default = getattr(Connector, name, None) if hasattr(Connector, name) else "(required)"
        shown = ("(required)" if default == "(required)" else f"`{default!r}`"
                 if not isinstance(default, type) else f"`{default.__name__}`")
        annotation = str(annotation).replace("|", "\\|")
        meaning = comments.get(name, "").replace("|", "\\|")
        parts.append(f"| `{name}` | `{annotation}` | {shown} | {meaning} |")
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


def member_comments(cls: Any) -> dict[str, str]:
    """What each field, class attribute or enum member of `cls` (and of its bases in im)
    means: the comment lines right above it in the class body, else the comment at the end
    of its line."""
    import tokenize

    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("im."):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        trailing = {token.start[0]: token.string.lstrip("#").strip()
                    for token in tokenize.generate_tokens(iter(source.splitlines(True)).__next__)
                    if token.type == tokenize.COMMENT
                    and lines[token.start[0] - 1][:token.start[1]].strip()}
        [body] = ast.parse(source).body
        assert isinstance(body, ast.ClassDef)
        for statement in body.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                name = statement.target.id
            elif (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                  and isinstance(statement.targets[0], ast.Name)):
                name = statement.targets[0].id
            else:
                continue
            above: list[str] = []
            number = statement.lineno - 1  # the line above, counted from 1
            while number >= 1 and lines[number - 1].strip().startswith("#"):
                above.insert(0, lines[number - 1].strip().lstrip("#").strip())
                number -= 1
            meaning = " ".join(above) or trailing.get(statement.lineno, "")
            if meaning:
                comments[name] = meaning
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
    comments = member_comments(cls)
    parts.append("| field | type | default | meaning |\n|---|---|---|---|")
    for field in msgspec.structs.fields(cls):
        shown = str(annotations.get(field.name, "")).replace("|", "\\|")
        default = _default(field).replace("|", "\\|")
        meaning = comments.get(field.name, "").replace("|", "\\|")
        parts.append(f"| `{field.name}` | `{shown}` | {default} | {meaning} |")
    parts.append("")
    for (struct, field_name), enum_name in FIELD_VALUES.items():
        if struct == name:
            import im

            values = ", ".join(f"`{member.value}`" for member in getattr(im, enum_name))
            parts.append(f"`{field_name}` is one of [`{enum_name}`](#{enum_name.lower()})'s"
                         f" values: {values}; and whatever a later im adds.\n")


def _enum(name: str, cls: Any, parts: list[str]) -> None:
    parts.append(f"### `{name}`\n")
    doc = _own_doc(cls)
    if doc:
        parts.append(doc + "\n")
    comments = member_comments(cls)
    parts.append("| member | value | meaning |\n|---|---|---|")
    for member in cls:
        meaning = comments.get(member.name, "").replace("|", "\\|")
        parts.append(f"| `{member.name}` | `{member.value!r}` | {meaning} |")
    parts.append("")


def _client(parts: list[str]) -> None:
    import im

    parts.append("## HTTP client\n")
    function = im.connector_client
    parts.append(f"### `connector_client{_signature(function)}`\n")
    parts.append(_doc(function) + "\n")
    parts.append("### `ConnectorClient`\n")
    parts.append(_own_doc(im.ConnectorClient) + "\n")
    for name in CLIENT_METHODS:
        method = getattr(im.ConnectorClient, name)
        parts.append(f"#### `{name}{_signature(method, drop_self=True)}`\n")
        doc = _doc(method)
        if doc:
            parts.append(doc + "\n")


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
        _enum(name, getattr(im, name), parts)
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
    _client(parts)
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
