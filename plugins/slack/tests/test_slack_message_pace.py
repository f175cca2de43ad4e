"""im keeps Slack's message pace itself (about one a second per channel) rather than earn
429s, against the sandbox in its "slack" rate-limit mode, which refuses a fifth message to a
channel within four seconds: a burst of changes is spaced out, channels are paced apart, and a
turn that comes after the deadline leaves the change queued."""

import itertools
import json
import time

import im
import pytest

import im_slack
import im_slack.api
from im.testing import make_runtime, run_cli
from im_slack.connector import SlackConnector

from slack_kit import im_, incident_messages, replies, runtime_with_slack, settings


class Waits:
    """The connector's sleep: each wait recorded, then slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        time.sleep(seconds)


@pytest.fixture
def waits(monkeypatch):
    recorded = Waits()
    monkeypatch.setattr(SlackConnector, "client_options", {"sleep": recorded, "timeout": 5})
    return recorded


def test_a_burst_of_changes_is_posted_a_second_apart_without_a_429(tmp_path, slack,
                                                                    monkeypatch):
    assert slack.configure()["rate_limits"] == "slack"
    runtime = runtime_with_slack(tmp_path / "home", slack)
    # a SEV-1 and five changes queued while Slack was away, then delivered in one run
    monkeypatch.setattr(SlackConnector, "client_options", {"max_attempts": 1})
    slack.set_faults(error_rate=1.0, error_status=503)
    im_(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down", "--service",
        "payments")
    for number in range(1, 6):
        im_(runtime, "note", f"Update {number}", "--incident", "INC-1")
    assert len(runtime.store.outbox(connector="prod-slack")) == 6
    slack.clear_faults()
    slack.clear_requests()
    waits = Waits()
    monkeypatch.setattr(SlackConnector, "client_options", {"sleep": waits, "timeout": 5})
    synced = run_cli(runtime, ["connector", "sync", "prod-slack"])
    assert "prod-slack: 6 delivered, 0 queued for retry, 0 failed" in synced.stdout, \
        synced.output
    posts = slack.requests("chat.postMessage")
    assert [p["status"] for p in posts] == [200] * 6  # no 429 from Slack
    times = [p["at"] for p in posts]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 0.95 for gap in gaps), gaps
    assert len(waits.slept) >= 5  # im waited its turn before each message but the first
    [message] = incident_messages(slack)
    assert [r["text"] for r in replies(slack, message["ts"])] == [
        f":memo: Note: Update {number}" for number in range(1, 6)]
    runtime.store.close()


def test_channels_are_paced_apart(tmp_path, slack, waits):
    runtime = runtime_with_slack(tmp_path / "home", slack)
    added = run_cli(runtime, ["connector", "add", "slack", "ops-slack", "--config",
                              json.dumps(settings(slack, channel="#general"))])
    assert added.exit_code == 0, added.output
    declared = im_(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors",
                   "--service", "api")
    assert "prod-slack: Slack message in #incidents" in declared.stdout
    assert "ops-slack: Slack message in #general" in declared.stdout
    # one message in each channel, one right after the other: neither waited for the other
    assert waits.slept == []
    im_(runtime, "note", "Rolled back", "--incident", "INC-1")
    posts = slack.requests("chat.postMessage")
    assert [p["status"] for p in posts] == [200] * 4
    channels = [p["params"]["channel"] for p in posts]
    assert sorted(channels) == sorted([slack.channel("incidents")["id"],
                                       slack.channel("general")["id"]] * 2)
    # the note waits for the first message of its channel, never for the other channel's
    assert len(waits.slept) <= 2 and all(wait <= 1.1 for wait in waits.slept)
    for channel in set(channels):
        first, second = (p["at"] for p in posts if p["params"]["channel"] == channel)
        assert second - first >= 0.95
    runtime.store.close()


def test_servers_on_one_database_share_the_pace(tmp_path, slack, monkeypatch, waits):
    first = runtime_with_slack(tmp_path / "home", slack)
    if first.shared_rate_limits() is None:
        # SQLite: a storage of this process stands in for PostgreSQL's table of windows
        from limits.storage import MemoryStorage

        storage = MemoryStorage()
        monkeypatch.setattr(im.Runtime, "shared_rate_limits", lambda self: storage)
    second = make_runtime(tmp_path / "home", plugins=[im_slack], user="bob")
    im_(first, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    # the other server is a process of its own: nothing of the first one's memory
    monkeypatch.setattr(im_slack.api, "_pace", None)
    im_(second, "declare", "--sev", "SEV-2", "--title", "Search down", "--service", "search")
    assert len(incident_messages(slack)) == 2
    first_post, second_post = slack.requests("chat.postMessage")
    assert second_post["at"] - first_post["at"] >= 0.95
    first.store.close()
    second.store.close()


def test_a_turn_after_the_deadline_leaves_the_change_queued_without_waiting(
        tmp_path, slack, monkeypatch):
    slept = []

    def sleep(seconds):  # never sleeps: a wait begun here would be a wait past the deadline
        slept.append(seconds)
        raise AssertionError(f"slept {seconds} s")

    monkeypatch.setattr(SlackConnector, "client_options", {"sleep": sleep, "timeout": 5})
    # a pace of one message a minute: the note's turn comes long after the command's ten
    # seconds
    monkeypatch.setattr(im_slack.api, "MESSAGE_PACE", "1/minute")
    runtime = runtime_with_slack(tmp_path / "home", slack)
    im_(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors", "--service", "api")
    noted = im_(runtime, "note", "Rolled back", "--incident", "INC-1")
    assert noted.exit_code == 0, noted.output
    assert slept == []
    [declare, note] = runtime.store.outbox(connector="prod-slack")
    assert (declare.status, note.status) == ("done", "pending")
    assert note.last_error.startswith(
        "no time left to call Slack (POST /chat.postMessage): its turn under the rate limit"
        " im keeps (1/minute) comes in ")
    wait = (note.next_attempt_at - runtime.clock()).total_seconds()
    assert 50 < wait <= 61, wait
    assert len(slack.requests("chat.postMessage")) == 1  # the declare's

    # the turn has come (a fresh pace): delivered, once
    monkeypatch.setattr(im_slack.api, "MESSAGE_PACE", "1/second")
    monkeypatch.setattr(im_slack.api, "_pace", None)
    synced = run_cli(runtime, ["connector", "sync", "prod-slack"])
    assert "prod-slack: 1 delivered, 0 queued for retry, 0 failed" in synced.stdout, \
        synced.output
    [message] = incident_messages(slack)
    assert [r["text"] for r in replies(slack, message["ts"])] == [":memo: Note: Rolled back"]
    runtime.store.close()
