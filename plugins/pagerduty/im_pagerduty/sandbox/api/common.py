"""What the REST handlers share: query parsing with PagerDuty's errors, classic pagination,
JSON bodies (Content-Type required on writes only), and the `From` header."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response

from im_pagerduty.sandbox import errors
from im_pagerduty.sandbox.core import Sandbox
from im_pagerduty.sandbox.model import User
from im_pagerduty.sandbox.times import parse_time

T = TypeVar("T")
Item = TypeVar("Item")

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
JSON = "application/json; charset=utf-8"


def json_response(body: Any, status: int = 200) -> Response[bytes]:
    return Response(content=msgspec.json.encode(body), status_code=status, media_type=JSON)


class Query:
    def __init__(self, request: Request[Any, Any, Any]) -> None:
        self._params = request.query_params

    def text(self, name: str) -> str | None:
        value = self._params.get(name)
        return value if value not in (None, "") else None

    def strings(self, name: str) -> list[str]:
        """Set filters end in `[]` and repeat; a comma-separated value counts as several."""
        values: list[str] = []
        for raw in self._params.getall(name, []):
            values.extend(part for part in raw.split(",") if part)
        return values

    def integer(self, name: str, default: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise errors.invalid_input(f"{name} must be an integer") from None

    def boolean(self, name: str) -> bool:
        raw = self.text(name)
        if raw is None:
            return False
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise errors.invalid_input(f"{name} must be true or false")

    def time(self, name: str) -> datetime | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return parse_time(raw)
        except ValueError:
            raise errors.invalid_since_until(f"{name} is not a valid date: {raw}") from None

    def includes(self) -> frozenset[str]:
        return frozenset(self.strings("include[]"))


class Page(msgspec.Struct, frozen=True, kw_only=True):
    limit: int
    offset: int
    total: bool

    @classmethod
    def from_query(cls, query: Query, ceiling: int) -> Page:
        """`ceiling`: how far classic pagination reaches (offset + limit; PagerDuty: 10,000)."""
        limit = query.integer("limit", DEFAULT_LIMIT)
        offset = query.integer("offset", 0)
        if limit < 1 or offset < 0:
            raise errors.invalid_input("limit must be positive and offset not negative")
        limit = min(limit, MAX_LIMIT)
        if offset + limit > ceiling:
            raise errors.offset_limit_exceeded(ceiling)
        return cls(limit=limit, offset=offset, total=query.boolean("total"))

    def body(
        self, key: str, items: Sequence[Item], render: Callable[[Item], Any]
    ) -> dict[str, Any]:
        window = items[self.offset : self.offset + self.limit]
        return {
            key: [render(item) for item in window],
            "limit": self.limit,
            "offset": self.offset,
            "more": self.offset + len(window) < len(items),
            "total": len(items) if self.total else None,
        }


async def read_json(request: Request[Any, Any, Any], kind: type[T]) -> T:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise errors.invalid_input("Content-Type must be application/json")
    try:
        return msgspec.json.decode(await request.body(), type=kind)
    except msgspec.ValidationError as exc:
        raise errors.invalid_input(str(exc)) from None
    except msgspec.DecodeError:
        raise errors.invalid_input("The request body is not valid JSON") from None


def requester(request: Request[Any, Any, Any], sandbox: Sandbox) -> User:
    """The user named by `From`: required on incident writes with an account API key."""
    email = request.headers.get("from", "").strip()
    if not email:
        raise errors.from_header_missing()
    if "@" not in email:
        raise errors.from_header_malformed()
    user = sandbox.store.user_by_email(email)
    if user is None:
        raise errors.requester_not_found()
    return user
