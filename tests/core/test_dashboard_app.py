"""The dashboard over real HTTP (httpx against the app on 127.0.0.1)."""
import json
import socket
import threading
import time

import httpx
import pytest

from core.dashboard.app import create_app
from core.dashboard.events import EVENT_TYPES, EXAMPLES
from core.dashboard.hub import EventHub
from core.dashboard.server import ThreadedServer

pytestmark = pytest.mark.network


def read_events(url, n, headers=None, timeout=10.0, into=None):
    """The first n SSE events of a stream as (id, event, data) (comments and retry skipped)."""
    out = [] if into is None else into
    ev = {}
    with httpx.stream("GET", url + "/events", headers=headers or {}, timeout=timeout) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line == "":
                if "data" in ev:
                    out.append((int(ev["id"]), ev["event"], json.loads(ev["data"])))
                    if len(out) >= n:
                        return out
                ev = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(": ")
                ev[k] = v
    return out


def _perf(i):
    return {**EXAMPLES["perf"], "latency_p50_ms": float(i)}


@pytest.fixture
def server():
    with ThreadedServer(create_app(EventHub(ring_size=50), ping_s=1)) as srv:
        yield srv


def test_every_type_streams_with_its_name_id_and_data(server):
    published = [EXAMPLES[k] for k in EVENT_TYPES]
    n = len(EVENT_TYPES)
    assert httpx.post(server.url + "/publish", json=published).json() == {"ids": list(range(1, n + 1))}
    got = read_events(server.url, n, {"Last-Event-ID": "0"})
    assert [(i, name) for i, name, _ in got] == list(zip(range(1, n + 1), EVENT_TYPES))
    assert [data for _, _, data in got] == published


def test_last_event_id_replays_with_no_gap_and_no_duplicate(server):
    first = []
    reader = threading.Thread(target=read_events, args=(server.url, 5), kwargs={"into": first})
    reader.start()
    # Publish once the stream is subscribed: a fixed sleep lost the race on a slow machine.
    deadline = time.monotonic() + 10
    while server.app.state.hub.subscribers == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    httpx.post(server.url + "/publish", json=[_perf(i) for i in range(5)])
    reader.join(10)
    assert [i for i, _, _ in first] == [1, 2, 3, 4, 5]
    httpx.post(server.url + "/publish", json=[_perf(i) for i in range(5, 12)])   # while it is away
    again = read_events(server.url, 7, {"Last-Event-ID": "5"})
    assert [i for i, _, _ in again] == list(range(6, 13))
    assert [d["latency_p50_ms"] for _, _, d in again] == [float(i) for i in range(5, 12)]


def test_an_id_older_than_the_ring_gets_a_reset_first(server):
    httpx.post(server.url + "/publish", json=[EXAMPLES["model_metric"]] + [_perf(i) for i in range(60)])
    (i, name, data), = read_events(server.url, 1, {"Last-Event-ID": "2"})
    assert name == "reset" and i == 61 and data["last_id"] == 61
    assert data["snapshot"]["model_metric"][0]["model"] == "gru" and data["snapshot"]["perf"][0]["id"] == 61


def test_snapshot_and_health(server):
    httpx.post(server.url + "/publish", json=[EXAMPLES["perf"], _perf(7), EXAMPLES["model_metric"]])
    snap = httpx.get(server.url + "/api/snapshot").json()
    assert snap["last_id"] == 3 and snap["snapshot"]["perf"] == [{"id": 2, **_perf(7)}]
    health = httpx.get(server.url + "/healthz").json()
    assert health["ok"] and health["published"] == 3 and health["ring_size"] == 50


