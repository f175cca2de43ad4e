"""Connector configuration and outbound delivery, with the fake connector of im.testing."""

import json
import os
import stat
from datetime import UTC, datetime

import pytest

from im import incidents
from im.errors import ConnectorError
from im.sync import deliver_outbox
from im.testing import run_cli

CONFIG = json.dumps({"api_key": "k-123456", "sync_direction": "bidirectional",
                     "custom": {"project": "OPS"}})


def im(runtime, *args, input=None):
    return run_cli(runtime, list(args), input=input)


def add(runtime, name="prod-fake", config=CONFIG):
    result = im(runtime, "connector", "add", "fake", name, "--config", config)
    assert result.exit_code == 0, result.output
    return result


def test_add_with_json_and_list(runtime, clock):
    result = add(runtime)
    assert result.stdout == ("Added connector prod-fake (fake, bidirectional)\n"
                             "Check it with: im connector test prod-fake\n")
    record = runtime.store.get_connector("prod-fake")
    assert record.type == "fake" and record.settings["api_key"] == "k-123456"
    assert im(runtime, "connector", "list").stdout.splitlines() == [
        "Name       Type  Status  Direction      Last Sync",
        "prod-fake  fake  active  bidirectional  never",
    ]


def test_add_asks_the_settings_prompts(runtime):
    answers = "secret-key\n\nPAY\nn\nsideways\ninbound\n"
    result = im(runtime, "connector", "add", "fake", "asked", input=answers)
    assert result.exit_code == 0, result.output
    prompts = [line.split(":")[0] for line in result.stdout.splitlines() if ":" in line]
    assert prompts[:5] == ["API Key", "API Base URL [https", "Project [OPS]",
                           "Verify TLS certificates [Y/n]",
                           "Sync Direction (bidirectional, outbound, inbound) [outbound]"]
    assert "secret-key" not in result.stdout  # hidden input
    assert "Choose one of: bidirectional, outbound, inbound." in result.stderr
    assert runtime.store.get_connector("asked").settings == {
        "api_key": "secret-key", "base_url": "https://fake.example", "verify_tls": False,
        "custom": {"project": "PAY"}, "sync_direction": "inbound"}


def test_settings_errors_name_the_field(runtime):
    cases = {
        json.dumps({"custom": {"project": "x"}}):
            "Error: invalid settings: Object missing required field `api_key`\n",
        json.dumps({"api_key": "k", "custom": {"project": 5}}):
            "Error: invalid settings: Expected `str`, got `int` - at `custom.project`\n",
        json.dumps({"api_key": "k", "sync_direction": "both"}):
            "Error: invalid settings: Invalid enum value 'both'; choose from bidirectional, outbound,"
            " inbound - at `sync_direction`\n",
        json.dumps({"api_key": "k", "sync_interval": "soon"}):
            "Error: invalid settings: 'soon' is not a duration; use a number and s, m, h or d"
            " (e.g. 5m) - at `sync_interval`\n",
        json.dumps({"api_key": "k", "colour": "red"}):
            "Error: invalid settings: Object contains unknown field `colour`\n",
        json.dumps({"api_key": "k", "project": "x"}):  # at the wrong level
            "Error: invalid settings: Object contains unknown field `project`; did you mean"
            " custom.project?\n",
        json.dumps({"api_key": "k", "enable_webhook": "yes"}):
            "Error: invalid settings: Expected `bool`, got `str`; write true or false (without"
            " quotes) - at `enable_webhook`\n",
        json.dumps({"api_key": "k", "sync_intervall": "5m"}):  # misspelt
            "Error: invalid settings: Object contains unknown field `sync_intervall`; did you"
            " mean sync_interval?\n",
        "{nope": "Error: --config is not valid JSON: Expecting property name enclosed in double"
                 " quotes: line 1 column 2 (char 1)\n",
    }
    for config, message in cases.items():
        result = im(runtime, "connector", "add", "fake", "bad", "--config", config)
        assert (result.exit_code, result.stderr) == (1, message), config
    assert runtime.store.list_connectors() == []
    add(runtime)
    again = im(runtime, "connector", "add", "fake", "prod-fake", "--config", CONFIG)
    assert again.stderr == ("Error: connector prod-fake exists already; change it with"
                            " `im connector update prod-fake`\n")
    bad_name = im(runtime, "connector", "add", "fake", "Prod Fake", "--config", CONFIG)
    assert bad_name.exit_code == 1 and "invalid connector name" in bad_name.stderr


def test_secrets_are_redacted_and_env_references_resolved(runtime, monkeypatch):
    add(runtime)
    shown = json.loads(im(runtime, "connector", "show", "prod-fake", "--json").stdout)
    assert shown["settings"]["api_key"] == "********"
    assert "k-123456" not in im(runtime, "connector", "show", "prod-fake").stdout
    updated = im(runtime, "connector", "update", "prod-fake", "--api-key", "env:FAKE_KEY")
    assert updated.stdout == 'Updated prod-fake: api_key = "env:FAKE_KEY"\n'
    missing = im(runtime, "connector", "test", "prod-fake")
    assert missing.stderr == "Error: setting api_key refers to env:FAKE_KEY, which is not set\n"
    monkeypatch.setenv("FAKE_KEY", "from-env")
    assert runtime.connector("prod-fake").settings.api_key == "from-env"
    assert runtime.store.get_connector("prod-fake").settings["api_key"] == "env:FAKE_KEY"
    hidden = im(runtime, "connector", "update", "prod-fake", "--api-key=new-literal")
    assert hidden.stdout == 'Updated prod-fake: api_key = "********"\n'


@pytest.mark.sqlite_only
def test_database_is_readable_by_its_owner_only(runtime):
    add(runtime)
    mode = stat.S_IMODE(os.stat(runtime.store.path).st_mode)
    assert mode == 0o600


def test_config_options_belong_to_the_connector(runtime):
    add(runtime)
    result = im(runtime, "connector", "config", "prod-fake", "--project", "PAY",
                "--labels", '{"team": "db"}', "--set", "sync_interval=2m")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ['Updated prod-fake: sync_interval = "2m"',
                                          'Updated prod-fake: custom.project = "PAY"',
                                          'Updated prod-fake: custom.labels = {"team": "db"}']
    settings = runtime.connector("prod-fake").settings
    assert (settings.custom.project, settings.custom.labels, settings.sync_interval) == (
        "PAY", {"team": "db"}, "2m")
    unknown = im(runtime, "connector", "config", "prod-fake", "--colour", "red")
    assert unknown.stderr == ("Error: unknown option --colour; this connector takes --api-key,"
                              " --labels, --project, --set PATH=VALUE and --config JSON\n")
    bad = im(runtime, "connector", "config", "prod-fake", "--labels", "{not json")
    assert bad.stderr == "Error: --labels: custom.labels takes JSON, e.g. custom.labels='{...}'\n"
    invalid = im(runtime, "connector", "config", "prod-fake", "--set", "sync_interval=never")
    assert invalid.exit_code == 1 and "at `sync_interval`" in invalid.stderr
    assert runtime.connector("prod-fake").settings.sync_interval == "2m"


