"""teams.notify through a real im runtime, against a real HTTP server on loopback standing in
for a Workflows webhook."""

import json
import logging

import pytest

from im.testing import run_cli
# run_queued: what `im serve` does with queued runs; im.testing does not export it yet
from im.workflows import run_queued
from teams_endpoint import PATH

RULE = ["workflow", "add", "teams-notice", "--on", "declared", "--sev", "SEV-1", "--sev",
        "SEV-2"]


def im(runtime, *args):
    return run_cli(runtime, list(args))


def add_rule(runtime, **settings):
    settings = {"webhook_url": "env:TEAMS_URL", **settings}
    result = im(runtime, *RULE, "--action", f"teams.notify={json.dumps(settings)}")
    assert result.exit_code == 0, result.stdout + result.stderr
    return result


def declare(runtime, *extra):
    result = im(runtime, "declare", "--sev", "SEV-1", "--title", "Payment API Down",
                "--service", "payments,api", *extra)
    assert result.exit_code == 0, result.stderr
    return result


def workflow_lines(runtime, incident="INC-1"):
    return [e.text for e in runtime.store.timeline(incident) if e.kind == "workflow"]


def check_adaptive_card(card):
    """What Teams needs of a card: the type, a version it renders, a body of elements."""
    assert card["type"] == "AdaptiveCard"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    major, minor = (int(part) for part in card["version"].split("."))
    assert (major, minor) >= (1, 4)
    assert isinstance(card["body"], list) and card["body"]
    for element in card["body"]:
        assert element["type"] in {"TextBlock", "FactSet", "ColumnSet", "Container"}
        if element["type"] == "TextBlock":
            assert isinstance(element["text"], str) and element["text"]
        if element["type"] == "FactSet":
            assert all(set(f) == {"title", "value"} and isinstance(f["value"], str)
                       for f in element["facts"])
    for action in card.get("actions", []):
        assert action["type"] == "Action.OpenUrl"
        assert action["title"] and action["url"].startswith(("https://", "http://"))


def test_a_declared_sev1_posts_its_card_and_says_so(runtime, teams):
    add_rule(runtime, channel="#incidents", title_prefix="[PROD] ",
             view_url="https://im.example.com/incidents/{id}")
    result = declare(runtime, "--description", "Card payments fail with 502 since 08:50")
    assert result.stdout.splitlines() == [
        "Declared INC-1: SEV-1 Payment API Down (payments, api)",
        "  workflow teams-notice: Teams notified: #incidents",
    ]
    [post] = teams.received
    assert post.path == PATH
    assert post.headers["Content-Type"] == "application/json"
    sent = post.json()
    assert sent["type"] == "message"
    [attachment] = sent["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    check_adaptive_card(card)
    title, happened, facts, description = card["body"]
    assert title["text"] == "[PROD] SEV-1 INC-1: Payment API Down"
    assert title["color"] == "Attention"
    assert happened["text"].startswith("Incident declared: SEV-1 Payment API Down")
    assert {f["title"]: f["value"] for f in facts["facts"]} == {
        "Severity": "SEV-1", "Status": "open", "Services": "payments, api",
        "Assignee": "nobody yet", "Declared": "2025-08-23 14:30 UTC by alice"}
    assert description["text"] == "Card payments fail with 502 since 08:50"
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "View INC-1",
                                "url": "https://im.example.com/incidents/INC-1"}]
    assert workflow_lines(runtime) == ["Teams notified: #incidents"]
    [run] = runtime.store.read().workflow_runs.find()
    assert (run.status, run.attempts) == ("done", 1)


def test_without_a_channel_name_the_timeline_says_the_channel(runtime, teams):
    add_rule(runtime)
    declare(runtime)
    assert workflow_lines(runtime) == ["Teams channel notified"]
    card = teams.received[0].json()["attachments"][0]["content"]
    check_adaptive_card(card)
    assert "actions" not in card  # no view_url, no linked incident


def test_the_card_links_the_paging_incidents_of_the_change(tmp_path, clock, teams):
    """A connector's push runs before the workflow's actions, so the card of a declared
    incident already has its paging incidents (as im-pagerduty links them)."""
    import im_teams
    from im.testing import FakePlugin, make_runtime

    runtime = make_runtime(tmp_path / "linked", plugins=[im_teams, FakePlugin()], clock=clock,
                           user="alice")
    try:
        added = im(runtime, "connector", "add", "fake", "prod-pager", "--config",
                   json.dumps({"api_key": "k", "enable_webhook": False}))
        assert added.exit_code == 0, added.stderr
        add_rule(runtime)
        result = declare(runtime)
        assert result.stdout.splitlines()[-1] == "  workflow teams-notice: Teams channel notified"
        card = teams.received[0].json()["attachments"][0]["content"]
        check_adaptive_card(card)
        assert card["actions"] == [
            {"type": "Action.OpenUrl", "title": "prod-pager #2 (api)",
             "url": "https://fake.example/F2"},
            {"type": "Action.OpenUrl", "title": "prod-pager #1 (payments)",
             "url": "https://fake.example/F1"}]
    finally:
        runtime.store.close()


