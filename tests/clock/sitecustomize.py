"""Moves the wall clock of every Python process of a test run (pytest, `im serve`, the
sandbox, each `im` command) by IM_TEST_CLOCK_DAYS days, still ticking: `./test` puts this folder
on PYTHONPATH when that variable is set, to show that no test depends on the calendar.

    IM_TEST_CLOCK_DAYS=400 ./test
    IM_TEST_CLOCK_DAYS=-400 ./test

IM_TEST_CLOCK_SECONDS=N moves it N seconds more: a test gives it to one process it starts (an
`im serve` started as it would be once a killed server's leases have run out).

Monotonic clocks (timeouts, thread waits) are left alone."""

import os

_days = os.environ.get("IM_TEST_CLOCK_DAYS")
_seconds = os.environ.get("IM_TEST_CLOCK_SECONDS")
if _days or _seconds:
    from datetime import UTC, datetime, timedelta

    import time_machine

    _ahead = timedelta(days=int(_days or 0), seconds=float(_seconds or 0))
    time_machine.travel(datetime.now(UTC) + _ahead, tick=True).start()
    # time-machine's clock starts ticking at the first reading, not at start(): read it now,
    # or this process's clock lags the others' by however long it waited before its first
    datetime.now(UTC)
