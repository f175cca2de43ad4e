"""Suite-wide rules for every test folder (tests/ and each plugin's tests/).

Tests that need reference data kept outside the repository (`../shared`, beside a clone of the
team's workspace) skip themselves when it is absent, with a reason that starts with
`SHARED_SKIP`, so a clone alone runs green. `IM_REQUIRE_SHARED=1` (set by `.ci/run` where the
data is present) turns any such skip into a failed run.
"""

import os

import pytest

SHARED_SKIP = "reference data not found"


def _required() -> bool:
    return os.environ.get("IM_REQUIRE_SHARED") == "1"


def _shared_skips(stats) -> int:
    return sum(1 for report in stats.get("skipped", []) if SHARED_SKIP in str(report.longrepr))


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if _required() and reporter and _shared_skips(reporter.stats) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    count = _shared_skips(terminalreporter.stats)
    if _required() and count:
        terminalreporter.write_line(
            f"FAILED: {count} tests skipped for want of ../shared, which IM_REQUIRE_SHARED=1 "
            "says is there", red=True)
