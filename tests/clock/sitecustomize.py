"""Moves the wall clock of every Python process of a test run (pytest, `im serve`, the
sandbox, each `im` command) by IM_TEST_CLOCK_DAYS days, still ticking: `./test` puts this folder
on PYTHONPATH when that variable is set, to show that no test depends on the calendar.

    IM_TEST_CLOCK_DAYS=400 ./test
    IM_TEST_CLOCK_DAYS=-400 ./test

Monotonic clocks (timeouts, thread waits) are left alone."""

import os

_days = os.environ.get("IM_TEST_CLOCK_DAYS")
if _days:
    from datetime import UTC, datetime, timedelta

    import time_machine

    time_machine.travel(datetime.now(UTC) + timedelta(days=int(_days)), tick=True).start()
    # time-machine's clock starts ticking at the first reading, not at start(): read it now,
    # or this process's clock lags the others' by however long it waited before its first
    datetime.now(UTC)
