"""`im serve` on another of uvicorn's HTTP protocols, for the ingest benchmark's choice of
server stack: `python serve_as.py httptools serve ...` runs it on uvicorn's httptools protocol
without im's bounds on requests (the stack before them), `h11` on uvicorn's h11 protocol (which
bounds a head's size itself). One process only: `--workers` name the protocol by import path."""

import sys

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

import im.server.protocol

im.server.protocol.BoundedHttpProtocol = {  # type: ignore[misc]
    "httptools": HttpToolsProtocol, "h11": H11Protocol}[sys.argv.pop(1)]

from im.cli import main  # noqa: E402

main()
