"""Property-based fuzzing of the webhook route (`POST /connectors/{name}/webhook`) of the real
app: random and mutated bodies, headers, signatures and sizes.

- A correctly signed request is never answered 5xx, and always 2xx (202): what im cannot read
  is stored and quarantined, never refused (PagerDuty disables endpoints that refuse).
- A request without a valid signature is answered 401 and writes nothing.
- Whatever was stored, processing it never raises and leaves nothing half done.
- Malformed HTTP on a real `im serve` socket does not take the server down.
"""

from __future__ import annotations

import copy
import json
import socket
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from im.inbound import process_inbox
from im.testing import http_client, make_runtime, run_cli, serve, sql
from im_pagerduty.connector import PagerDutyConnector
from im_pagerduty.webhooks import sign

from .connector_kit import pd_time

NAME = "prod-pagerduty"
URL = f"/connectors/{NAME}/webhook"
SECRET, OLD_SECRET = "fuzz-secret-new", "fuzz-secret-old"
MAX_BODY = 1024 * 1024  # im.server.MAX_WEBHOOK_BODY
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

NOW = pd_time()  # events are dated now: older ones fall out of im's replay window
YEAR = NOW[:4]
# A delivery as PagerDuty sends it (the keys and types of a captured incident.acknowledged).
TEMPLATE: dict[str, Any] = {"event": {
    "id": "01FKZSRAQJLP9S3OPM2VALGUPJ", "event_type": "incident.acknowledged",
    "resource_type": "incident", "occurred_at": NOW,
    "agent": {"html_url": "https://x.pagerduty.com/users/PUJOHN1", "id": "PUJOHN1",
              "self": "https://api.pagerduty.com/users/PUJOHN1", "summary": "John Doe",
              "type": "user_reference"},
    "client": None,
    "data": {"id": "Q2CKYRLH85UNN4", "type": "incident",
             "self": "https://api.pagerduty.com/incidents/Q2CKYRLH85UNN4",
             "html_url": "https://x.pagerduty.com/incidents/Q2CKYRLH85UNN4", "number": 37,
             "status": "acknowledged", "incident_key": "dfead9d88e0649e8b7dee514b1875756",
             "created_at": NOW[:19] + "Z", "title": "Test",
             "service": {"id": "PAPI001", "summary": "API Service", "type": "service_reference"},
             "assignees": [{"id": "PUJOHN1", "summary": "John Doe", "type": "user_reference"}],
             "escalation_policy": {"id": "PXXXXXX", "type": "escalation_policy_reference"},
             "teams": [], "priority": None, "urgency": "low", "conference_bridge": None,
             "resolve_reason": None, "incident_type": {"name": "incident_default"}}}}
EVENT_TYPES = ["incident.triggered", "incident.acknowledged", "incident.unacknowledged",
               "incident.resolved", "incident.reopened", "incident.annotated",
               "incident.escalated", "incident.reassigned", "incident.delegated",
               "incident.priority_updated", "pagey.ping", "service.updated", ""]


@pytest.fixture
def runtime(tmp_path, monkeypatch, pd):
    """A PagerDuty connector with two webhook secrets (a rotation). The route never calls
    PagerDuty; processing the stored events asks the sandbox for its users."""
    monkeypatch.setattr(PagerDutyConnector, "client_options",
                        {"max_attempts": 1, "sleep": lambda _s: None, "timeout": 5.0})
    (tmp_path / "home").mkdir()
    # refused requests are answered 401 however many come: the limit of refused requests
    # (answered 429 past it) has tests of its own (test_server_security.py)
    (tmp_path / "home" / "settings.json").write_text(json.dumps({"server": {
        "webhook_refused_limit": 0, "webhook_refused_limit_total": 0}}))
    rt = make_runtime(tmp_path / "home", load_entrypoints=True, user="alice")
    config = {"base_url": pd.url, "api_key": pd.api_key, "sync_direction":
              "bidirectional", "enable_webhook": True,
              "custom": {"service_id": "PXXXXXX", "from_email": "ops@company.com",
                         "webhook_secrets": [SECRET, OLD_SECRET]}}
    result = run_cli(rt, ["connector", "add", "pagerduty", NAME, "--config", json.dumps(config)])
    assert result.exit_code == 0, result.output
    yield rt
    rt.store.close()


