"""Helpers shared by the benchmarks: machine facts, free ports, servers, wrk."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def machine() -> str:
    cpus = os.cpu_count()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sqlite3

    return (f"{platform.system()} {platform.machine()}, {cpus} cores ({model}),"
            f" Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (Debian package)...", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False,
                   stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed for the ingest benchmark: apt-get install wrk")
    return found


class WrkResult:
    def __init__(self, text: str) -> None:
        self.text = text
        self.requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
        self.seconds = float(re.search(r"requests in ([\d.]+)s", text).group(1))  # type: ignore[union-attr]
        self.rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
        match = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        self.non_2xx = int(match.group(1)) if match else 0
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                           text)
        self.socket_errors = sum(int(g) for g in errors.groups()) if errors else 0
        self.latency = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", text).group(1))  # type: ignore[union-attr]
                        for p in ("50", "75", "90", "99")}

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx


def _ms(value: str) -> float:
    number = float(re.match(r"[\d.]+", value).group(0))  # type: ignore[union-attr]
    unit = value[len(re.match(r"[\d.]+", value).group(0)):]  # type: ignore[union-attr]
    return number * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def wrk(url: str, script: Path, args: list[str], *, connections: int, seconds: int,
        threads: int = 2) -> WrkResult:
    command = [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
               "-s", str(script), url, "--", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    return WrkResult(result.stdout)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
