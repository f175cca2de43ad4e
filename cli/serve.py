"""`im serve`: the HTTP server (webhooks, API, health) and the background sync work."""


import typer

from im.runtime import Runtime


def add_commands(app: typer.Typer, runtime: Runtime) -> None:
    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on."),
        log_level: str = typer.Option("info", "--log-level", help="debug, info, warning."),
        workers: int = typer.Option(
            1, "--workers", min=1, max=64,
            help="HTTP worker processes. 1: one process does everything. N > 1: N processes"
                 " answer HTTP and one more does the background work (for high webhook"
                 " rates; about one per core)."),
    ) -> None:
        """Run the server: webhooks, HTTP API, health and metrics, and background sync."""
        import faulthandler
        import logging

        from im.errors import InvalidInputError

        faulthandler.enable()  # a crash of the interpreter leaves its stack in the log

        if log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
            raise InvalidInputError(f"unknown log level {log_level!r}; choose from debug,"
                                    " info, warning, error")
        _check_port(host, port)  # before any background work starts or "listening" is said
        runtime.public_url  # noqa: B018 (a malformed one is refused now, not later)
        logging.basicConfig(level=log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if workers > 1:
            from im.server import workers as multiprocess

            typer.echo(f"im serve listening on http://{host}:{port} ({workers} workers)",
                       err=True)
            multiprocess.run(runtime, host=host, port=port, workers=workers,
                             log_level=log_level.lower())
            return

        import uvicorn

        from im.server import create_app, serving

        application = serving(create_app(runtime, background=True))
        typer.echo(f"im serve listening on http://{host}:{port}", err=True)
        # uvicorn stops on SIGINT/SIGTERM after finishing requests in flight; the app's
        # shutdown then stops the background work and the inbox writer.
        # log_config=None: uvicorn's own dictConfig would close the handler that keeps im's
        # logs in the database; its loggers go to the root handler set up above instead.
        uvicorn.run(application, host=host, port=port, log_level=log_level.lower(),
                    timeout_graceful_shutdown=10, access_log=False, log_config=None,
                    # client addresses are the TCP peer's (see server.webhook_allow)
                    proxy_headers=False)

    @app.command("api-token")
    def api_token_command(
        rotate: bool = typer.Option(False, "--rotate", help="Make a new token (the old one"
                                    " stops working once `im serve` restarts)."),
    ) -> None:
        """Show the bearer token of the HTTP API (made on `im serve`'s first start)."""
        from im.tokens import api_token

        token = api_token(runtime.store, create=True, rotate=rotate)
        typer.echo(token)


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
