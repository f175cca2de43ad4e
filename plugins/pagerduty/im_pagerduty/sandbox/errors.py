"""PagerDuty's error shape, `{"error": {"message", "code", "errors"}}`, and the codes we use.

Codes and messages follow API-NOTES (PagerDuty's error table) and what real responses show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class PagerDutyError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: int,
        errors: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message} ({code})")
        self.status = status
        self.message = message
        self.code = code
        self.errors = tuple(errors)
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            error["errors"] = list(self.errors)
        return {"error": error}


def invalid_input(*errors: str) -> PagerDutyError:
    return PagerDutyError(400, "Invalid Input Provided", 2001, errors)


def arguments_caused_error(*errors: str) -> PagerDutyError:
    return PagerDutyError(400, "Arguments Caused Error", 2002, errors)


def not_found(what: str = "Not Found", code: int = 2100) -> PagerDutyError:
    return PagerDutyError(404, what, code)


def authentication_failed() -> PagerDutyError:
    return PagerDutyError(401, "Authentication failed", 2006)


def rate_limited(headers: Mapping[str, str] | None = None) -> PagerDutyError:
    return PagerDutyError(429, "Rate Limit Exceeded", 2020, headers=headers)


def incident_already_resolved() -> PagerDutyError:
    return PagerDutyError(400, "Incident Already Resolved", 1001)


def incident_already_acknowledged() -> PagerDutyError:
    return PagerDutyError(400, "Incident Already Acknowledged", 1002)


def invalid_status() -> PagerDutyError:
    return PagerDutyError(400, "Invalid Status Provided", 1003)


def cannot_escalate(detail: str) -> PagerDutyError:
    return PagerDutyError(400, "Cannot Escalate", 1006, (detail,))


def assignee_not_found() -> PagerDutyError:
    return PagerDutyError(400, "Assigned To User Not Found", 1007)


def requester_not_found() -> PagerDutyError:
    return PagerDutyError(400, "Requester User Not Found", 1008)


def escalation_policy_not_found() -> PagerDutyError:
    return PagerDutyError(400, "Escalation Policy Not Found", 1014)


def invalid_priority() -> PagerDutyError:
    return PagerDutyError(400, "Invalid Priority", 1020)


def invalid_since_until(detail: str) -> PagerDutyError:
    return PagerDutyError(400, "Invalid since or until", 2004, (detail,))


def invalid_date_range(detail: str) -> PagerDutyError:
    return PagerDutyError(400, "Invalid Query Date Range", 2005, (detail,))


def from_header_missing() -> PagerDutyError:
    # Code and text as real responses report them (API-NOTES lists 2016 under another meaning).
    return PagerDutyError(
        400,
        'You must specify a user\'s email address in the "From" header to perform this action',
        2016,
    )


def from_header_malformed() -> PagerDutyError:
    return PagerDutyError(400, 'Malformed "From" header', 1028)


def offset_limit_exceeded(ceiling: int) -> PagerDutyError:
    return arguments_caused_error(
        f"Offset+limit exceeds maximum allowed value of {ceiling}. Please try to refine your search"
        " to reduce the returned set of records below this number, like adding a date range."
    )
