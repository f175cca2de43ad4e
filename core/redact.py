"""Redaction of secrets in what is logged: header values and JSON fields that carry
credentials never reach a log, whatever the debug settings."""

from __future__ import annotations

import json
import re
from typing import Any

MASK = "***"
SECRET_NAME = re.compile(r"(secret|token|password|passwd|api[_-]?key|authorization|signature"
                         r"|cookie|credential)", re.IGNORECASE)


def redact_headers(headers: dict[str, str] | Any) -> dict[str, str]:
    return {k: (MASK if SECRET_NAME.search(k) else v) for k, v in dict(headers).items()}


def redact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (MASK if SECRET_NAME.search(str(k)) and v not in (None, "") else
                    redact_value(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value


def redact_body(body: bytes | str | None, limit: int = 4000) -> str:
    """A request or response body for a log: JSON with secret fields masked, cut at `limit`."""
    if not body:
        return ""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    try:
        text = json.dumps(redact_value(json.loads(text)), separators=(",", ":"))
    except ValueError:
        text = SECRET_VALUE.sub(r"\1" + MASK, text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


SECRET_VALUE = re.compile(r"((?:secret|token|password|api_key)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,]+",
                          re.IGNORECASE)
