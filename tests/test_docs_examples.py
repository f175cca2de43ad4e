"""The plugin-author docs, checked.

docs/examples/im_jsonl.py is loaded by path, registered as a plugin with make_runtime and taken
through the walk-through of docs/writing-plugins.md: every `$ command` in a console block there
must print here what the page shows. Only what differs on every run is set aside: times,
correlation ids (both asserted here against the test's own clock and database instead) and
IM_HOME (/tmp/im-demo on the page). The code examples of docs/testing-plugins.md run as a pytest
session of their own.
"""

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from im.testing import OUTBOX_LEASE_SECONDS, FakeClock, FakePlugin, make_runtime, run_cli
from im.testing.conformance import RULES, rules_markdown

# the `im` executable of this Python (the conftest module's name is shared by every
# test folder's, so tests name it themselves)
IM = str(Path(sys.executable).parent / "im")

REPO = Path(__file__).resolve().parents[1]
WRITING = REPO / "docs" / "writing-plugins.md"
TESTING = REPO / "docs" / "testing-plugins.md"
EXAMPLE = REPO / "docs" / "examples" / "im_jsonl.py"
DOC_HOME = "/tmp/im-demo"
TIME = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b")
CORRELATION_ID = re.compile(r"(?<=\bim-)[0-9a-f]{32}(?=-)")
# Needs the plugin installed (the entry point and its distribution): run by its own test.
NOT_RUN_HERE = {"IM_LOAD_PLUGINS=jsonl im plugins"}
FAKE_TIME = f"{FakeClock().now:%Y-%m-%dT%H:%M:%SZ}"  # FakeClock's start