def test_remove(runtime):
    add(runtime)
    assert im(runtime, "connector", "remove", "prod-fake", input="n\n").exit_code == 1
    assert runtime.store.get_connector("prod-fake") is not None
    assert im(runtime, "connector", "remove", "prod-fake", "--yes").stdout == (
        "Removed connector prod-fake\n")
    assert runtime.store.list_connectors() == []
    assert im(runtime, "connector", "remove", "prod-fake", "--yes").stderr == (
        "Error: no connector named 'prod-fake' (configured: none)\n")


def test_test_command_prints_checks_and_exit_code(runtime, fake):
    add(runtime)
    ok = im(runtime, "connector", "test", "prod-fake")
    assert (ok.exit_code, ok.stdout) == (0, "✓ Connected to the fake API\n")
    fake.remote.reachable = False
    failed = im(runtime, "connector", "test", "prod-fake")
    assert (failed.exit_code, failed.stdout) == (
        1, "✗ Cannot reach the fake API\n  Fix: Start the fake API\n")


# -- outbound delivery ----------------------------------------------------------------------


def test_declare_pushes_one_remote_incident_per_service(runtime, fake):
    add(runtime)
    result = im(runtime, "declare", "--sev", "SEV-1", "--title", "Database cluster failure",
                "--service", "database,api,payments")
    assert result.stdout.splitlines() == [
        "Declared INC-1: SEV-1 Database cluster failure (database, api, payments)",
        "  prod-fake: Fake incident #1 created (database)",
        "  prod-fake: Fake incident #2 created (api)",
        "  prod-fake: Fake incident #3 created (payments)",
    ]
    links = runtime.store.links("INC-1")
    assert [(l.service, l.remote_id, l.remote_status) for l in links] == [
        ("api", "F2", "open"), ("database", "F1", "open"),
        ("payments", "F3", "open")]
    im(runtime, "ack", "--incident", "INC-1", "--note", "Investigating")
    assert {r["status"] for r in fake.remote.incidents.values()} == {"acknowledged"}
    assert all(r["notes"] == ["Investigating"] for r in fake.remote.incidents.values())
    assert {l.remote_status for l in runtime.store.links("INC-1")} == {"acknowledged"}
    sync_lines = [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sync"]
    assert len(sync_lines) == 6 and sync_lines[-1] == "Fake incident #3 ack synced"


def test_outage_queues_the_change_and_sync_delivers_it(runtime, fake, clock, caplog):
    add(runtime)
    fake.remote.failures.append(ConnectorError("API timed out", retryable=True))
    result = im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    assert result.exit_code == 0
    assert result.stdout == "Declared INC-1: SEV-2 x (db)\n"
    assert result.stderr == ("  ! prod-fake INC-1 declare: API timed out\n"
                             "  1 change(s) queued; `im serve` or `im connector sync"
                             " prod-fake` will deliver them\n")
    assert runtime.store.get_incident("INC-1").status.value == "open"
    # the outage is in the log too (`im logs --component sync`), not only on the screen
    [logged] = [(r.name, r.levelname, r.connector, r.getMessage()) for r in caplog.records
                if "not delivered" in r.getMessage()]
    assert logged[:3] == ("im.sync", "WARNING", "prod-fake")
    assert logged[3].startswith("declare of INC-1 not delivered (attempt 1): API timed out;"
                                " tried again in ")
    [row] = runtime.store.outbox()
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "API timed out")
    # A second change waits behind the first: the remote sees them in order, and the
    # command says it is queued although it was not tried.
    acked = im(runtime, "ack", "--incident", "INC-1")
    assert acked.stdout == "Acknowledged INC-1 (mitigated)\n"
    assert acked.stderr == ("  2 change(s) queued; `im serve` or `im connector sync prod-fake`"
                            " will deliver them\n")
    assert [c[0] for c in fake.remote.calls] == ["declare"]
    synced = im(runtime, "connector", "sync", "prod-fake")
    assert synced.stdout == "prod-fake: 2 delivered, 0 queued for retry, 0 failed\n"
    assert [c[0] for c in fake.remote.calls] == ["declare", "declare", "ack"]
    assert fake.remote.incidents["F1"]["status"] == "acknowledged"
    assert {r.status for r in runtime.store.outbox()} == {"done"}
    assert "never" not in im(runtime, "connector", "list").stdout


def test_ctrl_c_while_delivering_keeps_the_change_queued_and_says_so(runtime, fake, clock):
    """Ctrl-C while a connector is being called: the command says what is left queued and
    who delivers it, exits with 130 without a traceback, and the row is back in line at
    once (not held for its lease by a process that is gone)."""
    add(runtime)
    fake.remote.failures.append(KeyboardInterrupt())
    result = im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db,web")
    assert (result.exit_code, result.stdout) == (130, "Declared INC-1: SEV-2 x (db, web)\n")
    assert result.stderr == (
        "Interrupted: left queued for prod-fake: INC-1 declare (db, web)\n"
        "  `im serve` or `im connector sync prod-fake` will deliver them; INC-1 is saved in"
        " im\n")
    assert runtime.store.get_incident("INC-1").status.value == "open"
    assert [(r.status, r.attempts, r.next_attempt_at) for r in runtime.store.outbox()] == [
        ("pending", 1, clock.now), ("pending", 0, clock.now)]
    # and so does a sync
    fake.remote.failures.append(KeyboardInterrupt())
    synced = im(runtime, "connector", "sync", "prod-fake")
    assert (synced.exit_code, synced.stdout, synced.stderr) == (
        130, "", "Interrupted: left queued for prod-fake: INC-1 declare (db, web)\n"
                 "  `im serve` or `im connector sync prod-fake` will deliver them\n")
    assert im(runtime, "connector", "sync", "prod-fake").stdout == (
        "prod-fake: 2 delivered, 0 queued for retry, 0 failed\n")


def test_ctrl_c_in_any_other_command_is_one_line_and_130(runtime, fake, monkeypatch):
    add(runtime)

    def interrupted(self, request):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(runtime.connector("prod-fake")), "test", interrupted)
    result = im(runtime, "connector", "test", "prod-fake")
    assert (result.exit_code, result.stdout, result.stderr) == (130, "", "Error: interrupted\n")


