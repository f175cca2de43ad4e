"""`im serve` on the open internet (issue #16): what an attacker on loopback can send, and what
it must not cost. Every flood here is bounded in requests and in time."""

import json
import secrets
import time
from collections import Counter

import httpx
import pytest

from im.testing import FakePlugin, make_runtime, run_cli, serve, serve_app

FLOOD_SECONDS = 20.0  # no flood of this module runs longer, whatever the machine


def with_fake_connector(tmp_path, server_settings):
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.json").write_text(json.dumps({"server": server_settings}))
    runtime = make_runtime(home, plugins=[FakePlugin()])
    result = run_cli(runtime, ["connector", "add", "fake", "f", "--config",
                               '{"api_key": "k", "enable_webhook": true,'
                               ' "sync_direction": "bidirectional"}'])
    assert result.exit_code == 0, result.output
    return runtime


RANDOM_NAMES = 2000


@pytest.mark.parametrize("server_settings", [
    {"webhook_rate_limit": 0},  # every name reaches the connector lookup
    {"webhook_refused_limit": 1},  # nearly every name is answered 429
    {"webhook_allow": ["192.0.2.0/24"]},  # every name is answered 403
], ids=["no-limit", "refusals-limited", "not-allowed"])
def test_random_connector_names_leave_metrics_and_the_connector_cache_flat(
        tmp_path, server_settings):
    from im.server import create_app

    runtime = with_fake_connector(tmp_path, server_settings)
    app = create_app(runtime)
    statuses: Counter[int] = Counter()
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + FLOOD_SECONDS

        def flood(count):
            for _ in range(count):
                assert time.monotonic() < deadline, "the flood took too long"
                name = secrets.token_hex(8)
                statuses[client.post(f"/connectors/{name}/webhook", content=b"{}"
                                     ).status_code] += 1

        flood(50)
        before = len(client.get("/metrics").content)
        flood(RANDOM_NAMES)
        after = len(client.get("/metrics").content)
        assert client.get("/health").status_code == 200
    runtime.store.close()
    assert set(statuses) <= {403, 404, 429}, statuses
    # a counter's value grows by a few digits; a series per name would be ~100 bytes each
    assert after - before < 1024, (before, after)
    assert len(app.state["connectors"]) <= 1  # `f` at most, never a random name


def test_unknown_connector_names_are_not_counted_by_name(tmp_path):
    """Labels of /metrics come from configured connectors only; refusals of others are counted
    by reason."""
    from im.server import create_app

    runtime = with_fake_connector(tmp_path, {"webhook_allow": ["192.0.2.0/24"]})
    app = create_app(runtime)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        for name in ("nope", "f"):
            assert client.post(f"/connectors/{name}/webhook", content=b"{}").status_code == 403
        metrics = client.get("/metrics").text
    runtime.store.close()
    assert 'connector="nope"' not in metrics
    assert 'im_webhook_requests_total{connector="f",outcome="forbidden"} 1.0' in metrics
    assert 'im_webhook_refused_total{reason="forbidden"} 2.0' in metrics


def test_logs_filter_takes_like_wildcards_literally(runtime):
    """`im logs --filter %` finds the lines with a percent sign, not every line."""
    import logging

    from im.logs import install

    handler = install(runtime.store)
    try:
        log = logging.getLogger("im.server")
        log.warning("disk 97% full")
        log.warning("nothing special here")
        log.warning("file a_b.txt")
        log.warning("file axb.txt")
        handler.flush()
        for pattern, expected in (("%", ["disk 97% full"]), ("a_b", ["file a_b.txt"]),
                                  ("\\", [])):
            result = run_cli(runtime, ["logs", "--filter", pattern])
            assert result.exit_code == 0, result.output
            lines = [line for line in result.stdout.splitlines() if line.strip()]
            assert [m for m in ("disk 97% full", "nothing special here", "file a_b.txt",
                                "file axb.txt") if any(m in line for line in lines)] == expected
    finally:
        logging.getLogger("im").removeHandler(handler)
        handler.close()


