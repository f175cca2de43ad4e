"""10,000 incidents: created in bulk and read back through the list endpoint, as a sync does."""

import time


def test_ten_thousand_incidents_sync_through_one_hundred_pages(pd, api):
    started = time.monotonic()
    created = pd.bulk_incidents(10_000, status="resolved")
    assert created["created"] == 10_000 and created["last"]["number"] == 10_000
    seen = []
    for offset in range(0, 10_000, 100):
        page = api.get("/incidents", params={"limit": 100, "offset": offset}).json()
        seen += [incident["id"] for incident in page["incidents"]]
        assert page["more"] is (offset < 9_900)
    assert len(seen) == len(set(seen)) == 10_000
    assert len(pd.requests(method="GET", path="/incidents")) == 100
    # One page further is where PagerDuty stops: narrow the window to go on.
    assert api.get("/incidents", params={"limit": 100, "offset": 10_000}).status_code == 400
    assert time.monotonic() - started < 30