def inbox_count(runtime) -> int:
    return sql(runtime, "SELECT count(*) FROM inbox")[0][0]


# -- strategies ----------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(
    max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)
odd_times = st.sampled_from([NOW, NOW[:19], NOW[:19] + "+14:00", f"{YEAR}-02-30T00:00Z",
                             "1970-01-01T00:00Z", "9999-12-31T23:59:59.999999Z", "not a time",
                             ""])


@st.composite
def mutated_events(draw) -> bytes:
    """The template with some fields removed, retyped or replaced."""
    event = copy.deepcopy(TEMPLATE)
    inner = event["event"]
    inner["id"] = draw(st.sampled_from(["", "01X"]) | st.text(min_size=1, max_size=40))
    inner["event_type"] = draw(st.sampled_from(EVENT_TYPES) | st.text(max_size=30))
    inner["occurred_at"] = draw(odd_times | json_values)
    for _ in range(draw(st.integers(0, 4))):
        nested = inner.get("data")
        target = draw(st.sampled_from([inner, nested] if isinstance(nested, dict) else [inner]))
        key = draw(st.sampled_from(sorted(target)) | st.text(max_size=8) if target
                   else st.text(max_size=8))
        action = draw(st.sampled_from(["delete", "replace"]))
        if action == "delete":
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    if draw(st.booleans()):
        inner["data"] = {"incident": inner.get("data"), "content": draw(st.text(max_size=200)),
                         "id": "N1", "type": "incident_note"}
    body = json.dumps(event, ensure_ascii=draw(st.booleans())).encode()
    return draw(byte_mutations(body))


@st.composite
def byte_mutations(draw, body: bytes) -> bytes:
    if draw(st.integers(0, 3)):
        return body
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 5))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@st.composite
def sized(draw, body: bytes) -> bytes:
    """Now and then, padded with JSON whitespace up to a large size (at most 1 MiB)."""
    size = draw(st.sampled_from([0] * 8 + [4096, 65_536, 256 * 1024, MAX_BODY]))
    return body + b" " * max(0, size - len(body))


bodies = (st.binary(max_size=2048) | st.text(max_size=500).map(str.encode)
          | json_values.map(lambda v: json.dumps(v).encode()) | mutated_events()
          ).flatmap(sized)

header_names = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1,
                       max_size=20).filter(lambda n: n.lower() not in (
                           "x-pagerduty-signature", "content-length", "host",
                           "transfer-encoding", "connection", "expect"))
header_values = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c") + " ", max_size=60)
extra_headers = st.dictionaries(header_names, header_values, max_size=5) | st.fixed_dictionaries(
    {"Content-Type": st.sampled_from(["application/json", "text/plain", "",
                                      "application/json; charset=latin-1"]),
     "X-Webhook-Id": st.text(alphabet=string.ascii_letters + string.digits, max_size=30)})


@st.composite
def valid_signatures(draw, body: bytes) -> str:
    """A header PagerDuty could send: the right `v1=` among others, either secret."""
    good = sign(draw(st.sampled_from([SECRET, OLD_SECRET])), body)
    others = draw(st.lists(st.sampled_from(["v1=" + "0" * 64, "v1=", "v0=abc", "garbage"])
                           | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
                           .map(lambda h: "v1=" + h), max_size=2))
    parts = others + [good]
    parts = draw(st.permutations(parts))
    separator = draw(st.sampled_from([",", ", ", " ,"]))
    return separator.join(parts)


@st.composite
def invalid_signatures(draw, body: bytes) -> str | None:
    good = sign(SECRET, body)
    kind = draw(st.sampled_from(["missing", "empty", "wrong secret", "other body", "one char",
                                 "scheme", "truncated", "random", "upper"]))
    if kind == "missing":
        return None
    if kind == "empty":
        return draw(st.sampled_from(["", "v1=", " ", ","]))
    if kind == "wrong secret":
        return sign(draw(st.text(min_size=1, max_size=20).filter(
            lambda s: s not in (SECRET, OLD_SECRET))), body)
    if kind == "other body":
        return sign(SECRET, body + draw(st.binary(min_size=1, max_size=4)))
    if kind == "one char":
        at = draw(st.integers(3, len(good) - 1))
        replacement = draw(st.sampled_from("0123456789abcdef").filter(lambda c: c != good[at]))
        return good[:at] + replacement + good[at + 1:]
    if kind == "scheme":
        return "v2=" + good[3:]
    if kind == "truncated":
        return good[:draw(st.integers(0, len(good) - 1))]
    if kind == "upper":
        return good.upper()
    return draw(header_values)


