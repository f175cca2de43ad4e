"""An HTTP client for connectors and workflow actions: the right thing by default, so a
plugin's author writes no logging, metrics or retry code.

`connector_client(caller, base_url=...)`, where `caller` is a Connector or a WorkflowAction,
wraps an `httpx.Client` that, for every call:

- logs the request and the answer when the caller's debug switches say `debug`,
  `log_requests` or `log_responses`: a connector's to the `im.connector.<name>` logger, as its
  settings, `<TYPE>_DEBUG=true` and the settings file's `connectors.<type>` section set them;
  an action's to the `im.workflows.<action name>` logger, as `<ACTION>_DEBUG=true`
  (`TEAMS_NOTIFY_DEBUG` for `teams.notify`) or fields of the same names in its Settings set
  them. `im logs` shows both (components `connector` and `workflows`). Secrets are masked:
  credentials by their names (im.redact), and the values of the caller's secret settings
  (fields marked `im.secret()`, or a prompt with `secret=True`) wherever they appear, also in
  httpx's own log line and in the errors raised;
- records a connector's call with `runtime.record_call` (method, path, status, duration,
  error, the rate limit the answer gave), which `im connector status`, `health` and `im
  metrics connector` read. An action's calls are not recorded there (those commands are a
  connector's): what an action did is its run's (`im workflow show`: status, attempts, last
  error) and the incident's timeline;
- gives up at the caller's deadline (`with client.until(request.deadline):`), raising a
  retryable ConnectorError that says so, and never sleeps past it;
- keeps to a rate limit the connector knows in advance, when a call names one
  (`budget=(im.RateBudget, key)`): each attempt waits its turn before it is sent, within the
  deadline;
- retries by the core's rules: a request that is safe to repeat (GET, HEAD, OPTIONS, PUT,
  DELETE, or any request sent with an idempotency key) after a connection error, a timeout,
  a 408, a 429 or a 5xx; any other (a POST, a PATCH) only when it surely was not sent (the
  connection never opened, or a 429), waiting as the remote system says (`Retry-After`,
  `ratelimit-reset`), within bounds;
- turns failures into `ConnectorHTTPError` (a ConnectorError) with a message the user reads.

Loaded only when a connector asks for it: `import im` stays cheap.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx

from im.errors import ConnectorError

if TYPE_CHECKING:
    from im.connectors import Connector
    from im.rate_budget import RateBudget
    from im.workflows import WorkflowAction

# Methods whose repetition changes nothing more than the first call did (RFC 9110, 9.2.2).
REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# The longest remote error message kept in an error's text.
MESSAGE_LIMIT = 300
_SPACES = re.compile(r"\s+")
# A secret setting's value shorter than this is not looked for in what is logged: it would
# mask words that merely contain it.
MIN_SECRET_LENGTH = 8


class ConnectorHTTPError(ConnectorError):
    """A call that failed, in words for the user (`str(error)`), and for the connector:

    `status`: the HTTP status of the answer (None when there was none: no connection, a
    timeout). `unsent`: the request surely was not carried out (the connection never opened,
    a 429, or no time was left to send it), so sending it again cannot make anything twice.
    `out_of_time`: given up because the caller's deadline came. `response`: the answer, for a
    connector that reads its API's own error fields. `retryable` and `retry_after` are
    ConnectorError's: what the core's outbox does with the change."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None, unsent: bool = False,
                 out_of_time: bool = False, response: httpx.Response | None = None) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status = status
        self.unsent = unsent
        self.out_of_time = out_of_time
        self.response = response


