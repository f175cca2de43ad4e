"""Connector settings as users write them: validation, prompts, secrets and redaction.

Settings are stored as the JSON the user gave (secrets may be literal or `env:VAR`), and decoded
into the connector's msgspec struct whenever a connector is built, so that an `env:VAR` secret is
read at run time and never written to the database.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import msgspec
import msgspec.inspect as mi

from im.connectors import ConnectorSettings
from im.errors import InvalidInputError

REDACTED = "********"


class Prompt(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    title: str
    secret: bool
    required: bool
    default: Any
    choices: list[str] | None = None
    order: int = 0
    yes_no: bool = False


TRUE_WORDS = ("true", "yes", "y", "on", "1")
FALSE_WORDS = ("false", "no", "n", "off", "0")


def parse_bool(text: str, what: str) -> bool:
    """A yes/no setting as people type it: true/false, yes/no (also y/n, on/off, 1/0)."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidInputError(f"{what} takes true or false (or yes or no), not {text!r}")


def _unwrap(type_info: mi.Type) -> tuple[mi.Type, dict[str, Any], str | None]:
    extra: dict[str, Any] = {}
    title = None
    while isinstance(type_info, mi.Metadata):
        extra.update(type_info.extra or {})
        if type_info.extra_json_schema and "title" in type_info.extra_json_schema:
            title = type_info.extra_json_schema["title"]
        type_info = type_info.type
    return type_info, extra, title


# msgspec builds a struct type's decoding information on the type's first use; two threads
# doing that at once for the same type can crash the interpreter (`im serve`'s loops once did,
# building the same connector at start-up). So each settings type is made ready once, under a
# lock, before anything decodes or inspects it.
_ready: dict[type, list[tuple[str, mi.Field, mi.Type, dict[str, Any], str | None]]] = {}
_ready_lock = threading.Lock()


def _prepare(settings_type: type) -> list[tuple[str, mi.Field, mi.Type, dict[str, Any],
                                               str | None]]:
    fields = _ready.get(settings_type)
    if fields is None:
        with _ready_lock:
            fields = _ready.get(settings_type)
            if fields is None:
                msgspec.json.Decoder(settings_type)  # builds and keeps the decoding info
                info = mi.type_info(settings_type)
                assert isinstance(info, mi.StructType)
                fields = _ready[settings_type] = list(_walk(info, ""))
    return fields


def _fields(settings_type: type) -> Iterator[tuple[str, mi.Field, mi.Type, dict[str, Any],
                                                   str | None]]:
    """Every leaf field of a settings struct with its dotted path, recursing into structs."""
    yield from _prepare(settings_type)


def _walk(info: mi.StructType, prefix: str) -> Iterator[tuple[str, mi.Field, mi.Type,
                                                              dict[str, Any], str | None]]:
    for field in info.fields:
        inner, extra, title = _unwrap(field.type)
        path = prefix + field.encode_name
        if isinstance(inner, mi.StructType):
            yield from _walk(inner, path + ".")
        else:
            yield path, field, inner, extra, title


def changed_paths(settings_type: type, before: dict[str, Any],
                  after: dict[str, Any]) -> list[str]:
    """The settings (leaf paths, a mapping as a whole) whose values differ."""
    return [path for path, *_ in _fields(settings_type)
            if get_path(before, path) != get_path(after, path)]


def secret_paths(settings_type: type) -> set[str]:
    return {path for path, _, _, extra, _ in _fields(settings_type) if extra.get("secret")}


def prompts(settings_type: type) -> list[Prompt]:
    """The questions `im connector add` asks, in order, generated from the settings struct."""
    found = []
    for path, field, inner, extra, title in _fields(settings_type):
        if "prompt" not in extra:
            continue
        choices = None
        if isinstance(inner, mi.EnumType):
            choices = [str(member.value) for member in inner.cls]
        default = None if field.default is mi.NODEFAULT else field.default
        if hasattr(default, "value"):
            default = default.value
        found.append(Prompt(path=path, title=title or path, secret=bool(extra.get("secret")),
                            required=field.required, default=default, choices=choices,
                            order=int(extra["prompt"]), yes_no=isinstance(inner, mi.BoolType)))
    return sorted(found, key=lambda p: p.order)