@pytest.mark.parametrize(("header", "value", "client"), [
    ("X-Forwarded-For", "203.0.113.7", "203.0.113.7"),
    ("X-Forwarded-For", "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # left: the client's say
    ("X-Forwarded-For", "203.0.113.7, 10.0.0.3", "203.0.113.7"),  # a second trusted proxy
    ("X-Forwarded-For", "10.0.0.4, 10.0.0.3", "10.0.0.4"),  # proxies all the way
    ("X-Forwarded-For", "garbage", "127.0.0.1"),  # not an address: the proxy's own
    ("X-Forwarded-For", "203.0.113.7:4711", "203.0.113.7"),
    ("X-Forwarded-For", "", "127.0.0.1"),
    ("Forwarded", 'for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711"',
     "2001:db8:cafe::17"),
    ("Forwarded", "for=unknown", "127.0.0.1"),
    ("Forwarded", "for=192.0.2.60;by=10.0.0.3", "192.0.2.60"),
])
def test_the_client_behind_a_trusted_proxy(header, value, client):
    from im.server.guard import ClientAddress

    address = ClientAddress({"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"],
                             "forwarded_header": header})
    raw = [(b"host", b"x"), (header.lower().encode(), value.encode())]
    assert address("127.0.0.1", raw) == client
    # from a peer that is not a trusted proxy, the header is never read
    assert address("198.51.100.9", raw) == "198.51.100.9"
    # the other header is not read either: only the one the proxy writes
    other = "forwarded" if header == "X-Forwarded-For" else "x-forwarded-for"
    assert address("127.0.0.1", [(other.encode(), b"203.0.113.99")]) == "127.0.0.1"


def test_bad_proxy_settings_are_refused_by_name(tmp_path, new_database):
    from im.errors import ImError
    from im.server import create_app

    for settings, message in (
            ({"trusted_proxies": ["not-an-address"]},
             "settings server.trusted_proxies: 'not-an-address' does not appear to be an IPv4"
             " or IPv6 network"),
            ({"forwarded_header": "X-Real-IP"},
             "settings server.forwarded_header: 'X-Real-IP' is neither X-Forwarded-For nor"
             " Forwarded"),
            ({"webhook_refused_limit": "many"},
             "settings server.webhook_refused_limit: 'many' is not a number")):
        new_database()  # each home a database of its own (on PostgreSQL too)
        runtime = with_fake_connector(tmp_path / str(len(message)), settings)
        with pytest.raises(ImError) as refused:
            create_app(runtime)
        assert str(refused.value) == message
        runtime.store.close()


def test_refusals_from_many_sources_are_logged_in_bounded_lines(caplog):
    """More sources than the log tells apart are counted together as "other sources"."""
    from im.server import guard

    refusals = guard.RefusalLog(interval=3600)
    sources = guard.MAX_REFUSAL_KEYS + 500
    with caplog.at_level("WARNING", logger="im.webhook"):
        for round_ in range(3):
            for n in range(sources):
                refusals.record(f"198.51.{n // 256}.{n % 256}", "bad_signature", None, False)
        refusals.flush()
    lines = [r for r in caplog.records if r.name == "im.webhook"]
    # one line at each known source's first refusal, one for the first of the others, then
    # one count per key
    assert len(lines) <= 2 * (guard.MAX_REFUSAL_KEYS + 1)
    assert sum(getattr(r, "refused", 0) for r in lines) + guard.MAX_REFUSAL_KEYS + 1 == (
        3 * sources)
    [others] = [r for r in lines if r.getMessage().startswith(
        "webhook from other sources refused ")]
    assert others.refused == 3 * 500 - 1