@pytest.fixture(scope="module")
def im_jsonl():
    spec = importlib.util.spec_from_file_location("im_jsonl", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    # As for an installed module: msgspec resolves the settings' annotations through it.
    sys.modules["im_jsonl"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("im_jsonl", None)


@pytest.fixture
def home(tmp_path):
    """IM_HOME, made as `im` makes it before any command (on PostgreSQL no database file
    makes it, and the jsonl connector writes there)."""
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def runtime(home, clock, im_jsonl):
    rt = make_runtime(home, plugins=[im_jsonl], clock=clock, user="alice")
    yield rt
    rt.store.close()


def transcripts(markdown):
    """[command, output] for every `$ command` of the ```console blocks, in order."""
    found = []
    for block in re.findall(r"^```console\n(.*?)^```", markdown, re.S | re.M):
        for line in block.splitlines(keepends=True):
            if line.startswith("$ "):
                found.append([line[2:].rstrip("\n"), ""])
            else:
                found[-1][1] += line
    return found


def normalized(text):
    return CORRELATION_ID.sub("<correlation id>", TIME.sub("<time>", text))


class Walkthrough:
    """The transcripts of writing-plugins.md, checked one by one in the page's order."""

    def __init__(self, home):
        self.home = home
        self.steps = [step for step in transcripts(WRITING.read_text())
                      if step[0] not in NOT_RUN_HERE]
        self.done = 0

    def expect(self, command, printed):
        assert self.done < len(self.steps), f"the page has no more transcripts; ran {command}"
        doc_command, doc_output = self.steps[self.done]
        assert command == doc_command, "the page's walk-through runs in another order"
        assert normalized(printed) == normalized(doc_output.replace(DOC_HOME, str(self.home)))
        self.done += 1

    def finish(self):
        assert [command for command, _ in self.steps[self.done:]] == [], "not checked"


def lines_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_walkthrough_prints_what_writing_plugins_shows(runtime, home):
    page = Walkthrough(home)

    def im(command, *, input=None, exit_code=0):
        result = run_cli(runtime, shlex.split(command)[1:], input=input)
        assert result.exit_code == exit_code, result.output
        page.expect(command, result.output)
        return result

    # add, asking for the settings (the test runner echoes the answer, as a terminal does)
    im("im connector add jsonl audit", input="incidents.jsonl\n")
    assert runtime.store.get_connector("audit").settings == {"path": "incidents.jsonl"}
    im("im connector test audit")
    assert not (home / "incidents.jsonl").exists()

    im('im declare --sev SEV-2 --title "Checkout errors" --service api,payments')
    incident = runtime.store.get_incident("INC-1")
    key = f"im-{incident.correlation_id}"
    assert lines_of(home / "incidents.jsonl") == [
        {"line": 1, "at": FAKE_TIME, "incident": "INC-1", "service": "api", "action": "declare",
         "status": "open", "severity": "SEV-2", "title": "Checkout errors", "key": f"{key}-api"},
        {"line": 2, "at": FAKE_TIME, "incident": "INC-1", "service": "payments",
         "action": "declare", "status": "open", "severity": "SEV-2", "title": "Checkout errors",
         "key": f"{key}-payments"},
    ]
    links = runtime.store.links("INC-1", connector="audit")
    assert [(link.service, link.remote_id, link.remote_number, link.remote_status)
            for link in links] == [("api", "1", "1", "open"), ("payments", "2", "2", "open")]

    im('im ack --incident INC-1 --note "Rolling back deploy 4812"')
    im('im note "Error rate back to normal" --incident INC-1')
    im('im resolve --incident INC-1 --note "Deploy 4812 rolled back"')
    written = lines_of(home / "incidents.jsonl")
    assert written[2:] == [
        {"line": 3, "at": FAKE_TIME, "incident": "INC-1", "service": "api", "action": "ack",
         "remote": 1, "status": "mitigated", "note": "Rolling back deploy 4812"},
        {"line": 4, "at": FAKE_TIME, "incident": "INC-1", "service": "payments", "action": "ack",
         "remote": 2, "status": "mitigated", "note": "Rolling back deploy 4812"},
        {"line": 5, "at": FAKE_TIME, "incident": "INC-1", "service": "api", "action": "note",
         "remote": 1, "note": "Error rate back to normal"},
        {"line": 6, "at": FAKE_TIME, "incident": "INC-1", "service": "payments",
         "action": "note", "remote": 2, "note": "Error rate back to normal"},
        {"line": 7, "at": FAKE_TIME, "incident": "INC-1", "service": "api", "action": "resolve",
         "remote": 1, "status": "resolved", "note": "Deploy 4812 rolled back"},
        {"line": 8, "at": FAKE_TIME, "incident": "INC-1", "service": "payments",
         "action": "resolve", "remote": 2, "status": "resolved",
         "note": "Deploy 4812 rolled back"},
    ]
    page.expect('cat "$IM_HOME/incidents.jsonl"', (home / "incidents.jsonl").read_text())
    assert {link.remote_status for link in runtime.store.links("INC-1")} == {"resolved"}
    assert {row.status for row in runtime.store.outbox()} == {"done"}
    synced = [(e.system, e.text) for e in runtime.store.timeline("INC-1") if e.kind == "sync"]
    assert synced[-1] == ("audit", "Line 8 of incidents.jsonl: resolve (payments)")

    # the plugin's own command
    im("im jsonl tail audit -n 3")

    # settings: validation names the field; options of `im connector config`
    im("im connector add jsonl mirror --config"
       ' \'{"path": "incidents.jsonl", "sync_direction": "inbound"}\'', exit_code=1)
    assert runtime.store.get_connector("mirror") is None
    im("im connector config audit --fsync true")
    assert runtime.connector("audit").settings.fsync is True

    # a folder that is missing: the change waits in the outbox, then a sync delivers it
    im('im connector add jsonl archive --config \'{"path": "archive/incidents.jsonl"}\'')
    im("im connector test archive", exit_code=1)
    im('im declare --sev SEV-3 --title "Slow search" --service search')
    [queued] = runtime.store.outbox(connector="archive")
    assert (queued.status, queued.attempts, queued.last_error) == (
        "pending", 1, f"cannot write {home}/archive/incidents.jsonl: No such file or directory")
    (home / "archive").mkdir()
    page.expect('mkdir "$IM_HOME/archive"', "")
    im("im connector sync archive")
    assert runtime.store.outbox(connector="archive")[0].status == "done"
    [archived] = lines_of(home / "archive" / "incidents.jsonl")
    search = runtime.store.get_incident("INC-2")
    assert archived["key"] == f"im-{search.correlation_id}-search"
    page.expect('cat "$IM_HOME/archive/incidents.jsonl"',
                (home / "archive" / "incidents.jsonl").read_text())
    page.finish()


def test_prompts_and_config_store_the_same_settings(tmp_path, im_jsonl, new_database):
    asked = make_runtime(tmp_path / "asked", plugins=[im_jsonl])
    asked.store  # noqa: B018 - opened on this home's database
    new_database()  # the other home's own (on PostgreSQL)
    given = make_runtime(tmp_path / "given", plugins=[im_jsonl])
    prompted = run_cli(asked, ["connector", "add", "jsonl", "audit"], input="\nincidents.jsonl\n")
    configured = run_cli(given, ["connector", "add", "jsonl", "audit", "--config",
                                 '{"path": "incidents.jsonl"}'])
    assert prompted.exit_code == configured.exit_code == 0
    # an empty answer is asked again
    assert prompted.stdout == "JSONL file: \nJSONL file: incidents.jsonl\n" + configured.stdout
    assert asked.store.get_connector("audit").settings == \
        given.store.get_connector("audit").settings == {"path": "incidents.jsonl"}


def test_a_retry_after_a_crash_writes_no_second_declare_line(runtime, home, clock, monkeypatch):
    from im.cli.output import when

    run_cli(runtime, ["connector", "add", "jsonl", "audit", "--config",
                      '{"path": "incidents.jsonl"}'])

    class PowerCut(Exception):
        pass

    def power_cut(*args, **kwargs):
        raise PowerCut

    # The line is written, then the process dies before the delivery is recorded.
    with monkeypatch.context() as patch:
        patch.setattr(runtime.store, "finish_outbox", power_cut)
        with pytest.raises(PowerCut):
            run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Checkout errors",
                              "--service", "api"])
    assert len(lines_of(home / "incidents.jsonl")) == 1
    assert runtime.store.links("INC-1") == []
    [row] = runtime.store.outbox()
    assert (row.status, row.attempts) == ("delivering", 1)

    # Nothing is delivered again while the dead process's lease runs (the sync says so)...
    waiting = run_cli(runtime, ["connector", "sync", "audit"])
    lease = runtime.store.outbox()[0].lease_until
    assert waiting.output == (
        "audit: 0 delivered, 0 queued for retry, 0 failed\n"
        "audit: 1 change(s) held by another process that is delivering them (`im serve` or"
        f" another command), not tried here: INC-1 declare (api) until {when(lease)}\n")
    # ...and once it has run out, the retry links the line that is there.
    clock.advance(seconds=OUTBOX_LEASE_SECONDS + 1)
    retried = run_cli(runtime, ["connector", "sync", "audit"])
    assert retried.output == "audit: 1 delivered, 0 queued for retry, 0 failed\n"
    [line] = lines_of(home / "incidents.jsonl")
    assert (line["line"], line["action"], line["service"]) == (1, "declare", "api")
    [link] = runtime.store.links("INC-1")
    assert (link.remote_id, link.remote_status) == ("1", "open")
    [row] = runtime.store.outbox()
    assert (row.status, row.attempts) == ("done", 2)
    said = [e.text for e in runtime.store.timeline("INC-1") if e.kind == "sync"]
    assert said == ["Line 1 of incidents.jsonl: declare (api), written by an earlier attempt"]
    assert f"`{said[0]}`" in WRITING.read_text()
    # later changes refer to it
    run_cli(runtime, ["ack", "--incident", "INC-1"])
    assert lines_of(home / "incidents.jsonl")[1]["remote"] == 1


