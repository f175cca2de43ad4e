"""Slack as a front end of im, served by `im serve`: `POST /slack/NAME/commands` (the slash
command) and `POST /slack/NAME/interactions` (the incident message's buttons, the note modal),
for the `slack` connector NAME that has the app's signing secret.

Each request is verified (im_slack.verify), then acted on once: a request whose signature
was seen before (a replay: two real requests never share one) changes nothing. Slack wants an
answer within three seconds: the change is made in a worker thread (the store is
synchronous) and answered when it is done within ANSWER_WITHIN; past that, "Working on it…"
is answered and the outcome is posted to the request's response_url once it is done. What
goes on to PagerDuty and to the incident message is `im serve`'s delivery of the change,
woken at once (after_change)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

import im
from im_slack import clicks, people, slash
from im_slack.acting import Outcome, failed
from im_slack.verify import Refused, SlackRequest, check_signature, log, read, slack_connector

if TYPE_CHECKING:
    from im_slack.connector import SlackConnector

MAX_BODY = 64 * 1024  # Slack's payloads are a few KiB; a larger body is refused unread (413)
ANSWER_WITHIN = 2.5  # seconds: Slack gives up after 3
REPLAY_SECONDS = 10 * 60  # a signature is remembered past Slack's 5-minute window
WORKING = "Working on it…"
ALREADY = "Already done: this request reached im before, and was not carried out twice"
AfterChange = Callable[[], None]

SLACK_CALLS_WITHIN = 2.0  # seconds the calls to Slack a request needs may take, together
REPLY_TIMEOUT = 5.0  # seconds for an answer posted to a response_url

# the changes run here, not on the event loop: the store is synchronous. Finding the
# connector, acting, and answering later each have threads of their own, so that requests
# waiting on a locked database or a slow Slack never hold up the reading of others
_lookups = ThreadPoolExecutor(max_workers=4, thread_name_prefix="im-slack-lookup")
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="im-slack")
_replies = ThreadPoolExecutor(max_workers=4, thread_name_prefix="im-slack-reply")


def routes(runtime: im.Runtime) -> list[Any]:
    """The route handlers register_routes adds."""

    @post("/slack/{connector:str}/commands", request_max_body_size=MAX_BODY, status_code=200,
          summary="A slash command from Slack", tags=["slack"])
    async def commands(request: Request[Any, Any, Any], connector: str,
                       after_change: NamedDependency[AfterChange]) -> Response[bytes]:
        return await serve(runtime, "command", connector, request, after_change)

    @post("/slack/{connector:str}/interactions", request_max_body_size=MAX_BODY,
          status_code=200, summary="A button clicked or a modal submitted in Slack",
          tags=["slack"])
    async def interactions(request: Request[Any, Any, Any], connector: str,
                           after_change: NamedDependency[AfterChange]) -> Response[bytes]:
        return await serve(runtime, "interaction", connector, request, after_change)

    return [commands, interactions]


def _json(body: Any, status: int = 200) -> Response[bytes]:
    return Response(content=msgspec.json.encode(body), status_code=status,
                    media_type="application/json")


def _empty() -> Response[bytes]:
    return Response(content=b"", status_code=200, media_type="text/plain")


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


async def serve(runtime: im.Runtime, kind: str, name: str, request: Request[Any, Any, Any],
                after_change: AfterChange) -> Response[bytes]:
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    client = request.client.host if request.client else "?"
    try:
        # the connector first: a request for one that takes none is refused unread
        connector = await asyncio.wait_for(
            loop.run_in_executor(_lookups, slack_connector, runtime, name), ANSWER_WITHIN)
        body = await request.body()
        headers = {key.lower(): value for key, value in request.headers.items()}
        signed = read(kind, check_signature(runtime, connector, headers, body), body)
    except Refused as refused:
        if refused.reason:
            log(name).warning("refused a request from Slack (%s, from %s): %s",
                              request.url.path, client, refused.reason)
        return _json({"error": refused.answer}, refused.status)
    except TimeoutError:  # the database too busy to say what the connector is
        log(name).warning("a request from Slack (%s, from %s) was not read: the connector"
                          " could not be read within %.1f s", request.url.path, client,
                          ANSWER_WITHIN)
        return _json({"error": "im is busy; try again"}, 503)
    work = loop.run_in_executor(_pool, act, runtime, connector, signed, after_change)
    try:
        outcome = await asyncio.wait_for(asyncio.shield(work),
                                         max(0.1, ANSWER_WITHIN - (time.monotonic() - started)))
    except TimeoutError:
        log(name).info("a request from Slack took longer than %.1f s: answered \"%s\", its"
                       " outcome goes to its response_url", ANSWER_WITHIN, WORKING)
        work.add_done_callback(lambda done: _replies.submit(_late, connector, signed, done))
        if signed.kind == "command":
            return _json(ephemeral(WORKING))
        return _empty()  # a click, or a modal (closed)
    return _answer(connector, signed, outcome)


def act(runtime: im.Runtime, connector: SlackConnector, signed: SlackRequest,
        after_change: AfterChange) -> Outcome:
    """Check the workspace, refuse a replay, know the responder, and carry the request out;
    whatever fails is a line for the responder (the log has the rest), never a 500."""
    try:
        return _act(runtime, connector, signed, after_change)
    except people.UnknownUser as error:
        log(connector.name).warning("a request from Slack was not carried out: %s", error)
        return failed("im could not tell who you are from Slack, so did nothing; try again")
    except im.ImError as error:  # the database unreachable, say
        log(connector.name).warning("a request from Slack failed: %s", error)
        return failed(f"im could not do that: {error}")
    except Exception:
        log(connector.name).exception("a request from Slack failed")
        return failed("im could not do that: an unexpected error (`im logs --filter"
                      f" {connector.name}` says more)")


def soon(connector: SlackConnector) -> Any:
    """Calls to Slack a request needs, given SLACK_CALLS_WITHIN from now: Slack wants its
    answer within three seconds (and a trigger_id lives three)."""
    return connector.client.until(time.monotonic() + SLACK_CALLS_WITHIN)


def _act(runtime: im.Runtime, connector: SlackConnector, signed: SlackRequest,
         after_change: AfterChange) -> Outcome:
    try:
        with soon(connector):
            team = people.team_of(connector)
    except im.ConnectorError as error:
        log(connector.name).warning("the workspace of a request from Slack could not be"
                                    " checked: %s", error)
        return failed("im could not check this workspace with Slack; try again")
    if signed.team_id != team:
        log(connector.name).warning("refused a request from Slack workspace %s: the bot"
                                    " token is of %s", signed.team_id, team)
        return Outcome(text="this Slack workspace is not the one of im's slack connector"
                            f" {connector.name}", failed=True, status=403)
    # the signature alone: the connectors of one Slack app (one signing secret) share it,
    # and the path a request is sent to is not signed
    digest = hashlib.sha256(signed.signature.encode()).hexdigest()
    if not runtime.first_time(f"slack:{digest}", seconds=REPLAY_SECONDS):
        log(connector.name).warning("a request from Slack came again (the same signature):"
                                    " not carried out twice")
        return Outcome(text=ALREADY, replay=True)
    with soon(connector):
        who = people.actor_of(connector, signed.user_id, signed.user_name)
    actor = im.Origin(actor=who, system=connector.name)
    if signed.kind == "command":
        outcome = slash.run(runtime, connector.name, actor, signed.fields.get("command", ""),
                            signed.fields.get("text", ""))
    elif signed.payload.get("type") == "block_actions":
        outcome = clicks.block_actions(runtime, connector, signed, actor)
    elif signed.payload.get("type") == "view_submission":
        outcome = clicks.view_submission(runtime, connector, signed, actor)
    else:  # another kind of interaction (a shortcut, a modal closed): nothing of im's
        outcome = Outcome()
    if outcome.changed:
        after_change()
    return outcome


def _answer(connector: SlackConnector, signed: SlackRequest,
            outcome: Outcome) -> Response[bytes]:
    if outcome.status != 200:
        return _json({"error": outcome.text}, outcome.status)
    if signed.kind == "command":
        return _json(ephemeral(outcome.text))
    if outcome.replay:
        return _empty()
    if signed.payload.get("type") == "view_submission" and outcome.failed:
        # the modal stays open, the reason under its input
        from im_slack.messages import NOTE_INPUT

        return _json({"response_action": "errors", "errors": {NOTE_INPUT: outcome.text}})
    _say_later(connector, outcome.answer_to or signed.response_url, outcome.text)
    return _empty()


def _late(connector: SlackConnector, signed: SlackRequest, done: Any) -> None:
    """The outcome of a request answered "Working on it…", said where Slack lets an app
    answer later (the response_url)."""
    outcome: Outcome = done.result()  # act() turns every failure into an outcome
    if outcome.replay:
        return
    _say(connector, outcome.answer_to or signed.response_url, outcome.text)


def _say_later(connector: SlackConnector, url: str | None, text: str) -> None:
    if url and text:
        _replies.submit(_say, connector, url, text)


def _say(connector: SlackConnector, url: str | None, text: str) -> None:
    """Post an ephemeral line to a response_url (Slack's; http:// only on loopback)."""
    import httpx

    if not url or not text:
        return
    parts = urlsplit(url)
    loopback = bool(parts.hostname) and im.is_loopback(str(parts.hostname))
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        log(connector.name).warning("a response_url that is not https:// was not used")
        return
    try:
        answer = httpx.post(url, json=ephemeral(text), timeout=REPLY_TIMEOUT,
                            trust_env=not loopback)
        if answer.status_code >= 400:
            log(connector.name).warning("Slack refused an answer to a response_url: HTTP %s"
                                        " %s", answer.status_code, answer.text[:200])
    except httpx.HTTPError as error:
        log(connector.name).warning("an answer to Slack's response_url failed: %s", error)