def _raw_request(url, head: bytes, timeout=10.0) -> bytes:
    """Send `head` on a fresh connection; what came back before the server closed it."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    answer = b""
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        try:
            sock.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed after the refusal, before all of it was sent
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def test_a_huge_or_crowded_request_head_is_refused_431_without_being_buffered(tmp_path):
    """Eight requests with a 4 MB header each (50 MB was seen to take the server to 590 MB):
    each is answered 431 after at most 16 KiB of its head; so is a head of 500 headers."""
    import resource

    from im.server import create_app

    runtime = with_fake_connector(tmp_path, {})
    with serve_app(create_app(runtime)) as url:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        huge = b"X-Pad: " + b"a" * (4 * 1024 * 1024) + b"\r\n"
        for _ in range(8):
            answer = _raw_request(url, b"POST /connectors/f/webhook HTTP/1.1\r\nHost: x\r\n"
                                  + huge + b"\r\n")
            assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        crowded = b"".join(b"X-H%d: v\r\n" % n for n in range(500))
        answer = _raw_request(url, b"GET /health HTTP/1.1\r\nHost: x\r\n" + crowded + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB
        assert grown < 32 * 1024, f"the server grew by {grown} KiB"
        # an ordinary request on the next connection is answered as ever
        assert httpx.get(f"{url}/health/live").json() == {"status": "ok"}
        ordinary = _raw_request(url, b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
                                     b"Connection: close\r\n\r\n")
        assert ordinary.startswith(b"HTTP/1.1 200 ")
    runtime.store.close()


def test_a_client_trickling_its_head_is_cut_off(tmp_path, monkeypatch):
    """A head that takes longer than HEAD_SECONDS to arrive (a byte now and then) loses its
    connection; a client that sends its request at once is answered as ever."""
    import socket
    from urllib.parse import urlsplit

    from im.server import create_app, protocol

    monkeypatch.setattr(protocol, "HEAD_SECONDS", 0.5, raising=False)
    runtime = with_fake_connector(tmp_path, {})
    with serve_app(create_app(runtime)) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as slow:
            slow.sendall(b"GET /health/live HTTP/1.1\r\n")
            started, closed = time.monotonic(), False
            for _ in range(50):  # a byte every 0.1 s, 5 s at most
                try:
                    slow.sendall(b"X")
                    slow.settimeout(0.1)
                    if slow.recv(1024) == b"":
                        closed = True
                        break
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
            assert closed, "the trickling client kept its connection"
            assert time.monotonic() - started < 4
        assert httpx.get(f"{url}/health/live").json() == {"status": "ok"}
    runtime.store.close()


def test_a_head_and_a_large_body_in_one_read_are_told_apart(tmp_path):
    """Only the head counts against the head's bound: a small head followed at once by a
    body of 200 KB in the same write is an ordinary request (its size is the body cap's
    business: 1 MiB, answered 413 past it)."""
    from im.server import create_app

    runtime = with_fake_connector(tmp_path, {})
    with serve_app(create_app(runtime)) as url:
        body = b"x" * 200_000
        answer = _raw_request(url, b"POST /connectors/f/webhook HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                                   % len(body) + body)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]  # not signed: refused as such
        too_big = b"x" * (1024 * 1024 + 1)
        answer = _raw_request(url, b"POST /connectors/f/webhook HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                                   % len(too_big) + too_big)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    runtime.store.close()


def _connect(url, timeout=5.0):
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def _read_until_closed(sock, limit=5.0) -> bytes:
    """What the server sent before it closed the connection, waiting `limit` s at most."""
    answer, deadline = b"", time.monotonic() + limit
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        answer += chunk
    return answer


def _closed(sock) -> bool:
    """Whether the server has closed this connection (a client that sent nothing gets no
    bytes either way: an open one times out, a closed one reads the end)."""
    sock.settimeout(0.2)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_body_that_comes_too_slowly_is_answered_408_and_cut_off(tmp_path, monkeypatch):
    from im.server import create_app, protocol

    monkeypatch.setattr(protocol, "BODY_SECONDS", 0.5)
    runtime = with_fake_connector(tmp_path, {})
    with serve_app(create_app(runtime)) as url, _connect(url) as slow:
        started = time.monotonic()
        slow.sendall(b"POST /connectors/f/webhook HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 100\r\n\r\n0123456789")  # 10 bytes of 100, then none
        answer = _read_until_closed(slow)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert answer.endswith(b"The request body came too slowly.\n")
        assert time.monotonic() - started < 4
        assert httpx.get(f"{url}/health/live").json() == {"status": "ok"}
    runtime.store.close()


@pytest.mark.parametrize(("server_settings", "path", "status"), [
    ({"webhook_allow": ["192.0.2.0/24"]}, "/connectors/f/webhook", 403),  # not from there
    ({}, "/connectors/nobody/webhook", 404),  # no such connector
])
def test_a_refused_sender_is_answered_on_its_head_before_any_body_is_read(
        tmp_path, server_settings, path, status):
    """The source allowlist and the connector's existence are decided on the head alone: a
    refused sender announcing a 1 MB body is answered at once, without the server waiting for
    (or reading) a byte of it."""
    from im.server import create_app

    runtime = with_fake_connector(tmp_path, server_settings)
    with serve_app(create_app(runtime)) as url, _connect(url) as sender:
        sender.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
                       % path.encode())
        sender.settimeout(3)
        answer = sender.recv(65536)
        assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    runtime.store.close()


def test_at_the_connection_cap_the_longest_waiting_client_makes_room(tmp_path, caplog):
    """`server.max_connections: 5`: ten clients that connect and send nothing do not lock
    anyone out; each newcomer takes the place of the one that has waited longest, and the cap
    is logged once with its counts."""
    from im.server import create_app

    runtime = with_fake_connector(tmp_path, {"max_connections": 5})
    with serve_app(create_app(runtime)) as url:
        idle = [_connect(url) for _ in range(10)]
        try:
            time.sleep(0.2)
            for _ in range(3):  # a fresh connection each time, at the cap each time
                with httpx.Client(base_url=url, timeout=5) as client:
                    assert client.get("/health/live").json() == {"status": "ok"}
            closed = [_closed(sock) for sock in idle]
            # the 5 idle clients over the cap, then the first request, made room: the oldest
            # idle clients lost their connections; the first request's place, free once it
            # left, served the next ones; the newest idle clients kept theirs
            assert closed == [True] * 6 + [False] * 4, closed
        finally:
            for sock in idle:
                sock.close()
    runtime.store.close()
    warned = [r.getMessage() for r in caplog.records if "the cap (server.max_connections)"
              in r.getMessage()]
    assert len(warned) == 1, warned
    assert warned[0].startswith("5 client connections open, the cap")


def test_a_bad_connection_cap_is_refused_by_name(tmp_path):
    from im.errors import ImError
    from im.server import create_app

    runtime = with_fake_connector(tmp_path, {"max_connections": "many"})
    with pytest.raises(ImError, match=r"^settings server.max_connections: must be a whole"
                                       r" number of at least 1 \(client connections per"
                                       r" process\), not 'many'$"):
        create_app(runtime)
    runtime.store.close()


@pytest.fixture
def small_disk(tmp_path):
    """A filesystem of 4 MiB of its own (tmpfs), so that a test can fill it or make it read
    only for real. Mounting needs root; elsewhere the test is skipped."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"a small filesystem of its own needs mount (root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk):
    import os

    fd = os.open(disk / "filler", os.O_CREAT | os.O_WRONLY)
    try:
        for _ in range(2048):  # 4 MiB in 2 KiB writes at most
            os.write(fd, b"x" * 2048)
    except OSError as error:
        assert error.errno == 28  # ENOSPC: full
    else:
        raise AssertionError("the disk did not fill")
    finally:
        os.close(fd)


