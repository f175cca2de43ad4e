"""Proof of fidelity for Webhooks v3: the bodies the sandbox sends have the keys and value types
of real captured deliveries, and its signing agrees with the published signature vectors."""

import json

import pytest

from im_pagerduty.sandbox import signature, signature_header, signature_matches

from .sandbox_calls import new_incident, subscribe, update


def shape(value):
    """Keys and JSON types, recursively; a list is described by its first element."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def same_shape(ours, real, where="$"):
    """Differences between two shapes; an empty list in the real one says nothing of elements."""
    if isinstance(real, dict):
        if not isinstance(ours, dict):
            return [f"{where}: {ours} instead of an object"]
        problems = (
            [f"{where}: keys {sorted(set(ours) ^ set(real))} differ"]
            if set(ours) != set(real)
            else []
        )
        for key in set(ours) & set(real):
            problems += same_shape(ours[key], real[key], f"{where}.{key}")
        return problems
    if isinstance(real, list):
        if not isinstance(ours, list):
            return [f"{where}: {ours} instead of a list"]
        if real and not ours:
            return [f"{where}: empty where the real delivery has items"]
        return same_shape(ours[0], real[0], f"{where}[0]") if real and ours else []
    return [] if ours == real else [f"{where}: {ours} instead of {real}"]


@pytest.fixture(scope="module")
def captured(shared_pagerduty):
    folder = shared_pagerduty / "webhooks" / "captured"
    return {
        path.name.removesuffix(".raw.json"): json.loads(path.read_bytes())
        for path in folder.glob("*.raw.json")
    }


@pytest.fixture
def delivered(pd, api, pagerduty_webhook_receiver):
    """The sandbox's own deliveries of the captured event types, keyed like the captured files."""
    receiver = pagerduty_webhook_receiver
    sub = subscribe(
        api,
        receiver.url,
        events=[
            "incident.triggered",
            "incident.acknowledged",
            "incident.resolved",
            "incident.annotated",
            "incident.reopened",
        ],
    )
    incident = new_incident(api, "PAPI001", title="Test", urgency="low")
    update(api, incident["id"], status="acknowledged")
    api.post(
        f"/incidents/{incident['id']}/notes", json={"note": {"content": "Resolution Note: fixed"}}
    )
    update(api, incident["id"], status="resolved")
    update(api, incident["id"], status="triggered")
    api.post(f"/webhook_subscriptions/{sub['id']}/ping")
    assert pd.wait_for_webhooks()
    bodies = [webhook.json() for webhook in receiver.wait_for(6)]
    return {body["event"]["event_type"]: body for body in bodies}


@pytest.mark.parametrize(
    "event_type",
    [
        "incident.triggered",
        "incident.acknowledged",
        "incident.resolved",
        "incident.annotated",
        "pagey.ping",
    ],
)
def test_bodies_have_the_keys_and_types_of_real_deliveries(captured, delivered, event_type):
    real = captured[event_type]
    assert set(real) == {"event"}  # one event per delivery
    assert same_shape(shape(delivered[event_type]), shape(real)) == []


def test_reopened_and_note_data_match_the_documented_data_types(shared_pagerduty, delivered):
    documented = json.loads(
        (shared_pagerduty / "webhooks" / "official-docs" / "event-data-types.json").read_text()
    )
    reopened = delivered["incident.reopened"]["event"]["data"]
    # The documented incident carries teams and a priority; ours has neither, so compare keys and
    # the shape of everything both have values for.
    assert set(reopened) == set(documented["incident"])
    comparable = {k: v for k, v in reopened.items() if v not in (None, [])}
    assert (
        same_shape(shape(comparable), shape({k: documented["incident"][k] for k in comparable}))
        == []
    )
    note = delivered["incident.annotated"]["event"]["data"]
    assert same_shape(shape(note), shape(documented["incident_note"])) == []


def test_priority_updated_matches_the_official_example(
    shared_pagerduty, pd, api, pagerduty_webhook_receiver
):
    official = json.loads(
        (
            shared_pagerduty / "webhooks" / "official-docs" / "incident.priority_updated.json"
        ).read_text()
    )
    subscribe(api, pagerduty_webhook_receiver.url, events=["incident.priority_updated"])
    incident = new_incident(api)
    update(api, incident["id"], priority={"id": "PPRIO01", "type": "priority_reference"})
    (webhook,) = pagerduty_webhook_receiver.wait_for(1)
    ours = webhook.json()["event"]
    assert ours["event_type"] == "incident.priority_updated"
    assert (
        same_shape(shape(ours["data"]["priority"]), shape(official["event"]["data"]["priority"]))
        == []
    )
    assert same_shape(shape(ours["agent"]), shape(official["event"]["agent"])) == []


@pytest.fixture(scope="module")
def vectors(shared_pagerduty):
    folder = shared_pagerduty / "webhooks"
    cases = json.loads((folder / "signature-vectors" / "vectors.json").read_text())["vectors"]
    for case in cases:
        case["body"] = (folder / case["body_file"]).read_bytes() if case["body_file"] else b""
    return cases


def test_signature_vectors_verify_with_the_sandbox_signing(vectors):
    assert len(vectors) == 12
    for case in vectors:
        header, body, secret = case["x_pagerduty_signature"], case["body"], case["secret"]
        valid = case["expect"] == "valid"
        assert signature_matches(header, body, secret) is valid, case["name"]
        if valid:
            assert signature(secret, body) in header.split(","), case["name"]
            if "," not in header:
                assert signature_header([secret], body) == header, case["name"]
        elif header and body:
            assert signature(secret, body) not in header.split(","), case["name"]
