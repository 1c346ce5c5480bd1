"""Producers post through Publisher: in order, retrying a server that is not up yet."""
import socket
import threading
import time

import pytest

from core.dashboard.app import create_app
from core.dashboard.events import EXAMPLES
from core.dashboard.hub import EventHub
from core.dashboard.server import ThreadedServer
from core.live.publish import PublishError, Publisher

pytestmark = pytest.mark.network


def _perf(i):
    return {**EXAMPLES["perf"], "latency_p50_ms": float(i)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_publish_retries_a_server_that_starts_late_and_keeps_the_order():
    port = _free_port()
    pub = Publisher(f"http://127.0.0.1:{port}")
    done = []

    def produce():
        for i in range(20):
            assert pub.send([_perf(i)])
        done.append(True)
    t = threading.Thread(target=produce, daemon=True)
    t.start()
    deadline = time.monotonic() + 10     # the first sends find nothing listening
    while pub.retries < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not done and pub.retries >= 2
    hub = EventHub()
    with ThreadedServer(create_app(hub), port=port):
        t.join(timeout=20)
        assert done == [True]
        got = [ev["latency_p50_ms"] for ev in hub.events() if ev["type"] == "perf"]
    assert pub.sent == 20
    assert got == [float(i) for i in range(20)]


def test_a_refused_event_is_an_error_not_a_retry():
    hub = EventHub()
    with ThreadedServer(create_app(hub, token="s3cret")) as srv:
        with pytest.raises(PublishError, match=r"refused the events \(401\)"):
            Publisher(srv.url).send([_perf(1)])
        with pytest.raises(PublishError, match=r"refused the events \(400\).*latency_p50_ms"):
            Publisher(srv.url, token="s3cret").send([{**_perf(1), "latency_p50_ms": "fast"}])
        assert Publisher(srv.url, token="s3cret").send([_perf(2)])


def test_a_stopped_publisher_gives_up():
    stop = threading.Event()
    pub = Publisher(f"http://127.0.0.1:{_free_port()}", stop=stop)
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    assert pub.send([_perf(1)]) is False
    assert time.monotonic() - t0 < 3


def test_a_dashboard_that_is_not_there_is_given_up_after_retry_for_and_each_retry_said():
    """Regression (issue 22): `publish metrics --to http://127.0.0.1:8499` with
    nothing listening printed nothing for minutes."""
    said = []
    pub = Publisher(f"http://127.0.0.1:{_free_port()}", retry_for_s=1.0, on_retry=lambda e, w: said.append((e, w)))
    t0 = time.monotonic()
    with pytest.raises(PublishError, match=r"gave up after \d+ s of retries \(--retry-for 1\): .*refused"):
        pub.send([_perf(1)])
    assert time.monotonic() - t0 < 3
    assert len(said) >= 3 and all("refused" in e for e, _ in said)
    assert [w for _, w in said[:3]] == [0.1, 0.2, 0.5]


def test_publish_refuses_a_url_without_a_scheme_and_says_each_retry(cli, lab_home, tmp_path):
    """Regression (issue 22): `--to lab-pi.local:8447` (no scheme) hung silently."""
    result = cli("publish", "metrics", "--to", "lab-pi.local:8447")
    assert result.exit_code == 2
    assert "lab-pi.local:8447 is not an http(s) URL: write it as http://lab-pi.local:8447" in \
        " ".join(result.output.split())
    report = lab_home.artifacts / "eval" / "host" / "gbt_realistic" / "test-episode-b50-s0" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(__import__("json").dumps({
        "model": "gbt", "mode": "realistic", "split": "host", "part": "test", "macro_f1": 0.9,
        "macro_f1_ci": [0.8, 0.95], "accuracy": 0.9, "windows": 10, "episodes": 2, "per_profile": []}))
    result = cli("publish", "metrics", "--to", f"http://127.0.0.1:{_free_port()}", "--retry-for", "1")
    assert result.exit_code == 1
    assert result.stderr.count("Warning: dashboard not reached") >= 3
    assert "gave up after" in result.stderr.splitlines()[-1]