# -- properties ----------------------------------------------------------------------------


def test_a_signed_request_is_always_acknowledged_and_stored_once(runtime):
    seen: set[str] = set()

    with http_client(runtime) as client:
        @FUZZ
        @given(data=st.data(), body=bodies, extra=extra_headers)
        def check(data, body, extra):
            headers = {**extra, "X-PagerDuty-Signature": data.draw(valid_signatures(body))}
            before = inbox_count(runtime)
            response = client.post(URL, content=body, headers=headers)
            assert response.status_code == 202, (response.status_code, response.text[:200])
            outcome = response.json()["status"]
            assert outcome in ("accepted", "duplicate")
            assert inbox_count(runtime) == before + (outcome == "accepted")
            seen.add(outcome)

        check()
    assert "accepted" in seen
    # whatever was stored is processed or quarantined, and processing never raises
    process_inbox(runtime)
    statuses = {row.status for row in runtime.store.inbox()}
    assert statuses <= {"done", "quarantined"}, statuses


def test_a_request_without_a_valid_signature_writes_nothing(runtime):
    with http_client(runtime) as client:
        @FUZZ
        @given(data=st.data(), body=bodies, extra=extra_headers)
        def check(data, body, extra):
            signature = data.draw(invalid_signatures(body))
            headers = dict(extra)
            if signature is not None:
                headers["X-PagerDuty-Signature"] = signature
            response = client.post(URL, content=body, headers=headers)
            assert response.status_code == 401, (response.status_code, response.text[:200])
            assert inbox_count(runtime) == 0

        check()


def test_oversized_bodies_are_refused_before_anything_is_written(runtime):
    with http_client(runtime) as client:
        for size in (MAX_BODY + 1, 2 * MAX_BODY):
            body = b" " * size
            for signature in (sign(SECRET, body), None):
                headers = {"X-PagerDuty-Signature": signature} if signature else {}
                assert client.post(URL, content=body, headers=headers).status_code == 413
    assert inbox_count(runtime) == 0


def test_two_different_signed_events_without_an_id_are_both_stored(runtime):
    with http_client(runtime) as client:
        for title in ("first", "second"):
            event = copy.deepcopy(TEMPLATE)
            event["event"]["id"] = ""
            event["event"]["data"]["title"] = title
            body = json.dumps(event).encode()
            answer = client.post(URL, content=body,
                                 headers={"X-PagerDuty-Signature": sign(SECRET, body)})
            assert answer.status_code == 202
    assert inbox_count(runtime) == 2


RAW_REQUESTS = [
    b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ev",
    b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
    b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nnot hex\r\n0\r\n\r\n",
    b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nabc",
    b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    b"POST /connectors/%ff%00/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),  # a TLS hello
    b"GET " + URL.encode() + b"?" + b"q" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
]


def test_malformed_http_on_a_real_socket_does_not_hurt_the_server(runtime):
    import httpx

    with serve(runtime, background=False) as url:
        host, port = url.removeprefix("http://").split(":")
        for raw in RAW_REQUESTS:
            with socket.create_connection((host, int(port)), timeout=5) as conn:
                try:
                    conn.sendall(raw)
                    conn.shutdown(socket.SHUT_WR)
                    answer = conn.recv(200)
                except OSError:
                    answer = b""
            assert not answer.startswith(b"HTTP/1.1 5"), (raw[:60], answer)
        # a correctly signed, chunked delivery still gets through
        body = json.dumps(TEMPLATE).encode()
        answer = httpx.post(url + URL, content=iter([body[:100], body[100:]]),
                            headers={"X-PagerDuty-Signature": sign(SECRET, body)})
        assert answer.status_code == 202
        assert httpx.get(url + "/health").json()["status"] == "ok"
    assert inbox_count(runtime) == 1
