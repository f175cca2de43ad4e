"""Setting up PagerDuty's webhooks as a new user meets it: the spec's order (add with
`"enable_webhook": true`, then `connector test`), URL changes, disabling, and connectors that
do not pull. Asserted on what the user reads and on the subscriptions the sandbox holds."""

import json

import pytest

from im.testing import make_runtime, serve

from .connector_kit import im

pytestmark = pytest.mark.usefixtures("quick_retries")

NAME = "prod-pagerduty"
SPEC_TEST = ("✓ Connected to PagerDuty API\n"
             "✓ Service PXXXXXX accessible\n"
             "✓ User ops@company.com valid\n"
             "✓ Escalation policy PXXXXXX found\n"
             "✓ Priorities P1, P2, P3, P4 found\n"
             "✓ Webhook endpoint configured\n")


@pytest.fixture(autouse=True)
def _no_public_url(monkeypatch):
    monkeypatch.delenv("IM_PUBLIC_URL", raising=False)


@pytest.fixture
def runtime(tmp_path):
    rt = make_runtime(tmp_path / "home", load_entrypoints=True, user="alice")
    yield rt
    rt.store.close()


def spec_config(pd, **changes):
    """The spec's JSON configuration, pointed at the sandbox."""
    return json.dumps({"base_url": pd.url, "api_key": pd.api_key,
                       "sync_direction": "bidirectional", "sync_interval": "5m",
                       "enable_webhook": True,
                       "custom": {"service_id": "PXXXXXX", "from_email": "ops@company.com",
                                  "escalation_policy_id": "PXXXXXX"}} | changes)


def subscriptions(pd):
    """(id, url) of every webhook subscription in the sandbox."""
    with pd.client() as api:
        found = api.get("/webhook_subscriptions").json()["webhook_subscriptions"]
    return sorted((s["id"], s["delivery_method"]["url"]) for s in found)


def subscription_id(runtime, name=NAME):
    return runtime.connector(name).settings.custom.webhook_subscription_id


def test_the_specs_order_sets_up_webhooks_when_the_public_url_is_known(runtime, pd,
                                                                       monkeypatch):
    with serve(runtime) as url:
        monkeypatch.setenv("IM_PUBLIC_URL", url)
        added = im(runtime, "connector", "add", "pagerduty", NAME, "--config",
                   spec_config(pd))
        assert added.exit_code == 0, added.output
        made = subscription_id(runtime)
        assert added.stdout == (
            f"Added connector {NAME} (pagerduty, bidirectional)\n"
            f"Created PagerDuty webhook subscription {made} for 16 incident event types\n"
            f"Webhook URL will be: {url}/connectors/{NAME}/webhook\n"
            f"Check it with: im connector test {NAME}\n")
        assert subscriptions(pd) == [(made, f"{url}/connectors/{NAME}/webhook")]
        tested = im(runtime, "connector", "test", NAME)
        assert (tested.exit_code, tested.stdout) == (0, SPEC_TEST)


def test_a_url_given_earlier_to_webhook_enable_is_known_to_the_next_add(runtime, pd):
    with serve(runtime) as url:
        first = im(runtime, "connector", "add", "pagerduty", "first", "--config",
                   spec_config(pd))
        assert first.exit_code == 0, first.output
        assert im(runtime, "connector", "webhook", "first", "--enable", "--url",
                  url).exit_code == 0
        assert im(runtime, "connector", "webhook", "first", "--disable").exit_code == 0
        # one connector per PagerDuty account (test_shared_account.py)
        assert im(runtime, "connector", "remove", "first", "--yes").exit_code == 0
        added = im(runtime, "connector", "add", "pagerduty", NAME, "--config",
                   spec_config(pd))
        assert added.exit_code == 0, added.output
        made = subscription_id(runtime)
        assert added.stdout.splitlines()[1:3] == [
            f"Created PagerDuty webhook subscription {made} for 16 incident event types",
            f"Webhook URL will be: {url}/connectors/{NAME}/webhook"]
        tested = im(runtime, "connector", "test", NAME)
        assert (tested.exit_code, tested.stdout) == (0, SPEC_TEST)