def option_rows(settings_type: type, options: dict[str, str]) -> list[tuple[str, str]]:
    """(`--option VALUE`, what it sets) for a connector type's command-line options, then one
    row naming the settings that have no option of their own (for `--set PATH=VALUE`)."""
    kinds = {path: (inner, extra, title) for path, _, inner, extra, title in
             _fields(settings_type)}
    rows = []
    for option, path in sorted(options.items()):
        inner, extra, title = kinds.get(path, (None, {}, None))
        value = "-|@FILE|VALUE" if extra.get("secret") else _value_word(inner)
        about = f"{title}: " if title else ""
        rows.append((f"--{option} {value}", f"{about}sets {path}"))
    rest = sorted(set(kinds) - set(options.values()))
    if rest:
        rows.append(("--set PATH=VALUE", "any setting, such as " + ", ".join(rest)))
    return rows


def _value_word(kind: mi.Type | None) -> str:
    if isinstance(kind, mi.BoolType):
        return "true|false"
    if isinstance(kind, mi.EnumType):
        return "|".join(str(member.value) for member in kind.cls)
    if isinstance(kind, mi.DictType):
        return "JSON"
    if isinstance(kind, mi.ListType):
        return "JSON-LIST"
    return "VALUE"


def field_type(settings_type: type, path: str) -> mi.Type | None:
    for field_path, _, inner, _, _ in _fields(settings_type):
        if field_path == path:
            return inner
    return None


