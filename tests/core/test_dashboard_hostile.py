"""A dashboard no client can stop or swell (issue 32): bad ids and numbers
are a 400, slow or idle clients are closed, connections are capped,
snapshots never hold the loop, and a producer never waits past its deadline."""
import socket
import threading
import time

import httpx
import pytest

from core.dashboard.app import create_app
from core.dashboard.events import EXAMPLES
from core.dashboard.hub import EventHub
from core.dashboard.server import ThreadedServer
from core.live.publish import PublishError, Publisher

pytestmark = pytest.mark.network


@pytest.fixture
def server():
    with ThreadedServer(create_app(EventHub(ring_size=50), ping_s=1)) as srv:
        yield srv


@pytest.mark.parametrize("where", [{"params": {"after": "²"}}, {"headers": {"Last-Event-ID": "²".encode()}},
                                   {"params": {"after": "9" * 40}}, {"params": {"after": "-3"}}])
def test_an_id_that_is_no_id_is_a_400(server, where):
    """Regression: `?after=²` and `Last-Event-ID: ²` (digits to isdigit, not to int) gave a 500."""
    resp = httpx.get(server.url + "/events", timeout=5, **where)
    assert resp.status_code == 400 and "not an event id" in resp.json()["error"]


def test_a_number_no_float_can_hold_is_a_400(server):
    """Regression: a 401-digit integer in a number field gave a 500 with a traceback."""
    body = '{"type": "perf", "latency_p50_ms": 1%s, "latency_p99_ms": 1, "windows_per_s": 1, "rss_mb": 1, ' \
           '"cpu_percent": 1}' % ("0" * 400)
    resp = httpx.post(server.url + "/publish", content=body, timeout=5)
    assert resp.status_code == 400 and "event.latency_p50_ms: must be a finite number" in resp.json()["error"]


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True


def test_a_client_that_never_finishes_its_request_head_is_closed(monkeypatch):
    """Regression: no header timeout: slow clients were never closed."""
    import core.dashboard.server as server_mod
    monkeypatch.setattr(server_mod, "HEADER_TIMEOUT_S", 0.5)
    with ThreadedServer(create_app(EventHub())) as srv:
        host, port = srv.sock.getsockname()[:2]
        idle = socket.create_connection((host, port))
        dripping = socket.create_connection((host, port))
        dripping.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")        # never the blank line
        assert _closed_within(idle, 5) and _closed_within(dripping, 5)
        # A whole request is answered as ever, and a stream stays open past the timeout.
        assert httpx.get(srv.url + "/healthz", timeout=5).status_code == 200
        with httpx.stream("GET", srv.url + "/events", timeout=5) as resp:
            time.sleep(1.0)
            httpx.post(srv.url + "/publish", json=EXAMPLES["perf"], timeout=5)
            assert any("perf" in line for line in resp.iter_lines())


def test_connections_are_capped(monkeypatch):
    """Regression: 1,100 slow clients used up a Pi's 1,024 open files."""
    import core.dashboard.server as server_mod
    monkeypatch.setattr(server_mod, "MAX_CONNECTIONS", 5)
    with ThreadedServer(create_app(EventHub())) as srv:
        host, port = srv.sock.getsockname()[:2]
        held = [socket.create_connection((host, port)) for _ in range(5)]
        time.sleep(0.3)
        extra = socket.create_connection((host, port))
        assert _closed_within(extra, 5)
        for s in held:
            s.close()
        time.sleep(0.3)
        assert httpx.get(srv.url + "/healthz", timeout=5).status_code == 200


def test_a_body_dripped_a_byte_at_a_time_is_a_408(monkeypatch):
    import core.dashboard.app as app_mod
    monkeypatch.setattr(app_mod, "BODY_TIMEOUT_S", 0.5)
    with ThreadedServer(create_app(EventHub())) as srv:
        host, port = srv.sock.getsockname()[:2]
        s = socket.create_connection((host, port))
        s.sendall(b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{")
        s.settimeout(5)
        assert s.recv(4096).startswith(b"HTTP/1.1 408")


def test_snapshots_in_a_loop_never_hold_up_publishing(server):
    """Regression: four clients looping on snapshots took a publish's p99
    from 7 to 616 ms and /healthz to 3 s (each snapshot encoded on the loop)."""
    big = {**EXAMPLES["telemetry"], "values": {f"guest.c{i:04d}": float(i) for i in range(800)}}
    httpx.post(server.url + "/publish", json=[big] * 30, timeout=10)
    stop = threading.Event()

    def loop():
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                c.get(server.url + "/api/snapshot")
    threads = [threading.Thread(target=loop) for _ in range(4)]
    for t in threads:
        t.start()
    took = []
    try:
        with httpx.Client(timeout=10) as c:
            for i in range(40):
                t0 = time.perf_counter()
                assert c.post(server.url + "/publish", json={**EXAMPLES["perf"], "rss_mb": float(i)}).status_code == 200
                took.append(time.perf_counter() - t0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert sorted(took)[int(len(took) * 0.95)] < 0.5


def test_a_publisher_gives_up_at_its_deadline_against_a_server_that_drips(tmp_path):
    """Regression: `publish --retry-for 5` hung past 60 s against a server
    that dripped its response (each read within the socket timeout)."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    stop = threading.Event()

    def drip():
        while not stop.is_set():
            try:
                lst.settimeout(0.2)
                conn, _ = lst.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:                  # closed: the test is over
                return
            threading.Thread(target=_drip_to, args=(conn, stop), daemon=True).start()
    threading.Thread(target=drip, daemon=True).start()
    pub = Publisher(f"http://127.0.0.1:{lst.getsockname()[1]}", timeout_s=2.0, retry_for_s=3.0)
    t0 = time.monotonic()
    try:
        with pytest.raises(PublishError, match="gave up after"):
            pub.send([EXAMPLES["perf"]])
    finally:
        stop.set()
        lst.close()
    assert time.monotonic() - t0 < 6


def _drip_to(conn: socket.socket, stop: threading.Event) -> None:
    conn.settimeout(0.5)
    try:
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000:
            if stop.is_set():
                break
            conn.sendall(bytes([byte]))
            time.sleep(0.3)
    except OSError:
        pass
    finally:
        conn.close()
