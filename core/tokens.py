"""The bearer token of im's HTTP API: made on the server's first start, kept in the database
(readable by its owner only), shown by `im api-token`."""

from __future__ import annotations

import hmac
import secrets

from im.storage import Store

KEY = "api_token"


def api_token(store: Store, *, create: bool = True, rotate: bool = False) -> str | None:
    with store.transaction():
        token = store.get_meta(KEY)
        if (token is None and create) or rotate:
            token = "im_" + secrets.token_urlsafe(32)
            store.set_meta(KEY, token)
    return token


def token_matches(expected: str, authorization: str | None) -> bool:
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), expected.encode())
