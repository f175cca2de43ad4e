"""im.app's on-call, API token, log and connector figure operations without a command line:
each keeps its rules for any front end (a chat command or an HTTP route would call the same
function), and says what it found in its result."""

from contextlib import contextmanager
from typing import ClassVar

import pytest

from im import hookimpl
from im.app import connectors, oncall
from im.connectors import OncallResult
from im.errors import ConnectorError, InvalidInputError, NotFoundError
from im.testing import FakeConnector, make_runtime


class RotaConnector(FakeConnector):
    """A connector type with on-call schedules: each instance answers from `answers` (its
    name -> an OncallResult, or a ConnectorError to raise) and records what it was asked."""

    type = "rota"
    answers: ClassVar[dict[str, object]] = {}
    asked: ClassVar[list[tuple[str, object]]] = []

    def oncall(self, request):
        self.asked.append((self.name, request))
        answer = self.answers[self.name]
        if isinstance(answer, Exception):
            raise answer
        return answer


class RotaPlugin:
    @hookimpl
    def register_connectors(self, register):
        register(RotaConnector)


@pytest.fixture
def rota(tmp_path, clock, fake):
    runtime = make_runtime(tmp_path / "home", plugins=[fake, RotaPlugin()], clock=clock,
                           user="alice")
    RotaConnector.answers, RotaConnector.asked = {}, []
    yield runtime
    runtime.store.close()


def _add(runtime, type_name, name):
    connectors.add(runtime, type_name, name, {"api_key": "k"})


def test_oncall_asks_connectors_with_schedules_in_turn_until_one_answers(rota):
    _add(rota, "fake", "tickets")  # keeps no schedules: never asked
    _add(rota, "rota", "first")
    _add(rota, "rota", "second")
    RotaConnector.answers = {"first": ConnectorError("timed out", retryable=True),
                             "second": OncallResult(service="api", current="jane")}
    seen = []
    found = oncall.lookup(rota, " API ", deadline=123.0, busy=_recording(seen))
    assert (found.connector, found.result.current) == ("second", "jane")
    assert seen == ["Asking first", "Asking second"]
    # one deadline for the whole look-up; the service as im names it
    assert [(name, request.service, request.deadline) for name, request in
            RotaConnector.asked] == [("first", "api", 123.0), ("second", "api", 123.0)]
    assert RotaConnector.asked[0][1].at == rota.clock()


def test_oncall_says_what_each_connector_said_when_none_answers(rota):
    _add(rota, "rota", "first")
    _add(rota, "rota", "second")
    RotaConnector.answers = {"first": ConnectorError("timed out", retryable=True),
                             "second": ConnectorError("401 Unauthorized", retryable=False)}
    with pytest.raises(ConnectorError) as raised:
        oncall.lookup(rota, "api")
    assert str(raised.value) == "first: timed out; second: 401 Unauthorized"


def test_oncall_asks_only_the_connector_named_and_checks_the_service(rota):
    _add(rota, "rota", "first")
    _add(rota, "rota", "second")
    RotaConnector.answers = {"first": OncallResult(service="db"),
                             "second": OncallResult(service="db", current="john")}
    assert oncall.lookup(rota, "db", connector="second").result.current == "john"
    assert [name for name, _ in RotaConnector.asked] == ["second"]
    with pytest.raises(NotFoundError, match="no connector named 'third'"):
        oncall.lookup(rota, "db", connector="third")
    with pytest.raises(InvalidInputError, match="give one service, not 'db,api'"):
        oncall.lookup(rota, "db,api")
    assert len(RotaConnector.asked) == 1


def test_oncall_without_a_connector_that_keeps_schedules(rota):
    with pytest.raises(NotFoundError, match="no connector with on-call schedules is configured"):
        oncall.lookup(rota, "api")
    _add(rota, "fake", "tickets")
    with pytest.raises(NotFoundError, match="no connector with on-call schedules is configured"):
        oncall.lookup(rota, "api")


def _recording(seen):
    """A Busy that records what each wait was for."""

    @contextmanager
    def busy(text, *, total=None):
        seen.append(text)
        yield lambda: None

    return busy