@pytest.mark.sqlite_only  # the database file's own disk; PostgreSQL's is the server's
def test_readiness_on_a_real_full_disk_and_a_read_only_one(small_disk):
    """`/health` says `unavailable` (503) as soon as the database's disk is full, and again
    when it is mounted read only, with SQLite's own words for a token's holder; `ok` again
    once there is space. Liveness answers throughout."""
    import subprocess

    from im.server import READINESS_SECONDS

    runtime = make_runtime(small_disk / "home")
    token = run_cli(runtime, ["api-token", "create", "monitor", "--read-only"]).stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    with serve(runtime) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}
        _fill(small_disk)
        time.sleep(READINESS_SECONDS)  # the last answer is reused this long
        full = client.get("/health")
        assert (full.status_code, full.json()) == (503, {"status": "unavailable"})
        assert client.get("/health", headers=auth).json() == {
            "status": "unavailable", "reasons": ["database: database or disk is full"]}
        assert client.get("/health/live").json() == {"status": "ok"}

        (small_disk / "filler").unlink()
        time.sleep(READINESS_SECONDS)
        assert client.get("/health").json() == {"status": "ok"}

    # The same database through a read-only view of the disk (a file held open for writing
    # keeps a filesystem from being remounted read only), as after an I/O error remount.
    view = small_disk.parent / "read-only"
    view.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(small_disk), str(view)], check=True)
    try:
        reader = make_runtime(view / "home")
        with serve(reader) as url, httpx.Client(base_url=url, timeout=10) as client:
            read_only = client.get("/health", headers=auth)
            assert read_only.status_code == 503, read_only.text
            [reason] = read_only.json()["reasons"]
            assert reason.startswith("database: ") and "readonly" in reason, reason
            assert client.get("/health/live").json() == {"status": "ok"}
        reader.store.close()
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
    runtime.store.close()


