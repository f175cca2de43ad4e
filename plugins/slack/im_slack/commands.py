"""`im slack sandbox`: a local Slack in the foreground.

Every `im` invocation builds this group, so only Typer is imported here; the sandbox (Litestar,
uvicorn, httpx) is imported when its command runs.
"""

import enum
from typing import Annotated

import typer


class Seed(enum.StrEnum):
    demo = "demo"
    none = "none"


class Limits(enum.StrEnum):
    slack = "slack"
    strict = "strict"
    off = "off"


def _seed_user(given: str) -> tuple[str, str, str]:
    """'Real Name <email>' or a bare e-mail address; the handle is the address's local part."""
    given = given.strip()
    if given.endswith(">") and "<" in given:
        real_name, _, email = given[:-1].partition("<")
        real_name, email = real_name.strip(), email.strip()
    else:
        real_name, email = "", given
    local, at, domain = email.partition("@")
    if not local or not at or not domain:
        raise typer.BadParameter(f"not an e-mail address: {given!r}", param_hint="--user")
    return local, real_name or local, email


def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0 picks a free one).")
    ] = 8090,
    token: Annotated[
        str | None,
        typer.Option(help="Bot token clients must send as 'Authorization: Bearer TOKEN'"
                     " (default: a new xoxb- token, printed)."),
    ] = None,
    signing_secret: Annotated[
        str | None,
        typer.Option(help="The app's signing secret, which slash commands and button clicks"
                     " are signed with (default: a new one, printed)."),
    ] = None,
    seed: Annotated[
        Seed, typer.Option(help="Starting users: 'demo' (jane.smith, john.doe, ops at"
                           " company.com) or 'none' (only those given with --user).")
    ] = Seed.demo,
    user: Annotated[
        list[str] | None,
        typer.Option("--user", help="Another workspace user, 'Real Name <email>' or an e-mail"
                     " address (repeatable)."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="The token's scopes (repeatable; default: what an"
                     " incident app is granted)."),
    ] = None,
    rate_limits: Annotated[
        Limits, typer.Option(help="'slack' (Slack's tiers; chat.postMessage about one a second"
                             " per channel), 'strict' (no bursts, one call a minute per tier)"
                             " or 'off'.")
    ] = Limits.slack,
) -> None:
    """Run a local Slack (Web API, slash commands, interactivity) in the foreground until Ctrl-C."""
    import secrets

    from im_slack.sandbox import SandboxConfig, SandboxServer, SeedUser
    from im_slack.sandbox.config import DEFAULT_SCOPES, DEMO_USERS

    users = [] if seed is Seed.none else list(DEMO_USERS)
    for given in user or []:
        name, real_name, email = _seed_user(given)
        users.append(SeedUser(name=name, real_name=real_name, email=email))
    config = SandboxConfig(
        token=token or f"xoxb-sandbox-{secrets.token_hex(12)}",
        signing_secret=signing_secret or secrets.token_hex(16),
        users=tuple(users),
        scopes=tuple(scope) if scope else DEFAULT_SCOPES,
        rate_limits=rate_limits.value,
    )
    try:
        server = SandboxServer(config, host=host, port=port)
    except (OSError, OverflowError) as exc:
        message = getattr(exc, "strerror", None) or exc
        typer.echo(f"Error: cannot listen on {host}:{port}: {message}", err=True)
        raise typer.Exit(1) from None

    def ready(url: str) -> None:
        typer.echo(f"Slack sandbox listening on {url}")
        typer.echo(f"Web API: {url}/api/  bot token: {config.token}")
        if not signing_secret:
            typer.echo(f"Signing secret: {config.signing_secret}")

    server.serve(on_ready=ready)


def add_commands(cli: typer.Typer) -> None:
    group = typer.Typer(help="Slack tools", no_args_is_help=True)
    group.command("sandbox")(sandbox)
    cli.add_typer(group, name="slack")
