"""The conformance kit run against the connectors im ships with: the fake connector of
im.testing (outbound and webhooks) and the example plugin, im-jsonl (outbound only; its remote
is the file). The PagerDuty plugin runs it in plugins/pagerduty/tests/test_conformance.py."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from im.testing import FakePlugin, FakeWebhookConnector
from im.testing.conformance import (
    ConnectorContract,
    Fault,
    FakeRemoteAdapter,
    RemoteAdapter,
    RemoteIncident,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "im_jsonl.py"


class TestFakeConnector(ConnectorContract):
    connector_type = "fake"
    assignee = "alex@example.com"

    @pytest.fixture
    def remote(self):
        return FakeRemoteAdapter()

    def plugins(self, remote):
        return [FakePlugin(remote.fake, connector=FakeWebhookConnector)]

    def settings(self, remote):
        return {"api_key": "k", "sync_direction": "bidirectional",
                "webhook_secret": remote.fake.SECRET}


@pytest.fixture(scope="module")
def im_jsonl():
    spec = importlib.util.spec_from_file_location("im_jsonl", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["im_jsonl"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("im_jsonl", None)


class JsonlFile(RemoteAdapter):
    """The jsonl connector's remote: the file. Its declare lines are the remote incidents;
    its outage is a folder that is not there."""

    faults = frozenset({Fault.DOWN})

    def __init__(self, folder: Path, module) -> None:
        self.folder = folder
        self.module = module

    def incidents(self):
        file = self.folder / "incidents.jsonl"
        lines = [json.loads(raw) for raw in file.read_text().splitlines()] if file.exists() else []
        found = {}
        for line in lines:
            if line["action"] == "declare":
                found[str(line["line"])] = {"status": line["status"], "notes": []}
                continue
            incident = found[str(line["remote"])]
            incident["status"] = line.get("status", incident["status"])
            if line.get("note"):
                incident["notes"].append(line["note"])
        return [RemoteIncident(remote_id=remote_id, notes=i["notes"],
                               status=self.module.REMOTE_STATUS.get(i["status"]))
                for remote_id, i in found.items()]

    def fail(self, fault):
        self.folder.rename(self.folder.with_name("away"))

    def recover(self):
        away = self.folder.with_name("away")
        if away.exists():
            away.rename(self.folder)


class TestJsonlConnector(ConnectorContract):
    connector_type = "jsonl"

    @pytest.fixture
    def remote(self, tmp_path, im_jsonl):
        folder = tmp_path / "home" / "mirror"
        folder.mkdir(parents=True)
        return JsonlFile(folder, im_jsonl)

    def plugins(self, remote):
        return [remote.module]

    def settings(self, remote):
        return {"path": "mirror/incidents.jsonl"}


class OnePerIncident(FakeWebhookConnector):
    remote_incident_per = "incident"


class TestFakeConnectorWithOneRemoteIncidentPerIncident(TestFakeConnector):
    def plugins(self, remote):
        return [FakePlugin(remote.fake, connector=OnePerIncident)]
