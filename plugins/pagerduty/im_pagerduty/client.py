"""A PagerDuty REST API v2 client: auth and versioning headers, one rate-limit budget per API
key, bounded retries with backoff, classic pagination that respects `offset + limit <= 10000`,
and errors that carry PagerDuty's own message."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec
import tenacity
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from im import ConnectorError

log = logging.getLogger("im.pagerduty")

ACCEPT = "application/vnd.pagerduty+json;version=2"
PAGE_LIMIT = 100
OFFSET_CEILING = 10_000  # PagerDuty refuses offset + limit above this
DEFAULT_RATE_LIMIT = 960  # requests per minute per API key
SECRET_HEADERS = {"authorization"}


class CallInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One API call, as the connector reports it to im."""

    method: str
    path: str
    status: int | None
    duration: float
    error: str | None = None
    rate_limit: int | None = None
    rate_remaining: int | None = None


def parse_time(value: str | None) -> datetime | None:
    """A PagerDuty timestamp (`2015-10-06T21:30:42Z`), or None for none."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class PagerDutyError(ConnectorError):
    """A failed PagerDuty call: HTTP status, PagerDuty's error code and its message.

    `unsent` says the request surely was not carried out (no connection, or a 429): sending
    it again cannot make anything twice. After a timeout, a dropped connection or a 5xx the
    change may have been made all the same. `out_of_time`: not sent, the caller's deadline
    (see PagerDutyClient.until) having passed."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None,
                 retryable: bool = False, retry_after: float | None = None,
                 unsent: bool = False, out_of_time: bool = False) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status = status
        self.code = code
        self.unsent = unsent
        self.out_of_time = out_of_time


class _Budget:
    """Requests left for one API key: a moving window in this process, or a window every
    process on the database shares (`Runtime.shared_rate_limits`, several servers on
    PostgreSQL), and PagerDuty's own count (`ratelimit-remaining` / `ratelimit-reset` on
    successful answers), which also covers other programs using the key. A 429's reset is
    waited out by the retry itself."""

    def __init__(self, per_minute: int, shared: Any = None) -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = (MovingWindowRateLimiter(MemoryStorage()) if shared is None
                        else FixedWindowRateLimiter(shared))
        self.blocked_until = 0.0
        self.lock = threading.Lock()

    def take(self, key: str, sleep: Callable[[float], None],
             deadline: float | None = None) -> float | None:
        """Wait for a request's turn: None once it has come, or, without waiting, the seconds
        still to wait when they would run past `deadline` (time.monotonic())."""
        while True:
            with self.lock:
                blocked = self.blocked_until
                wait = blocked - time.monotonic()
                if wait <= 0 and self.limiter.hit(self.item, key):
                    return None
                if wait <= 0:
                    reset, _ = self.limiter.get_window_stats(self.item, key)
                    wait = max(0.01, reset - time.time())
            if deadline is not None and time.monotonic() + wait > deadline:
                return wait
            sleep(wait)
            with self.lock:
                if self.blocked_until == blocked:  # PagerDuty's reset has been waited out
                    self.blocked_until = 0.0

    def observe(self, headers: httpx.Headers) -> None:
        remaining, reset = headers.get("ratelimit-remaining"), _reset_seconds(
            headers.get("ratelimit-reset"))
        if remaining is not None and reset is not None:
            try:
                if int(remaining) <= 0:
                    with self.lock:
                        self.blocked_until = time.monotonic() + reset
            except ValueError:
                pass


_budgets: dict[str, _Budget] = {}
_budgets_lock = threading.Lock()


def _budget_for(api_key: str, per_minute: int, shared: Any = None) -> tuple[_Budget, str]:
    key_id = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    with _budgets_lock:
        budget = _budgets.get(key_id) if shared is None else None
        if budget is None:
            budget = _Budget(per_minute, shared)
            if shared is None:
                _budgets[key_id] = budget
    return budget, f"pagerduty:{key_id}" if shared is not None else key_id


