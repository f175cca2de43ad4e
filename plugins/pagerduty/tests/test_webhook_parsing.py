"""Signatures and event parsing against PagerDuty's own material: the signature vectors and the
real captured deliveries in ../shared/pagerduty/webhooks/."""

import json
from datetime import UTC, datetime

import msgspec
import pytest

from im import UnhandledEventError
from im.testing import make_runtime
from im_pagerduty.connector import PagerDutyConnector
from im_pagerduty.settings import PagerDutySettings
from im_pagerduty.webhooks import changes, envelope, sign, verify


def vectors(shared_pagerduty):
    data = json.loads((shared_pagerduty / "webhooks" / "signature-vectors" / "vectors.json")
                      .read_text())
    return data["vectors"]


def test_every_signature_vector(shared_pagerduty):
    cases = vectors(shared_pagerduty)
    assert len(cases) >= 12
    for case in cases:
        body = (shared_pagerduty / "webhooks" / case["body_file"]).read_bytes() \
            if case.get("body_file") else b""
        expected = case["expect"].startswith("valid")
        assert verify([case["secret"]], case.get("x_pagerduty_signature"), body) is expected, \
            case["name"]


def test_rotation_accepts_old_and_new_secrets():
    body = b'{"event": {}}'
    header = f"{sign('old', body)},{sign('new', body)}"
    assert verify(["new"], header, body) and verify(["old"], header, body)
    assert verify(["new", "older"], sign("older", body), body)
    assert not verify(["other"], header, body)
    assert not verify(["new"], header, body + b" ")  # one byte changed
    assert not verify([], header, body) and not verify(["new"], None, body)


class OfflineConnector(PagerDutyConnector):
    """No directory look-ups: the captured deliveries come from another account."""

    def email_of(self, user_id):
        return {"PVE0ZR9": "ben@example.com"}.get(user_id)

    @property
    def own_user_id(self):
        return None


@pytest.fixture
def connector(tmp_path):
    settings = msgspec.convert({"api_key": "k", "custom": {
        "service_id": "PXXXXXX", "from_email": "ops@company.com"}}, PagerDutySettings)
    return OfflineConnector("prod-pagerduty", settings, make_runtime(tmp_path))


@pytest.mark.parametrize("name, kind, status", [
    ("incident.triggered", "opened", "open"),
    ("incident.acknowledged", "acknowledged", "acknowledged"),
    ("incident.resolved", "resolved", "resolved"),
    ("incident.annotated", "note", None),
])
def test_captured_deliveries_become_changes(shared_pagerduty, connector, name, kind, status):
    body = (shared_pagerduty / "webhooks" / "captured" / f"{name}.raw.json").read_bytes()
    raw = json.loads(body)["event"]
    event = envelope({}, body)
    assert (event.delivery_id, event.event_type) == (raw["id"], name)
    [change] = changes(connector, body)
    assert (change.action, change.remote_status) == (kind, status)
    incident = raw["data"].get("incident", raw["data"])
    assert change.remote_id == incident["id"]
    assert change.occurred_at == datetime.fromisoformat(raw["occurred_at"].replace("Z", "+00:00"))
    assert change.occurred_at.tzinfo is not None and change.occurred_at.utcoffset() == \
        datetime.now(UTC).utcoffset()
    if kind == "note":
        assert change.text == raw["data"]["content"]
    else:
        assert change.title == raw["data"]["title"]
        assert change.remote_number == str(raw["data"]["number"])
    # every captured delivery was made by the same user, whom the directory knows
    assert raw["agent"]["id"] == "PVE0ZR9" and change.actor == "ben@example.com"


def test_ping_is_acknowledged_and_unknown_types_quarantined(shared_pagerduty, connector):
    ping = (shared_pagerduty / "webhooks" / "captured" / "pagey.ping.raw.json").read_bytes()
    assert changes(connector, ping) == []
    service = (shared_pagerduty / "webhooks" / "official-docs" / "service.updated.json").read_bytes()
    with pytest.raises(UnhandledEventError, match="service.updated is not handled"):
        changes(connector, service)
    with pytest.raises(ValueError, match="not a PagerDuty v3 webhook"):
        changes(connector, b'{"not": "an event"}')


def test_priority_update_from_the_docs(shared_pagerduty, connector):
    body = (shared_pagerduty / "webhooks" / "official-docs" / "incident.priority_updated.json"
            ).read_bytes()
    [change] = changes(connector, body)
    assert change.action == "severity"
    # read through the default priority_mapping
    assert change.text.endswith("priority set to P1 (SEV-1)") and change.severity == "SEV-1"


def _with_client(body: bytes, client) -> bytes:
    raw = json.loads(body)
    raw["event"]["client"] = client
    return json.dumps(raw).encode()


def test_a_change_made_through_an_integration_says_which(shared_pagerduty, connector):
    """`client` names where the event was triggered; PagerDuty's own app adds nothing for a
    reader, another client (an integration a responder acted through) is named."""
    docs = shared_pagerduty / "webhooks" / "official-docs"
    priority = (docs / "incident.priority_updated.json").read_bytes()
    [change] = changes(connector, _with_client(priority, {"name": "Slack"}))
    assert change.text == "PagerDuty incident #2 priority set to P1 (SEV-1) (via Slack)"
    [change] = changes(connector, priority)  # the sample's own client: PagerDuty
    assert change.text == "PagerDuty incident #2 priority set to P1 (SEV-1)"
    captured = shared_pagerduty / "webhooks" / "captured"
    ack = (captured / "incident.acknowledged.raw.json").read_bytes()
    [change] = changes(connector, _with_client(ack, {"name": "Slack"}))
    assert (change.action, change.text) == ("acknowledged", "via Slack")
    # a note's words stay as written
    note = (captured / "incident.annotated.raw.json").read_bytes()
    [change] = changes(connector, _with_client(note, {"name": "Slack"}))
    assert change.text == "Resolution Note: I'm resolving it"


@pytest.mark.parametrize("client", [
    None, {"name": "PagerDuty"}, {"name": "pagerduty"}, {}, {"name": None}, {"name": 5},
    {"name": "  "}, "Slack", ["Slack"],
])
def test_any_client_shape_is_read_and_names_nothing_it_cannot(shared_pagerduty, connector,
                                                              client):
    ack = (shared_pagerduty / "webhooks" / "captured" / "incident.acknowledged.raw.json"
           ).read_bytes()
    [change] = changes(connector, _with_client(ack, client))
    assert (change.action, change.text, change.actor) == (
        "acknowledged", "", "ben@example.com")
