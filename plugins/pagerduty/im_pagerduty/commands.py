"""`im pagerduty ...`: PagerDuty connector tools.

Every `im` invocation builds this group, so only Typer is imported here; the sandbox (Litestar,
uvicorn, httpx) is imported when its command runs.
"""


import enum
from typing import Annotated

import typer


class Seed(enum.StrEnum):
    demo = "demo"
    none = "none"


def sandbox(
    api_key: Annotated[
        list[str],
        typer.Option(
            "--api-key", help="API key clients must send as 'Token token=KEY' (repeatable)."
        ),
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0 picks a free one).")
    ] = 8089,
    rate_limit: Annotated[
        int, typer.Option(min=1, help="REST requests allowed per API key per minute.")
    ] = 960,
    seed: Annotated[
        Seed, typer.Option(help="Starting data: 'demo' (the spec's account) or 'none' (one user).")
    ] = Seed.demo,
) -> None:
    """Run a local PagerDuty (REST API v2 and Webhooks v3) in the foreground until Ctrl-C."""
    from im_pagerduty.sandbox import SandboxConfig, SandboxServer

    config = SandboxConfig(api_keys=tuple(api_key), seed=seed.value, rate_limit=rate_limit)
    try:
        server = SandboxServer(config, host=host, port=port)
    except (OSError, OverflowError) as exc:
        message = getattr(exc, "strerror", None) or exc
        typer.echo(f"Error: cannot listen on {host}:{port}: {message}", err=True)
        raise typer.Exit(1) from None
    server.serve(on_ready=lambda url: typer.echo(f"PagerDuty sandbox listening on {url}"))


def add_commands(cli: typer.Typer) -> None:
    group = typer.Typer(help="PagerDuty connector tools", no_args_is_help=True)
    group.command("sandbox")(sandbox)
    cli.add_typer(group, name="pagerduty")
