"""The PagerDuty connector page, checked.

Every `$ im ...` line of the ```console blocks in the sections "Incident workflows",
"Service mapping" and "On-call" of docs/connectors/pagerduty.md is run in this process against
the PagerDuty sandbox, in the page's order, and must print what the page shows (stdout, then
stderr, as the page shows them). The connector is the page's prod-pagerduty (service PXXXXXX,
from ops@company.com, escalation policy PXXXXXX, bidirectional), with no service mapping until
the mapping commands of the ```bash block before "Incident workflows" have run.

Only what differs on every run is set aside: the sandbox's incident ids (asserted here against
the links im stored instead) and the on-call hand-off times (asserted against the sandbox's
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


def normalized(text):
    return CLOCK_TIME.sub("<time>", INCIDENT_URL.sub("<incident id>", text))


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
