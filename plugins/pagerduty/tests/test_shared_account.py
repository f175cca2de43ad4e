"""Two connectors on one PagerDuty account (the same API key): when either pulls, incidents
would be duplicated (each pulling one makes an im incident of every PagerDuty incident, and
what one pulls in another pushes back as a new PagerDuty incident), so the second is refused
at `connector add` and `update`, with the reason, and nothing is stored."""

import json

import pytest

from .connector_kit import config, im, remote_incidents, runtime_with_connector

pytestmark = pytest.mark.usefixtures("quick_retries")

BOTH_PULL = ("Error: prod-pagerduty already syncs this PagerDuty account (same API key): both"
             " would pull its incidents, and each would become two im incidents; keep one"
             " connector per account (change prod-pagerduty: im connector update"
             " prod-pagerduty), or make both outbound\n")


@pytest.fixture
def runtime(tmp_path, pd):
    rt = runtime_with_connector(tmp_path / "home", pd)  # prod-pagerduty, bidirectional
    yield rt
    rt.store.close()


def add(runtime, name, settings):
    return im(runtime, "connector", "add", "pagerduty", name, "--config", json.dumps(settings))


def test_a_second_connector_pulling_the_same_account_is_refused(runtime, pd):
    for direction in ("bidirectional", "inbound"):
        refused = add(runtime, "second", config(pd) | {"sync_direction": direction})
        assert (refused.exit_code, refused.stdout, refused.stderr) == (1, "", BOTH_PULL)
    outbound = add(runtime, "second", config(pd) | {"sync_direction": "outbound"})
    assert (outbound.exit_code, outbound.stderr) == (1, (
        "Error: prod-pagerduty already syncs this PagerDuty account (same API key):"
        " prod-pagerduty pulls its incidents in, and second would create each of them there"
        " again; keep one connector per account (change prod-pagerduty: im connector update"
        " prod-pagerduty), or make both outbound\n"))
    assert [r.name for r in runtime.store.list_connectors()] == ["prod-pagerduty"]


def test_the_same_key_through_env_is_the_same_account(runtime, pd, monkeypatch):
    monkeypatch.setenv("PAGERDUTY_API_KEY", pd.api_key)
    refused = add(runtime, "second", config(pd) | {"api_key": "env:PAGERDUTY_API_KEY"})
    assert (refused.exit_code, refused.stderr) == (1, BOTH_PULL)


def test_update_is_refused_too_and_changes_nothing(runtime, pd):
    other = add(runtime, "second", config(pd) | {"api_key": "another-account-key",
                                                  "sync_direction": "outbound"})
    assert other.exit_code == 0, other.output  # another account: fine
    moved = im(runtime, "connector", "update", "second", "--api-key", pd.api_key)
    assert (moved.exit_code, moved.stdout, moved.stderr) == (1, "", (
        "Error: prod-pagerduty already syncs this PagerDuty account (same API key):"
        " prod-pagerduty pulls its incidents in, and second would create each of them there"
        " again; keep one connector per account (change prod-pagerduty: im connector update"
        " prod-pagerduty), or make both outbound\n"))
    assert runtime.store.get_connector("second").settings["api_key"] == "another-account-key"
    # two outbound connectors of one account pull nothing in: allowed
    assert im(runtime, "connector", "update", "prod-pagerduty", "--sync-direction",
              "outbound").exit_code == 0
    assert im(runtime, "connector", "update", "second", "--api-key", pd.api_key).exit_code == 0
    pulling = im(runtime, "connector", "update", "second", "--sync-direction", "inbound")
    assert (pulling.exit_code, pulling.stderr) == (1, (
        "Error: prod-pagerduty already syncs this PagerDuty account (same API key): second"
        " would pull its incidents in, and prod-pagerduty would create each of them there"
        " again; keep one connector per account (change prod-pagerduty: im connector update"
        " prod-pagerduty), or make both outbound\n"))
    assert runtime.store.get_connector("second").settings["sync_direction"] == "outbound"


def test_a_responders_incident_stays_one_incident_in_each_system(runtime, pd, api):
    """What the refusal prevents: a second pulling connector made two im incidents of it,
    and pushed one of them back to PagerDuty as a second PagerDuty incident."""
    add(runtime, "second", config(pd))
    created = api.post("/incidents", headers={"From": "john.doe@company.com"}, json={
        "incident": {"type": "incident", "title": "Checkout errors",
                     "service": {"id": "PWEB001", "type": "service_reference"}}})
    assert created.status_code == 201, created.text
    for _ in range(2):  # each connector, twice: pulls, then delivers what they queued
        for record in runtime.store.list_connectors():
            im(runtime, "connector", "sync", record.name)
    assert [i.title for i in runtime.store.list_incidents()] == ["Checkout errors"]
    assert [i["title"] for i in remote_incidents(api)] == ["Checkout errors"]


def test_connectors_that_shared_an_account_already_can_be_updated_apart(runtime, pd):
    """Two pulling connectors of one account, made before the rule: an update of either is
    not refused (it may be the step that ends the sharing)."""
    from im.models import ConnectorRecord

    now = runtime.clock()
    runtime.store.save_connector(ConnectorRecord(name="second", type="pagerduty",
                                                 settings=config(pd), created_at=now,
                                                 updated_at=now))
    for name in ("second", "prod-pagerduty"):
        moved = im(runtime, "connector", "update", name, "--sync-direction", "outbound")
        assert moved.exit_code == 0, moved.output
    # both outbound now: pulling again is refused
    pulling = im(runtime, "connector", "update", "second", "--sync-direction", "inbound")
    assert pulling.exit_code == 1 and pulling.stderr.startswith(
        "Error: prod-pagerduty already syncs this PagerDuty account (same API key): second"
        " would pull its incidents in")
