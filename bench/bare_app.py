"""The baseline: a bare Litestar endpoint on the same server stack that answers 202 without
verifying or storing anything."""

from typing import Any

from litestar import Litestar, Request, post


@post("/connectors/{name:str}/webhook", status_code=202)
async def webhook(request: Request[Any, Any, Any]) -> dict[str, str]:
    await request.body()
    return {"status": "accepted"}


app = Litestar(route_handlers=[webhook])
