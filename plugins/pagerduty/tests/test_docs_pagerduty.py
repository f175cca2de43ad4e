"""The PagerDuty connector page, checked.

Every `$ im ...` line of the ```console blocks in the sections "Incident workflows",
"Service mapping" and "On-call" of docs/connectors/pagerduty.md is run in this process against
the PagerDuty sandbox, in the page's order, and must print what the page shows (stdout, then
stderr, as the page shows them). So are those of "Priorities", "Merges" and "Limits im keeps
to", each from its own start (what responders do in PagerDuty between the commands done here
through the sandbox; the page's `curl` of the sandbox's request log read from the sandbox). The connector is the page's prod-pagerduty (service PXXXXXX,
from ops@company.com, escalation policy PXXXXXX, bidirectional), with no service mapping until
the mapping commands of the ```bash block before "Incident workflows" have run.

Only what differs on every run is set aside: the sandbox's incident ids (asserted here against
the links im stored instead), the times printed and logged (the waits the page shows asserted
from the sandbox's log instead) and the on-call hand-off times (asserted against the sandbox's
seed). As for the real `im`, log records go to the store, not to stderr.

Mirrors tests/test_docs_examples.py, which does the same for docs/writing-plugins.md.
"""

import json
import logging
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from im.cli.output import when
from im.logs import install
from im.testing import make_runtime, run_cli
from im_pagerduty.sandbox.seed import next_handoff

from .connector_kit import config, remote_incidents

REPO = Path(__file__).resolve().parents[3]
PAGE = REPO / "docs" / "connectors" / "pagerduty.md"
NAME = "prod-pagerduty"
INCIDENT_URL = re.compile(r"(?<=https://sandbox\.pagerduty\.invalid/incidents/)Q[0-9A-Z]+\b")
CLOCK_TIME = re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d\b")
# The one block of "Incident workflows" that starts from nothing (INC-1, one incident in step):
# it is checked on its own, in a fresh im home and a freshly seeded sandbox.
OUTAGE = "PagerDuty answered 503"

pytestmark = pytest.mark.usefixtures("quick_retries")  # the outage's retries do not sleep


def section(markdown, title):
    """The text of `## title`, up to the next `## ` heading."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.S | re.M)
    assert found, f"the page has no section {title!r}"
    return found.group(1)


def console_blocks(text):
    """For every ```console block: [[command, output], ...] of its `$ ` lines."""
    blocks = []
    for block in re.findall(r"^```console\n(.*?)^```", text, re.S | re.M):
        found = []
        for line in block.splitlines(keepends=True):
            if line.startswith("$ "):
                found.append([line[2:].rstrip("\n"), ""])
            else:
                assert found, f"output before any command in:\n{block}"
                found[-1][1] += line
        blocks.append(found)
    return blocks


def page_parts():
    """(mapping commands, the transcripts walked in order, the outage transcript)."""
    markdown = PAGE.read_text()
    workflows = section(markdown, "Incident workflows")
    # the ```bash block that maps the services, before the section's first example
    bash = re.findall(r"^```bash\n(.*?)^```", workflows, re.S | re.M)
    assert len(bash) == 1, "the mapping commands' ```bash block is not where it was"
    assert workflows.index("```bash") < workflows.index("```console")
    mappings = [line for line in bash[0].splitlines() if line.strip()]
    walked, outage = [], []
    for block in console_blocks(workflows):
        (outage if any(OUTAGE in output for _, output in block) else walked).extend(block)
    for title in ("Service mapping", "On-call"):
        for block in console_blocks(section(markdown, title)):
            walked.extend(block)
    assert outage, "the outage example is gone from the page"
    return mappings, walked, outage


# as printed (to the second, or the minute) and as the sandbox logs requests
STAMP = re.compile(r"\b\d{4}-\d\d-\d\d(?: \d\d:\d\d(?::\d\d)?|T\d\d:\d\d:\d\d(?:\.\d+)?Z)")


# an incident's path in the sandbox's request log
INCIDENT_PATH = re.compile(r"(?<= /incidents/)Q[0-9A-Z]+\b")


def normalized(text):
    text = INCIDENT_PATH.sub("<incident id>", INCIDENT_URL.sub("<incident id>", text))
    return STAMP.sub("<time>", text)


