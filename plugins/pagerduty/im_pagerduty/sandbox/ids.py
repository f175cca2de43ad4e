"""Identifiers shaped like PagerDuty's: `P` + 6 for directory objects, 14 for incidents."""

from __future__ import annotations

import random
import time
import uuid

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class IdMaker:
    """Random ids by default: a restarted sandbox must not hand out ids that a connector
    still has linked to the previous run's incidents. A seed makes them repeatable."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)
        self._issued: set[str] = set()

    def _make(self, prefix: str, length: int) -> str:
        while True:
            candidate = prefix + "".join(self._random.choices(_ALPHABET, k=length - len(prefix)))
            if candidate not in self._issued:
                self._issued.add(candidate)
                return candidate

    def object_id(self) -> str:
        return self._make("P", 7)

    def incident_id(self) -> str:
        return self._make("Q", 14)

    def log_entry_id(self) -> str:
        return self._make("R", 14)

    def secret(self) -> str:
        # Real secrets are 64 base64 characters; only their length and randomness matter here.
        return "".join(random.SystemRandom().choices(_ALPHABET + _ALPHABET.lower() + "+/", k=64))


def event_id() -> str:
    """26 characters, time-ordered like the ULIDs in real deliveries."""
    millis = int(time.time() * 1000)
    head = ""
    for _ in range(10):
        millis, digit = divmod(millis, 32)
        head = _ALPHABET[digit] + head
    return head + uuid.uuid4().hex[:16].upper()


def webhook_id() -> str:
    return str(uuid.uuid4())