def test_sync_says_which_changes_another_process_holds_and_until_when(runtime, fake, clock,
                                                                     tmp_path, monkeypatch):
    """`im connector status` counts changes waiting that another process (`im serve`, another
    command) is delivering: `im connector sync` does not report "0 delivered, 0 queued"
    without a word about them, but names them, with when their claim runs out, and the ones
    waiting behind them; then, once the claim is gone, delivers them."""
    from datetime import timedelta

    from im.cli.output import when
    from im.testing import make_runtime

    add(runtime)
    fake.remote.failures.append(ConnectorError("API timed out", retryable=True))
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    im(runtime, "ack", "--incident", "INC-1")
    other = make_runtime(tmp_path / "home", plugins=[fake], clock=clock)  # `im serve`, say
    clock.advance(seconds=5)  # past the declare's backoff: `im serve` takes it up
    claimed = other.store.claim_outbox(now=clock.now, lease_seconds=120)
    assert (claimed.incident_id, claimed.action) == ("INC-1", "declare")
    assert "Queued: 2 change(s) waiting, 0 failed" in im(
        runtime, "connector", "status", "prod-fake").stdout
    synced = im(runtime, "connector", "sync", "prod-fake")
    assert (synced.exit_code, synced.stderr) == (0, "")
    assert synced.stdout == (
        "prod-fake: 0 delivered, 0 queued for retry, 0 failed\n"
        "prod-fake: 1 change(s) held by another process that is delivering them (`im serve` or"
        " another command), not tried here: INC-1 declare (db) until"
        f" {when(clock.now + timedelta(seconds=120))}\n"
        "prod-fake: 1 change(s) wait behind those, in order: INC-1 ack (db)\n")
    assert [call[0] for call in fake.remote.calls] == ["declare"]  # nothing sent meanwhile
    held = json.loads(im(runtime, "connector", "sync", "prod-fake", "--json").stdout)
    assert (held["delivery"]["held"], held["delivery"]["behind_held"]) == (
        [{"incident": "INC-1", "action": "declare", "service": "db",
          "lease_until": f"{clock.now + timedelta(seconds=120):%Y-%m-%dT%H:%M:%SZ}"}],
        [{"incident": "INC-1", "action": "ack", "service": "db", "lease_until": None}])
    # changes the command's time ran out for are named too, and make it exit non-zero
    from im.cli import waiting

    clock.advance(seconds=121)  # the other process is gone: its claim has run out
    monkeypatch.setattr(waiting, "BUDGET", 0.0)
    late = im(runtime, "connector", "sync", "prod-fake")
    assert (late.exit_code, late.stdout) == (1, (
        "prod-fake: 0 delivered, 0 queued for retry, 0 failed\n"
        "prod-fake: 2 change(s) not tried: the command's 0 s ran out; `im serve` or another"
        " sync delivers them: INC-1 declare (db), INC-1 ack (db)\n"))
    as_json = im(runtime, "connector", "sync", "prod-fake", "--json")
    assert as_json.exit_code == 1  # as the text says it: not tried, for lack of time
    assert [row["action"] for row in json.loads(as_json.stdout)["delivery"]["not_tried"]] == [
        "declare", "ack"]
    monkeypatch.setattr(waiting, "BUDGET", 10.0)
    assert im(runtime, "connector", "sync", "prod-fake").stdout == (
        "prod-fake: 2 delivered, 0 queued for retry, 0 failed\n")
    other.store.close()


def test_retry_after_a_lost_answer_links_the_existing_remote_incident(runtime, fake, clock):
    add(runtime)
    incidents.declare(runtime, title="x", severity="SEV-2", services=["db"])
    # The remote made the incident but the answer was lost: the row is claimed, never finished.
    row = runtime.store.claim_outbox(now=clock.now, lease_seconds=60)
    fake.remote.by_key["im-" + runtime.store.get_incident("INC-1").correlation_id + "-db"] = "F9"
    fake.remote.incidents["F9"] = {"status": "open", "notes": []}
    assert deliver_outbox(runtime).delivered == 0  # still leased to the lost worker
    clock.advance(seconds=61)
    report = deliver_outbox(runtime)
    assert report.delivered == 1
    assert len(fake.remote.incidents) == 1
    assert [l.remote_id for l in runtime.store.links("INC-1")] == ["F9"]
    assert runtime.store.outbox()[0].attempts == 2 and row.attempts == 1


def test_permanent_errors_fail_the_row_visibly_and_can_be_retried(runtime, fake):
    add(runtime)
    fake.remote.failures.append(ConnectorError("Invalid Input Provided", retryable=False))
    result = im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    # its own exit code, after saying that the change is kept
    assert (result.exit_code, result.stdout) == (3, "Declared INC-1: SEV-2 x (db)\n")
    assert result.stderr == (
        "  ! prod-fake INC-1 declare: Invalid Input Provided\n"
        "  1 change(s) refused for good and set aside; INC-1 keeps the change in im. Fix the"
        " cause, then `im connector sync prod-fake --retry-failed` sends it again\n")
    assert runtime.store.get_incident("INC-1").status.value == "open"
    [row] = runtime.store.outbox()
    assert (row.status, row.last_error) == ("failed", "Invalid Input Provided")
    assert im(runtime, "connector", "sync", "prod-fake").stdout == (
        "prod-fake: 0 delivered, 0 queued for retry, 0 failed\n"
        "prod-fake: 1 change(s) set aside earlier, refused for good: INC-1 declare (db); after"
        " fixing the cause, `im connector sync prod-fake --retry-failed` sends them again\n")
    # --json says it on stderr too, after the JSON, with the same exit code
    fake.remote.failures.append(ConnectorError("Invalid Input Provided", retryable=False))
    as_json = im(runtime, "declare", "--sev", "SEV-3", "--title", "y", "--service", "db",
                 "--json")
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["incident"]["id"] == "INC-2"
    assert as_json.stderr.startswith("  1 change(s) refused for good and set aside; INC-2")
    # so does a sync whose change is refused
    fake.remote.failures.append(ConnectorError("Invalid Input Provided", retryable=False))
    refused = im(runtime, "connector", "sync", "prod-fake", "--incident", "INC-2",
                 "--retry-failed")
    assert (refused.exit_code, refused.stdout) == (3, (
        "prod-fake: 1 failed change(s) queued again\n"
        "prod-fake: 0 delivered, 0 queued for retry, 1 failed\n"))
    assert refused.stderr == (
        "  ! prod-fake INC-2 declare: Invalid Input Provided\n"
        "  1 change(s) refused for good and set aside; the changes stay in im. Fix the cause,"
        " then `im connector sync prod-fake --retry-failed` sends them again\n")
    retried = im(runtime, "connector", "sync", "prod-fake", "--retry-failed")
    assert retried.stdout == ("prod-fake: 2 failed change(s) queued again\n"
                              "prod-fake: 2 delivered, 0 queued for retry, 0 failed\n")
    assert retried.exit_code == 0
    assert [r.status for r in runtime.store.outbox()] == ["done", "done"]
    assert len(fake.remote.incidents) == 2


