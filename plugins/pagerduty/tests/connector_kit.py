"""Shared set-up for the connector's end-to-end tests: an im runtime with a `prod-pagerduty`
connector pointed at the running sandbox."""

import json
import time
from datetime import UTC, datetime, timedelta

from im.testing import make_runtime, run_cli, sql

MAPPINGS = {"api": "PAPI001", "db": "PDAT001", "database": "PDAT001", "web": "PWEB001",
            "payments": "PPAY001", "default": "PGEN001"}


def pd_time(offset: timedelta = timedelta()) -> str:
    """The wall clock now (plus `offset`) as PagerDuty writes times: 2026-01-31T10:00:00.000Z.
    Events dated by hand go stale: im drops those older than its replay window."""
    return (datetime.now(UTC) + offset).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def config(pd, **custom):
    return {"base_url": pd.url, "api_key": pd.api_key, "sync_direction": "bidirectional",
            "sync_interval": "2m", "enable_webhook": False,
            "custom": {"service_id": "PXXXXXX", "from_email": "ops@company.com",
                       "escalation_policy_id": "PXXXXXX", "service_mappings": MAPPINGS,
                       **custom}}


def runtime_with_connector(home, pd, *, name="prod-pagerduty", clock=None, **custom):
    runtime = make_runtime(home, load_entrypoints=True, user="alice", clock=clock)
    result = run_cli(runtime, ["connector", "add", "pagerduty", name, "--config",
                               json.dumps(config(pd, **custom))])
    assert result.exit_code == 0, result.output
    return runtime


_READERS: dict = {}


def stored(home, query, *params):
    """The rows a query returns on the database of the im on `home` (an `im serve` or CLI run
    of the test's): its SQLite file, or the test's PostgreSQL database (IM_DATABASE_URL, which
    those processes inherit). One runtime per home reads, however often a test polls."""
    import os

    key = (str(home), os.environ.get("IM_DATABASE_URL"))
    runtime = _READERS.get(key)
    if runtime is None:
        runtime = _READERS[key] = make_runtime(home)
    return [tuple(row) for row in sql(runtime, query, *params)]


def im(runtime, *args, input=None):
    return run_cli(runtime, list(args), input=input)


def remote_incidents(api):
    return api.get("/incidents", params={"date_range": "all", "limit": 100}).json()["incidents"]


def delivered(runtime, timeout=10.0):
    """Wait until no change is queued or being delivered. A command delivers its own changes
    at once, but beside an `im serve` on PostgreSQL the server, woken by the change's NOTIFY,
    may claim one first: the command then returns while the server delivers it."""
    wait_for(lambda: not runtime.store.outbox(statuses=("pending", "delivering")), timeout)


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
