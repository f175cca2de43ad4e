"""Bearer tokens of im's HTTP API (`im api-token create/list/rotate/revoke`).

Each token has a name and is either read-write or read-only (GET and HEAD only). Only the
SHA-256 of a token is stored: a token is shown once, when it is made. `im serve` looks each
request's token up in the database, so a revoked or rotated token is refused at once, without a
restart. Tokens are 256 random bits, so a fast hash is as safe as a slow one here.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

import msgspec

from im.errors import InvalidInputError, NotFoundError
from im.storage import Store

PREFIX = "im_"
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
LEGACY_KEY = "api_token"  # where im kept its one token, in clear, before named tokens


class ApiToken(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    read_only: bool
    created_at: datetime | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def adopt_legacy(store: Store, now: datetime) -> None:
    """A token made by an earlier im (one, kept in clear) becomes the hashed token `default`,
    so that clients using it keep working."""
    if store.get_meta(LEGACY_KEY) is None:
        return
    token = store.pop_meta(LEGACY_KEY)
    if token:
        store.insert_api_token(name="default", hash=_hash(token), read_only=False,
                               created_at=now)


def create(store: Store, name: str, *, read_only: bool, now: datetime) -> str:
    """A new token called `name`; returns its secret, which is not kept."""
    if not NAME.match(name):
        raise InvalidInputError(f"invalid token name {name!r}: use lower-case letters, digits,"
                                " '.', '-' or '_'")
    adopt_legacy(store, now)
    token = _new_secret()
    if not store.insert_api_token(name=name, hash=_hash(token), read_only=read_only,
                                  created_at=now):
        raise InvalidInputError(f"a token named {name} exists already; make a new secret"
                                f" for it with `im api-token rotate {name}`")
    return token


def rotate(store: Store, name: str, now: datetime) -> str:
    """A new secret for token `name`; the old one is refused from now on."""
    adopt_legacy(store, now)
    token = _new_secret()
    if not store.replace_api_token_hash(name, _hash(token)):
        raise NotFoundError(_unknown(store, name))
    return token


def revoke(store: Store, name: str, now: datetime) -> None:
    adopt_legacy(store, now)
    if not store.delete_api_token(name):
        raise NotFoundError(_unknown(store, name))


def tokens(store: Store, now: datetime) -> list[ApiToken]:
    adopt_legacy(store, now)
    return [ApiToken(name=name, read_only=read_only, created_at=created)
            for name, read_only, created in store.api_tokens()]


def authenticate(store: Store, authorization: str | None) -> ApiToken | None:
    """The token an `Authorization: Bearer ...` header carries, if it is a valid one."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    found = store.api_token_by_hash(_hash(authorization[7:].strip()))
    return ApiToken(name=found[0], read_only=found[1]) if found else None


def _unknown(store: Store, name: str) -> str:
    names = ", ".join(row[0] for row in store.api_tokens()) or "none"
    return f"no API token named {name!r} (tokens: {names})"