def test_tail_refuses_a_connector_of_another_type(tmp_path, im_jsonl):
    runtime = make_runtime(tmp_path, plugins=[im_jsonl, FakePlugin()])
    run_cli(runtime, ["connector", "add", "fake", "tickets", "--config", '{"api_key": "k"}'])
    result = run_cli(runtime, ["jsonl", "tail", "tickets"])
    assert (result.exit_code, result.stderr) == (
        1, "Error: tickets is a fake connector, not jsonl\n")


def test_writing_plugins_shows_the_example_module_verbatim():
    blocks = re.findall(r"^```python\n(.*?)^```$", WRITING.read_text(), re.S | re.M)
    assert EXAMPLE.read_text() in blocks


@pytest.mark.slow  # a pytest session of its own, with im serve and the PagerDuty sandbox
def test_the_examples_of_testing_plugins_pass(tmp_path):
    """Each ```python block of testing-plugins.md is a file, named on its first line; together
    they are a plugin's test suite, run here against the example module."""
    blocks = re.findall(r"^```python\n(.*?)^```$", TESTING.read_text(), re.S | re.M)
    assert blocks
    tests = 0
    for block in blocks:
        name = re.match(r"# (\S+\.py)\n", block)
        assert name, f"a python block of testing-plugins.md names no file:\n{block[:200]}"
        path = tmp_path / name.group(1)
        assert not path.exists(), f"{name.group(1)} twice"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block)
        tests += len(re.findall(r"^def test_", block, re.M))
        # a subclass of the conformance kit's ConnectorContract has a test per rule
        tests += len(RULES) * len(re.findall(r"^class \w+\(ConnectorContract\):", block, re.M))
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE.parent)}
    env.pop("IM_LOAD_PLUGINS", None)
    # on SQLite, as the page's reader runs them: their tests would share one PostgreSQL
    # database, not a home each
    env.pop("IM_DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # the rules a connector cannot run are skipped, each saying why
    counts = dict((word, int(n)) for n, word in re.findall(r"\b(\d+) (passed|skipped)\b",
                                                           result.stdout))
    assert counts.get("passed", 0) + counts.get("skipped", 0) == tests, result.stdout[-2000:]
    assert counts.get("passed", 0) >= tests - len(RULES), result.stdout[-2000:]


def test_testing_plugins_lists_the_rules_of_the_conformance_kit():
    """The list of rules in docs/testing-plugins.md is made from the rules' docstrings."""
    assert rules_markdown() in TESTING.read_text(), (
        "docs/testing-plugins.md's list of rules differs from the kit's: paste in"
        " im.testing.conformance.rules_markdown()")


def test_the_example_plugin_installed_is_listed_as_the_page_shows(tmp_path):
    """`IM_LOAD_PLUGINS=jsonl im plugins`, with the example installed as a distribution
    (its module and a dist-info with the entry point, as pip leaves them)."""
    import os
    import shutil
    import subprocess

    
    site = tmp_path / "site"
    info = site / "im_jsonl-0.1.0.dist-info"
    info.mkdir(parents=True)
    shutil.copy(EXAMPLE, site / "im_jsonl.py")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: im-jsonl\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[im.plugins]\njsonl = im_jsonl\n")
    [expected] = [output for command, output in transcripts(WRITING.read_text())
                  if command in NOT_RUN_HERE]
    env = {**os.environ, "IM_HOME": str(tmp_path / "home"), "PYTHONPATH": str(site),
           "IM_LOAD_PLUGINS": "jsonl"}
    result = subprocess.run([IM, "plugins"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == expected


def test_the_receiving_webhooks_example_works_against_a_real_server(tmp_path):
    """The two ```python blocks of writing-plugins.md's "Receiving webhooks": the connector,
    registered as a plugin, and the signed delivery, sent to a real `im serve` (its date made
    the clock's, so that the delivery stays inside the replay window)."""
    from datetime import UTC, datetime

    import httpx

    import im
    from im import hookimpl
    from im.inbound import process_inbox
    from im.testing import serve

    chapter = WRITING.read_text().split("## Receiving webhooks", 1)[1].split("\n## ", 1)[0]
    connector_code, delivery_code = re.findall(r"^```python\n(.*?)^```$", chapter, re.S | re.M)
    module: dict = {"__name__": "acme_example"}
    exec(compile(connector_code, "acme_example", "exec"), module)  # noqa: S102

    class Acme(module["AcmeConnector"]):
        def push(self, request):  # a create makes alert A-17 (the example has no push)
            return im.PushResult(link=im.RemoteRef(remote_id="A-17",
                                                   remote_status=im.RemoteStatus.OPEN))

    class Plugin:
        @hookimpl
        def register_connectors(self, register):
            register(Acme)

    runtime = make_runtime(tmp_path / "home", plugins=[Plugin()])
    added = run_cli(runtime, ["connector", "add", "acme", "acme-prod", "--config", json.dumps(
        {"webhook_secret": "s3cret", "sync_direction": "bidirectional"})])
    assert added.exit_code == 0, added.output
    run_cli(runtime, ["declare", "--sev", "SEV-2", "--title", "Queue stuck", "--service", "jobs"])
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with serve(runtime, background=False) as url:
        answers = []

        class Http:
            @staticmethod
            def post(address, **kwargs):
                answer = httpx.post(address.replace("http://127.0.0.1:8080", url), **kwargs)
                answers.append((answer.status_code, answer.json()))
                return answer

        exec(compile(delivery_code.replace("2026-12-06T03:00:00+00:00", now), "delivery",  # noqa: S102
                     "exec"), {**module, "httpx": Http})
        forged = httpx.post(f"{url}/connectors/acme-prod/webhook", content=b'{"id": "x"}',
                            headers={"X-Acme-Signature": "sha256=00"})
    assert answers == [(202, {"status": "accepted"})]
    assert forged.status_code == 401
    assert process_inbox(runtime).outcomes == {"applied": 1}
    incident = runtime.store.get_incident("INC-1")
    assert incident.status.value == "mitigated"
    [ack] = [e for e in runtime.store.timeline("INC-1") if e.kind == "acknowledged"]
    assert (ack.actor, ack.system) == ("jane@company.com", "acme-prod")
    runtime.store.close()