def test_without_a_public_url_add_and_enable_say_what_to_run(runtime, pd):
    added = im(runtime, "connector", "add", "pagerduty", NAME, "--config", spec_config(pd))
    assert (added.exit_code, added.stdout) == (0, (
        f"Added connector {NAME} (pagerduty, bidirectional)\n"
        f"Webhooks: not set up yet (im's public URL is not known); run: im connector webhook"
        f" {NAME} --enable --url https://YOUR-DOMAIN\n"
        f"Check it with: im connector test {NAME}\n"))
    assert subscriptions(pd) == []
    enable = im(runtime, "connector", "webhook", NAME, "--enable")
    assert (enable.exit_code, enable.stdout, enable.stderr) == (1, "", (
        f"Error: im's public URL is not known; run: im connector webhook {NAME} --enable"
        " --url https://YOUR-DOMAIN (where `im serve` is reached), or set"
        " IM_PUBLIC_URL=https://YOUR-DOMAIN\n"))
    tested = im(runtime, "connector", "test", NAME)
    assert tested.exit_code == 1
    assert tested.stdout.endswith(
        "✗ Webhook endpoint not configured\n"
        f"  Fix: run: im connector webhook {NAME} --enable --url https://YOUR-DOMAIN\n")


def test_an_update_that_turns_pulling_on_sets_up_webhooks(runtime, pd, monkeypatch):
    with serve(runtime) as url:
        monkeypatch.setenv("IM_PUBLIC_URL", url)
        added = im(runtime, "connector", "add", "pagerduty", NAME, "--config",
                   spec_config(pd, sync_direction="outbound"))
        assert added.stdout == (f"Added connector {NAME} (pagerduty, outbound)\n"
                                f"Check it with: im connector test {NAME}\n")
        assert subscriptions(pd) == []
        updated = im(runtime, "connector", "update", NAME, "--sync-direction", "bidirectional")
        made = subscription_id(runtime)
        assert (updated.exit_code, updated.stdout) == (0, (
            f'Updated {NAME}: sync_direction = "bidirectional"\n'
            f"Created PagerDuty webhook subscription {made} for 16 incident event types\n"
            f"Webhook URL will be: {url}/connectors/{NAME}/webhook\n"))
        assert subscriptions(pd) == [(made, f"{url}/connectors/{NAME}/webhook")]
        # a change that does not touch webhooks or the direction asks PagerDuty nothing
        pd.clear_requests()
        im(runtime, "connector", "update", NAME, "--escalation-policy", "PXXXXXX")
        assert pd.requests(path="/webhook_subscriptions*") == []


def test_an_outage_while_adding_keeps_the_connector_and_says_what_to_run(runtime, pd,
                                                                         monkeypatch):
    monkeypatch.setenv("IM_PUBLIC_URL", "https://im.example.com")
    pd.set_faults(burst_5xx=2)  # every attempt of the client (quick_retries: 2)
    added = im(runtime, "connector", "add", "pagerduty", NAME, "--config", spec_config(pd))
    pd.set_faults()
    assert added.exit_code == 0, added.output
    lines = added.stdout.splitlines()
    assert lines[0] == f"Added connector {NAME} (pagerduty, bidirectional)"
    assert lines[1].startswith("! Webhooks not set up: ")
    assert lines[1].endswith(f"; polling covers meanwhile; run: im connector webhook {NAME}"
                             " --enable")
    assert runtime.store.get_connector(NAME) is not None
    assert subscriptions(pd) == []


def test_a_public_url_that_cannot_take_webhooks_keeps_the_connector(runtime, pd, monkeypatch):
    monkeypatch.setenv("IM_PUBLIC_URL", "http://im.example.com")
    added = im(runtime, "connector", "add", "pagerduty", NAME, "--config", spec_config(pd))
    assert (added.exit_code, added.stdout) == (0, (
        f"Added connector {NAME} (pagerduty, bidirectional)\n"
        "! Webhooks not set up: webhook URLs must use https:// (http:// only on loopback)\n"
        f"Check it with: im connector test {NAME}\n"))
    assert runtime.store.get_connector(NAME) is not None and subscriptions(pd) == []