def test_workflow_test_says_what_it_would_post_without_posting(runtime, teams):
    add_rule(runtime, channel="#incidents")
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Slow receipts", "--service", "api")
    result = im(runtime, "workflow", "test", "teams-notice", "--incident", "INC-1")
    assert result.stdout.splitlines() == [
        "Workflow teams-notice for INC-1 (when declared, from im):",
        "  Does not apply: INC-1 is SEV-3, not SEV-1 or SEV-2",
        "  Would run nothing.",
    ]
    declare(runtime)
    teams.received.clear()
    result = im(runtime, "workflow", "test", "teams-notice", "--incident", "INC-2")
    assert result.stdout.splitlines()[-1] == (
        "    1. teams.notify: post INC-2's card to Teams channel #incidents (webhook from"
        " env:TEAMS_URL)")
    assert teams.received == []


def test_a_rate_limit_is_retried_after_what_teams_asked_once(runtime, teams, clock):
    add_rule(runtime)
    teams.answer(429, '{"error": {"code": "TooManyRequests", "message": "Slow down"}}',
                 **{"Retry-After": "30"})
    result = declare(runtime)
    assert "1 workflow action(s) queued" in result.stderr
    [run] = runtime.store.read().workflow_runs.find()
    assert (run.status, run.last_error) == (
        "pending", "Teams is rate limiting (HTTP 429: TooManyRequests: Slow down)")
    clock.advance(seconds=20)
    assert run_queued(runtime).done == 0 and len(teams.received) == 1  # not before 30 s
    clock.advance(seconds=11)
    assert run_queued(runtime).done == 1
    assert len(teams.received) == 2
    assert workflow_lines(runtime) == ["Teams channel notified"]
    assert run_queued(runtime).done == 0 and len(teams.received) == 2


def test_an_outage_is_retried_later_once(runtime, teams, clock):
    add_rule(runtime)
    teams.answer(500, "Internal Server Error")
    declare(runtime)
    [run] = runtime.store.read().workflow_runs.find()
    assert (run.status, run.last_error) == (
        "pending", "Teams is unavailable (HTTP 500: Internal Server Error)")
    clock.advance(seconds=6)
    assert run_queued(runtime).done == 1
    assert run_queued(runtime).done == 0
    assert len(teams.received) == 2
    assert workflow_lines(runtime) == ["Teams channel notified"]


def test_teams_down_is_retried(runtime, teams, clock, monkeypatch):
    import socket

    add_rule(runtime)
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("TEAMS_URL", f"http://127.0.0.1:{port}{PATH}")
    declare(runtime)
    [run] = runtime.store.read().workflow_runs.find()
    assert run.status == "pending" and run.last_error.startswith(
        f"cannot reach Teams at http://127.0.0.1:{port} (POST ***): ")  # the path masked
    monkeypatch.setenv("TEAMS_URL", teams.url)
    clock.advance(seconds=6)
    assert run_queued(runtime).done == 1 and len(teams.received) == 1


def test_a_refused_card_is_set_aside_with_a_timeline_line(runtime, teams, caplog):
    add_rule(runtime)
    teams.answer(400, json.dumps({"error": {"code": "InvalidRequestContent", "message":
                 f"The input body for trigger 'manual' of type 'Request' must match its"
                 f" schema; see {teams.url}"}}))
    with caplog.at_level(logging.DEBUG):
        result = declare(runtime)
    assert result.exit_code == 0
    [run] = runtime.store.read().workflow_runs.find()
    assert run.status == "failed"
    [line] = workflow_lines(runtime)
    assert line.startswith("Workflow teams-notice: teams.notify failed: Teams refused the card"
                           " (HTTP 400: InvalidRequestContent: The input body for trigger")
    assert line.endswith(f"; see {teams.url.split('/workflows/')[0]}***)")  # the URL masked
    shown = im(runtime, "workflow", "show", "teams-notice")
    timeline = im(runtime, "timeline", "INC-1")
    for text in (result.stdout, result.stderr, line, run.last_error, shown.stdout,
                 timeline.stdout, caplog.text):
        assert "s3cr3tSIGNATUREvalue" not in text and teams.url not in text
    assert len(teams.received) == 1


