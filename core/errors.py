"""Errors a user can act on. Front ends print `str(error)` as one line and exit non-zero."""

from __future__ import annotations


class ImError(Exception):
    """Base of every error the core raises on purpose; its message is meant for the user."""

    exit_code = 1
    http_status = 400


class NotFoundError(ImError):
    http_status = 404


class InvalidInputError(ImError):
    http_status = 400


class StorageError(ImError):
    """im's database cannot be used as it is (not im's, empty, unreadable)."""

    http_status = 503


class TransitionError(ImError):
    """An action the incident's current status does not allow."""

    http_status = 409


class UnhandledEventError(ImError):
    """An authentic event of a type the connector does not handle (raised by
    Connector.webhook_changes): quarantined for `im connector replay`, not lost."""


class ConnectorError(ImError):
    """A connector could not do what was asked.

    `retryable` says whether trying again later may succeed (timeouts, 5xx, rate limits);
    a non-retryable error (bad credentials, a remote 4xx) needs an operator.
    `retry_after` (seconds) is a hint from the remote side, such as a rate-limit reset.
    """

    http_status = 502

    def __init__(self, message: str, *, retryable: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