def connector_client(caller: Connector | WorkflowAction, *, base_url: str,
                     headers: dict[str, str] | None = None, timeout: float = 10.0,
                     system: str | None = None, max_attempts: int = 4, max_wait: float = 30.0,
                     max_retry_after: float = 60.0, rate_limit_window: float = 60.0,
                     error_message: Callable[[httpx.Response], str | None] | None = None,
                     transport: httpx.BaseTransport | None = None,
                     sleep: Callable[[float], None] = time.sleep,
                     monotonic: Callable[[], float] = time.monotonic) -> ConnectorClient:
    """An HTTP client for `caller` (a Connector, or a WorkflowAction) to call `base_url` with,
    sending `headers` (its credentials) on every call, each attempt waiting at most `timeout`
    seconds for an answer: see ConnectorClient for the other options."""
    return ConnectorClient(
        caller, base_url=base_url, headers=headers, timeout=timeout, system=system,
        max_attempts=max_attempts, max_wait=max_wait, max_retry_after=max_retry_after,
        rate_limit_window=rate_limit_window, error_message=error_message,
        transport=transport, sleep=sleep, monotonic=monotonic)


class ConnectorClient:
    """HTTP calls of one connector or workflow action, logged, recorded (a connector's),
    bounded and retried by the core's rules.

    `get`, `post`, `put`, `patch` and `delete` return the answer's body decoded from JSON (None
    for an empty one); `request` returns the `httpx.Response` itself (its status, headers).
    Any answer but a 2xx raises ConnectorHTTPError.

    `client.http` is the `httpx.Client` underneath, for what the calls do not cover (its own
    calls are neither logged, recorded nor retried); `with client:` closes it at the end.

    A path may be a full URL (a webhook's), which `base_url` does not prefix. An action that
    leaves retrying to the workflow runner (which tries a run again with backoff, after the
    `retry_after` a 429 gave) passes `max_attempts=1`.

    Options: `system` names the remote system in messages and log lines (default: the
    caller's name); `max_attempts` bounds the attempts of one call; `max_wait` the backoff
    between attempts when the remote system gives no time; `max_retry_after` the wait it may
    ask for (longer: the call gives up at once, its error carrying `retry_after`, and the
    outbox waits instead); `rate_limit_window` is the seconds its rate-limit headers count
    over (3600 for a limit per hour), so that the limit recorded is per minute, as `Rate Limit
    Usage` reads it; `error_message(response)` reads the remote message out of a failed
    answer, for an API whose error body the default reading misses; `transport`, `sleep` and
    `monotonic` are for tests (an httpx transport, time.sleep, time.monotonic)."""

    def __init__(self, caller: Connector | WorkflowAction, *, base_url: str,
                 headers: dict[str, str] | None = None, timeout: float = 10.0,
                 system: str | None = None, max_attempts: int = 4, max_wait: float = 30.0,
                 max_retry_after: float = 60.0, rate_limit_window: float = 60.0,
                 error_message: Callable[[httpx.Response], str | None] | None = None,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        from im.connectors import Connector
        from im.workflows import WorkflowAction

        if not isinstance(caller, Connector | WorkflowAction):
            raise TypeError(f"connector_client takes a Connector or a WorkflowAction, not"
                            f" {type(caller).__name__}")
        self.caller = caller
        is_action = isinstance(caller, WorkflowAction)
        # an action's calls are not recorded: the figures that read them are a connector's
        self.records_calls = not is_action
        self.system = system or caller.name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.max_wait = max_wait
        self.max_retry_after = max_retry_after
        self.rate_limit_window = rate_limit_window
        self.error_message = error_message or remote_message
        self.sleep = sleep
        self.monotonic = monotonic
        settings = caller.settings
        debug = bool(getattr(settings, "debug", False))
        log_requests = bool(getattr(settings, "log_requests", False))
        log_responses = bool(getattr(settings, "log_responses", False))
        if is_action:  # a connector's settings have its variable's switches already
            import os

            from im.runtime import debug_variable

            if os.environ.get(debug_variable(caller.name), "").lower() in ("1", "true", "yes"):
                debug = True
        # Any switch logs every call; the bodies as each switch says (debug: both).
        self.tracing = debug or log_requests or log_responses
        self.log_request_bodies = debug or log_requests
        self.log_response_bodies = debug or log_responses
        self.log = logging.getLogger(("im.workflows." if is_action else "im.connector.")
                                     + caller.name)
        self.secrets = secret_values(settings)
        _hide_in_httpx_log(self.secrets)
        self._until = threading.local()
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                 transport=transport)

    def close(self) -> None:
        """Close its connections (`with client:` does it at the end)."""
        self.http.close()

    def __enter__(self) -> ConnectorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def mask(self, text: str) -> str:
        """`text` with the values of the caller's secret settings masked: for a reason the
        remote gave that the caller words itself (the client's own errors and log lines are
        masked already)."""
        return _mask(text, self.secrets)

    # -- the deadline ----------------------------------------------------------------------

    @contextlib.contextmanager
    def until(self, deadline: float | None) -> Iterator[None]:
        """A context manager: calls made inside (in this thread) give up at `deadline`, a
        time.monotonic() such as `request.deadline`: each waits at most the time left, and no
        retry or rate-limit wait runs past it. Inside another `until`, the earlier deadline
        holds."""
        previous = getattr(self._until, "deadline", None)
        self._until.deadline = _earliest(previous, deadline)
        try:
            yield
        finally:
            self._until.deadline = previous

    # -- calls -----------------------------------------------------------------------------

    def get(self, path: str, *, params: Any = None, headers: dict[str, str] | None = None,
            deadline: float | None = None) -> Any:
        """GET `path` (with the query `params`); the answer's JSON. Sent again after an
        outage, as any request safe to repeat."""
        return self._json(self.request("GET", path, params=params, headers=headers,
                                       deadline=deadline), "GET", path)

    def post(self, path: str, json: Any = None, *, params: Any = None,
             headers: dict[str, str] | None = None, idempotency_key: str | None = None,
             repeatable: bool | None = None, deadline: float | None = None) -> Any:
        """POST `json` to `path`; the answer's JSON. Sent again only when it surely was not
        sent, unless it carries an `idempotency_key` or is `repeatable` (see `request`)."""
        return self._json(self.request("POST", path, json=json, params=params, headers=headers,
                                       idempotency_key=idempotency_key, repeatable=repeatable,
                                       deadline=deadline), "POST", path)

    def put(self, path: str, json: Any = None, *, params: Any = None,
            headers: dict[str, str] | None = None, deadline: float | None = None) -> Any:
        """PUT `json` to `path`; the answer's JSON. Sent again after an outage."""
        return self._json(self.request("PUT", path, json=json, params=params, headers=headers,
                                       deadline=deadline), "PUT", path)

    def patch(self, path: str, json: Any = None, *, params: Any = None,
              headers: dict[str, str] | None = None, idempotency_key: str | None = None,
              repeatable: bool | None = None, deadline: float | None = None) -> Any:
        """PATCH `path` with `json`; the answer's JSON. Sent again as a POST is."""
        return self._json(self.request("PATCH", path, json=json, params=params,
                                       headers=headers, idempotency_key=idempotency_key,
                                       repeatable=repeatable, deadline=deadline),
                          "PATCH", path)

    def delete(self, path: str, *, params: Any = None, headers: dict[str, str] | None = None,
               deadline: float | None = None) -> Any:
        """DELETE `path`; the answer's JSON (None for an empty body). Sent again after an
        outage."""
        return self._json(self.request("DELETE", path, params=params, headers=headers,
                                       deadline=deadline), "DELETE", path)

    def request(self, method: str, path: str, *, params: Any = None, json: Any = None,
                content: bytes | str | None = None, headers: dict[str, str] | None = None,
                idempotency_key: str | None = None, repeatable: bool | None = None,
                deadline: float | None = None,
                budget: tuple[RateBudget, str] | None = None) -> httpx.Response:
        """One call, retried by the core's rules; its 2xx answer, or ConnectorHTTPError.

        `repeatable`: whether sending it twice is harmless. By default, true for GET, HEAD,
        OPTIONS, PUT and DELETE, and for a request with an `idempotency_key` (sent as the
        `Idempotency-Key` header; pass `repeatable=True` instead when the key travels in the
        body); any other request is sent again only when it surely was not sent. `deadline`:
        as `until(deadline)`, for this call. `budget`: (an im.RateBudget, a key): each attempt
        first waits its turn under that limit, with this client's `sleep`; a turn that would
        come after the deadline is not waited for (a retryable error, unsent, carrying the
        wait as `retry_after`)."""
        import tenacity

        method = method.upper()
        headers = dict(headers or {})
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if repeatable is None:
            repeatable = method in REPEATABLE_METHODS or idempotency_key is not None
        deadline = _earliest(getattr(self._until, "deadline", None), deadline)
        where = f"{method} {_path_of(path)}"

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            hint = getattr(error, "retry_after", None)
            if hint is not None:
                return float(hint)  # the remote system's own time (bounded in `stop`)
            return min(self.max_wait, _backoff(state.attempt_number))

        out_of_time: list[float] = []  # the wait that would have run past the deadline

        def stop(state: tenacity.RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            if state.attempt_number >= self.max_attempts:
                return True
            if getattr(error, "retry_after", None) is not None and (
                    state.upcoming_sleep > self.max_retry_after):
                return True  # longer than a call should wait: the outbox waits instead
            if deadline is not None and self.monotonic() + state.upcoming_sleep > deadline:
                out_of_time.append(state.upcoming_sleep)
                return True
            return False

        def give_up(state: tenacity.RetryCallState) -> Any:
            error = state.outcome.exception() if state.outcome else None
            assert isinstance(error, ConnectorHTTPError)
            if out_of_time:
                wait = out_of_time[0]
                why = (f"waiting {_seconds(wait)} would run past the command's deadline"
                       if deadline is not None and self.monotonic() < deadline
                       else "the command's time is up")
                raise ConnectorHTTPError(
                    f"{error} (not tried again: {why})", status=error.status, retryable=True,
                    retry_after=error.retry_after, unsent=error.unsent, out_of_time=True,
                    response=error.response) from error
            raise error

        def worth_retrying(error: BaseException) -> bool:
            return (isinstance(error, ConnectorHTTPError) and error.retryable
                    and not error.out_of_time and (repeatable or error.unsent))

        retrying = tenacity.Retrying(
            stop=stop, wait=wait, sleep=self.sleep,
            retry=tenacity.retry_if_exception(worth_retrying), retry_error_callback=give_up)
        response: httpx.Response = retrying(self._send, method, path, where, params, json,
                                            content, headers, deadline, budget)
        return response

    # -- one attempt -----------------------------------------------------------------------

    def _send(self, method: str, path: str, where: str, params: Any, body: Any,
              content: bytes | str | None, headers: dict[str, str],
              deadline: float | None,
              budget: tuple[RateBudget, str] | None = None) -> httpx.Response:
        left = None if deadline is None else deadline - self.monotonic()
        if left is not None and left <= 0:
            # not recorded as a call: none was made
            raise ConnectorHTTPError(self.mask(
                f"no time left to call {self.system} ({where}): the command's deadline"
                " passed"), retryable=True, unsent=True, out_of_time=True)
        if budget is not None:
            rate, key = budget
            late = rate.take(key, deadline=deadline, sleep=self.sleep, monotonic=self.monotonic)
            if late is not None:
                raise ConnectorHTTPError(self.mask(
                    f"no time left to call {self.system} ({where}): its turn under the rate"
                    f" limit im keeps ({rate.limit}) comes in {_seconds(late)}, after the"
                    " command's deadline"), retryable=True, retry_after=late, unsent=True,
                    out_of_time=True)
            left = None if deadline is None else deadline - self.monotonic()
        request = self.http.build_request(
            method, path, params=params, json=body, content=content, headers=headers,
            timeout=httpx.USE_CLIENT_DEFAULT if left is None else min(left, self.timeout))
        if self.tracing:
            self._log_request(request, where)
        started = time.perf_counter()
        try:
            response = self.http.send(request)
        except httpx.TimeoutException as error:
            failure = ConnectorHTTPError(
                self.mask(f"{self.system} did not answer in time ({where})"), retryable=True,
                unsent=isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout))
            self._failed(request, where, started, failure)
            raise failure from error
        except httpx.UnsupportedProtocol as error:
            # the base URL is wrong (no http:// or https://): trying again cannot help
            failure = ConnectorHTTPError(self.mask(
                f"cannot call {self.system} at {self.base_url} ({where}): the base URL must"
                " start with http:// or https://"), unsent=True)
            self._failed(request, where, started, failure)
            raise failure from error
        except httpx.ConnectError as error:
            failure = ConnectorHTTPError(self.mask(
                f"cannot reach {self.system} at {self.base_url} ({where}): {error}"),
                retryable=True, unsent=True)
            self._failed(request, where, started, failure)
            raise failure from error
        except httpx.TransportError as error:
            # the request may have been carried out before the connection was lost
            failure = ConnectorHTTPError(self.mask(
                f"lost the connection to {self.system} ({where}): {error}"), retryable=True)
            self._failed(request, where, started, failure)
            raise failure from error
        duration = time.perf_counter() - started
        if self.tracing:
            self._log_response(request, response, where, duration)
        failure = None if response.is_success else self._error(response, where)
        self._record(where, response.status_code, duration,
                     str(failure) if failure else None, response)
        if failure is not None:
            raise failure
        return response

    def _error(self, response: httpx.Response, where: str) -> ConnectorHTTPError:
        error = self._status_error(response, where)
        return ConnectorHTTPError(self.mask(str(error)), status=error.status,
                                  retryable=error.retryable, retry_after=error.retry_after,
                                  unsent=error.unsent, response=response)

    def _status_error(self, response: httpx.Response, where: str) -> ConnectorHTTPError:
        status = response.status_code
        try:
            message = _one_line(self.error_message(response))
        except Exception:  # a connector's reading of a body it did not expect
            self.log.warning("%s: error_message could not read a %s answer to %s",
                             self.system, status, where, exc_info=True)
            message = _one_line(remote_message(response))
        said = f": {message}" if message else ""
        hint = retry_after(response.headers, status)
        if status == 429:
            return ConnectorHTTPError(
                f"{self.system} is rate limiting requests (429){said}", status=status,
                retryable=True, retry_after=hint, unsent=True, response=response)
        if status == 408:
            return ConnectorHTTPError(f"{self.system} did not answer in time ({where})",
                                      status=status, retryable=True, retry_after=hint,
                                      response=response)
        if status >= 500:
            detail = message or response.reason_phrase
            said = f": {detail}" if detail else ""
            return ConnectorHTTPError(f"{self.system} answered {status}{said}", status=status,
                                      retryable=True, retry_after=hint, response=response)
        if 300 <= status < 400 and not message and response.headers.get("location"):
            said = f": redirected to {response.headers['location']} (check the base URL)"
        return ConnectorHTTPError(f"{self.system} refused the request ({status}){said}",
                                  status=status, response=response)

    def _json(self, response: httpx.Response, method: str, path: str) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            where = f"{method} {_path_of(path)}"
            raise ConnectorHTTPError(self.mask(f"{self.system} sent a body that is not JSON"
                                               f" ({where})"),
                                     status=response.status_code, retryable=True,
                                     response=response) from None

    # -- what is recorded and logged -------------------------------------------------------

    def _failed(self, request: httpx.Request, where: str, started: float,
                failure: ConnectorHTTPError) -> None:
        duration = time.perf_counter() - started
        if self.tracing:
            self.log.info(self.mask(f"{self.system} request {where} failed: {failure}"),
                          extra={"method": request.method, "url": self._url(request.url),
                                 "duration_ms": round(duration * 1000, 1)})
        self._record(where, None, duration, str(failure), None)

    def _record(self, where: str, status: int | None, duration: float, error: str | None,
                response: httpx.Response | None) -> None:
        if not self.records_calls:
            return
        limit = remaining = None
        if response is not None:
            headers = response.headers
            limit = _leading_int(headers.get("ratelimit-limit")
                                 or headers.get("x-ratelimit-limit"))
            remaining = _leading_int(headers.get("ratelimit-remaining")
                                     or headers.get("x-ratelimit-remaining"))
            if limit is not None and self.rate_limit_window != 60:
                limit = max(1, round(limit * 60 / self.rate_limit_window))
        method, path = where.split(" ", 1)
        self.caller.runtime.record_call(
            self.caller.name, method=method, path=self.mask(path), status=status,
            duration=duration, error=error, rate_limit=limit, rate_remaining=remaining)

    def _url(self, url: httpx.URL) -> str:
        return self.mask(redact_url(url))

    def _headers(self, headers: httpx.Headers) -> dict[str, str]:
        from im.redact import redact_headers

        return {k: self.mask(v) for k, v in redact_headers(headers).items()}

    def _log_request(self, request: httpx.Request, where: str) -> None:
        from im.redact import redact_body

        details: dict[str, Any] = {"method": request.method, "url": self._url(request.url),
                                   "headers": self._headers(request.headers)}
        if self.log_request_bodies:
            details["body"] = self.mask(redact_body(request.content))
        self.log.info(self.mask(f"{self.system} request {where}"), extra=details)

    def _log_response(self, request: httpx.Request, response: httpx.Response, where: str,
                      duration: float) -> None:
        from im.redact import redact_body

        details: dict[str, Any] = {
            "method": request.method, "url": self._url(request.url),
            "status": response.status_code, "duration_ms": round(duration * 1000, 1),
            "headers": self._headers(response.headers)}
        if self.log_response_bodies:
            details["body"] = self.mask(redact_body(response.content))
        self.log.info(self.mask(f"{self.system} response {response.status_code} {where}"),
                      extra=details)


