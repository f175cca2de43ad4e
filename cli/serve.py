"""`im serve`: the HTTP server (webhooks, API, health) and the background sync work; `im
api-token`: the bearer tokens of its HTTP API, through im.app.tokens.

`im serve` itself stays here: it reads its options, checks what only it is given (the
address it binds, the log level, the certificate files) and runs the server of im.server.
"""


import typer

from im.cli.context import runtime


def register(app: typer.Typer) -> None:
    """Add `im serve` and the `api-token` group to the root command line."""
    app.command()(serve)
    tokens_app = typer.Typer(help="Bearer tokens of the HTTP API: create, list, rotate,"
                             " revoke.", no_args_is_help=True, rich_markup_mode=None)
    tokens_app.command("create")(create_token)
    tokens_app.command("list")(list_tokens)
    tokens_app.command("rotate")(rotate_token)
    tokens_app.command("revoke")(revoke_token)
    app.add_typer(tokens_app, name="api-token")


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64,
        help="HTTP worker processes. 1: one process does everything. N > 1: N processes"
             " answer HTTP and one more does the background work (for high webhook"
             " rates; about one per core)."),
    certfile: str = typer.Option(None, "--tls-cert", help="Serve HTTPS with this"
                                 " certificate (PEM; with --tls-key)."),
    keyfile: str = typer.Option(None, "--tls-key", help="The certificate's private key"
                                " (PEM)."),
) -> None:
    """Run the server: webhooks, HTTP API, health and metrics, and background sync."""
    import faulthandler
    import logging

    from im.errors import InvalidInputError

    faulthandler.enable()  # a crash of the interpreter leaves its stack in the log

    if log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
        raise InvalidInputError(f"unknown log level {log_level!r}; choose from debug,"
                                " info, warning, error")
    tls = _tls_options(certfile, keyfile)
    scheme = "https" if tls else "http"
    from im.net import is_loopback

    if not tls and not is_loopback(host) and host != "localhost":
        typer.echo(f"Warning: listening on {host} without TLS: API tokens and webhooks"
                   " cross the network in clear unless a TLS proxy is in front; give"
                   " --tls-cert and --tls-key, or keep --host 127.0.0.1 behind the"
                   " proxy", err=True)
    _check_port(host, port)  # before any background work starts or "listening" is said
    from im.server.protocol import raise_open_files_limit

    raise_open_files_limit()  # the workers inherit it
    runtime(ctx).public_url  # noqa: B018 (a malformed one is refused now, not later)
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if workers > 1:
        from im.server import check_settings
        from im.server import workers as multiprocess

        check_settings(runtime(ctx))  # the workers build the app: what it refuses, say now
        typer.echo(f"im serve listening on {scheme}://{host}:{port} ({workers} workers)",
                   err=True)
        multiprocess.run(runtime(ctx), host=host, port=port, workers=workers,
                         log_level=log_level.lower(), tls=tls)
        return

    import uvicorn

    from im.server import create_app, serving
    from im.server.protocol import BoundedHttpProtocol

    application = serving(create_app(runtime(ctx), background=True))
    typer.echo(f"im serve listening on {scheme}://{host}:{port}", err=True)
    # uvicorn stops on SIGINT/SIGTERM after finishing requests in flight; the app's
    # shutdown then stops the background work and the inbox writer.
    # log_config=None: uvicorn's own dictConfig would close the handler that keeps im's
    # logs in the database; its loggers go to the root handler set up above instead.
    uvicorn.run(application, host=host, port=port, log_level=log_level.lower(),
                timeout_graceful_shutdown=10, access_log=False, log_config=None,
                # client addresses are the TCP peer's (see server.trusted_proxies)
                proxy_headers=False, http=BoundedHttpProtocol, **tls)


# -- API tokens: each command calls im.app.tokens and prints what it returns ---------------


def create_token(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A name for the token, e.g. grafana."),
    read_only: bool = typer.Option(False, "--read-only", help="May only read (GET), as a"
                                   " dashboard needs."),
) -> None:
    """Make a token and print it, once: im keeps only its hash."""
    from im.app import tokens

    created = tokens.create(runtime(ctx), name, read_only=read_only)
    typer.echo(created.secret)
    access = "read-only" if read_only else "read-write"
    typer.echo(f"Created API token {name} ({access}). It is shown only now: keep it in"
               " your client's secrets.", err=True)


def list_tokens(ctx: typer.Context,
                json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the tokens by name (never their secrets)."""
    from im.app import tokens
    from im.cli.output import print_json, table, when

    found = tokens.list_tokens(runtime(ctx))
    if json_output:
        print_json(found)
        return
    if not found:
        typer.echo("No API tokens. Make one with: im api-token create NAME")
        return
    typer.echo(table(["Name", "Access", "Created"], [
        [t.name, "read-only" if t.read_only else "read-write",
         when(t.created_at) if t.created_at else "-"] for t in found]))


def rotate_token(ctx: typer.Context,
                 name: str = typer.Argument(..., help="The token.")) -> None:
    """Give a token a new secret and print it; the old secret is refused at once."""
    from im.app import tokens

    typer.echo(tokens.rotate(runtime(ctx), name).secret)
    typer.echo(f"Rotated API token {name}: the old secret is refused from now on.", err=True)


def revoke_token(ctx: typer.Context,
                 name: str = typer.Argument(..., help="The token.")) -> None:
    """Remove a token; requests with it are refused at once, by a running `im serve` too."""
    from im.app import tokens

    tokens.revoke(runtime(ctx), name)
    typer.echo(f"Revoked API token {name}")


def _tls_options(certfile: str | None, keyfile: str | None) -> dict[str, str]:
    """uvicorn's TLS options, checked now: both files given, readable, and a pair."""
    import ssl

    from im.errors import InvalidInputError

    if not certfile and not keyfile:
        return {}
    if not (certfile and keyfile):
        raise InvalidInputError("give both --tls-cert and --tls-key")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InvalidInputError(f"cannot use {certfile} with {keyfile}: {reason}") from None
    return {"ssl_certfile": certfile, "ssl_keyfile": keyfile}


def _check_port(host: str, port: int) -> None:
    """One clear line when the address is taken (another `im serve`?) or not this machine's."""
    import socket

    from im.errors import InvalidInputError

    try:
        # the family uvicorn binds with
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise InvalidInputError(f"cannot listen on {host}:{port}:"
                                f" {error.strerror or error}") from None