def test_direction_is_honoured(runtime, fake):
    add(runtime, "in", json.dumps({"api_key": "k", "sync_direction": "inbound"}))
    add(runtime, "out", json.dumps({"api_key": "k"}))
    incidents.declare(runtime, title="x", severity="SEV-2", services=["db", "api"])
    assert sorted({(r.connector, r.service) for r in runtime.store.outbox()}) == [
        ("out", "api"), ("out", "db")]


def test_changes_never_go_back_to_the_connector_they_came_from(runtime):
    from im.models import Origin

    add(runtime, "a")
    add(runtime, "b")
    incidents.declare(runtime, title="x", severity="SEV-2", services=["db"],
                      origin=Origin(actor="john", system="a"))
    assert [r.connector for r in runtime.store.outbox()] == ["b"]


def test_claims_are_exclusive_across_connections(runtime, clock):
    """Two workers on their own connections never claim the same row."""
    import threading

    from im.testing import make_runtime

    add(runtime)
    for n in range(30):
        incidents.declare(runtime, title=f"i{n}", severity="SEV-3", services=["a", "b"])
    claimed: list[int] = []
    lock = threading.Lock()

    def worker():
        store = make_runtime(runtime.home).store  # a store (and connection) of its own
        while (row := store.claim_outbox(now=clock.now, lease_seconds=60)) is not None:
            with lock:
                claimed.append(row.id)
            store.finish_outbox(row.id, at=clock.now)
        store.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == list(range(1, 61))


RACE = '''
import sys, threading
from typing import Annotated
import msgspec
from im.connector_config import secret_paths, validate
from im.connectors import ConnectorSettings

sys.setswitchinterval(1e-6)  # threads switch as often as they can
data = {"api_key": "k", "custom": {"service_id": "s", "n": 1}}
for n in range(200):
    secret = Annotated[str, msgspec.Meta(extra={"secret": True})]
    custom = msgspec.defstruct(f"Custom{n}", [("service_id", secret, ""), ("n", int, 0)],
                               kw_only=True)
    settings = msgspec.defstruct(
        f"Settings{n}", [("api_key", secret, ""),
                         ("custom", custom, msgspec.field(default_factory=custom))],
        bases=(ConnectorSettings,), kw_only=True)
    start = threading.Barrier(6)

    def decode():
        start.wait()
        assert validate(settings, data).custom.n == 1

    def inspect():
        start.wait()
        assert secret_paths(settings) == {"api_key", "custom.service_id"}

    threads = [threading.Thread(target=(decode, inspect)[k % 2]) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
print("ok")
'''