def container_paths(settings_type: type) -> set[str]:
    """Dotted paths that hold nested settings (such as `custom`)."""
    found: set[str] = set()
    for path, *_ in _fields(settings_type):
        parts = path.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return found


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `data` with the dotted `path` set to `value`."""
    result = dict(data)
    head, _, rest = path.partition(".")
    if rest:
        inner = result.get(head)
        result[head] = set_path(inner if isinstance(inner, dict) else {}, rest, value)
    else:
        result[head] = value
    return result


def get_path(data: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def validate(settings_type: type[ConnectorSettings], data: Any, *,
             resolve_env: bool = False) -> ConnectorSettings:
    """Decode settings, naming the bad field; `env:VAR` secrets are read when `resolve_env`."""
    if not isinstance(data, dict):
        raise InvalidInputError("connector settings must be a JSON object")
    _prepare(settings_type)
    if resolve_env:
        for path in secret_paths(settings_type):
            value = get_path(data, path)
            if isinstance(value, str) and value.startswith("env:"):
                variable = value.removeprefix("env:")
                if variable not in os.environ:
                    raise InvalidInputError(
                        f"setting {path} refers to env:{variable}, which is not set"
                    )
                data = set_path(data, path, os.environ[variable])
    try:
        return msgspec.convert(data, settings_type)
    except msgspec.ValidationError as error:
        raise InvalidSettingsError(error, settings_type) from None


def _type_at(settings_type: type, path: str | None) -> mi.Type | None:
    """The type of the setting at a dotted path as errors write it (`custom.urgency_mapping`,
    `custom.sla_mapping[...].ack`), or None."""
    info: mi.Type = mi.type_info(settings_type)
    for part in re.findall(r"\[[^\]]*\]|[^.\[\]]+", path or ""):
        info, _, _ = _unwrap(info)
        if part.startswith("["):
            if isinstance(info, mi.DictType):
                info = info.value_type
            elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType):
                info = info.item_type
            else:
                return None
        elif isinstance(info, mi.StructType):
            field = next((f for f in info.fields if f.encode_name == part), None)
            if field is None:
                return None
            info = field.type
        else:
            return None
    return _unwrap(info)[0]


def _choices(info: mi.Type | None) -> list[str]:
    """The values an enum or literal setting takes."""
    if isinstance(info, mi.EnumType):
        return [str(member.value) for member in info.cls]
    if isinstance(info, mi.LiteralType):
        return [str(value) for value in info.values]
    if isinstance(info, mi.UnionType):
        return [choice for member in info.types for choice in _choices(_unwrap(member)[0])]
    return []


def suggest_path(settings_type: type, parent: str | None, name: str) -> str | None:
    """For a setting `name` unknown under `parent` (None: the top level), the path where
    that setting is (`custom.service_mappings` for a top-level `service_mappings`), or a
    close spelling at the same level."""
    import difflib

    known = {path for path, *_ in _fields(settings_type)} | container_paths(settings_type)
    here = f"{parent}.{name}" if parent else name
    elsewhere = sorted(path for path in known
                       if path.rsplit(".", 1)[-1] == name and path != here)
    if elsewhere:
        return elsewhere[0]
    prefix = f"{parent}." if parent else ""
    siblings = [path.removeprefix(prefix) for path in known
                if path.startswith(prefix) and "." not in path.removeprefix(prefix)]
    close = difflib.get_close_matches(name, siblings, n=1)
    return prefix + close[0] if close else None


class InvalidSettingsError(InvalidInputError):
    """Settings refused by their struct: `problem`, and `path` the field at fault (dotted, as
    users write it; None when the error is about a mapping's key or the whole settings)."""

    def __init__(self, error: msgspec.ValidationError,
                 settings_type: type | None = None) -> None:
        # msgspec says "Expected `str`, got `int` - at `$.custom.service_id`"; users write
        # paths without the `$.` of JSON path. A nested struct's own check that names its
        # field gets its parent appended ("... - at `from_email` - at `$.custom`"): one path.
        self.problem, *places = str(error).split(" - at `")
        self.path: str | None = None
        if len(places) == 1 and places[0].startswith("key` in `"):  # a mapping's key
            where = places[0].removeprefix("key` in `").rstrip("`").removeprefix("$")
            where = where.removeprefix(".")
            if settings_type is not None:
                mapping = _type_at(settings_type, where)
                if isinstance(mapping, mi.DictType):
                    self._hint(settings_type, None, _unwrap(mapping.key_type)[0])
            super().__init__(f"invalid settings: {self.problem}"
                             + (f" - a key of `{where}`" if where else ""))
            return
        parts = [place.rstrip("`").removeprefix("$").removeprefix(".") for place in places]
        self.path = ".".join(part for part in reversed(parts) if part) or None
        if settings_type is not None:
            self._hint(settings_type, self.path, _type_at(settings_type, self.path))
        where = (f" - at `{self.path}`" if self.path
                 else " - at the settings" if places else "")
        super().__init__(f"invalid settings: {self.problem}{where}")

    def _hint(self, settings_type: type, path: str | None, info: mi.Type | None) -> None:
        """Add what the user can write instead: an enum's values, a misplaced setting's
        place."""
        if self.problem.startswith("Invalid enum value"):
            choices = _choices(info)
            if choices:
                self.problem += f"; choose from {', '.join(choices)}"
        if self.problem.startswith("Expected `bool`, got `str`"):
            self.problem += "; write true or false (without quotes)"
        unknown = re.fullmatch(r"Object contains unknown field `(.+)`", self.problem)
        if unknown:
            better = suggest_path(settings_type, path, unknown.group(1))
            if better:
                self.problem += f"; did you mean {better}?"


def redact(settings_type: type, data: dict[str, Any]) -> dict[str, Any]:
    """Settings safe to print: literal secrets hidden, `env:VAR` references kept."""
    result = data
    for path in secret_paths(settings_type):
        value = get_path(data, path)
        if value and not (isinstance(value, str) and value.startswith("env:")):
            result = set_path(result, path, REDACTED)
    return result
