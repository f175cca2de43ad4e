"""The sandbox as an ASGI application: the Web API (`/api/{method}`), the response_url
endpoints (`/hooks/response/...`) and the controls (`/_sandbox/...`), behind the edge."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Litestar, Request, Response, get, post, route
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import FromPath

from im_slack.sandbox.api_control import ControlController
from im_slack.sandbox.core import Answer, Sandbox
from im_slack.sandbox.edge import Edge
from im_slack.sandbox.requestlog import RequestRecord

log = logging.getLogger("im_slack.sandbox")

_JSON = "application/json; charset=utf-8"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None
          ) -> Response[bytes]:
    return Response(content=msgspec.json.encode(body), status_code=status, media_type=_JSON,
                    headers=headers)


def _arguments(request: Request[Any, Any, Any], raw: bytes
               ) -> tuple[dict[str, Any], str | None, str]:
    """The call's arguments and token, from the query, a form body or a JSON body, as Slack
    reads them. A JSON body's token must come in the Authorization header."""
    params: dict[str, Any] = dict(parse_qsl(request.url.query or "", keep_blank_values=True))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if raw and content_type == "application/json":
        try:
            decoded = json.loads(raw)
        except ValueError:
            raise ValueError("invalid_json") from None
        if not isinstance(decoded, dict):
            raise ValueError("json_not_object")
        decoded.pop("token", None)
        params.update(decoded)
    elif raw:
        try:
            params.update(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
        except (ValueError, UnicodeDecodeError):
            raise ValueError("invalid_form_data") from None
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        params.pop("token", None)
        return params, authorization[7:].strip(), "bearer"
    token = params.pop("token", None)
    return params, (str(token) if token else None), ("token" if token else "")


@route("/api/{method_name:str}", http_method=["GET", "POST"])
async def web_api(request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox],
                  method_name: FromPath[str]) -> Response[bytes]:
    generation = sandbox.requests.generation
    raw = await request.body()
    how = ""
    try:
        params, token, how = _arguments(request, raw)
    except ValueError as problem:
        params, answer = {}, Answer({"ok": False, "error": str(problem)})
    else:
        answer = await sandbox.call(method_name, token, params)
    sandbox.requests.add(RequestRecord(
        http_method=request.method, method=method_name,
        content_type=request.headers.get("content-type", ""), params=params,
        authorization=how, status=answer.status, answer=answer.body, at=time.time()),
        generation)
    return _json(answer.body, answer.status, answer.headers)


@post("/hooks/response/{key:path}", status_code=200)
async def response_url(request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox],
                       key: FromPath[str]) -> Response[bytes]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return _json({"ok": False, "error": "invalid_payload"}, 400)
    status, answer = sandbox.outgoing.respond(sandbox.workspace, key.lstrip("/"), body)
    return _json(answer, status)


@get("/")
async def home(sandbox: NamedDependency[Sandbox]) -> Response[bytes]:
    return _json({"sandbox": "slack", "web_api": f"{sandbox.base_url}/api/"})


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if request.url.path.startswith("/_sandbox"):
        return _json({"detail": exc.detail}, exc.status_code)
    return _json({"ok": False, "error": "invalid_request"}, exc.status_code)


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("sandbox error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json({"ok": False, "error": "internal_error"}, 500)


def create_app(sandbox: Sandbox) -> Edge:
    app = Litestar(
        route_handlers=[web_api, response_url, home, ControlController],
        dependencies={"sandbox": Provide(lambda: sandbox, use_cache=True, sync_to_thread=False)},
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        openapi_config=None,
        logging_config=None,
    )
    return Edge(app, sandbox)