class Transcript:
    """The page's transcripts, checked one by one in its order."""

    def __init__(self, steps):
        self.steps = steps
        self.done = 0

    def expect(self, command, printed):
        assert self.done < len(self.steps), f"the page has no more transcripts; ran {command}"
        doc_command, doc_output = self.steps[self.done]
        assert command == doc_command, "the page's walk-through runs in another order"
        assert normalized(printed) == normalized(doc_output), f"$ {command}"
        self.done += 1

    def finish(self):
        assert [command for command, _ in self.steps[self.done:]] == [], "not checked"


def add_connector(home, pd):
    """An im home with the page's prod-pagerduty connector and no service mapping yet."""
    runtime = make_runtime(home, load_entrypoints=True, user="alice")
    settings = config(pd, service_mappings={})
    settings.update(sync_interval="5m", enable_webhook=True)  # the page's Step 1
    added = run_cli(runtime, ["connector", "add", "pagerduty", NAME, "--config",
                              json.dumps(settings)])
    assert added.exit_code == 0, added.output
    return runtime


@pytest.fixture
def runtime(tmp_path, pd):
    rt = add_connector(tmp_path / "home", pd)
    handler = install(rt.store)  # as `im` does: warnings are logged, not printed
    yield rt
    logging.getLogger("im").removeHandler(handler)
    handler.close()  # its flush thread writes no more (it would open the store again)
    rt.store.close()


def runner(runtime, page):
    def im(command, *, exit_code=0):
        assert command.startswith("im "), command
        result = run_cli(runtime, shlex.split(command)[1:])
        assert result.exit_code == exit_code, result.output
        # The page shows what a terminal shows: here every command prints its stdout lines
        # before its stderr lines, so the two read in the page's order.
        page.expect(command, result.stdout + result.stderr)
        return result
    return im


def map_services(runtime, commands):
    for command in commands:
        result = run_cli(runtime, shlex.split(command)[1:])
        assert result.exit_code == 0, f"{command}: {result.output}"


def urls(printed):
    return INCIDENT_URL.findall(printed)


def test_incident_workflows_service_mapping_and_oncall_print_what_the_page_shows(runtime, api):
    mappings, walked, _ = page_parts()
    page = Transcript(walked)
    im = runner(runtime, page)

    map_services(runtime, mappings)
    assert runtime.connector(NAME).settings.custom.service_mappings == {
        "api": "PAPI001", "db": "PDAT001", "database": "PDAT001", "payments": "PPAY001",
        "web": "PWEB001", "default": "PGEN001"}

    # declare, acknowledge, resolve: PagerDuty follows
    declared = im('im declare --sev SEV-2 --title "Database performance issue" --service db')
    [link] = runtime.store.links("INC-1")
    assert urls(declared.stdout) == [link.remote_id]
    remote = lambda: api.get(f"/incidents/{link.remote_id}").json()["incident"]
    notes = lambda: [n["content"] for n in
                     api.get(f"/incidents/{link.remote_id}/notes").json()["notes"]]
    assert (remote()["incident_number"], remote()["service"]["id"]) == (1, "PDAT001")
    im('im ack --incident INC-1 --note "Investigating database locks"')
    assert remote()["status"] == "acknowledged"
    assert notes() == ["Investigating database locks"]
    im('im resolve --incident INC-1 --note "Database locks cleared after index optimization"')
    assert remote()["status"] == "resolved"
    assert notes()[-1] == "Database locks cleared after index optimization"

    # one PagerDuty incident per service
    declared = im('im declare --sev SEV-1 --title "Database cluster failure"'
                  ' --service database,api,payments')
    links = {link.service: link for link in runtime.store.links("INC-2")}
    assert urls(declared.stdout) == [links[s].remote_id for s in ("database", "api", "payments")]
    made = {i["id"]: i for i in remote_incidents(api)}
    assert [(made[links[s].remote_id]["incident_number"],
             made[links[s].remote_id]["service"]["id"])
            for s in ("database", "api", "payments")] == [
        (2, "PDAT001"), (3, "PAPI001"), (4, "PPAY001")]

    # the outage block (between these two) is checked by the next test, from scratch

    # service mapping
    im("im connector map-service prod-pagerduty --im-service api --pd-service PAPI001")
    im("im connector list-mappings prod-pagerduty")
    # a service typed in capitals, with no mapping of its own: the `default` mapping's
    declared = im('im declare --sev SEV-3 --title "Slow search" --service Search')
    [link] = runtime.store.links("INC-3")
    assert (link.service, urls(declared.stdout)) == ("search", [link.remote_id])
    assert api.get(f"/incidents/{link.remote_id}").json()["incident"]["service"]["id"] == (
        "PGEN001")

    # on call
    im("im connector map-escalation prod-pagerduty --service api"
       " --escalation-policy PAPI_ESCALATION")
    assert runtime.connector(NAME).settings.custom.escalation_mappings == {
        "api": "PAPI_ESCALATION"}
    im("im connector list-escalations prod-pagerduty")
    before = datetime.now(UTC)
    oncall = im("im oncall --service api")
    after = datetime.now(UTC)
    # The sandbox's seed: John Doe is on call until 09:00 UTC tomorrow, then Jane Smith.
    handoffs = {when(next_handoff(moment))[:16] for moment in (before, after)}
    times = CLOCK_TIME.findall(oncall.stdout)
    assert len(times) == 2 and times[0] == times[1] and times[0] in handoffs, oncall.stdout
    page.finish()