# -- reading answers -----------------------------------------------------------------------


def remote_message(response: httpx.Response) -> str | None:
    """The message of a failed answer, as common APIs put it: a JSON body's `message`,
    `error` (text, or an object with a `message`), `error_description`, `detail` or `title`,
    with its `errors` (texts, or objects with a `message`) after it; else a short plain-text
    body. None when there is none."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip() if response.content else ""
        plain = response.headers.get("content-type", "").startswith("text/plain")
        return text if plain and text and len(text) <= MESSAGE_LIMIT else None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    found: Any = None
    if isinstance(error, dict):
        found = error.get("message")
        body = {**body, "errors": body.get("errors") or error.get("errors")}
    for key in ("message", "error", "error_description", "detail", "title"):
        if found:
            break
        value = body.get(key)
        found = value if isinstance(value, str) else None
    errors = body.get("errors")
    details = [str(item.get("message") if isinstance(item, dict) else item)
               for item in (errors if isinstance(errors, list) else [])
               if (item.get("message") if isinstance(item, dict) else item)]
    if details:
        found = f"{found}: {'; '.join(details)}" if found else "; ".join(details)
    return str(found) if found else None


def retry_after(headers: httpx.Headers, status: int | None = None) -> float | None:
    """The seconds the remote system asks to wait: `Retry-After` (seconds or an HTTP date),
    else for a 429 the rate limit's reset (`ratelimit-reset`, `x-ratelimit-reset`: seconds,
    or a Unix time). None when it says nothing."""
    value = headers.get("retry-after")
    if value is not None:
        seconds = _number(value)
        if seconds is None:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, IndexError):
                seconds = None
        if seconds is not None:
            return max(0.0, seconds)
    if status == 429:
        reset = _number(headers.get("ratelimit-reset") or headers.get("x-ratelimit-reset"))
        if reset is not None:
            if reset > 1_000_000_000:  # a Unix time, as some APIs send it
                reset -= time.time()
            return max(0.0, reset)
    return None


def redact_url(url: httpx.URL) -> str:
    """The URL for a log, the values of query parameters named like secrets masked (the URL
    as it is when none is)."""
    from im.redact import MASK, SECRET_NAME

    if not url.query or not any(SECRET_NAME.search(key) for key in url.params):
        return str(url)
    params = [(key, MASK if SECRET_NAME.search(key) else value)
              for key, value in url.params.multi_items()]
    return str(url.copy_with(params=params))


def secret_values(settings: Any) -> tuple[str, ...]:
    """What to mask of the secret settings (fields marked secret) in `settings`: of a URL (a
    webhook's, whose path or query is its credential) its path and query, path, query and
    user info, as a request shows them, so that a trace still names the host; then each
    value whole, longest first."""
    import msgspec

    from im.connector_config import get_path, secret_paths

    try:
        data = msgspec.to_builtins(settings)
        paths = secret_paths(type(settings))
    except (TypeError, msgspec.ValidationError):  # not a settings struct: nothing marked
        return ()
    values: set[str] = set()
    parts: set[str] = set()
    for path in paths:
        value = get_path(data, path)
        if not isinstance(value, str):
            continue
        values.add(value)
        if value.startswith(("http://", "https://")):
            try:
                url = httpx.URL(value)
            except httpx.InvalidURL:
                continue
            path_and_query = url.raw_path.decode("ascii", "replace")
            parts.update((path_and_query, path_and_query.split("?", 1)[0],
                          url.query.decode("ascii", "replace"), url.userinfo.decode(
                              "ascii", "replace")))

    def longest_first(found: set[str]) -> list[str]:
        return sorted((v for v in found if len(v) >= MIN_SECRET_LENGTH), key=len,
                      reverse=True)

    return tuple(dict.fromkeys(longest_first(parts) + longest_first(values)))


def _mask(text: str, secrets: tuple[str, ...]) -> str:
    from im.redact import MASK

    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class _HideSecretsInHttpxLog(logging.Filter):
    """httpx logs every request's URL (at INFO) to the `httpx` logger, whoever configures
    logging; the clients' secrets are masked in it."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()
        self.lock = threading.Lock()

    def add(self, secrets: tuple[str, ...]) -> None:
        with self.lock:  # replaced whole, so a record being filtered sees one or the other
            self.secrets = tuple(dict.fromkeys(secrets + self.secrets))

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        if secrets and isinstance(record.args, tuple):
            record.args = tuple(_mask(arg, secrets) if isinstance(arg, str)
                                else _mask(str(arg), secrets) if isinstance(arg, httpx.URL)
                                else arg for arg in record.args)
        return True


_httpx_log_filter = _HideSecretsInHttpxLog()
logging.getLogger("httpx").addFilter(_httpx_log_filter)


def _hide_in_httpx_log(secrets: tuple[str, ...]) -> None:
    if secrets and not set(secrets) <= set(_httpx_log_filter.secrets):
        _httpx_log_filter.add(secrets)


def _path_of(path: str) -> str:
    """What messages name a call by: its path without the query, also of a full URL."""
    if path.startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        return urlsplit(path).path or "/"
    return path.split("?", 1)[0]


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _leading_int(value: str | None) -> int | None:
    """`100` of `100`, and of `100, 100;w=60` (a limit with its policies, as drafted)."""
    if value is None:
        return None
    match = re.match(r"\s*(\d+)", value)
    return int(match.group(1)) if match else None


def _one_line(text: str | None) -> str | None:
    if not text:
        return None
    from im.humanize import printable

    text = _SPACES.sub(" ", printable(str(text))).strip()
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT - 3] + "..."


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 0.5 s, 1 s, 2 s, ... after attempt 1, 2, 3."""
    import random

    return random.uniform(0, 0.5 * 2 ** (attempt - 1))


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s".replace(".0s", "s")


def _earliest(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return first if second is None else second
    return min(first, second)
