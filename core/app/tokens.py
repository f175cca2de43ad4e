"""API token operations: create, list, rotate and revoke the bearer tokens of the HTTP API.

The tokens themselves (their names, their hashes, a token kept by an earlier im adopted) are
`im.tokens`', which `im serve` also checks each request's token with; these are the
operations a front end offers on them, at the runtime's store and time. A token's secret is
in the result of `create` and `rotate` only: im keeps its hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from im import tokens
from im.tokens import ApiToken

if TYPE_CHECKING:
    from im.runtime import Runtime

__all__ = ["ApiToken", "TokenSecret", "create", "list_tokens", "revoke", "rotate"]


class TokenSecret(msgspec.Struct, frozen=True, kw_only=True):
    """A token's secret, to be shown once (`Authorization: Bearer SECRET`)."""

    name: str
    secret: str


def create(runtime: Runtime, name: str, *, read_only: bool = False) -> TokenSecret:
    """A new token called `name` (lower-case letters, digits, '.', '-' or '_'; not one that
    exists); `read_only` may only read (GET and HEAD)."""
    secret = tokens.create(runtime.store, name, read_only=read_only, now=runtime.clock())
    return TokenSecret(name=name, secret=secret)


def list_tokens(runtime: Runtime) -> list[ApiToken]:
    """Every token, by name, with its access and when it was made (never a secret)."""
    return tokens.tokens(runtime.store, runtime.clock())


def rotate(runtime: Runtime, name: str) -> TokenSecret:
    """A new secret for token `name`; the old one is refused from now on."""
    return TokenSecret(name=name, secret=tokens.rotate(runtime.store, name, runtime.clock()))


def revoke(runtime: Runtime, name: str) -> None:
    """Remove token `name`: requests with it are refused at once, by a running `im serve`
    too."""
    tokens.revoke(runtime.store, name, runtime.clock())