def test_a_settings_type_first_used_by_many_threads_at_once_is_decoded_safely():
    """msgspec builds a struct type's decoding information on first use, and threads doing
    that at once for one type crashed the interpreter (`im serve`'s loops each build the
    connectors when they start). Settings types are made ready once, under a lock."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True,
                            timeout=120)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr[-2000:]


def test_a_connector_follows_the_incidents_declared_after_it_was_added(runtime, fake, clock):
    im(runtime, "declare", "--sev", "SEV-2", "--title", "before", "--service", "db")
    clock.advance(minutes=1)
    add(runtime)
    clock.advance(minutes=1)
    acked = im(runtime, "ack", "--incident", "INC-1")
    assert (acked.exit_code, acked.stdout, acked.stderr) == (
        0, "Acknowledged INC-1 (mitigated)\n", "")
    assert runtime.store.outbox(incident_id="INC-1") == []
    im(runtime, "declare", "--sev", "SEV-2", "--title", "after", "--service", "db")
    im(runtime, "ack", "--incident", "INC-2")
    assert [c[0] for c in fake.remote.calls] == ["declare", "ack"]


def test_yes_no_settings_take_true_false_yes_no(runtime):
    add(runtime)
    for word, expected in (("yes", True), ("no", False), ("TRUE", True), ("false", False)):
        result = im(runtime, "connector", "config", "prod-fake", "--set",
                    f"enable_webhook={word}")
        assert (result.exit_code, result.stdout) == (
            0, f"Updated prod-fake: enable_webhook = {json.dumps(expected)}\n"), result.output
        assert runtime.store.get_connector("prod-fake").settings["enable_webhook"] is expected
    bad = im(runtime, "connector", "config", "prod-fake", "--set", "enable_webhook=maybe")
    assert (bad.exit_code, bad.stderr) == (
        1, "Error: enable_webhook takes true or false (or yes or no), not 'maybe'\n")
    assert runtime.store.get_connector("prod-fake").settings["enable_webhook"] is False
    # and in the prompts: "true" is an answer, "maybe" is asked again
    answers = "secret-key\n\nPAY\nmaybe\nfalse\ninbound\n"
    asked = im(runtime, "connector", "add", "fake", "asked", input=answers)
    assert asked.exit_code == 0, asked.output
    assert "Answer yes or no (or true or false).\n" in asked.stderr
    assert runtime.store.get_connector("asked").settings["verify_tls"] is False


def test_every_command_that_changes_an_incident_takes_json(runtime, fake):
    """The same shape as `declare --json`: the incident, its links, and `sync`, what each
    connector did; nothing but the JSON on stdout, nothing on stderr."""
    add(runtime)

    def run(*args):
        result = im(runtime, *args, "--json")
        assert (result.exit_code, result.stderr) == (0, ""), (args, result.output)
        data = json.loads(result.stdout)
        assert sorted(data) == sorted(["incident", "links", "sync"]
                                      + (["note"] if args[0] == "note" else [])), args
        return data

    declared = run("declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    assert declared["sync"] == {"synced": [{"connector": "prod-fake",
                                            "text": "Fake incident #1 created (db)"}],
                                "errors": [], "queued": 0, "failed": 0}
    steps = [(("ack", "--incident", "INC-1", "--note", "on it"), "mitigated", "ack"),
             (("note", "checking", "--incident", "INC-1"), "mitigated", "note"),
             (("assign", "--incident", "INC-1", "--to", "bob@example.com"), "mitigated",
              "assign"),
             (("severity", "--incident", "INC-1", "--sev", "SEV-1"), "mitigated", "severity"),
             (("resolve", "--incident", "INC-1"), "resolved", "resolve"),
             (("reopen", "--incident", "INC-1"), "open", "reopen"),
             (("close", "--incident", "INC-1"), "closed", "close")]
    for args, status, action in steps:
        data = run(*args)
        assert data["incident"]["id"] == "INC-1" and data["incident"]["status"] == status
        assert data["sync"] == {"synced": [{"connector": "prod-fake",
                                            "text": f"Fake incident #1 {action} synced"}],
                                "errors": [], "queued": 0, "failed": 0}, args
        assert [link["remote_id"] for link in data["links"]] == ["F1"]
    incident = runtime.store.get_incident("INC-1")
    assert (incident.severity.value, incident.assignee) == ("SEV-1", "bob@example.com")
    noted = json.loads(im(runtime, "note", "again", "-i", "INC-1", "--json").stdout)
    assert (noted["note"]["kind"], noted["note"]["text"]) == ("note", "again")
    # an outage: the change is kept, and the JSON says it is queued
    fake.remote.failures.append(ConnectorError("API timed out", retryable=True))
    queued = im(runtime, "reopen", "--incident", "INC-1", "--json")
    assert (queued.exit_code, queued.stderr) == (0, "")
    assert json.loads(queued.stdout)["sync"] == {
        "synced": [], "errors": ["prod-fake INC-1 reopen: API timed out"], "queued": 1,
        "failed": 0}
    assert runtime.store.get_incident("INC-1").status.value == "open"
    # bad input: the usual one-line error, no JSON
    bad = im(runtime, "ack", "--incident", "INC-99", "--json")
    assert (bad.exit_code, bad.stdout, bad.stderr) == (
        1, "", "Error: no incident INC-99; `im list` shows the incidents\n")


def test_connector_test_and_sync_take_json(runtime, fake):
    add(runtime)
    ok = im(runtime, "connector", "test", "prod-fake", "--json")
    assert (ok.exit_code, json.loads(ok.stdout)) == (0, {
        "connector": "prod-fake", "ok": True, "warnings": [],
        "checks": [{"name": "api", "ok": True, "detail": "Connected to the fake API",
                    "fix": None, "label": "", "critical": True}]})
    fake.remote.reachable = False
    failed = im(runtime, "connector", "test", "prod-fake", "--json")
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["checks"] == [
        {"name": "api", "ok": False, "detail": "Cannot reach the fake API",
         "fix": "Start the fake API", "label": "", "critical": True}]
    fake.remote.failures.append(ConnectorError("API timed out", retryable=True))
    im(runtime, "declare", "--sev", "SEV-2", "--title", "x", "--service", "db")
    synced = im(runtime, "connector", "sync", "prod-fake", "--json")
    assert (synced.exit_code, synced.stderr) == (0, ""), synced.output
    data = json.loads(synced.stdout)
    assert data == {"connector": "prod-fake", "incident": None, "requeued": None,
                    "delivery": {"delivered": 1, "retrying": 0, "failed": 0, "errors": [],
                                 "held": [], "behind_held": [], "behind_retry": [],
                                 "not_tried": [], "set_aside": []},
                    "reconciled": data["reconciled"], "error": None}
    assert [link.remote_id for link in runtime.store.links("INC-1")] == ["F1"]
    fake.remote.failures.append(ConnectorError("bad request", retryable=False))
    im(runtime, "ack", "--incident", "INC-1")
    again = im(runtime, "connector", "sync", "prod-fake", "--incident", "INC-1",
               "--retry-failed", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["requeued"] == 1
    assert json.loads(again.stdout)["delivery"]["delivered"] == 1
    assert runtime.store.get_incident("INC-1").status.value == "mitigated"


def test_a_remote_incident_merged_into_another_never_resolves_the_incident(runtime, clock):
    """ChangeKind.MERGED, for any connector: the link follows the survivor where no link does
    yet (its later resolve resolves the incident), else it is kept as merged, holding nothing
    open; the im incident is never resolved by the merge itself."""
    from im.connectors import ChangeKind, InboundChange
    from im.inbound import apply_change
    from im.models import Origin

    add(runtime)
    incident = incidents.declare(runtime, title="Checkout errors", severity="SEV-2",
                                 services=["api", "db"], origin=Origin(actor="alice"))
    deliver_outbox(runtime)
    fake = runtime.connector("prod-fake")
    api, db = (next(li for li in runtime.store.links(incident.id) if li.service == s)
               for s in ("api", "db"))

    def change(remote_id, action, **fields):
        return InboundChange(remote_id=remote_id, event_id=f"{remote_id}:{action}",
                             action=action, occurred_at=clock(), actor="bob", **fields)

    # api's remote incident merged into one im does not follow: the link moves there
    moved = change(api.remote_id, ChangeKind.MERGED, merged_into="F9", merged_into_number="9",
                   merged_into_url="https://fake.example/F9")
    assert apply_change(runtime, fake, moved) == "applied"
    api_now = next(li for li in runtime.store.links(incident.id) if li.service == "api")
    assert (api_now.remote_id, api_now.remote_number, api_now.remote_url,
            api_now.remote_status, api_now.remote_updated_at) == (
        "F9", "9", "https://fake.example/F9", "open", None)
    assert apply_change(runtime, fake, moved) == "confirmed"  # told again
    # db's merged into F9, which api's link follows now: kept as merged
    assert apply_change(runtime, fake, change(db.remote_id, ChangeKind.MERGED,
                                              merged_into="F9")) == "recorded"
    assert runtime.store.get_incident(incident.id).status.value == "open"
    lines = [e.text for e in runtime.store.timeline(incident.id) if e.actor == "bob"]
    assert lines == [f"prod-fake incident #{api.remote_number} merged into #9",
                     f"prod-fake incident #{db.remote_number} merged into F9 (linked for api)"]
    # the survivor's resolve is the last open one: the incident resolves
    assert apply_change(runtime, fake, change("F9", ChangeKind.RESOLVED)) == "applied"
    assert runtime.store.get_incident(incident.id).status.value == "resolved"


def _two_remote_incidents(runtime, clock):
    """An incident on two services, so one connector links two remote incidents; and a
    responder's change to one of them, as the connector hands it over (a second later each)."""
    from im.connectors import InboundChange
    from im.inbound import apply_change
    from im.models import Origin

    add(runtime)
    incident = incidents.declare(runtime, title="Checkout errors", severity="SEV-2",
                                 services=["api", "db"], origin=Origin(actor="alice"))
    deliver_outbox(runtime)
    fake = runtime.connector("prod-fake")
    api, db = (next(li for li in runtime.store.links(incident.id) if li.service == s)
               for s in ("api", "db"))

    def change(link, action):
        at = clock.advance(seconds=1)
        return apply_change(runtime, fake, InboundChange(
            remote_id=link.remote_id, event_id=f"{link.remote_id}:{action}:{at}",
            action=action, occurred_at=at, actor="bob"))

    def state():
        links = {li.service: str(li.remote_status) for li in runtime.store.links(incident.id)}
        return runtime.store.get_incident(incident.id).status.value, links

    return api, db, change, state


