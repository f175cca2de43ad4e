from pathlib import Path

import pytest

from im_pagerduty.testing import (  # noqa: F401  (fixtures)
    RunningSandbox,
    pagerduty_sandbox,
    pagerduty_sandbox_server,
    pagerduty_webhook_receiver,
)

REPO = Path(__file__).resolve().parents[3]
SHARED_PAGERDUTY = REPO / ".." / "shared" / "pagerduty"
SHARED_SKIP = "reference data not found"  # the root conftest.py counts skips by it


@pytest.fixture(scope="session")
def shared_pagerduty() -> Path:
    """PagerDuty's reference data beside the repository (../shared/pagerduty): the official
    OpenAPI file and captured deliveries, which stay outside the repository. Missing (a clone
    alone), the tests that need it skip themselves; see the root conftest.py."""
    if not (SHARED_PAGERDUTY / "rest-api-v2.openapiv3.json").is_file():
        pytest.skip(f"{SHARED_SKIP} at {SHARED_PAGERDUTY.resolve()} (PagerDuty's OpenAPI file"
                    " and captured deliveries)")
    return SHARED_PAGERDUTY.resolve()


@pytest.fixture
def quick_retries(monkeypatch):
    """The connector's client retries twice without sleeping, in this process only (an
    `im serve` a test starts runs with its real settings)."""
    from im_pagerduty.connector import PagerDutyConnector

    monkeypatch.setattr(PagerDutyConnector, "client_options",
                        {"max_attempts": 2, "sleep": lambda _s: None})


@pytest.fixture
def pd(pagerduty_sandbox: RunningSandbox) -> RunningSandbox:  # noqa: F811
    return pagerduty_sandbox


@pytest.fixture
def api(pd: RunningSandbox):
    """An httpx client for the sandbox's REST API, acting as ops@company.com."""
    with pd.client() as client:
        yield client
