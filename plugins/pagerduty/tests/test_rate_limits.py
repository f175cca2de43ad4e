"""PagerDuty's limits met for real: the client waits them out as PagerDuty says (these tests
sleep for real, briefly; elsewhere retries are made quick)."""

from .connector_kit import im, runtime_with_connector


def test_a_burst_of_creates_stays_within_the_incident_creation_limit(tmp_path, pd):
    """PagerDuty limits incident creation per account far below its general limit ("human
    speed"). An incident on six services is six creates at once; at 3 creates per 2 s those
    over the limit wait PagerDuty's reset out, within the command's time, and every one is
    created exactly once: none fails, none is queued, none doubles."""
    pd.configure(operation_limits={"POST /incidents": {"limit": 3, "window_seconds": 2}})
    runtime = runtime_with_connector(tmp_path / "home", pd)
    result = im(runtime, "declare", "--sev", "SEV-2", "--title", "Region down",
                "--service", "api,db,web,search,auth,billing")
    assert result.exit_code == 0, result.output
    assert "queued" not in result.output
    assert {r.status for r in runtime.store.outbox()} == {"done"}
    creates = pd.requests(method="POST", path="/incidents")
    assert [r["status"] for r in creates] == [201] * 6  # waited before, never refused
    assert len({link.remote_id for link in runtime.store.links("INC-1")}) == 6
    runtime.store.close()