def test_an_outbound_connector_is_not_asked_for_webhooks_it_would_ignore(runtime, pd,
                                                                         monkeypatch):
    monkeypatch.setenv("IM_PUBLIC_URL", "http://127.0.0.1:9")  # nothing answers there
    added = im(runtime, "connector", "add", "pagerduty", NAME, "--config",
               spec_config(pd, sync_direction="outbound"))
    assert added.stdout == (f"Added connector {NAME} (pagerduty, outbound)\n"
                            f"Check it with: im connector test {NAME}\n")
    tested = im(runtime, "connector", "test", NAME)
    assert (tested.exit_code, tested.stdout) == (0, (
        "✓ Connected to PagerDuty API\n"
        "✓ Service PXXXXXX accessible\n"
        "✓ User ops@company.com valid\n"
        "✓ Escalation policy PXXXXXX found\n"
        "✓ Priorities P1, P2, P3, P4 found\n"))
    health = im(runtime, "connector", "health", NAME)
    assert health.exit_code == 0, health.stdout
    assert "Webhook" not in health.stdout
    assert pd.requests(path="/webhook_subscriptions*") == []


def test_enabling_webhooks_on_an_outbound_connector_warns_they_are_ignored(runtime, pd):
    im(runtime, "connector", "add", "pagerduty", NAME, "--config",
       spec_config(pd, sync_direction="outbound"))
    with serve(runtime) as url:
        enabled = im(runtime, "connector", "webhook", NAME, "--enable", "--url", url)
    made = subscription_id(runtime)
    assert (enabled.exit_code, enabled.stdout) == (0, (
        f"Created PagerDuty webhook subscription {made} for 16 incident event types\n"
        f"Webhook URL will be: {url}/connectors/{NAME}/webhook\n"
        f"! {NAME} is outbound: it ignores the events webhooks bring until its direction"
        f" changes; run: im connector update {NAME} --sync-direction bidirectional\n"))


def make_subscription(pd, url, description):
    with pd.client() as api:
        return api.post("/webhook_subscriptions", json={"webhook_subscription": {
            "type": "webhook_subscription",
            "delivery_method": {"type": "http_delivery_method", "url": url},
            "description": description, "events": ["incident.triggered"],
            "filter": {"type": "account_reference"}}}).json()["webhook_subscription"]["id"]


def test_a_new_url_leaves_one_subscription_and_deletes_the_old_one(runtime, pd):
    im(runtime, "connector", "add", "pagerduty", NAME, "--config", spec_config(pd))
    with serve(runtime) as old_url:
        first = im(runtime, "connector", "webhook", NAME, "--enable", "--url", old_url)
        assert first.exit_code == 0, first.output
    old = subscription_id(runtime)
    with serve(runtime) as new_url:
        moved = im(runtime, "connector", "webhook", NAME, "--enable", "--url", new_url)
        new = subscription_id(runtime)
        assert (moved.exit_code, moved.stdout) == (0, (
            f"Created PagerDuty webhook subscription {new} for 16 incident event types\n"
            f"Deleted PagerDuty webhook subscription {old} (it delivered to"
            f" {old_url}/connectors/{NAME}/webhook)\n"
            f"Webhook URL will be: {new_url}/connectors/{NAME}/webhook\n"))
        assert subscriptions(pd) == [(new, f"{new_url}/connectors/{NAME}/webhook")]
        tested = im(runtime, "connector", "test", NAME)
        assert (tested.exit_code, tested.stdout) == (0, SPEC_TEST)
        # the same URL again: the same subscription, nothing made or deleted
        again = im(runtime, "connector", "webhook", NAME, "--enable", "--url", new_url)
        assert again.stdout.splitlines()[0] == f"PagerDuty webhook subscription {new} is active"
        assert subscriptions(pd) == [(new, f"{new_url}/connectors/{NAME}/webhook")]


def test_enable_adds_the_event_types_an_earlier_im_did_not_ask_for(runtime, pd):
    im(runtime, "connector", "add", "pagerduty", NAME, "--config", spec_config(pd))
    with serve(runtime) as url:
        im(runtime, "connector", "webhook", NAME, "--enable", "--url", url)
        made = subscription_id(runtime)
        older = ["incident.triggered", "incident.acknowledged", "incident.resolved"]
        with pd.client() as api:
            api.put(f"/webhook_subscriptions/{made}", json={
                "webhook_subscription": {"events": older}}).raise_for_status()
        again = im(runtime, "connector", "webhook", NAME, "--enable", "--url", url)
        assert again.stdout.splitlines()[:2] == [
            f"PagerDuty webhook subscription {made} is active",
            f"Added 13 incident event types to PagerDuty webhook subscription {made}"]
        with pd.client() as api:
            events = api.get(f"/webhook_subscriptions/{made}").json()[
                "webhook_subscription"]["events"]
        assert len(events) == 16 and events[:3] == older
        assert "incident.status_update_published" in events
        # all there now: nothing to add
        third = im(runtime, "connector", "webhook", NAME, "--enable", "--url", url)
        assert "Added" not in third.stdout