def test_the_outage_example_prints_what_the_page_shows(runtime, pd, api):
    """"When PagerDuty cannot be reached": the page shows it from scratch (INC-1, and one
    incident in step after the sync), so it runs in an im home and a sandbox of its own."""
    mappings, _, outage = page_parts()
    page = Transcript(outage)
    im = runner(runtime, page)
    map_services(runtime, mappings)

    pd.set_faults(burst_5xx=2)  # every attempt of the client (quick_retries: 2)
    im('im declare --sev SEV-2 --title "Database performance issue" --service db')
    assert runtime.store.get_incident("INC-1").status.value == "open"
    assert remote_incidents(api) == []
    [queued] = runtime.store.outbox(connector=NAME)
    assert queued.status == "pending"
    pd.clear_faults()
    im("im connector sync prod-pagerduty")
    [made] = remote_incidents(api)
    [link] = runtime.store.links("INC-1")
    assert (link.remote_id, made["service"]["id"]) == (made["id"], "PDAT001")
    page.finish()


def transcripts(title):
    """The `$ ` lines of a section's ```console blocks, in order, with what they print."""
    return [step for block in console_blocks(section(PAGE.read_text(), title))
            for step in block]


def test_priorities_print_what_the_page_shows(runtime, pd, api):
    """"Priorities": an account whose admins renamed the priorities, then one without them.
    Not shown on the page: the webhook set up as in Step 2 (im serve answering), and INC-1,
    declared SEV-3 before (PagerDuty incident #1)."""
    from im.testing import serve

    page = Transcript(transcripts("Priorities"))
    im = runner(runtime, page)
    map_services(runtime, page_parts()[0])
    with serve(runtime) as url:
        enabled = run_cli(runtime, ["connector", "webhook", NAME, "--enable", "--url", url])
        assert enabled.exit_code == 0, enabled.output
        priorities_walk(runtime, pd, api, im)
    page.finish()


def priorities_walk(runtime, pd, api, im):
    run_cli(runtime, ["declare", "--sev", "SEV-3", "--title", "Slow search", "--service", "api"])
    [link] = runtime.store.links("INC-1")
    pd.set_priorities("Critical", "High", "Medium", "Low", "Info")
    im("im connector test prod-pagerduty", exit_code=1)
    im("im connector config prod-pagerduty --priority-mapping '{\"SEV-1\": \"Critical\","
       " \"SEV-2\": \"High\", \"SEV-3\": \"Medium\", \"SEV-4\": [\"Low\", \"Info\"]}'")
    im("im connector test prod-pagerduty")
    im("im severity --incident INC-1 --sev SEV-1")
    shown = api.get(f"/incidents/{link.remote_id}").json()["incident"]
    assert (shown["urgency"], shown["priority"]["summary"]) == ("high", "Critical")
    im("im connector config prod-pagerduty --priority-mapping '{\"SEV-1\": \"Critical\","
       " \"SEV-2\": \"critical\"}'", exit_code=1)
    pd.set_priorities()  # an account without priorities enabled
    im("im connector test prod-pagerduty")


