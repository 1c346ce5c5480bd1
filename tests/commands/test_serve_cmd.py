"""`cis490 serve --dashboard` as a user runs it: a process, Ctrl-C, a notebook record."""
import json
import signal
import threading
import time

import httpx
import pytest

from core.dashboard.events import EXAMPLES
from tests.serving import start_serve

pytestmark = pytest.mark.network


def _start(lab_home, *args):
    return start_serve(lab_home.home, *args)


def test_serve_stops_quickly_with_a_browser_connected_and_records_the_run(lab_home):
    proc, url, token = _start(lab_home, "--dashboard", "--port", "0")
    assert token is None and url.startswith("http://127.0.0.1:")
    assert httpx.post(url + "/publish", json=EXAMPLES["perf"]).json() == {"ids": [1]}
    streaming = threading.Event()

    def browser():
        with httpx.stream("GET", url + "/events", timeout=30) as resp:
            streaming.set()
            for _ in resp.iter_lines():
                pass
    threading.Thread(target=browser, daemon=True).start()
    assert streaming.wait(10)
    time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 3, "Ctrl-C must stop the server in under 3 s"
    assert proc.returncode == 0, (out, err)
    assert "Stopped: 1 events published." in out and err == ""
    rec = json.loads(lab_home.notebook.read_text().splitlines()[-1])
    assert rec["command"] == "serve" and rec["status"] == "ok" and rec["metrics"]["events_published"] == 1


def test_off_loopback_publishing_needs_the_printed_token(lab_home):
    proc, url, token = _start(lab_home, "--dashboard", "--host", "0.0.0.0", "--port", "0")
    try:
        local = url.replace("0.0.0.0", "127.0.0.1")
        assert token and httpx.post(local + "/publish", json=EXAMPLES["perf"]).status_code == 401
        r = httpx.post(local + "/publish", json=EXAMPLES["perf"], headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert httpx.get(local + "/api/snapshot").json()["last_id"] == 1    # reading stays open
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


def test_serve_needs_dashboard_and_a_free_port(cli, lab_home):
    result = cli("serve")
    assert result.exit_code == 2 and "nothing to serve: pass --dashboard" in result.stderr
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = cli("serve", "--dashboard", "--port", str(port))
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: cannot listen on 127.0.0.1:{port} (Address already in use); "
                                     "pass another --port or --host")


def test_serve_replays_held_out_episodes_with_live_predictions(lab_home, extracted_lab, tmp_path_factory):
    from tests.labs import install_lab, trained_lab
    paths, _ = extracted_lab
    install_lab(trained_lab(extracted_lab, tmp_path_factory, "serve_replay", [("gbt", "realistic")]), lab_home)
    proc, url, _ = _start(lab_home, "--dashboard", "--port", "0", "--replay", "all", "--model", "gbt",
                          "--speed", "200", "--store", str(paths.default_store))
    try:
        assert "Replaying" in proc.stdout.readline()
        deadline = time.monotonic() + 60
        snap = {}
        while time.monotonic() < deadline:
            snap = httpx.get(url + "/api/snapshot").json()["snapshot"]
            if "prediction" in snap and "telemetry" in snap:
                break
            time.sleep(0.2)
        pred = snap["prediction"][0]
        assert pred["model"] == "gbt" and pred["mode"] == "realistic" and 0 <= pred["trust"] <= 1
        assert snap["episode"][0]["host_id"] not in ("lab-thinkpad", "lab-nuc", "lab-desktop")   # held out
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0 and err == "", err


def test_replay_needs_a_model_and_a_checkpoint(cli, lab_home):
    result = cli("serve", "--dashboard", "--replay", "all")
    assert result.exit_code == 2 and "--replay and --model go together" in result.stderr


def test_publish_takes_its_token_from_the_environment(cli, lab_home, monkeypatch):
    """CIS490_TOKEN instead of --token: the secret is in no argv and no record."""
    from core.dashboard.app import create_app
    from core.dashboard.hub import EventHub
    from core.dashboard.server import ThreadedServer
    d = lab_home.artifacts / "eval" / "host" / "gbt_realistic" / "test-episode-b1000-s0"
    d.mkdir(parents=True)
    ci = [0.8, 0.95]
    (d / "report.json").write_text(json.dumps({
        "model": "gbt", "mode": "realistic", "split": "host", "part": "test", "macro_f1": 0.9, "macro_f1_ci": ci,
        "accuracy": 0.9, "windows": 10, "episodes": 2, "untested_profiles": [],
        "per_profile": [{"profile": "dropper", "macro_f1": 0.9, "macro_f1_ci": ci, "windows": 10, "episodes": 2}]}))
    hub = EventHub()
    with ThreadedServer(create_app(hub, token="s3cret")) as srv:
        assert cli("publish", "metrics", "--to", srv.url).exit_code == 1            # no token: refused (401)
        monkeypatch.setenv("CIS490_TOKEN", "s3cret")
        result = cli("publish", "metrics", "--to", srv.url)
        assert result.exit_code == 0, result.output
        assert {ev["type"] for ev in hub.events()} == {"model_metric", "profile_stats"}
    assert "s3cret" not in lab_home.notebook.read_text()


def test_serve_on_loopback_refuses_other_host_names(lab_home):
    proc, url, _ = _start(lab_home, "--dashboard", "--port", "0")
    try:
        assert httpx.get(url + "/healthz", headers={"host": "evil.example"}).status_code == 400
        assert httpx.get(url + "/healthz").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


def test_serve_on_another_loopback_address_answers_its_own_url(lab_home):
    """Regression: `serve --host 127.0.0.2` answered its own printed URL with 400."""
    proc, url, _ = _start(lab_home, "--dashboard", "--host", "127.0.0.2", "--port", "0")
    try:
        assert url.startswith("http://127.0.0.2:")
        assert httpx.get(url + "/healthz").status_code == 200
        assert httpx.get(url + "/healthz", headers={"host": "evil.example"}).status_code == 400
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_an_empty_token_is_a_usage_error(cli, lab_home, host):
    """Regression: `--host 0.0.0.0 --token ""` started a server nobody could publish to, and printed no token."""
    result = cli("serve", "--dashboard", "--host", host, "--port", "0", "--token", "")
    assert result.exit_code == 2 and "an empty token lets nobody publish" in result.stderr


def test_publish_metrics_without_reports_names_a_command_that_can_be_pasted(cli, lab_home):
    """Regression (issue 35): "run `cis490 eval` first" names no model and no split."""
    ck = lab_home.artifacts / "models" / "host-nuc" / "gbt_oracle"
    ck.mkdir(parents=True)
    (ck / "header.json").write_text("{}")
    result = cli("publish", "metrics", "--to", "http://127.0.0.1:9", "--split", "host-nuc")
    assert result.exit_code == 1
    assert "run `cis490 eval gbt_oracle --split host-nuc` first" in result.stderr
    result = cli("publish", "metrics", "--to", "http://127.0.0.1:9", "--split", "host")
    assert "run `cis490 train MODEL --split host`, then `cis490 eval MODEL --split host` first" in result.stderr
