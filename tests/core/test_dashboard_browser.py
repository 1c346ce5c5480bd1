"""The page in a real browser: Debian's chromium, driven by Playwright through
its executable path (never a downloaded browser). Locally a missing browser
skips with the reason; under CI (CI=true) it fails."""
import os
import shutil
from pathlib import Path

import httpx
import pytest

from core.dashboard.app import create_app
from core.dashboard.events import EXAMPLES
from core.dashboard.hub import EventHub
from core.dashboard.server import ThreadedServer, _close_streams

pytestmark = pytest.mark.browser

SCENES = ("episode", "timeline", "probabilities", "telemetry", "metrics", "profiles", "perf")


def _chromium() -> str:
    for path in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if path and Path(path).exists():
            return path
    reason = "Debian's chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return sync_playwright


def test_every_scene_renders_published_events_and_a_dropped_connection_catches_up(tmp_path):
    executable, sync_playwright = _chromium(), _playwright()
    start = {k: v for k, v in EXAMPLES["episode"].items() if k not in ("accuracy", "windows")}
    app = create_app(EventHub(), ping_s=1)
    with ThreadedServer(app) as srv, sync_playwright() as pw:
        publish = [{**start, "event": "start"}, *(EXAMPLES[k] for k in
                   ("telemetry", "prediction", "model_metric", "perf", "profile_stats", "episode"))]
        assert httpx.post(srv.url + "/publish", json=publish).status_code == 200
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"], timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            problems = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(srv.url + "/")
            for scene in SCENES:
                page.wait_for_selector(f"#scene-{scene}[data-state=live]", timeout=10_000)
            text = {s: page.inner_text(f"#scene-{s}") for s in SCENES}
            assert "ep000042-1a2b3c4d" in text["episode"] and "accuracy 0.912" in text["episode"]
            assert "predicted execute, true execute, trust 0.84" in text["timeline"]
            assert page.locator("#probability-chart canvas").count() >= 1
            assert "guest.cpu_percent" in text["telemetry"] and "87.5" in text["telemetry"]
            # Regression (issue 35): the interval had fewer decimals than its estimate.
            assert "gru @host" in text["metrics"] and "0.905 [0.854, 0.947]" in text["metrics"]
            assert "ransomware" in text["profiles"] and "scan-and-dial" in text["profiles"]
            assert "1.8 ms" in text["perf"] and "6.2 ms" in text["perf"]
            assert page.get_attribute("#conn", "data-state") == "live"
            assert not any(page.is_visible(f"#scene-{s} .awaiting") for s in SCENES)

            # The connection drops (every stream ended by the server); events published
            # meanwhile arrive once the browser reconnects with Last-Event-ID.
            _close_streams(app)
            httpx.post(srv.url + "/publish", json=[{**EXAMPLES["perf"], "latency_p50_ms": 9.9},
                                                  {**EXAMPLES["model_metric"], "model": "gbt", "macro_f1": 0.966,
                                                   "macro_f1_ci": [0.928, 0.988]}])
            # (Locators, not page-evaluated strings: the page's policy forbids eval, as it should.)
            page.locator("#perf-fields", has_text="9.9 ms").wait_for(timeout=10_000)
            page.wait_for_selector("#conn[data-state=live]", timeout=10_000)
            assert "gbt @host" in page.inner_text("#scene-metrics")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert (tmp_path / "dashboard.png").stat().st_size > 10_000
            assert problems == []
        finally:
            browser.close()


def _lab_events() -> list[dict]:
    start = {k: v for k, v in EXAMPLES["episode"].items() if k not in ("accuracy", "windows", "detection")}
    # Channels named like Object's own properties, with no unit given.
    odd = {**EXAMPLES["telemetry"], "values": {**EXAMPLES["telemetry"]["values"], "constructor": 2.0,
                                               "toString": 3.0}}
    return [{**start, "event": "start"}, odd, EXAMPLES["prediction"], EXAMPLES["model_metric"],
            {**EXAMPLES["model_metric"], "model": "knn_semi", "macro_f1": 0.991, "macro_f1_ci": [0.97, 0.999],
             "transductive": True},
            EXAMPLES["profile_stats"], {**EXAMPLES["profile_stats"], "model": "knn_semi"}, EXAMPLES["perf"],
            EXAMPLES["episode"]]


def test_the_snapshot_view_shows_units_marks_scales_and_folds(tmp_path):
    """Regression (issue 22): no units, knn_semi unmarked, 0.887 and 0.991 bars
    alike on a 0-1 scale, every profile table open, and no page a headless
    screenshot could finish on."""
    executable, sync_playwright = _chromium(), _playwright()
    app = create_app(EventHub(), ping_s=1)
    with ThreadedServer(app) as srv, sync_playwright() as pw:
        assert httpx.post(srv.url + "/publish", json=_lab_events()).status_code == 200
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"], timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(srv.url + "/?snapshot")
            page.wait_for_selector("body[data-ready=snapshot]", timeout=10_000)
            assert page.get_attribute("#conn", "data-state") == "snapshot"
            telemetry = page.inner_text("#scene-telemetry")
            assert "guest.cpu_percent (%)" in telemetry and "87.5 %" in telemetry
            # Regression (issue 32): a channel named `constructor` showed Object's constructor as its unit.
            assert "constructor" in telemetry and "toString" in telemetry
            assert "function" not in telemetry and "native code" not in telemetry
            assert "– MB" not in telemetry          # a missing value has no unit (it read "– %")
            metrics = page.inner_text("#scene-metrics")
            assert "knn_semi* @host" in metrics and "transductive" in metrics and "bars from 0.8 to 1.0" in metrics
            # On the 0.8-1.0 scale 0.905 fills about half the track, 0.991 nearly all of it.
            widths = {row.get_attribute("data-key"): row.locator(".bar-fill").bounding_box()["width"] /
                      row.locator(".bar-track").bounding_box()["width"]
                      for row in page.locator(".bar-row").all()}
            assert widths["gru_realistic@host"] == pytest.approx(0.525, abs=0.02)
            assert widths["knn_semi_realistic@host"] > 0.9
            folded = {d.get_attribute("data-key"): d.get_attribute("open") is not None
                      for d in page.locator("#profile-tables details").all()}
            assert folded == {"gru_realistic@host": True, "knn_semi_realistic@host": False}
            episode = page.inner_text("#scene-episode")
            assert "caught idle" in episode and "10.0 s after it began at 0.0 s" in episode
            assert "missed (it began at 60.2 s)" in episode
        finally:
            browser.close()


def test_a_headless_screenshot_of_the_snapshot_view_completes(tmp_path):
    import subprocess
    executable = _chromium()
    with ThreadedServer(create_app(EventHub(), ping_s=1)) as srv:
        assert httpx.post(srv.url + "/publish", json=_lab_events()).status_code == 200
        shot = tmp_path / "dashboard.png"
        done = subprocess.run([executable, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               "--window-size=1280,1000", "--virtual-time-budget=5000", f"--screenshot={shot}",
                               srv.url + "/?snapshot"],
                              capture_output=True, timeout=90)
        assert done.returncode == 0, done.stderr[-2000:]
        assert shot.stat().st_size > 20_000