def test_unacknowledging_one_of_two_remote_incidents_leaves_the_incident_mitigated(
        runtime, clock):
    """The incident is unacknowledged (back to open) only when none of its remote incidents
    is still acknowledged: one of two going back to open leaves it mitigated (a reported bug
    unacknowledged it)."""
    from im.connectors import ChangeKind

    api, db, change, state = _two_remote_incidents(runtime, clock)
    assert change(api, ChangeKind.ACKNOWLEDGED) == "applied"
    change(db, ChangeKind.ACKNOWLEDGED)
    assert state() == ("mitigated", {"api": "acknowledged", "db": "acknowledged"})
    change(api, ChangeKind.UNACKNOWLEDGED)
    assert state() == ("mitigated", {"api": "open", "db": "acknowledged"})
    # the last acknowledged one going back to open unacknowledges the incident
    assert change(db, ChangeKind.UNACKNOWLEDGED) == "applied"
    assert state() == ("open", {"api": "open", "db": "open"})


def test_an_incident_resolves_only_when_all_its_remote_incidents_are_resolved(runtime, clock):
    """Resolving one of two remote incidents leaves the incident as it was, saying so on its
    timeline; resolving the last resolves it (a reported bug left it open)."""
    from im.connectors import ChangeKind

    api, db, change, state = _two_remote_incidents(runtime, clock)
    change(api, ChangeKind.ACKNOWLEDGED)
    assert change(api, ChangeKind.RESOLVED) == "applied"
    assert state() == ("mitigated", {"api": "resolved", "db": "open"})
    lines = [e.text for e in runtime.store.timeline(api.incident_id) if e.actor == "bob"]
    assert lines[-1] == (f"prod-fake incident #{api.remote_number} (api) resolved;"
                         " 1 of 2 linked incidents still open")
    assert change(db, ChangeKind.RESOLVED) == "applied"
    assert state() == ("resolved", {"api": "resolved", "db": "resolved"})


def test_a_remote_incident_moved_to_another_service_takes_its_link_there(runtime, clock):
    """InboundChange.moved_to_service, for any connector: the link, the changes still to push
    to it and the incident's service follow the move; a move to a service the incident
    follows another remote incident for leaves the link where it is."""
    from im.connectors import ChangeKind, InboundChange
    from im.inbound import apply_change
    from im.models import Origin

    add(runtime)
    incident = incidents.declare(runtime, title="Checkout errors", severity="SEV-2",
                                 services=["api", "db"], origin=Origin(actor="alice"))
    deliver_outbox(runtime)
    fake = runtime.connector("prod-fake")
    api, db = (next(li for li in runtime.store.links(incident.id) if li.service == s)
               for s in ("api", "db"))
    incidents.add_note(runtime, incident.id, "still queued", origin=Origin(actor="alice"))

    def moved(remote_id, to):
        return InboundChange(remote_id=remote_id, event_id=f"{remote_id}:{to}",
                             action=ChangeKind.UPDATED, occurred_at=clock(), actor="bob",
                             text=f"moved to {to}", moved_to_service=to)

    assert apply_change(runtime, fake, moved(api.remote_id, "payments")) == "applied"
    assert sorted((li.service, li.remote_id) for li in runtime.store.links(incident.id)) == [
        ("db", db.remote_id), ("payments", api.remote_id)]
    assert runtime.store.get_incident(incident.id).services == ["db", "payments"]
    queued = runtime.store.outbox(connector="prod-fake", statuses=("pending",))
    assert sorted(r.service for r in queued) == ["db", "payments"]
    # db's remote incident moved to payments too: im follows api's there, db's stays
    assert apply_change(runtime, fake, moved(db.remote_id, "payments")) == "recorded"
    assert sorted(li.service for li in runtime.store.links(incident.id)) == ["db", "payments"]
    lines = [e.text for e in runtime.store.timeline(incident.id) if e.actor == "bob"]
    assert lines == ["moved to payments", "moved to payments; im follows another prod-fake"
                     " incident for payments, so this one stays linked for db"]
    # the queued note reaches the remote incident where it is now
    deliver_outbox(runtime)
    assert runtime.store.outbox(connector="prod-fake", statuses=("pending", "failed")) == []


def _ref(status):
    from im import RemoteRef

    return RemoteRef(remote_id="R1", remote_status=status).remote_status


def _change(status):
    from im import ChangeKind, InboundChange

    return InboundChange(remote_id="R1", event_id="e1", action=ChangeKind.ACKNOWLEDGED,
                         occurred_at=datetime.now(UTC), actor="x",
                         remote_status=status).remote_status


def _report(status):
    from im import RemoteIncidentReport

    return RemoteIncidentReport(remote_id="R1", status=status).status


@pytest.mark.parametrize("make", [_ref, _change, _report])
def test_a_remote_state_is_im_word_or_refused_where_a_connector_hands_it_over(make):
    from im import RemoteStatus

    assert make("acknowledged") is RemoteStatus.ACKNOWLEDGED
    assert make(None) is None
    with pytest.raises(ValueError, match=r"'closed' is not one of im's remote states \(open,"
                       r" acknowledged, resolved, missing, merged\): translate the remote"
                       r" system's word \(see im.RemoteStatus\)"):
        make("closed")
    with pytest.raises(ValueError, match="'triggered' is not one of im's remote states"):
        make("triggered")


@pytest.mark.sqlite_only  # a database an earlier im left: only SQLite ones are that old
def test_links_stored_with_the_old_word_for_open_read_as_open(tmp_path):
    import sqlite3

    from im import Link
    from im.storage.sqlite import SqliteStore
    from im.testing import make_runtime

    runtime = make_runtime(tmp_path)
    incidents.declare(runtime, title="Disk full", severity="SEV-2", services=["api", "db"])
    for service, remote_id, status in (("api", "Q1", "open"), ("db", "Q2", "acknowledged")):
        runtime.store.upsert_link(Link(incident_id="INC-1", connector="pd", service=service,
                                       remote_id=remote_id, remote_status=status))
    runtime.store.close()
    conn = sqlite3.connect(tmp_path / "im.db")
    with conn:  # as an earlier im left it: an open remote incident in the remote's own word
        conn.execute("UPDATE links SET remote_status = 'triggered' WHERE remote_id = 'Q1'")
        conn.execute("DELETE FROM migrations WHERE name = '0013_remote_states'")
    conn.close()
    store = SqliteStore(tmp_path / "im.db")
    assert sorted((link.remote_id, link.remote_status) for link in store.links("INC-1")) == [
        ("Q1", "open"), ("Q2", "acknowledged")]
    store.close()