def test_disable_removes_every_subscription_the_connector_made(runtime, pd):
    im(runtime, "connector", "add", "pagerduty", NAME, "--config", spec_config(pd))
    theirs = make_subscription(pd, "https://audit.example.com/hook", "the team's audit hook")
    with serve(runtime) as url:
        assert im(runtime, "connector", "webhook", NAME, "--enable", "--url",
                  url).exit_code == 0
    made = subscription_id(runtime)
    # one this im made whose id it does not know (its creation's answer was lost)
    stale = make_subscription(pd, f"https://old.example.com/connectors/{NAME}/webhook",
                              f"im connector {NAME} ({runtime.installation_id})")
    # one described as an earlier im did, to another URL: maybe another installation's
    unsure = make_subscription(pd, f"https://staging.example.com/connectors/{NAME}/webhook",
                               f"im connector {NAME}")
    assert [s for s, _ in subscriptions(pd)] == sorted([made, stale, theirs, unsure])
    disabled = im(runtime, "connector", "webhook", NAME, "--disable")
    assert (disabled.exit_code, disabled.stdout) == (0, (
        f"Deleted PagerDuty webhook subscription {made}\n"
        f"Deleted PagerDuty webhook subscription {stale}\n"
        f"! PagerDuty webhook subscription {unsure} (to https://staging.example.com/connectors/"
        f"{NAME}/webhook) says it is 'im connector {NAME}' but not which im made it; left as"
        " it is: delete it in PagerDuty if no other im installation uses it\n"
        "Webhook disabled\n"))
    assert sorted(subscriptions(pd)) == sorted([
        (theirs, "https://audit.example.com/hook"),
        (unsure, f"https://staging.example.com/connectors/{NAME}/webhook")])


def test_disable_needs_no_public_url_and_finds_subscriptions_by_their_description(runtime, pd):
    im(runtime, "connector", "add", "pagerduty", NAME, "--config", spec_config(pd))
    stale = make_subscription(pd, f"https://old.example.com/connectors/{NAME}/webhook",
                              f"im connector {NAME} ({runtime.installation_id})")
    disabled = im(runtime, "connector", "webhook", NAME, "--disable")
    assert (disabled.exit_code, disabled.stdout) == (0, (
        f"Deleted PagerDuty webhook subscription {stale}\n"
        "Webhook disabled\n"))
    assert subscriptions(pd) == []
    assert runtime.store.get_connector(NAME).settings["enable_webhook"] is False


def test_an_update_that_turns_webhooks_off_removes_the_subscription(runtime, pd, monkeypatch):
    with serve(runtime) as url:
        monkeypatch.setenv("IM_PUBLIC_URL", url)
        im(runtime, "connector", "add", "pagerduty", NAME, "--config", spec_config(pd))
    made = subscription_id(runtime)
    assert [s for s, _ in subscriptions(pd)] == [made]
    pd.set_faults(burst_5xx=2)  # PagerDuty down: the change is kept, and the way to finish
    failed = im(runtime, "connector", "update", NAME, "--enable-webhook", "false")
    pd.set_faults()
    lines = failed.stdout.splitlines()
    assert (failed.exit_code, lines[0]) == (0, f"Updated {NAME}: enable_webhook = false")
    assert lines[1].startswith("! Webhook subscriptions not removed: ")
    assert lines[1].endswith(f"; run: im connector webhook {NAME} --disable")
    assert runtime.store.get_connector(NAME).settings["enable_webhook"] is False
    im(runtime, "connector", "update", NAME, "--enable-webhook", "true")
    made = subscription_id(runtime)
    off = im(runtime, "connector", "update", NAME, "--enable-webhook", "false")
    assert (off.exit_code, off.stdout) == (0, (
        f"Updated {NAME}: enable_webhook = false\n"
        f"Deleted PagerDuty webhook subscription {made}\n"
        "Webhook disabled\n"))
    assert subscriptions(pd) == []


