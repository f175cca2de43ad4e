"""What the Slack sandbox sends to an app, as Slack sends it: signed slash commands and
interactivity payloads, checked with Slack's own SDK; and the response_urls they carry."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from slack_calls import ok


class App:
    """A tiny app endpoint: records each request and answers 200 (after `delay` seconds)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.delay = 0.0
        self.answer = b'{"response_type": "ephemeral", "text": "Got it"}'
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                app.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(app.delay)
                answer = app.answer
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/slack/events"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def app():
    receiver = App()
    yield receiver
    receiver.close()


def test_a_slash_command_is_signed_as_slack_signs_it(slack, app):
    jane = slack.user_id("jane.smith@company.com")
    delivery = slack.slash_command(app.url, "declare SEV-1 Database down", user_id=jane)
    assert (delivery["outcome"], delivery["status"]) == ("answered", 200)
    assert json.loads(delivery["answer"]) == {"response_type": "ephemeral", "text": "Got it"}
    [(headers, body)] = app.received
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    verifier = SignatureVerifier(slack.signing_secret)
    assert verifier.is_valid_request(body, headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    fields = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    incidents = slack.channel("incidents")
    assert fields["command"] == "/incident"
    assert fields["text"] == "declare SEV-1 Database down"
    assert (fields["user_id"], fields["user_name"]) == (jane, "jane.smith")
    assert fields["channel_id"] == incidents["id"] and fields["team_id"].startswith("T")
    assert fields["response_url"] == delivery["response_url"]
    assert fields["trigger_id"] == delivery["trigger_id"]


def test_a_six_minute_old_request_is_refused_by_the_sdk(slack, app):
    old = int(time.time()) - 6 * 60
    slack.slash_command(app.url, "status", timestamp=old)
    [(headers, body)] = app.received
    assert headers["x-slack-request-timestamp"] == str(old)
    verifier = SignatureVerifier(slack.signing_secret)
    # the signature is right for that timestamp, and refused all the same: a replay
    assert verifier.generate_signature(timestamp=str(old), body=body) == (
        headers["x-slack-signature"])
    assert not verifier.is_valid_request(body, headers)


def test_a_button_click_is_a_signed_block_actions_payload(slack, web, app):
    posted = ok(web, "chat.postMessage", channel="incidents", text="INC-7 declared")
    john = slack.user_id("john.doe@company.com")
    delivery = slack.click(app.url, "incident_ack", value="INC-7", user_id=john)
    assert delivery["outcome"] == "answered"
    [(headers, body)] = app.received
    assert SignatureVerifier(slack.signing_secret).is_valid_request(body, headers)
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(body.decode())
    assert list(form) == ["payload"]
    payload = json.loads(form["payload"][0])
    assert payload["type"] == "block_actions"
    assert [(a["action_id"], a["value"]) for a in payload["actions"]] == [
        ("incident_ack", "INC-7")]
    assert payload["user"]["id"] == john
    assert payload["channel"]["id"] == posted["channel"]
    assert payload["message"]["ts"] == posted["ts"]
    assert payload["response_url"] == delivery["response_url"]


def test_what_the_app_posts_to_a_response_url(slack, web, app):
    delivery = slack.slash_command(app.url, "declare")
    url = delivery["response_url"]
    said = httpx.post(url, json={"response_type": "in_channel", "text": "INC-9 declared"})
    assert said.json() == {"ok": True}
    [response] = slack.responses()
    assert response["body"]["text"] == "INC-9 declared" and response["kind"] == "slash_command"
    assert [m["text"] for m in slack.channel("incidents")["messages"]] == ["INC-9 declared"]
    httpx.post(url, json={"text": "only for you"})  # ephemeral, Slack's default
    assert slack.ephemerals()[-1]["text"] == "only for you"
    for _ in range(3):
        assert httpx.post(url, json={"text": "again"}).status_code == 200
    used = httpx.post(url, json={"text": "a sixth time"})  # five uses at most
    assert (used.status_code, used.json()["error"]) == (404, "used_url")
    unknown = httpx.post(f"{slack.url}/hooks/response/1/nope", json={"text": "x"})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "expired_url")


def test_a_response_url_can_replace_the_clicked_message(slack, web, app):
    posted = ok(web, "chat.postMessage", channel="incidents", text="INC-3: [Acknowledge]")
    delivery = slack.click(app.url, "incident_ack", value="INC-3", message_ts=posted["ts"])
    httpx.post(delivery["response_url"],
               json={"replace_original": True, "text": "INC-3 acknowledged by jane.smith"})
    [message] = slack.channel("incidents")["messages"]
    assert (message["ts"], message["text"]) == (posted["ts"], "INC-3 acknowledged by jane.smith")


def test_an_app_slower_than_three_seconds_is_a_timeout(slack, app):
    slack.configure(app_timeout_seconds=0.2)
    app.delay = 0.5
    delivery = slack.slash_command(app.url, "status")
    assert delivery["outcome"] == "timeout" and delivery["status"] is None
    assert [d["outcome"] for d in slack.deliveries()] == ["timeout"]


def test_an_unreachable_app(slack):
    delivery = slack.slash_command("http://127.0.0.1:9/slack/events", "status")
    assert delivery["outcome"] == "unreachable"


def test_a_modal_submitted_is_a_signed_view_submission_with_the_values_typed(slack, web, app):
    jane = slack.user_id("jane.smith@company.com")
    trigger = slack.slash_command(app.url, "note INC-7", user_id=jane)["trigger_id"]
    modal = {"type": "modal", "callback_id": "im.note", "private_metadata": "INC-7",
             "title": {"type": "plain_text", "text": "Add a note"},
             "submit": {"type": "plain_text", "text": "Add"},
             "blocks": [{"type": "input", "block_id": "note",
                         "label": {"type": "plain_text", "text": "Note"},
                         "element": {"type": "plain_text_input", "action_id": "text"}}]}
    view = ok(web, "views.open", trigger_id=trigger, view=modal)["view"]
    app.received.clear()
    with pytest.raises(httpx.HTTPStatusError):  # a required input left empty: never sent
        slack.submit_view(app.url, view["id"], {})
    with pytest.raises(httpx.HTTPStatusError):
        slack.submit_view(app.url, view["id"], {"other": {"text": "x"}})
    assert app.received == []
    app.answer = b""  # an empty 200 closes the modal
    delivery = slack.submit_view(app.url, view["id"], {"note": {"text": "Rolled back 4812"}})
    assert (delivery["kind"], delivery["outcome"], delivery["status"]) == (
        "view_submission", "answered", 200)
    [(headers, body)] = app.received
    assert SignatureVerifier(slack.signing_secret).is_valid_request(body, headers)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "view_submission"
    assert payload["user"]["id"] == jane and payload["team"]["id"].startswith("T")
    assert payload["view"]["id"] == view["id"]
    assert payload["view"]["private_metadata"] == "INC-7"
    assert payload["view"]["callback_id"] == "im.note"
    assert payload["view"]["state"]["values"] == {
        "note": {"text": {"type": "plain_text_input", "value": "Rolled back 4812"}}}
    [shown] = slack.views()
    assert shown["closed"] is True
    with pytest.raises(httpx.HTTPStatusError):  # closed: nothing more to submit
        slack.submit_view(app.url, view["id"], {"note": {"text": "again"}})