def test_api_tokens_are_made_listed_rotated_and_revoked_at_the_runtimes_time(runtime, clock):
    from im import tokens as stored
    from im.app import tokens

    made = tokens.create(runtime, "grafana", read_only=True)
    assert made.name == "grafana" and made.secret.startswith("im_")
    assert stored.authenticate(runtime.store, f"Bearer {made.secret}").read_only is True
    assert [(t.name, t.read_only, t.created_at) for t in tokens.list_tokens(runtime)] == [
        ("grafana", True, clock())]
    with pytest.raises(InvalidInputError, match="a token named grafana exists already"):
        tokens.create(runtime, "grafana")
    with pytest.raises(InvalidInputError, match="invalid token name 'Grafana'"):
        tokens.create(runtime, "Grafana")

    rotated = tokens.rotate(runtime, "grafana")
    assert rotated.name == "grafana" and rotated.secret != made.secret
    assert stored.authenticate(runtime.store, f"Bearer {made.secret}") is None
    assert stored.authenticate(runtime.store, f"Bearer {rotated.secret}").name == "grafana"

    tokens.revoke(runtime, "grafana")
    assert tokens.list_tokens(runtime) == []
    assert stored.authenticate(runtime.store, f"Bearer {rotated.secret}") is None
    with pytest.raises(NotFoundError, match=r"no API token named 'grafana' \(tokens: none\)"):
        tokens.rotate(runtime, "grafana")
    with pytest.raises(NotFoundError, match="no API token named 'grafana'"):
        tokens.revoke(runtime, "grafana")


def test_logs_are_read_by_component_level_text_and_time_oldest_first(runtime, clock):
    import logging
    from datetime import timedelta

    from im.app import logs
    from im.logs import install

    handler = install(runtime.store)
    try:
        logging.getLogger("im.webhook").info("event received", extra={"connector": "pd"})
        logging.getLogger("im.sync").warning("INC-7 delivery failed", extra={"status": 502})
        logging.getLogger("im.sync").debug("below the handler's level: never kept")
        # read() writes what this process logged first: no flush needed here
        every = logs.read(runtime, logs.query(level="DEBUG"))
    finally:
        logging.getLogger("im").removeHandler(handler)
        handler.close()
    assert [(line.component, line.connector, line.level, line.message) for line in every] == [
        ("webhook", "pd", "info", "event received"),
        ("sync", None, "warning", "INC-7 delivery failed")]
    assert every[1].data == {"status": 502} and every[0].id < every[1].id
    assert [line.message for line in logs.read(runtime, logs.query(level="warning"))] == [
        "INC-7 delivery failed"]
    assert [line.message for line in logs.read(runtime, logs.query(component="webhook"))] == [
        "event received"]
    assert [line.message for line in logs.read(runtime, logs.query(text="inc-7"))] == [
        "INC-7 delivery failed"]
    assert [line.message for line in logs.read(runtime, logs.query(), limit=1)] == [
        "INC-7 delivery failed"]  # the latest
    assert logs.read(runtime, logs.query(), after_id=every[1].id) == []
    later = every[1].at + timedelta(seconds=1)
    assert logs.read(runtime, logs.query(), since=later) == []
    with pytest.raises(InvalidInputError) as unknown:
        logs.query(component="web")
    assert str(unknown.value) == ("unknown component 'web'; choose from webhook, sync, server,"
                                  " cli, connector, workflows")
    with pytest.raises(InvalidInputError) as unknown:
        logs.query(level="loud")
    assert str(unknown.value) == "unknown level 'loud'; choose from debug, info, warning, error"


def test_metrics_of_a_connector_and_of_an_unknown_one(runtime):
    connectors.add(runtime, "fake", "prod-fake", {"api_key": "k"})
    figures = connectors.metrics(runtime, "prod-fake")
    assert (figures.name, figures.total_incidents, figures.sync_success_rate,
            figures.api_calls_24h) == ("prod-fake", 0, None, 0)
    with pytest.raises(NotFoundError, match="no connector named 'nope'"):
        connectors.metrics(runtime, "nope")