def test_a_literal_webhook_url_is_taken_and_never_printed(runtime, teams, caplog):
    literal = im(runtime, *RULE, "--action", "teams.notify=" + json.dumps(
        {"webhook_url": teams.url, "channel": "#incidents"}))
    assert literal.exit_code == 0, literal.stderr
    assert teams.url not in literal.stdout + literal.stderr
    with caplog.at_level(logging.DEBUG):
        posted = declare(runtime)
        teams.answer(400, json.dumps({"error": {"code": "InvalidRequestContent",
                                                "message": f"Bad card for {teams.url}"}}))
        refused = im(runtime, "declare", "--sev", "SEV-2", "--title", "Checkout errors",
                     "--service", "checkout")
    assert posted.stdout.splitlines()[-1] == "  workflow teams-notice: Teams notified: #incidents"
    assert len(teams.received) == 2 and teams.received[0].path == PATH
    runs = {run.incident_id: run for run in runtime.store.read().workflow_runs.find()}
    assert (runs["INC-1"].status, runs["INC-2"].status) == ("done", "failed")
    host = teams.url.split("/workflows/")[0]  # the path and query, the credential, masked
    assert runs["INC-2"].last_error == ("Teams refused the card (HTTP 400:"
                                        f" InvalidRequestContent: Bad card for {host}***)")
    shown = im(runtime, "workflow", "show", "teams-notice").stdout
    assert '"webhook_url": "********"' in shown
    assert "Teams refused the card" in shown  # the failed run, as shown
    tested = im(runtime, "workflow", "test", "teams-notice", "--incident", "INC-1").stdout
    assert tested.splitlines()[-1] == ("    1. teams.notify: post INC-1's card to Teams channel"
                                       " #incidents (webhook URL in the rule)")
    outputs = [posted.stdout, posted.stderr, refused.stdout, refused.stderr, shown, tested,
               im(runtime, "workflow", "show", "teams-notice", "--json").stdout,
               im(runtime, "workflow", "list", "--json").stdout,
               im(runtime, "workflow", "list").stdout,
               im(runtime, "timeline", "INC-1").stdout, im(runtime, "timeline", "INC-2").stdout,
               runs["INC-2"].last_error, caplog.text]
    for text in outputs:
        assert "s3cr3tSIGNATUREvalue" not in text and teams.url not in text


def test_an_env_reference_is_shown_as_saved_and_the_url_never(runtime, teams, caplog):
    add_rule(runtime)
    with caplog.at_level(logging.DEBUG):
        declare(runtime)
    outputs = [im(runtime, "workflow", "show", "teams-notice").stdout,
               im(runtime, "workflow", "show", "teams-notice", "--json").stdout,
               im(runtime, "workflow", "list", "--json").stdout,
               im(runtime, "timeline", "INC-1").stdout, caplog.text]
    assert '"webhook_url": "env:TEAMS_URL"' in outputs[0]
    for text in outputs:
        assert "s3cr3tSIGNATUREvalue" not in text


def test_an_unset_variable_waits_for_a_process_that_has_it(runtime, teams, clock,
                                                           monkeypatch):
    add_rule(runtime)
    monkeypatch.delenv("TEAMS_URL")
    declare(runtime)
    [run] = runtime.store.read().workflow_runs.find()
    assert (run.status, run.last_error) == (
        "pending", "setting webhook_url of teams.notify refers to env:TEAMS_URL, which is not"
        " set here")
    assert teams.received == []
    monkeypatch.setenv("TEAMS_URL", teams.url)
    clock.advance(seconds=6)
    assert run_queued(runtime).done == 1 and len(teams.received) == 1


def test_a_variable_that_holds_no_url_is_set_aside_without_its_value(runtime, teams,
                                                                      monkeypatch, caplog):
    add_rule(runtime)
    monkeypatch.setenv("TEAMS_URL", "s3cr3tSIGNATUREvalue")
    with caplog.at_level(logging.DEBUG):
        declare(runtime)
    [run] = runtime.store.read().workflow_runs.find()
    assert run.status == "failed"
    assert "webhook_url must be the Workflows URL" in run.last_error
    [line] = workflow_lines(runtime)
    for text in (run.last_error, line, caplog.text):
        assert "s3cr3tSIGNATUREvalue" not in text
    assert teams.received == []


@pytest.mark.parametrize(("settings", "error"), [
    ({"webhook_url": "env:TEAMS URL"}, "webhook_url must be env:VARIABLE"),
    ({"webhook_url": "env:"}, "webhook_url must be env:VARIABLE"),
    ({"webhook_url": "TEAMS_URL"}, "webhook_url must be the Workflows URL"),
    ({"webhook_url": "prod-12.westeurope.logic.azure.com/workflows/x"},
     "webhook_url must be the Workflows URL"),
    ({"webhook_url": "env:TEAMS_URL", "channel_name": "x"},
     "Object contains unknown field `channel_name`"),
    ({"webhook_url": "env:TEAMS_URL", "view_url": "im.example.com/{id}"},
     "view_url must be an http(s) URL"),
])
def test_wrong_settings_are_said_when_the_rule_is_saved(runtime, settings, error):
    result = im(runtime, *RULE, "--action", f"teams.notify={json.dumps(settings)}")
    assert result.exit_code != 0
    assert result.stderr.startswith(f"Error: action teams.notify: {error}"), result.stderr


def test_im_plugins_lists_the_plugin(runtime):
    result = run_cli(runtime, ["plugins", "--json"])
    assert result.exit_code == 0
    assert "register_workflow_actions" in result.stdout
