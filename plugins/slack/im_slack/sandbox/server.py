"""Serving the sandbox with uvicorn: in the foreground (the CLI) or on a background thread (tests).

The socket is bound before uvicorn starts, so the URL, and a free port when asked for port 0,
is known before the first request.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

from im_slack.sandbox.app import create_app
from im_slack.sandbox.config import SandboxConfig
from im_slack.sandbox.core import Sandbox
from im_slack.sandbox.transport import TransportAwareProtocol


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None,
                 on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._on_stop = on_stop

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_stop()  # release held requests before uvicorn waits for them
        await super().shutdown(sockets=sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_ready:
            self._on_ready()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class SandboxServer:
    """One sandbox on one socket. `start()`/`stop()` for a thread, `serve()` for the foreground."""

    def __init__(self, config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = _bind(host, port)
        bound_port = self._socket.getsockname()[1]
        link_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        link_host = f"[{link_host}]" if ":" in link_host else link_host
        self.url = f"http://{link_host}:{bound_port}"
        self.sandbox = Sandbox(config, base_url=self.url)
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None

    def _make_server(self, on_ready: Callable[[], None] | None, *,
                     own_logging: bool = True) -> _Server:
        # In a thread of another program (tests, `im demo`), uvicorn must not set up logging:
        # logging.config closes every handler that exists, im's database log among them.
        config = uvicorn.Config(
            create_app(self.sandbox),
            http=TransportAwareProtocol,
            lifespan="on",
            log_level="warning",
            access_log=False,
            server_header=False,  # Slack does not say "uvicorn"
            timeout_graceful_shutdown=1,
            **({} if own_logging else {"log_config": None}),
        )
        self._server = _Server(config, on_ready, self.sandbox.stopping)
        return self._server

    def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve until Ctrl-C or SIGTERM, then shut down cleanly and return."""

        def stop_quietly(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        server = self._make_server((lambda: on_ready(self.url)) if on_ready else None)
        # uvicorn handles the signal, shuts down, then re-raises it to the handler it found:
        # make that ours, so SIGTERM ends like Ctrl-C instead of killing the process.
        previous = signal.signal(signal.SIGTERM, stop_quietly)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                server.run(sockets=[self._socket])
        finally:
            signal.signal(signal.SIGTERM, previous)
            self._socket.close()

    def start(self, timeout: float = 10.0) -> str:
        """Serve on a background thread; returns the base URL once connections are accepted."""
        server = self._make_server(None, own_logging=False)
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [self._socket]},
            name="slack-sandbox",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Slack sandbox did not start")
            time.sleep(0.002)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._socket.close()