def test_a_head_whose_end_spans_two_reads_is_told_from_the_body_after_it(tmp_path):
    """The blank line that ends a head, cut between two reads (`\\r\\n\\r` | `\\n` + 20 KB
    of body): the body is not counted against the head's 16 KiB."""
    import socket

    from im.server import create_app

    runtime = with_fake_connector(tmp_path, {})
    body = b"x" * 20_000
    with serve_app(create_app(runtime)) as url, _connect(url) as sender:
        sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for part in (b"POST /connectors/f/webhook HTTP/1.1\r\nHost: x\r\n",
                     b"Content-Length: %d\r\nConnection: close\r\n\r" % len(body),
                     b"\n" + body):
            sender.sendall(part)
            time.sleep(0.1)  # each part a read of its own
        answer = _read_until_closed(sender)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]  # not signed: refused as such
    runtime.store.close()


def test_clients_that_never_read_their_answers_do_not_keep_the_cap_full(tmp_path,
                                                                        monkeypatch):
    """`max_connections: 3`, and three clients that pipeline thousands of requests and never
    read the answers: their answers fill their buffers, which a close never drains. Once
    they have waited SEND_SECONDS they are cut off, and a newcomer is answered again (it
    was turned away for good)."""
    import socket

    from im.server import create_app, protocol

    monkeypatch.setattr(protocol, "SEND_SECONDS", 1.0)
    runtime = with_fake_connector(tmp_path, {"max_connections": 3})
    flood = b"GET /health/live HTTP/1.1\r\nHost: a\r\n\r\n" * 20_000
    with serve_app(create_app(runtime)) as url:
        stuck = []
        for _ in range(3):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(_connect(url).getpeername())
            sock.settimeout(2)
            try:
                sock.sendall(flood)
            except (TimeoutError, OSError):
                pass  # the server stopped reading: its answers wait for us
            stuck.append(sock)
        try:
            deadline, answered = time.monotonic() + 15, False
            while time.monotonic() < deadline and not answered:
                try:
                    answered = httpx.get(f"{url}/health/live", timeout=1).status_code == 200
                except httpx.HTTPError:
                    time.sleep(0.2)
            assert answered, "the stuck readers kept every place"
        finally:
            for sock in stuck:
                sock.close()
    runtime.store.close()


@pytest.mark.parametrize("request_bytes", [
    # a chunked body's trailers: headers after the body, once buffered whole
    b"POST /connectors/f/webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\n{}\r\n0\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n",
    # a second, pipelined request whose head arrives in the read that ends the first
    b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /health/live HTTP/1.1\r\nX-Pad: "
    + b"a" * 100_000 + b"\r\n\r\n",
], ids=["trailers", "pipelined-head"])
def test_no_head_escapes_the_bound_by_coming_after_a_body_or_another_request(
        tmp_path, request_bytes):
    from im.server import create_app

    runtime = with_fake_connector(tmp_path, {})
    with serve_app(create_app(runtime)) as url:
        answer = _raw_request(url, request_bytes)
        assert b"HTTP/1.1 431 " in answer, answer[:300]
        assert httpx.get(f"{url}/health/live").json() == {"status": "ok"}
    runtime.store.close()


def test_a_split_blank_line_then_a_body_holding_a_blank_line_is_an_ordinary_request(tmp_path):
    """The head's blank line cut between two reads, and a 20 KB body that itself holds a
    blank line: only the head counts (the body's blank line was once taken for the head's
    end, and 20 KB of body for head)."""
    import socket

    from im.server import create_app

    runtime = with_fake_connector(tmp_path, {})
    body = b"x" * 20_000 + b"\r\n\r\n" + b"y" * 100
    with serve_app(create_app(runtime)) as url, _connect(url) as sender:
        sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for part in (b"POST /connectors/f/webhook HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r" % len(body),
                     b"\n" + body):
            sender.sendall(part)
            time.sleep(0.1)
        answer = _read_until_closed(sender)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    runtime.store.close()


def test_a_blank_line_on_an_idle_kept_alive_connection_starts_the_head_clock(
        tmp_path, monkeypatch):
    from im.server import create_app, protocol

    monkeypatch.setattr(protocol, "HEAD_SECONDS", 0.5)
    runtime = with_fake_connector(tmp_path, {})
    with serve_app(create_app(runtime)) as url, _connect(url) as client:
        client.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        client.settimeout(2)
        assert client.recv(65536).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        client.sendall(b"\r\n")  # cancels the keep-alive timer; begins no request
        assert _read_until_closed(client, limit=5) == b""
        assert time.monotonic() - started < 4, "the connection was held"
    runtime.store.close()