# The longest range of creation times PagerDuty lists at once is 6 months; 180 days is
# within it whatever the months.
MAX_LIST_RANGE = timedelta(days=180)
# The longest `ratelimit-reset` PagerDuty sends: its limits are per minute (API-NOTES.md).
MAX_RATE_LIMIT_RESET = 60.0


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reset_seconds(value: str | None) -> float | None:
    """A `ratelimit-reset` as seconds to wait, between 0 and a minute (a negative, infinite or
    NaN value from a broken proxy would make sleep() fail or block the key for good)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RATE_LIMIT_RESET)


def _retry_after(response: httpx.Response) -> float | None:
    return _reset_seconds(response.headers.get("ratelimit-reset"))


def _error(response: httpx.Response) -> PagerDutyError:
    message, code = response.reason_phrase or "error", None
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        if isinstance(error, dict):
            message = error.get("message") or message
            code = error.get("code")
            details = error.get("errors") or []
            if details:
                message = f"{message}: {'; '.join(str(d) for d in details)}"
    except ValueError:
        pass
    status = response.status_code
    retryable = status == 429 or status >= 500 or status == 408
    text = f"PagerDuty answered {status}: {message}" + (f" (code {code})" if code else "")
    return PagerDutyError(text, status=status, code=code, retryable=retryable,
                          retry_after=_retry_after(response) if status == 429 else None,
                          unsent=status == 429)


class PagerDutyClient:
    def __init__(self, base_url: str, api_key: str, *, from_email: str | None = None,
                 timeout: float = 10.0, max_attempts: int = 4, max_wait: float = 30.0,
                 rate_limit: int = DEFAULT_RATE_LIMIT, transport: httpx.BaseTransport | None = None,
                 shared_rate_limits: Any = None,
                 on_call: Callable[[CallInfo], None] | None = None,
                 trace: Callable[[str, dict[str, Any]], None] | None = None,
                 trace_bodies: tuple[bool, bool] = (False, False),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.from_email = from_email
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.sleep = sleep
        self.on_call = on_call
        self.trace = trace
        self.trace_requests, self.trace_responses = trace_bodies
        self.budget, self.key_id = _budget_for(api_key, rate_limit, shared_rate_limits)
        self._until = threading.local()  # a caller's deadline, per thread (see until())
        self.http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport,
            headers={"Authorization": f"Token token={api_key}", "Accept": ACCEPT,
                     "User-Agent": "im-pagerduty/0.1"},
        )

    def close(self) -> None:
        self.http.close()

    @contextlib.contextmanager
    def until(self, deadline: float | None) -> Iterator[None]:
        """Calls made inside give up at `deadline` (time.monotonic()): each waits at most the
        time left, and no retry starts after it."""
        previous = getattr(self._until, "deadline", None)
        self._until.deadline = deadline
        try:
            yield
        finally:
            self._until.deadline = previous

    def _time_left(self) -> float | None:
        deadline = getattr(self._until, "deadline", None)
        return None if deadline is None else deadline - time.monotonic()

    # -- requests --------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None,
                repeatable: bool | None = None) -> dict[str, Any]:
        """One API call, retried on 429, 5xx, timeouts and connection errors (bounded in
        attempts and total time); other errors raise PagerDutyError at once.

        A request that is not `repeatable` (by default a POST: a second note would be a second
        note) is sent again only when it surely was not carried out; after a timeout, a
        dropped connection or a 5xx the error goes to the caller, whose next attempt checks
        first what the lost one did."""
        if repeatable is None:
            repeatable = method != "POST"
        headers = {}
        if method in {"POST", "PUT", "PATCH", "DELETE"}:
            headers["Content-Type"] = "application/json"
            if self.from_email:
                headers["From"] = self.from_email

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            hint = getattr(error, "retry_after", None)
            if hint:
                # PagerDuty's reset, as it says (up to a minute): a shorter wait only earns
                # another 429. A caller's deadline still bounds it (out_of_time).
                return min(hint, MAX_RATE_LIMIT_RESET) + random.uniform(0, 0.25)
            return min(self.max_wait, random.uniform(0, 0.5 * 2 ** state.attempt_number))

        def out_of_time(state: tenacity.RetryCallState) -> bool:
            left = self._time_left()
            return left is not None and left <= wait(state)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts)
            | tenacity.stop_after_delay(max(self.max_wait * 2, MAX_RATE_LIMIT_RESET + 1))
            | out_of_time,
            wait=wait,
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, PagerDutyError) and e.retryable
                and (repeatable or e.unsent)),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(self._send, method, path, params, json, headers)

    def _send(self, method: str, path: str, params: Any, body: Any,
              headers: dict[str, str]) -> dict[str, Any]:
        deadline = getattr(self._until, "deadline", None)
        # the seconds still to wait for the rate limit, when they run past the deadline
        late = 0.0 if deadline is not None and time.monotonic() >= deadline else (
            self.budget.take(self.key_id, self.sleep, deadline))
        left = self._time_left()
        if late is not None or (left is not None and left <= 0):
            # retry_after: the client's own retry would come too late too; the outbox waits
            # not recorded as a call: none was made (API call and error counts stay true;
            # a change given up on keeps this as its outbox row's last error)
            raise PagerDutyError(f"no time left to call PagerDuty ({method} {path}): earlier"
                                 " calls or the rate limit used up the command's time",
                                 retryable=True, unsent=True, retry_after=late or None,
                                 out_of_time=True)
        started = time.perf_counter()
        request = self.http.build_request(
            method, path, params=params, json=body, headers=headers,
            timeout=httpx.USE_CLIENT_DEFAULT if left is None else min(left, self.timeout))
        if self.trace is not None:
            self._trace_request(request)
        try:
            response = self.http.send(request)
        except httpx.TimeoutException as error:
            # recorded as the user reads it (`im connector status` shows the last one)
            failure = PagerDutyError(
                f"PagerDuty did not answer in time ({method} {path})", retryable=True,
                unsent=isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout))
            self._record(method, path, None, started, str(failure))
            raise failure from error
        except httpx.TransportError as error:
            failure = PagerDutyError(f"cannot reach PagerDuty at {self.base_url}: {error}",
                                     retryable=True,
                                     unsent=isinstance(error, httpx.ConnectError))
            self._record(method, path, None, started, str(failure))
            raise failure from error
        if self.trace is not None:
            self._trace_response(request, response, started)
        if response.is_success:
            self.budget.observe(response.headers)
            self._record(method, path, response.status_code, started, None, response)
            if not response.content:
                return {}
            try:
                data = response.json()
            except ValueError as error:
                raise PagerDutyError(f"PagerDuty sent a body that is not JSON ({method}"
                                     f" {path})", retryable=True) from error
            return data if isinstance(data, dict) else {"data": data}
        error = _error(response)
        self._record(method, path, response.status_code, started, str(error), response)
        raise error

    def _record(self, method: str, path: str, status: int | None, started: float,
                error: str | None, response: httpx.Response | None = None) -> None:
        if self.on_call is None:
            return
        limit = remaining = None
        if response is not None:
            limit = _int(response.headers.get("ratelimit-limit"))
            remaining = _int(response.headers.get("ratelimit-remaining"))
        self.on_call(CallInfo(method=method, path=path, status=status,
                              duration=time.perf_counter() - started, error=error,
                              rate_limit=limit, rate_remaining=remaining))

    def _trace_request(self, request: httpx.Request) -> None:
        from im import redact_body, redact_headers

        details: dict[str, Any] = {"method": request.method, "url": str(request.url),
                                   "headers": redact_headers(request.headers)}
        if self.trace_requests:
            details["body"] = redact_body(request.content)
        assert self.trace is not None
        self.trace(f"PagerDuty request {request.method} {request.url.path}", details)

    def _trace_response(self, request: httpx.Request, response: httpx.Response,
                        started: float) -> None:
        from im import redact_body, redact_headers

        details: dict[str, Any] = {
            "method": request.method, "url": str(request.url), "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "headers": redact_headers(response.headers)}
        if self.trace_responses:
            details["body"] = redact_body(response.content)
        assert self.trace is not None
        self.trace(f"PagerDuty response {response.status_code} {request.method}"
                   f" {request.url.path}", details)

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: dict[str, Any], *, repeatable: bool = False
             ) -> dict[str, Any]:
        return self.request("POST", path, json=body, repeatable=repeatable)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PUT", path, json=body)

    # -- pagination ------------------------------------------------------------------------

    def paginate(self, path: str, key: str, params: dict[str, Any] | None = None
                 ) -> Iterator[dict[str, Any]]:
        """Every record of a classic-paginated list, 100 at a time."""
        params = dict(params or {})
        offset = 0
        while True:
            page = self.get(path, **params, limit=PAGE_LIMIT, offset=offset)
            records = page.get(key, [])
            yield from records
            offset += len(records)
            if not page.get("more") or not records:
                return
            if offset + PAGE_LIMIT > OFFSET_CEILING:
                raise PagerDutyError(f"more than {OFFSET_CEILING} {key} in one listing;"
                                     " narrow the time window")

    def incidents_between(self, since: datetime, until: datetime,
                          params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Incidents created in [since, until), oldest first, without ever asking for
        offset + limit above 10,000: when a window is used up, the next one starts at the
        creation time of the last incident seen (incidents met twice are skipped). Costs
        ceil(N / 100) calls plus one per 10,000 incidents, plus one per 180 days of the
        range: PagerDuty refuses a range over 6 months (400, code 2005), so a long one (a
        cursor a year old) is asked in parts, never as one."""
        seen: set[str] = set()
        start = since
        while start < until:
            end = min(until, start + MAX_LIST_RANGE)
            yield from self._incidents_in(start, end, params, seen)
            start = end

    def changed_between(self, since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
        """Incidents whose state changed in [since, until) (triggered, acknowledged,
        unacknowledged, resolved, merged away, escalated), each once, as they are now: the account's log of such changes (`GET /log_entries?is_overview=true`, newest
        first) with each entry's incident included, so the cost follows the changes, not the
        incidents there are. Never past offset + limit 10,000: when a listing is used up, the
        next one ends just after the second of the oldest entry seen. Ranges of 180 days at most."""
        incidents: set[str] = set()
        end = until
        while end > since:
            start = max(since, end - MAX_LIST_RANGE)
            for entry in self._log_in(start, end):
                incident = entry.get("incident") or {}
                if incident.get("id") and incident.get("type") == "incident" \
                        and incident["id"] not in incidents:
                    incidents.add(incident["id"])
                    yield incident
            end = start

    def _log_in(self, since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        end = until
        while True:
            offset, oldest = 0, None
            while True:
                page = self.get("/log_entries", since=since.isoformat(), until=end.isoformat(),
                                is_overview="true", **{"include[]": ["incidents"]},
                                limit=PAGE_LIMIT, offset=offset)
                records = page.get("log_entries", [])
                for record in records:
                    if record.get("id") not in seen:
                        seen.add(record.get("id"))
                        yield record
                offset += len(records)
                if records:
                    oldest = records[-1].get("created_at")
                if not page.get("more") or not records:
                    return
                if offset + PAGE_LIMIT > OFFSET_CEILING:
                    break
            following = parse_time(str(oldest)) if oldest else None
            if following is None:
                return
            # the entries of that second are asked again (PagerDuty gives times to the
            # second): the ids seen are skipped
            following += timedelta(seconds=1)
            if following >= end:
                raise PagerDutyError(f"more than {OFFSET_CEILING} log entries at {oldest};"
                                     " PagerDuty cannot list them")
            end = following

    def _incidents_in(self, since: datetime, until: datetime, params: dict[str, Any] | None,
                      seen: set[str]) -> Iterator[dict[str, Any]]:
        start = since
        while True:
            offset, last_created = 0, None
            while True:
                page = self.get("/incidents", **(params or {}), since=start.isoformat(),
                                until=until.isoformat(), sort_by="created_at:asc",
                                limit=PAGE_LIMIT, offset=offset)
                records = page.get("incidents", [])
                for record in records:
                    if record["id"] not in seen:
                        seen.add(record["id"])
                        yield record
                offset += len(records)
                if records:
                    last_created = records[-1].get("created_at")
                if not page.get("more") or not records:
                    return
                if offset + PAGE_LIMIT > OFFSET_CEILING:
                    break
            if last_created is None:
                return
            following = parse_time(str(last_created))
            assert following is not None
            if following <= start:
                raise PagerDutyError(f"more than {OFFSET_CEILING} incidents created at"
                                     f" {last_created}; PagerDuty cannot list them")
            start = following