@pytest.mark.parametrize(("checks", "verdict"), [
    # what the connector marks critical decides, not what it names its checks
    ([("reach", True, False)], "unhealthy"),
    ([("api", False, False)], "degraded"),
    ([("auth", False, False), ("reach", True, True)], "degraded"),
])
def test_health_is_unhealthy_when_a_critical_check_fails(runtime, fake, monkeypatch, checks,
                                                          verdict):
    from im import Check
    from im.observability import health
    from im.testing import FakeConnector

    add(runtime)
    monkeypatch.setattr(FakeConnector, "test", lambda self, request: [
        Check(name=name, critical=critical, ok=ok, detail=name)
        for name, critical, ok in checks])
    assert health(runtime, "prod-fake")[0] == verdict


def test_rate_limit_usage_is_unknown_until_the_connector_knows_its_limit(runtime, fake,
                                                                          monkeypatch):
    from im.testing import FakeConnector

    add(runtime)
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Slow", "--service", "api")
    shown = im(runtime, "metrics", "connector", "prod-fake").stdout.splitlines()
    assert "Rate Limit Usage: unknown (the connector does not know its limit)" in shown
    monkeypatch.setattr(FakeConnector, "rate_limit_per_minute", 60)
    runtime.record_call("prod-fake", method="GET", path="/x", status=200,
                        duration=0.001)
    shown = im(runtime, "metrics", "connector", "prod-fake").stdout.splitlines()
    assert "Rate Limit Usage: 1.7%" in shown  # one call in the last minute, of 60


def test_a_connector_with_one_remote_incident_per_incident_gets_each_change_once(tmp_path,
                                                                                  clock):
    from im import hookimpl
    from im.testing import FakeConnector, FakeRemote, make_runtime

    remote = FakeRemote()

    class OnePerIncident:
        @hookimpl
        def register_connectors(self, register):
            register(type("Ticketing", (FakeConnector,), {
                "type": "fake", "remote": remote, "remote_incident_per": "incident"}))

    runtime = make_runtime(tmp_path / "home", plugins=[OnePerIncident()], clock=clock)
    add(runtime)
    declared = im(runtime, "declare", "--sev", "SEV-1", "--title", "Region down",
                  "--service", "api,db,web")
    assert declared.stdout.splitlines()[1:] == ["  prod-fake: Fake incident #1 created (api)"]
    for command in (("ack", "--incident", "INC-1"), ("note", "--incident", "INC-1", "Failing over"),
                    ("resolve", "--incident", "INC-1")):
        assert im(runtime, *command).exit_code == 0
    assert remote.calls == [("declare", "INC-1", "api"), ("ack", "INC-1", "api"),
                            ("note", "INC-1", "api"), ("resolve", "INC-1", "api")]
    [link] = runtime.store.links("INC-1")
    assert (link.service, link.remote_status) == ("api", "resolved")
    assert runtime.store.get_incident("INC-1").status.value == "resolved"
    runtime.store.close()


def test_a_hyphenated_connector_type_has_a_debug_variable_a_shell_can_set(tmp_path, monkeypatch):
    from im import hookimpl
    from im.runtime import debug_variable
    from im.testing import FakeConnector, make_runtime

    class Acme:
        @hookimpl
        def register_connectors(self, register):
            register(type("AcmeOps", (FakeConnector,), {"type": "acme-ops"}))

    assert debug_variable("acme-ops") == "ACME_OPS_DEBUG"
    runtime = make_runtime(tmp_path / "home", plugins=[Acme()])
    assert not runtime.build_connector("x", "acme-ops", {"api_key": "k"}).settings.debug
    monkeypatch.setenv("ACME_OPS_DEBUG", "true")
    settings = runtime.build_connector("x", "acme-ops", {"api_key": "k"}).settings
    assert (settings.debug, settings.log_requests, settings.log_responses) == (True, True, True)
    runtime.store.close()


def test_a_connector_giving_a_remote_id_linked_elsewhere_is_told_in_words(runtime, fake):
    add(runtime)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "First", "--service", "api")
    fake.remote.by_key.clear()  # a buggy connector: its next create reuses an id
    fake.remote._numbers = iter(range(1, 10))
    second = im(runtime, "declare", "--sev", "SEV-2", "--title", "Second", "--service", "db")
    assert second.exit_code == 3, second.output  # the declare stands; its push is set aside
    assert second.stderr.splitlines()[0] == (
        "  ! prod-fake INC-2 declare: connector prod-fake gave remote incident F1 for INC-2 (db),"
        " but it is linked to INC-1 (api) already: a connector's remote ids must be unique")
    [failed] = [r for r in runtime.store.outbox() if r.incident_id == "INC-2"]
    assert failed.status == "failed"
    assert failed.last_error == (
        "connector prod-fake gave remote incident F1 for INC-2 (db), but it is linked to INC-1"
        " (api) already: a connector's remote ids must be unique")
    assert [link.incident_id for link in runtime.store.links(connector="prod-fake")] == ["INC-1"]


def test_a_connector_waiting_on_its_remote_does_not_hold_back_the_others_events(tmp_path,
                                                                                  clock):
    """An event whose reading must wait (the remote system's rate limit) leaves the later
    events of its connector for a later pass, in order; other connectors' events are applied
    in the same pass."""
    from im import ConnectorError, hookimpl
    from im.inbound import process_inbox
    from im.testing import FakeConnector, make_runtime

    class Hooked(FakeConnector):
        type = "hooked"

        def webhook_changes(self, request):
            if json.loads(request.body)["wait"]:
                raise ConnectorError("rate limited for a minute", retryable=True)
            return []

    class Plugin:
        @hookimpl
        def register_connectors(self, register):
            register(Hooked)

    runtime = make_runtime(tmp_path / "home", plugins=[Plugin()], clock=clock)
    for name in ("slow", "fast"):
        added = im(runtime, "connector", "add", "hooked", name, "--config",
                   '{"api_key": "k", "sync_direction": "bidirectional"}')
        assert added.exit_code == 0, added.output
    for n, (name, wait) in enumerate([("slow", True), ("fast", False), ("slow", False),
                                      ("fast", False)]):
        runtime.store.store_inbox(connector=name, delivery_id=f"e{n}", event_type="x",
                                  body=json.dumps({"wait": wait}).encode(), at=clock.now)
    report = process_inbox(runtime)
    assert (report.processed, report.quarantined) == (2, 0)
    assert [(row.connector, row.delivery_id, row.status) for row in runtime.store.inbox()] == [
        ("slow", "e0", "pending"), ("fast", "e1", "done"), ("slow", "e2", "pending"),
        ("fast", "e3", "done")]
    runtime.store.close()