@pytest.mark.parametrize("body, status, reason", [
    (b'[{"type": "perf"}]', 400, "event[0].latency_p50_ms: required for 'perf'"),
    (b"not json", 400, "body: not JSON"),
    (b"[]", 400, "body: an empty list publishes nothing"),
    # Regression: 50,000-deep JSON was a 500 with a traceback.
    (b"[" * 50_000 + b"]" * 50_000, 400, "body: JSON nested too deeply"),
    (json.dumps({**EXAMPLES["perf"], "extra": 0}).encode().replace(b'"extra": 0', b'"extra": ' + b"[" * 900
                                                                 + b"]" * 900), 400, "event"),
    (json.dumps([EXAMPLES["perf"], {**EXAMPLES["prediction"], "trust": 2}]).encode(), 400,
     "event[1].trust: must be a number in [0, 1], got 2"),
    (json.dumps([EXAMPLES["perf"]] * 4000).encode(), 413, "body over 262,144 bytes"),
])
def test_a_rejected_request_publishes_nothing(server, body, status, reason):
    r = httpx.post(server.url + "/publish", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and r.json()["error"].startswith(reason)
    assert httpx.get(server.url + "/healthz").json()["last_id"] == 0


def test_a_body_over_the_limit_without_a_length_is_refused(server):
    def chunks():
        for _ in range(300):
            yield b" " * 1024
    r = httpx.post(server.url + "/publish", content=chunks())
    assert r.status_code == 413 and httpx.get(server.url + "/healthz").json()["last_id"] == 0


def test_publishing_with_a_token():
    with ThreadedServer(create_app(token="s3cret")) as srv:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = httpx.post(srv.url + "/publish", json=EXAMPLES["perf"], headers=headers)
            assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]
        assert httpx.get(srv.url + "/healthz").json()["last_id"] == 0
        r = httpx.post(srv.url + "/publish", json=EXAMPLES["perf"], headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.json() == {"ids": [1]}
        assert httpx.get(srv.url + "/").status_code == 200      # reading stays open


def test_the_page_is_ours_only_under_a_strict_policy(server):
    r = httpx.get(server.url + "/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in r.text and "http://" not in r.text and "https://" not in r.text
    for path in ("/static/app.js", "/static/app.css", "/static/vendor/uPlot.iife.min.js"):
        assert httpx.get(server.url + path).status_code == 200, path
    js = httpx.get(server.url + "/static/app.js").text
    assert "http://" not in js and "https://" not in js


def test_a_frozen_client_is_dropped_while_another_keeps_receiving():
    hub = EventHub(queue_size=16, ring_size=1000)
    with ThreadedServer(create_app(hub, send_timeout_s=2)) as srv:
        frozen = socket.socket()
        frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        frozen.connect(srv.sock.getsockname())
        frozen.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")    # and never reads again
        got = []
        reader = threading.Thread(target=read_events, args=(srv.url, 300), kwargs={"into": got, "timeout": 30})
        reader.start()
        deadline = time.monotonic() + 10
        while hub.subscribers < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        big = {"type": "telemetry", "episode_id": "e", "t_s": 0.0,
               "values": {f"guest.channel_{k:04d}": 12345.678 for k in range(700)}}     # ~25 kB each
        for i in range(30):
            r = httpx.post(srv.url + "/publish", json=[{**big, "t_s": float(10 * i + j)} for j in range(10)])
            assert r.status_code == 200
        reader.join(30)
        assert [i for i, _, _ in got] == list(range(1, 301))         # no gap for the live one
        deadline = time.monotonic() + 10
        while hub.dropped_subscribers < 1:                           # the frozen one is gone
            assert time.monotonic() < deadline, hub.stats()
            time.sleep(0.05)
        frozen.close()


def test_shutdown_with_open_streams_is_quick():
    srv = ThreadedServer(create_app(ping_s=1)).__enter__()
    ended = []

    def hold():
        try:
            read_events(srv.url, 10**6, timeout=30)
        except httpx.HTTPError:
            pass
        ended.append(time.monotonic())
    readers = [threading.Thread(target=hold) for _ in range(3)]
    for t in readers:
        t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 3
    for t in readers:
        t.join(5)
    assert len(ended) == 3 and max(ended) - t0 < 3


def test_the_listening_socket_sends_without_delay():
    """Regression: a keep-alive publish waited ~40 ms on the client's delayed
    ACK (headers and body sent apart); accepted sockets inherit TCP_NODELAY."""
    from core.dashboard.server import bind
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()


def test_a_web_page_of_another_origin_cannot_publish(server):
    """Regression: a text/plain POST from any page open in the researcher's
    browser (`Origin: http://evil.example`) was accepted."""
    body = json.dumps(EXAMPLES["perf"])
    r = httpx.post(server.url + "/publish", content=body, headers={"content-type": "text/plain",
                                                                  "origin": "http://evil.example"})
    assert r.status_code == 403 and "another origin (http://evil.example)" in r.json()["error"]
    assert httpx.get(server.url + "/healthz").json()["last_id"] == 0
    own = server.url.rstrip("/")                      # the dashboard page's own origin may publish
    assert httpx.post(server.url + "/publish", content=body, headers={"origin": own}).status_code == 200


def test_a_loopback_server_answers_only_to_loopback_names():
    """Regression: any Host header was accepted (DNS rebinding: a page of
    evil.example whose name resolves to 127.0.0.1 could read and publish)."""
    from core.dashboard.app import LOOPBACK_HOSTS
    with ThreadedServer(create_app(EventHub(ring_size=50), allowed_hosts=LOOPBACK_HOSTS)) as srv:
        assert httpx.get(srv.url + "/healthz", headers={"host": "evil.example"}).status_code == 400
        r = httpx.post(srv.url + "/publish", json=EXAMPLES["perf"], headers={"host": "evil.example:8447"})
        assert r.status_code == 400 and httpx.get(srv.url + "/healthz").json()["last_id"] == 0
        port = srv.url.rstrip("/").rsplit(":", 1)[1]
        assert httpx.get(srv.url + "/healthz", headers={"host": f"localhost:{port}"}).status_code == 200


def test_an_event_over_its_size_limit_is_refused(server):
    from core.dashboard.hub import MAX_EVENT_BYTES
    big = {"type": "telemetry", "episode_id": "ep", "t_s": 1.0,
           "values": {f"guest.channel_{c:05d}": float(c) for c in range(2_000)}}
    r = httpx.post(server.url + "/publish", json=[EXAMPLES["perf"], big])
    assert r.status_code == 413
    assert r.json()["error"].startswith("event[1]: ") and f"{MAX_EVENT_BYTES:,}-byte limit" in r.json()["error"]
    assert httpx.get(server.url + "/healthz").json()["last_id"] == 0


def test_the_snapshot_is_bounded_whatever_keys_are_published():
    """Regression: a snapshot slot per invented checkpoint name grew without end."""
    from core.dashboard.hub import SNAPSHOT_SLOTS
    hub = EventHub()
    hub.publish([{**EXAMPLES["model_metric"], "model": f"m{i}"} for i in range(SNAPSHOT_SLOTS * 3)])
    slots = hub.snapshot()["model_metric"]
    assert len(slots) == SNAPSHOT_SLOTS
    assert slots[-1]["model"] == f"m{SNAPSHOT_SLOTS * 3 - 1}"     # the most recent kept
    hub.publish([{**EXAMPLES["model_metric"], "model": f"m{SNAPSHOT_SLOTS * 2}"}])
    assert hub.snapshot()["model_metric"][-1]["model"] == f"m{SNAPSHOT_SLOTS * 2}"


def test_a_slow_snapshot_never_stalls_other_requests(monkeypatch):
    """Regression: `GET /api/snapshot` of a full ring took 6-9 s on the event
    loop, and a `/healthz` waited 4.4 s behind it."""
    import core.dashboard.hub as hub_mod
    real = hub_mod.encode_state

    def slow(parts):
        time.sleep(1.5)
        return real(parts)
    monkeypatch.setattr(hub_mod, "encode_state", slow)
    with ThreadedServer(create_app(EventHub())) as srv:
        httpx.post(srv.url + "/publish", json=[EXAMPLES["perf"]])
        done = {}
        t = threading.Thread(target=lambda: done.update(snap=httpx.get(srv.url + "/api/snapshot", timeout=10)))
        t.start()
        time.sleep(0.2)                             # the snapshot is being encoded
        t0 = time.monotonic()
        assert httpx.get(srv.url + "/healthz", timeout=10).status_code == 200
        waited = time.monotonic() - t0
        t.join()
    assert done["snap"].json()["snapshot"]["perf"][0]["id"] == 1
    assert waited < 1.0
