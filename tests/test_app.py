"""The application layer keeps every rule for every front end: what the CLI refuses, the HTTP API
refuses in the same words (as a 4xx with a JSON error), and neither changes anything then."""

import json

import pytest

from im import InvalidInputError, hookimpl
from im.app import incidents
from im.models import Origin
from im.testing import FakeConnector, FakeRemote, http_client, make_runtime, run_cli

KNOWN = {"jane@example.com", "john@example.com"}


def _known_only(self, request):
    if request.assignee not in KNOWN:
        raise InvalidInputError(f"{request.assignee} is not a user of {self.name}")


class DirectoryPlugin:
    """A connector type (`directory`) whose remote system knows only the people in KNOWN."""

    def __init__(self):
        self.remote = FakeRemote()

    @hookimpl
    def register_connectors(self, register):
        register(type("DirectoryConnector", (FakeConnector,), {
            "type": "directory", "remote": self.remote, "check_assignee": _known_only}))


@pytest.fixture
def linked(tmp_path, clock):
    """A runtime with INC-1 declared and linked to the `people` connector, and an API token."""
    runtime = make_runtime(tmp_path / "home", plugins=[DirectoryPlugin()], clock=clock,
                           user="alice")
    added = run_cli(runtime, ["connector", "add", "directory", "people", "--config",
                              '{"api_key": "k"}'])
    assert added.exit_code == 0, added.output
    declared = run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "DB slow",
                                 "--service", "db"])
    assert declared.exit_code == 0, declared.output
    assert [link.connector for link in runtime.store.links("INC-1")] == ["people"]
    token = run_cli(runtime, ["api-token", "create", "ci"]).stdout.strip()
    yield runtime, {"Authorization": f"Bearer {token}", "X-Im-User": "bob"}
    runtime.store.close()


def _assignments(runtime):
    return ([e.text for e in runtime.store.timeline("INC-1") if e.kind == "assigned"],
            [r.action for r in runtime.store.outbox() if r.action == "assign"])


def test_the_api_refuses_an_unknown_assignee_as_the_cli_does(linked):
    runtime, headers = linked
    cli = run_cli(runtime, ["assign", "--incident", "INC-1", "--to", "nobody@example.com"])
    assert (cli.exit_code, cli.stdout, cli.stderr) == (
        1, "", "Error: nobody@example.com is not a user of people\n")
    with http_client(runtime) as client:
        api = client.post("/api/incidents/INC-1/assign", headers=headers,
                          json={"assignee": "nobody@example.com"})
        assert (api.status_code, api.json()) == (
            400, {"error": "nobody@example.com is not a user of people"})
        # nothing changed: no assignee, no timeline event, nothing queued for the connector
        assert runtime.store.get_incident("INC-1").assignee is None
        assert _assignments(runtime) == ([], [])

        known = client.post("/api/incidents/INC-1/assign", headers=headers,
                            json={"assignee": " jane@example.com "})
        assert known.status_code == 200, known.text
        assert known.json()["incident"]["assignee"] == "jane@example.com"
        assert [link["connector"] for link in known.json()["links"]] == ["people"]
        empty = client.post("/api/incidents/INC-1/assign", headers=headers,
                            json={"assignee": "  "})
        assert (empty.status_code, empty.json()) == (400, {"error": "an assignee is required"})
    assert _assignments(runtime) == (["Assigned to jane@example.com"], ["assign"])
    [event] = [e for e in runtime.store.timeline("INC-1") if e.kind == "assigned"]
    assert (event.actor, event.system) == ("bob", "im")
    # the CLI names its option where the API cannot
    cli_empty = run_cli(runtime, ["assign", "--incident", "INC-1", "--to", " "])
    assert (cli_empty.exit_code, cli_empty.stderr) == (
        1, "Error: an assignee is required (--to, e.g. an email)\n")


def test_an_inbound_only_connector_is_not_asked_about_an_assignee(linked):
    runtime, _ = linked
    updated = run_cli(runtime, ["connector", "update", "people", "--set",
                                "sync_direction=inbound"])
    assert updated.exit_code == 0, updated.output
    changed = incidents.assign(runtime, "INC-1", "nobody@example.com",
                               actor=Origin(actor="carol"))
    assert changed.assignee == "nobody@example.com"