def test_a_plugin_that_cannot_register_its_types_never_stops_a_change_being_saved(tmp_path,
                                                                                    clock):
    from im import hookimpl
    from im.testing import FakePlugin, make_runtime

    home = tmp_path / "home"
    runtime = make_runtime(home, plugins=[FakePlugin()], clock=clock)
    add(runtime)
    im(runtime, "declare", "--sev", "SEV-2", "--title", "Disk full", "--service", "db")
    runtime.store.close()

    class Broken:
        __name__ = "acme"

        @hookimpl
        def register_connectors(self, register):
            raise ImportError("No module named 'acme_client'")

    runtime = make_runtime(home, plugins=[FakePlugin(), Broken()], clock=clock)
    im(runtime, "ack", "--incident", "INC-1")
    assert runtime.store.get_incident("INC-1").status.value == "mitigated"
    [waiting] = [r for r in runtime.store.outbox() if r.status != "done"]
    assert (waiting.action, waiting.status, waiting.last_error) == (
        "ack", "pending", "plugin acme could not register its connector types: ImportError: No"
        " module named 'acme_client'")
    runtime.store.close()


def test_status_says_webhooks_are_off_when_the_connector_type_turns_them_off_by_default(
        tmp_path, clock):
    from im import ConnectorSettings, hookimpl
    from im.testing import FakeConnector, make_runtime

    class QuietSettings(ConnectorSettings, frozen=True, kw_only=True):
        api_key: str
        enable_webhook: bool = False

    class Quiet:
        @hookimpl
        def register_connectors(self, register):
            register(type("Quiet", (FakeConnector,), {"type": "quiet",
                                                      "Settings": QuietSettings}))

    runtime = make_runtime(tmp_path / "home", plugins=[Quiet()], clock=clock)
    added = im(runtime, "connector", "add", "quiet", "q", "--config",
               '{"api_key": "k", "sync_direction": "bidirectional"}')
    assert added.exit_code == 0, added.output
    status = json.loads(im(runtime, "connector", "status", "q", "--json").stdout)
    assert status["webhook_enabled"] is False
    runtime.store.close()


def test_a_change_kind_is_im_word_and_the_former_word_for_opened_still_reads():
    from im import ChangeKind, InboundChange, RemoteEvent

    now = datetime.now(UTC)
    change = InboundChange(remote_id="R1", event_id="e1", action="triggered",
                           occurred_at=now, actor="x")
    assert change.action is ChangeKind.OPENED is ChangeKind.TRIGGERED
    assert RemoteEvent(at=now, kind="opened").kind is ChangeKind.OPENED
    with pytest.raises(ValueError, match="action 'fired' is not one of im's change kinds"):
        InboundChange(remote_id="R1", event_id="e1", action="fired", occurred_at=now,
                      actor="x")


def test_a_poll_that_fails_before_any_call_shows_in_status_and_health(tmp_path):
    """Whatever the connector, a failed poll is kept: status and health give its error even
    when no call was made (none recorded, so no *Last Error*), and health is degraded by it
    alone; the next poll that succeeds clears it."""
    from im.humanize import when
    from im.testing import FakeClock, FakePlugin, FakeWebhookConnector, make_runtime

    fake = FakePlugin(connector=FakeWebhookConnector)  # a connector that polls
    clock = FakeClock(datetime.now(UTC))
    runtime = make_runtime(tmp_path / "home", plugins=[fake], clock=clock, user="alice")
    add(runtime, config=json.dumps({**json.loads(CONFIG),
                                    "webhook_secret": fake.remote.SECRET}))
    fake.remote.fault = "down"
    im(runtime, "connector", "sync", "prod-fake")
    error = "cannot reach the fake API: connection refused"
    status = im(runtime, "connector", "status", "prod-fake").stdout.splitlines()
    assert status[-2:] == ["Last Error: -", f"Last poll failed: {error} ({when(clock())})"]
    figures = json.loads(im(runtime, "connector", "status", "prod-fake", "--json").stdout)
    assert figures["last_poll_error"] == error
    health = im(runtime, "connector", "health", "prod-fake")
    assert (health.exit_code, health.stdout.splitlines()) == (1, [
        "Health: Degraded",
        "api: ✓ Connected to the fake API",
        "Webhook: ✓ No events received yet",
        f"Sync Status: ✗ Last poll failed: {error} (0s ago)",
        "  Fix: fix what the error says; `im connector sync prod-fake` polls again",
        "Error Rate: 0% (0 errors in 24h)"])
    fake.remote.fault = None
    clock.advance(minutes=1)
    im(runtime, "connector", "sync", "prod-fake")
    assert "Last poll failed" not in im(runtime, "connector", "status", "prod-fake").stdout
    assert im(runtime, "connector", "health", "prod-fake").exit_code == 0
    runtime.store.close()


def test_a_connector_that_asks_for_its_own_changes_gets_them_marked_as_its_own(tmp_path,
                                                                              clock):
    """A change never goes back to the connector it came from, unless its class sets
    receives_own_changes (a chat message showing im's state): it is queued for it like for
    any other, and its PushRequest names it as the origin."""
    from im import hookimpl
    from im.models import Origin
    from im.testing import FakeConnector, FakeRemote, make_runtime

    remote, seen = FakeRemote(), []

    class Chat(FakeConnector):
        type = "chat"
        receives_own_changes = True

        def push(self, request):
            seen.append((self.name, request.action, request.origin_system))
            return super().push(request)

    class Plugin:
        @hookimpl
        def register_connectors(self, register):
            register(type("Paging", (FakeConnector,), {"type": "fake", "remote": remote}))
            register(type("Chat", (Chat,), {"remote": FakeRemote()}))

    runtime = make_runtime(tmp_path / "home", plugins=[Plugin()], clock=clock)
    add(runtime)
    result = im(runtime, "connector", "add", "chat", "team-chat", "--config",
                json.dumps({"api_key": "k", "sync_direction": "outbound"}))
    assert result.exit_code == 0, result.output
    incident = incidents.declare(runtime, title="Checkout down", severity="SEV-2",
                                 services=["api"])
    incidents.transition(runtime, incident.id, incidents.Action.ACK,
                         origin=Origin(actor="jane@company.com", system="team-chat"))
    assert [(r.connector, r.action, r.origin_system) for r in runtime.store.outbox()] == [
        ("prod-fake", "declare", "im"), ("team-chat", "declare", "im"),
        ("prod-fake", "ack", "team-chat"), ("team-chat", "ack", "team-chat")]
    deliver_outbox(runtime)
    assert sorted(seen) == [("team-chat", "ack", "team-chat"),
                            ("team-chat", "declare", "im")]
    assert remote.calls == [("declare", "INC-1", "api"), ("ack", "INC-1", "api")]
    # the default stays: a change from the paging connector never goes back to it
    incidents.add_note(runtime, incident.id, "from paging",
                       origin=Origin(actor="john", system="prod-fake"))
    assert [(r.connector, r.origin_system) for r in runtime.store.outbox(
        statuses=("pending",))] == [("team-chat", "prod-fake")]
    runtime.store.close()
