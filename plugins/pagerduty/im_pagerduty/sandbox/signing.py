"""Webhooks v3 signatures: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>`.

The key is the subscription secret as UTF-8 bytes (not base64-decoded). While a secret rotates
the header carries one `v1=` entry per secret, comma-separated, and a receiver accepts the
request if any entry matches.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def signature(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], body: bytes) -> str:
    return ",".join(signature(secret, body) for secret in secrets)


def signature_matches(header: str | None, body: bytes, secret: str) -> bool:
    """What a receiver checks: an empty body or a header without `v1=` entries never matches."""
    if not header or not body:
        return False
    expected = signature(secret, body)
    offered = [part.strip() for part in header.split(",")]
    return any(hmac.compare_digest(expected, part) for part in offered if part.startswith("v1="))