def test_severity_changes_and_its_errors_are_the_same_through_the_api(linked):
    runtime, headers = linked
    cli = run_cli(runtime, ["severity", "--incident", "INC-1", "--sev", "SEV-9"])
    assert (cli.exit_code, cli.stderr) == (
        1, "Error: invalid severity 'SEV-9'; choose from SEV-1, SEV-2, SEV-3, SEV-4\n")
    with http_client(runtime) as client:
        bad = client.post("/api/incidents/INC-1/severity", headers=headers,
                          json={"severity": "SEV-9"})
        assert (bad.status_code, bad.json()) == (
            400, {"error": "invalid severity 'SEV-9'; choose from SEV-1, SEV-2, SEV-3, SEV-4"})
        same = client.post("/api/incidents/INC-1/severity", headers=headers,
                           json={"severity": "2"})
        assert (same.status_code, same.json()) == (400, {"error": "INC-1 is SEV-2 already"})
        raised = client.post("/api/incidents/INC-1/severity", headers=headers,
                             json={"severity": "sev1"})
        assert raised.status_code == 200, raised.text
        assert raised.json()["incident"]["severity"] == "SEV-1"
        missing = client.post("/api/incidents/INC-7/severity", headers=headers,
                              json={"severity": "SEV-3"})
        assert (missing.status_code, missing.json()) == (
            404, {"error": "no incident INC-7; `im list` shows the incidents"})
    assert [e.text for e in runtime.store.timeline("INC-1") if e.kind == "severity_changed"] == [
        "Severity changed from SEV-2 to SEV-1"]
    assert [r.action for r in runtime.store.outbox() if r.action == "severity"] == ["severity"]


def test_list_filters_take_comma_separated_values_in_both(linked):
    runtime, headers = linked
    run_cli(runtime, ["declare", "--sev", "SEV-4", "--title", "typo", "--service", "web"])
    run_cli(runtime, ["resolve", "--incident", "INC-2"])
    cli = run_cli(runtime, ["list", "--status", "open,resolved", "--sev", "SEV-2,SEV-4",
                            "--json"])
    assert [i["id"] for i in json.loads(cli.stdout)] == ["INC-2", "INC-1"]
    with http_client(runtime) as client:
        api = client.get("/api/incidents", headers=headers,
                         params={"status": "open,resolved", "severity": "SEV-2,SEV-4"})
        assert [i["id"] for i in api.json()] == ["INC-2", "INC-1"]
        bad = client.get("/api/incidents", headers=headers, params={"status": "open,gone"})
        assert (bad.status_code, bad.json()) == (400, {
            "error": "invalid status 'gone'; choose from open, mitigated, resolved, closed"})


def test_custom_field_names_are_checked_through_the_api_too(linked):
    runtime, headers = linked
    cli = run_cli(runtime, ["declare", "--sev", "3", "--title", "x", "--service", "web",
                            "--field", "bad key=1"])
    assert (cli.exit_code, cli.stderr) == (
        1, "Error: invalid field 'bad key=1': write key=value\n")
    with http_client(runtime) as client:
        refused = client.post("/api/incidents", headers=headers, json={
            "title": "x", "severity": "SEV-3", "services": ["web"],
            "fields": {"bad key": "1"}})
        assert (refused.status_code, refused.json()) == (400, {
            "error": "invalid field name 'bad key': up to 64 ASCII letters, digits, '_', '.'"
                     " or '-', starting with a letter or '_'"})
        made = client.post("/api/incidents", headers=headers, json={
            "title": "x", "severity": "SEV-3", "services": ["web"],
            "fields": {"region": "eu-west-1"}})
        assert made.status_code == 201, made.text
        assert made.json()["incident"]["fields"] == {"region": "eu-west-1"}
    assert [i.id for i in runtime.store.list_incidents()] == ["INC-2", "INC-1"]
