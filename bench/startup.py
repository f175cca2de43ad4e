"""CLI start-up: median wall time of `im --help`, `im list` and `im declare` against
`python -c pass` measured in the same run (target: at most 100 ms above it).

A second reference, `python -c "import typer"`, shows the floor the command-line framework
alone sets on this machine. The commands are run in turn, round after round, so that a
change in the machine's load weighs on each of them alike."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import BIN

BASELINE = "python -c pass"
FLOOR = 'python -c "import typer"'
RUNS = 21


def run(runs: int = RUNS) -> dict[str, float]:
    home = tempfile.mkdtemp(prefix="im-bench-")
    # As users run it: byte-code caching on (some environments turn it off).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["IM_HOME"] = home
    im = str(BIN / "im")
    subprocess.run([im, "list"], env=env, capture_output=True)  # migrations, .pyc files
    commands = {
        BASELINE: [sys.executable, "-c", "pass"],
        FLOOR: [sys.executable, "-c", "import typer"],
        "im --help": [im, "--help"],
        "im list": [im, "list"],
        "im declare": [im, "declare", "--sev", "SEV-3", "--title", "bench", "--service", "web"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


if __name__ == "__main__":
    results = run()
    for name, value in results.items():
        print(f"{name:<26} {value:7.1f} ms  {value - results[BASELINE]:+7.1f} ms")