def test_merges_print_what_the_page_shows(tmp_path, pd, api, new_database):
    """"Merges": each block from scratch (INC-1 both times), in an im home and a sandbox of
    its own. Not shown on the page: what responders do in PagerDuty between the commands (Jane
    makes #2 and merges #1 into it, John acknowledges #2; Jane merges the api incident into
    the payments one), and the second block's declare and sync."""
    from .test_merges import made_in_pagerduty, merge, set_status

    first, second = console_blocks(section(PAGE.read_text(), "What comes back from PagerDuty")
                                   .split("### Merges", 1)[1])
    page = Transcript(first + second)
    runtime = add_connector(tmp_path / "first", pd)
    im = runner(runtime, page)
    map_services(runtime, page_parts()[0])
    im('im declare --sev SEV-2 --title "Checkout errors" --service api')
    [link] = runtime.store.links("INC-1")
    survivor = made_in_pagerduty(pd, title="Checkout errors", service="PAPI001")
    merge(pd, survivor["id"], link.remote_id)
    im("im connector sync prod-pagerduty")
    assert [link.remote_id for link in runtime.store.links("INC-1")] == [survivor["id"]]
    im("im show INC-1")
    set_status(pd, survivor["id"], "acknowledged")
    im("im connector sync prod-pagerduty")
    assert runtime.store.get_incident("INC-1").status.value == "mitigated"
    im("im timeline INC-1")
    runtime.store.close()

    pd.reset()
    new_database()  # another installation: its own database, as its own home on SQLite
    runtime = add_connector(tmp_path / "second", pd)
    im = runner(runtime, page)
    map_services(runtime, page_parts()[0])
    run_cli(runtime, ["declare", "--sev", "SEV-1", "--title", "Checkout errors", "--service",
                      "api,payments"])
    links = {link.service: link for link in runtime.store.links("INC-1")}
    merge(pd, links["payments"].remote_id, links["api"].remote_id)
    run_cli(runtime, ["connector", "sync", NAME])
    im("im show INC-1")
    assert [e.text for e in runtime.store.timeline("INC-1")][-1] == (
        "PagerDuty #1 merged into #2 (linked for payments)")
    runtime.store.close()
    page.finish()


def sandbox_requests(pd, command):
    """What the page's `curl .../_sandbox/requests?... | jq ...` prints: one line a request,
    `at method path status`."""
    from urllib.parse import parse_qs, urlsplit

    url = re.search(r"'(http://[^']+)'", command).group(1)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    return "".join(f"{r['at']} {r['method']} {r['path']} {r['status']}\n"
                   for r in pd.requests(query.get("method"), query.get("path")))


def test_limits_print_what_the_page_shows(runtime, pd, monkeypatch):
    """"Limits im keeps to", with the client's real waits (not quick_retries): creates paced
    by the sandbox's limit on POST /incidents (3 per 2 seconds), and a 429 waited out for its
    `ratelimit-reset`."""
    from im_pagerduty.connector import PagerDutyConnector
    from im_pagerduty.sandbox.times import parse_time

    monkeypatch.setattr(PagerDutyConnector, "client_options", {})
    steps = transcripts("Limits im keeps to")
    page = Transcript(steps)
    im = runner(runtime, page)
    map_services(runtime, page_parts()[0])

    def curl(command):
        assert command == steps[page.done][0], "the page's walk-through runs in another order"
        printed = sandbox_requests(pd, command)
        page.expect(command, printed)
        return [line.split() for line in printed.splitlines()]

    pd.configure(operation_limits={"POST /incidents": {"limit": 3, "window_seconds": 2}})
    pd.clear_requests()
    im('im declare --sev SEV-1 --title "Region down" --service api,db,web,payments')
    creates = curl(steps[page.done][0])
    started = [parse_time(at) for at, *_ in creates]
    assert len(started) == 4 and (started[3] - started[0]).total_seconds() >= 1.9, creates
    pd.set_faults(storm_429=1, storm_429_reset_seconds=3, paths=("/incidents/",))
    im("im ack --incident INC-1")
    acks = curl(steps[page.done][0])
    assert [status for *_, status in acks] == ["429", "200", "200", "200", "200"]
    # the first one again, then the others, in the order of the incident's services
    links = {link.service: link.remote_id for link in runtime.store.links("INC-1")}
    assert [path for _, _, path, _ in acks] == [f"/incidents/{links[s]}" for s in (
        "api", "api", "db", "web", "payments")]
    waited = parse_time(acks[1][0]) - parse_time(acks[0][0])
    assert waited.total_seconds() >= 3, acks
    page.finish()
