"""What keeps the webhook route of `im serve` standing on the open internet: the client address
behind a trusted proxy, limits that keep refused requests apart from signed deliveries, and
refusals counted and logged in aggregate rather than one log line each.

Everything here is in memory and bounded: an attacker choosing paths, headers or (through
many addresses) sources can make none of it grow without limit.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from im.errors import ImError

webhook_log = logging.getLogger("im.webhook")  # `im logs --component webhook`

REFUSAL_LOG_SECONDS = 60.0  # refusals after a source's first are logged once per this
MAX_REFUSAL_KEYS = 1000  # (source, reason, connector) keys kept; more are "other sources"
OTHER_SOURCES = "other sources"
_MEMO_SIZE = 4096  # addresses remembered by the lookups below (cleared when full)

# Why a webhook request is refused: the `reason` label of /metrics, and the words of the log.
REASONS = {
    "forbidden": "source address not allowed",
    "not_found": "no such connector, or its webhooks are off",
    "too_large": "body too large",
    "bad_signature": "bad or missing signature",
}


# -- settings ------------------------------------------------------------------------------


def networks(values: Any, setting: str) -> list[Any]:
    """`server.<setting>`: a list of addresses or networks (one string is taken as a list)."""
    if not values:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        raise ImError(f"settings server.{setting}: {values!r} is not a list of networks")
    try:
        return [ipaddress.ip_network(str(v), strict=False) for v in values]
    except ValueError as error:
        raise ImError(f"settings server.{setting}: {error}") from None


def per_second(server_settings: dict[str, Any], key: str, default: int
               ) -> Callable[[str], bool] | None:
    """A limit of `server.<key>` requests per second (`0`: none), as a function telling
    whether one more request under a key is within it. None when off."""
    limit = server_settings.get(key, default)
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        raise ImError(f"settings server.{key}: {limit!r} is not a number") from None
    if limit < 0:
        raise ImError(f"settings server.{key}: {limit} is negative (0 turns the limit off)")
    if limit == 0:
        return None
    from limits import RateLimitItemPerSecond
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter

    limiter = FixedWindowRateLimiter(MemoryStorage())
    item = RateLimitItemPerSecond(limit)

    def within(key: str) -> bool:
        return limiter.hit(item, key)

    return within


class AddressSet:
    """Membership of an address in some networks, remembered per address string (a dict
    lookup per request, once the address was seen)."""

    def __init__(self, nets: list[Any]) -> None:
        self.nets = nets
        self._memo: dict[str, bool] = {}

    def __len__(self) -> int:
        return len(self.nets)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        known = self._memo.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
                known = any(ip in net for net in self.nets)
            except ValueError:
                known = False
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[address] = known
        return known


# -- the client behind a proxy -------------------------------------------------------------


class ClientAddress:
    """The address a request comes from. That is the TCP peer's, unless the peer is one of
    `server.trusted_proxies`: then it is read from the header the proxy writes
    (`server.forwarded_header`: `X-Forwarded-For`, the default, or `Forwarded`), from the
    right, skipping trusted proxies; the first address that is not one is the client. Entries
    left of it were written by the client itself and are never believed."""

    def __init__(self, server_settings: dict[str, Any]) -> None:
        self.proxies = AddressSet(networks(server_settings.get("trusted_proxies"),
                                           "trusted_proxies"))
        header = str(server_settings.get("forwarded_header") or "X-Forwarded-For")
        if header.lower() not in ("x-forwarded-for", "forwarded"):
            raise ImError(f"settings server.forwarded_header: {header!r} is neither"
                          " X-Forwarded-For nor Forwarded")
        self.header = header.lower().encode("latin-1")
        self._parse = _forwarded_for if header.lower() == "forwarded" else _x_forwarded_for

    def __call__(self, peer: str | None, raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        if not self.proxies or peer not in self.proxies:
            return peer
        values = [v.decode("latin-1") for k, v in raw_headers if k.lower() == self.header]
        client = peer
        for entry in reversed(self._parse(",".join(values))):
            address = _address(entry)
            if address is None:  # garbage, "unknown", an obfuscated name: stop at the hop
                break
            client = address
            if address not in self.proxies:
                break
        return client


def _x_forwarded_for(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _forwarded_for(value: str) -> list[str]:
    """The `for=` of each element of an RFC 7239 `Forwarded` header, in order."""
    found = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, item = pair.strip().partition("=")
            if name.strip().lower() == "for":
                found.append(item.strip())
    return found


_addresses: dict[str, str | None] = {}


def _address(entry: str) -> str | None:
    """An address as a proxy writes it (`192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:80`,
    quoted or not), normalised; None for anything else."""
    known = _addresses.get(entry, "")
    if known != "":
        return known
    text = entry.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address: str | None = str(ipaddress.ip_address(text))
    except ValueError:
        address = None
    if len(_addresses) >= _MEMO_SIZE:
        _addresses.clear()
    _addresses[entry] = address
    return address


# -- refusals ------------------------------------------------------------------------------


class RefusalLog:
    """Refused webhook requests, logged in aggregate: the first refusal of a source (for one
    reason and connector) is logged at once, the ones after it are counted and logged once per
    `interval` with their number, so a flood writes a line per source and interval, not one
    per request. At most MAX_REFUSAL_KEYS sources are told apart; beyond, they are counted
    together as "other sources". What is left is logged when the server stops."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = REFUSAL_LOG_SECONDS if interval is None else interval
        # (source, reason, connector) -> [refused since the last line, of them answered 429]
        self._counts: dict[tuple[str, str, str | None], list[int]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._since = time.monotonic()  # of the last flush

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="im-refusal-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def record(self, source: str | None, reason: str, connector: str | None,
               throttled: bool) -> None:
        key = (source or "unknown", reason, connector)
        with self._lock:
            counts = self._counts.get(key)
            if counts is None and len(self._counts) >= MAX_REFUSAL_KEYS:
                key = (OTHER_SOURCES, reason, connector)
                counts = self._counts.get(key)
            if counts is not None:
                counts[0] += 1
                counts[1] += throttled
                return
            self._counts[key] = [0, 0]
        webhook_log.warning("%s refused: %s", _who(key), REASONS[reason],
                            extra={"connector": connector, "source": key[0],
                                   "reason": reason})

    def flush(self) -> None:
        """Log what was counted since the last flush; forget sources that were quiet."""
        with self._lock:
            lines = [(key, list(counts)) for key, counts in self._counts.items() if counts[0]]
            self._counts = {key: [0, 0] for key, _ in lines}
            now = time.monotonic()
            elapsed, self._since = now - self._since, now
        for key, (count, throttled) in lines:
            webhook_log.warning(
                "%s refused %d more %s in the last %s: %s%s", _who(key), count,
                "time" if count == 1 else "times", _seconds(elapsed), REASONS[key[1]],
                f" ({throttled} answered 429)" if throttled else "",
                extra={"connector": key[2], "source": key[0], "reason": key[1],
                       "refused": count, "throttled": throttled})

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()


def _who(key: tuple[str, str, str | None]) -> str:
    source, _, connector = key
    return f"webhook for {connector} from {source}" if connector else f"webhook from {source}"


def _seconds(interval: float) -> str:
    return f"{max(1, round(interval))} s"