def test_the_pagerduty_page_shows_these_lines():
    """docs/connectors/pagerduty.md shows the lines the tests above assert, as they are."""
    from pathlib import Path

    from .test_shared_account import BOTH_PULL

    page = (Path(__file__).resolve().parents[3] / "docs" / "connectors" / "pagerduty.md"
            ).read_text()
    for line in (
            f"Webhooks: not set up yet (im's public URL is not known); run: im connector webhook"
            f" {NAME} --enable --url https://YOUR-DOMAIN\n",
            f"Error: im's public URL is not known; run: im connector webhook {NAME} --enable"
            " --url https://YOUR-DOMAIN (where `im serve` is reached), or set"
            " IM_PUBLIC_URL=https://YOUR-DOMAIN\n",
            f"! {NAME} is outbound: it ignores the events webhooks bring until its direction"
            f" changes; run: im connector update {NAME} --sync-direction bidirectional\n",
            BOTH_PULL, SPEC_TEST, "Webhook disabled\n"):
        assert line in page, line


def test_two_installations_with_a_connector_of_one_name_keep_their_own_subscriptions(
        runtime, pd, tmp_path, new_database):
    """Staging and production im on one PagerDuty account, each with a `prod-pagerduty`
    connector (outbound here: one account, one pulling connector): neither deletes the
    other's subscription, whatever URL each gives."""
    runtime.store  # noqa: B018 - opened on production's database
    new_database()  # staging's own (on PostgreSQL)
    other = make_runtime(tmp_path / "staging", load_entrypoints=True, user="alice")
    for home in (runtime, other):
        assert im(home, "connector", "add", "pagerduty", NAME, "--config",
                  spec_config(pd, sync_direction="outbound")).exit_code == 0
    with serve(runtime) as production, serve(other) as staging:
        assert im(runtime, "connector", "webhook", NAME, "--enable", "--url",
                  production).exit_code == 0
        assert im(other, "connector", "webhook", NAME, "--enable", "--url",
                  staging).exit_code == 0
        mine, theirs = subscription_id(runtime), subscription_id(other)
        assert sorted(subscriptions(pd)) == sorted([
            (mine, f"{production}/connectors/{NAME}/webhook"),
            (theirs, f"{staging}/connectors/{NAME}/webhook")])
        assert im(other, "connector", "webhook", NAME, "--disable").stdout == (
            f"Deleted PagerDuty webhook subscription {theirs}\nWebhook disabled\n")
        assert subscriptions(pd) == [(mine, f"{production}/connectors/{NAME}/webhook")]


def test_removing_a_connector_removes_its_subscription(runtime, pd, monkeypatch):
    """A removed connector's subscription would go on delivering to a route answering 404."""
    with serve(runtime) as url:
        monkeypatch.setenv("IM_PUBLIC_URL", url)
        im(runtime, "connector", "add", "pagerduty", NAME, "--config", spec_config(pd))
        made = subscription_id(runtime)
        removed = im(runtime, "connector", "remove", NAME, "--yes")
    assert (removed.exit_code, removed.stdout) == (0, (
        f"Deleted PagerDuty webhook subscription {made}\nWebhook disabled\n"
        f"Removed connector {NAME}\n"))
    assert subscriptions(pd) == []
    # PagerDuty down: the connector goes all the same, and the user is told what is left
    im(runtime, "connector", "add", "pagerduty", "second", "--config", spec_config(pd))
    pd.set_faults(error_rate=1.0, error_status=503)
    try:
        down = im(runtime, "connector", "remove", "second", "--yes")
    finally:
        pd.clear_faults()
    assert (down.exit_code, down.stdout) == (0, "Removed connector second\n")
    assert down.stderr.startswith("! Its webhook subscriptions were not removed: ")
    assert down.stderr.endswith("; delete them in pagerduty\n")
    assert runtime.store.get_connector("second") is None


def test_the_fix_for_missing_webhooks_needs_no_url_when_im_knows_its_own(runtime, pd,
                                                                       monkeypatch):
    im(runtime, "connector", "add", "pagerduty", NAME, "--config", spec_config(pd))
    monkeypatch.setenv("IM_PUBLIC_URL", "https://im.example.com")
    for command in ("test", "health"):
        shown = im(runtime, "connector", command, NAME).stdout
        assert f"  Fix: run: im connector webhook {NAME} --enable\n" in shown or (
            f"  Fix: im connector webhook {NAME} --enable\n" in shown), shown
        assert "YOUR-DOMAIN" not in shown
