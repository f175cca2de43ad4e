"""A Workflows (Power Automate) webhook on loopback, standing in for Teams in the tests and in
`im demo`: a real HTTP server that records what it is sent and answers what a test asks (202 by
default, as Workflows does), at once or after a delay (the card taken, its answer late)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# the path and query of a Workflows URL: the query's signature is what makes it a secret
PATH = ("/workflows/6c9e5f0a3b2d4e1f/triggers/manual/paths/invoke"
        "?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=s3cr3tSIGNATUREvalue")


@dataclass
class Answer:
    status: int = 202
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds between taking the card and answering


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WorkflowsEndpoint:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: list[Answer] = []  # taken in order; then 202
        self.stopping = threading.Event()  # ends the delays of answers being held
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                endpoint.received.append(Received("POST", self.path, dict(self.headers),
                                                  body))
                answer = endpoint.answers.pop(0) if endpoint.answers else Answer()
                if answer.delay:
                    endpoint.stopping.wait(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:  # the sender is gone (it gave up, or died, meanwhile)
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, status: int, body: str = "", *, delay: float = 0.0,
               **headers: str) -> None:
        self.answers.append(Answer(status, body.encode(), headers, delay))

    def __enter__(self) -> WorkflowsEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
