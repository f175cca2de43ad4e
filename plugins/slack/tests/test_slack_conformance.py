"""The slack connector against im's conformance kit (im.testing.conformance), with the Slack
sandbox as its remote: an incident message is a remote incident, its state what the message
says, its notes the note blocks of its thread. The kit's outbound rules apply; the slack
connector is outbound only, so the webhook and polling rules skip themselves."""

import pytest

import im_slack
from im import RemoteStatus
from im.testing.conformance import ConnectorContract, Fault, RemoteAdapter, RemoteIncident
from im_slack.connector import SlackConnector
from im_slack.messages import note_of, status_of

from slack_kit import block_text, incident_messages, replies, settings

TIMEOUT = 5  # the connector's client's, in seconds
LOST_ANSWER_SECONDS = TIMEOUT + 1
STATES = {"open": RemoteStatus.OPEN, "mitigated": RemoteStatus.ACKNOWLEDGED,
          "resolved": RemoteStatus.RESOLVED, "closed": RemoteStatus.RESOLVED}


class SlackSandbox(RemoteAdapter):
    faults = frozenset({Fault.DOWN, Fault.SERVER_ERROR, Fault.REFUSED, Fault.SLOW,
                        Fault.LOST_ANSWER})

    def __init__(self, slack):
        self.slack = slack
        self.scopes = slack.configure(rate_limits="off")["scopes"]
        self.channel = slack.channel("incidents")["id"]

    def incidents(self):
        return [RemoteIncident(
            remote_id=f"{self.channel}/{m['ts']}",
            status=STATES.get(status_of(block_text(m, "state")) or ""),
            notes=[n for n in (note_of(r) for r in replies(self.slack, m["ts"])) if n])
            for m in incident_messages(self.slack)]

    def fail(self, fault):
        if fault == Fault.DOWN:
            self.slack.set_faults(drop_rate=1.0)
        elif fault == Fault.SERVER_ERROR:
            self.slack.set_faults(error_rate=1.0, error_status=503)
        elif fault == Fault.REFUSED:  # the app lost chat:write: missing_scope, for good
            self.slack.configure(scopes=[s for s in self.scopes if s != "chat:write"])
        elif fault == Fault.SLOW:
            self.slack.set_faults(latency_ms=3000)
        elif fault == Fault.LOST_ANSWER:  # carried out, answered after the client gave up
            self.slack.set_faults(late_answer_ms=LOST_ANSWER_SECONDS * 1000)

    def recover(self):
        self.slack.clear_faults()
        self.slack.configure(scopes=self.scopes)


class TestSlackConnector(ConnectorContract):
    connector_type = "slack"

    @pytest.fixture
    def remote(self, slack, monkeypatch):
        monkeypatch.setattr(SlackConnector, "client_options", {"max_attempts": 1,
                                                               "timeout": TIMEOUT})
        return SlackSandbox(slack)

    def plugins(self, remote):
        return [im_slack]

    def settings(self, remote):
        return settings(remote.slack)
