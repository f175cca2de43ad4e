"""CLI start-up: median wall time of `im --help`, `im list` and `im declare` against
`python -c pass` measured in the same run (target: at most 100 ms above it)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import BIN


def median_ms(command: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run(runs: int = 15) -> dict[str, float]:
    home = tempfile.mkdtemp(prefix="im-bench-")
    # As users run it: byte-code caching on (some environments turn it off).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["IM_HOME"] = home
    im = str(BIN / "im")
    subprocess.run([im, "list"], env=env, capture_output=True)  # migrations, .pyc files
    results = {"python -c pass": median_ms([sys.executable, "-c", "pass"], env, runs)}
    results["im --help"] = median_ms([im, "--help"], env, runs)
    results["im list"] = median_ms([im, "list"], env, runs)
    results["im declare"] = median_ms([im, "declare", "--sev", "SEV-3", "--title", "bench",
                                       "--service", "web"], env, runs)
    return results


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name:<16} {value:7.1f} ms")
