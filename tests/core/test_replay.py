"""Replaying an episode as if live: the events follow the schema, arrive in
time order, and the predictions are exactly eval's for the same windows."""
import json
import shutil

import numpy as np
import polars as pl
import pytest

from core.dashboard.events import validate
from core.evaluate import EvalConfig, evaluate_model
from core.extract import EPISODES
from core.extract.episode import episode_grid
from core.live.replay import ModelInfo, charted_channels, episode_events
from core.registry import load_registry
from core.split import load_split
from core.store import Episode
from core.train import load_checkpoint, train_one
from tests.labs import host_split_copy

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

REG = load_registry()
@pytest.fixture(scope="module")
def lab(extracted_lab, tmp_path_factory):
    paths, _ = extracted_lab
    processed = host_split_copy(extracted_lab, tmp_path_factory, "replay")
    root = processed.parent
    for model, settings in (("gbt", {"n_estimators": 20}), ("cnn", {"epochs": 2})):
        train_one(processed, root / "artifacts", REG, model, "realistic", "host", settings, seed=0)
        evaluate_model(processed, root / "artifacts", REG, model, "realistic", EvalConfig(resamples=20))
    return paths.default_store, processed, root / "artifacts"


@pytest.mark.parametrize("model", ["gbt", "cnn"])
def test_replayed_predictions_equal_evals(lab, model):
    store, processed, artifacts = lab
    m = load_checkpoint(artifacts / "models" / "host" / f"{model}_realistic", processed, REG)
    info = ModelInfo(model, "realistic", m.input_kind, m.classes)
    offline = pl.read_parquet(next((artifacts / "eval" / "host" / f"{model}_realistic").glob("*/predictions.parquet")))
    split, _ = load_split(processed, "host")
    test_eps = split.filter(pl.col("part") == "test")["episode_id"].to_list()
    eps = pl.read_parquet(processed / EPISODES).filter(pl.col("episode_id").is_in(test_eps) & (pl.col("n_windows") > 0))
    channels = REG.channel_names
    charted = charted_channels(channels, m.header["keep_names"])
    assert charted and all(channels[i].split(".")[0] in ("guest", "netflow") for i in charted)
    for rec in eps.head(2).iter_rows(named=True):
        grid = episode_grid(Episode.open(store / rec["rel_path"], rec["rel_path"]), REG)
        events = list(episode_events(grid, m.predict_proba, info, channels, charted))
        times = [t for t, _ in events]
        assert times == sorted(times)
        for _, ev in events:
            validate(ev)
        kinds = [ev["type"] for _, ev in events]
        assert kinds[0] == "episode" and kinds[-1] == "episode" and "telemetry" in kinds
        preds = [ev for _, ev in events if ev["type"] == "prediction"]
        want = offline.filter(pl.col("episode_id") == rec["episode_id"])
        assert [p["window_id"] for p in preds] == want["window_id"].to_list()
        assert [p["predicted"] for p in preds] == want["predicted"].to_list()
        assert [p["truth"] for p in preds] == want["truth"].to_list()
        got = np.array([[p["probabilities"][c] for c in m.classes] for p in preds])
        np.testing.assert_allclose(got, want.select([f"p_{c}" for c in m.classes]).to_numpy(), atol=1e-5)
        # Each prediction comes once its window is complete, never before.
        for t, p in ((t, ev) for t, ev in events if ev["type"] == "prediction"):
            assert t == pytest.approx(p["t_center_s"] + 5.0)
        end = events[-1][1]
        assert end["event"] == "end" and end["windows"] == len(preds)
        assert end["accuracy"] == pytest.approx(np.mean([p["predicted"] == p["truth"] for p in preds]))
        # Each phase's time to detect in this episode is eval's, from the same onsets and predictions.
        from core.detect import occurrences
        mine = want.sort("t_end_s")
        truth = mine["truth"].to_numpy()
        codes = np.unique(truth, return_inverse=True)[1]
        occ = occurrences(np.zeros(mine.height, int), mine["t_end_s"].to_numpy(), mine["onset_s"].to_numpy(),
                          codes, (mine["predicted"] == mine["truth"]).to_numpy())
        assert [d["phase"] for d in end["detection"]] == [str(np.unique(truth)[c]) for c in occ.phase]
        assert [d["delay_s"] for d in end["detection"]] == \
            [None if np.isnan(x) else pytest.approx(x, abs=1e-3) for x in occ.delay_s]
        assert all(d["onset_s"] <= p["t_center_s"] for d, p in [(end["detection"][0], preds[0])])


def _published(replay) -> list[dict]:
    """Every event a replay (looping off) posts to a dashboard server."""
    from core.dashboard.app import create_app
    from core.dashboard.hub import EventHub
    from core.dashboard.server import ThreadedServer
    from core.live.producers import ReplayThread
    hub = EventHub()
    with ThreadedServer(create_app(hub)) as srv:
        with ReplayThread(replay, srv.url) as rt:
            rt.thread.join(timeout=60)
        assert rt.error is None
    return hub.events()


def test_a_replay_publishes_metrics_episodes_predictions_and_perf(lab, monkeypatch):
    import core.live.producers as producers
    from core.live.producers import prepare_replay
    store, processed, artifacts = lab
    monkeypatch.setattr(producers, "PERF_EVERY_S", 0.0)
    replay = prepare_replay(processed, artifacts, REG, "gbt", "realistic", "host", ["all"], store, speed=1e5)
    replay.episodes, replay.loop = replay.episodes[:2], False
    events = _published(replay)
    kinds = [ev["type"] for ev in events]
    assert kinds[:4] == ["model_metric", "profile_stats", "model_metric", "profile_stats"]
    assert {(ev["model"], ev["mode"]) for ev in events if ev["type"] == "model_metric"} == \
        {("gbt", "realistic"), ("cnn", "realistic")}
    starts = [ev["episode_id"] for ev in events if ev["type"] == "episode" and ev["event"] == "start"]
    assert starts == [e for e, _ in replay.episodes]
    assert kinds.count("prediction") > 10 and "perf" in kinds and "telemetry" in kinds
    perf = [ev for ev in events if ev["type"] == "perf"][-1]
    assert perf["latency_p50_ms"] > 0 and perf["rss_mb"] > 0
    # Telemetry names its units; every source the model sees is charted, netflow included.
    tick = next(ev for ev in events if ev["type"] == "telemetry")
    assert set(tick["units"]) == set(tick["values"]) and any(c.startswith("netflow.") for c in tick["values"])
    assert all(ev["transductive"] is False for ev in events if ev["type"] == "model_metric")
    ends = [ev for ev in events if ev["type"] == "episode" and ev["event"] == "end"]
    assert ends and all(ev["detection"] for ev in ends)


@pytest.mark.parametrize("args, message", [
    (("cnn", "oracle", ["all"]), "no checkpoint for cnn in oracle mode on split host"),
    (("gbt", "realistic", ["ep999999-nothere"]), "episode ep999999-nothere is not in the extracted lab"),
])
def test_a_replay_that_cannot_start_says_why(lab, args, message):
    from core.live.producers import ReplayError, prepare_replay
    store, processed, artifacts = lab
    model, mode, episodes = args
    with pytest.raises(ReplayError, match=message):
        prepare_replay(processed, artifacts, REG, model, mode, "host", episodes, store, speed=10)


def test_publish_commands_post_metrics_and_a_replay_to_a_remote_dashboard(lab, cli, lab_home):
    import json
    from core.dashboard.app import create_app
    from core.dashboard.hub import EventHub
    from core.dashboard.server import ThreadedServer
    store, processed, artifacts = lab
    shutil.copytree(processed, lab_home.processed, dirs_exist_ok=True)
    shutil.copytree(artifacts, lab_home.artifacts, dirs_exist_ok=True)
    hub = EventHub()
    with ThreadedServer(create_app(hub, token="t0k")) as srv:
        result = cli("--json", "publish", "metrics", "--to", srv.url, "--token", "t0k")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["events"] == 4          # gbt and cnn: a metric and a profile table each
        split, _ = load_split(processed, "host")
        one = split.filter(pl.col("part") == "test")["episode_id"][0]
        result = cli("--json", "publish", "replay", one, "--model", "cnn", "--to", srv.url, "--token", "t0k",
                     "--speed", "100000", "--once", "--store", str(store))
        assert result.exit_code == 0, result.output
    events = hub.events()
    assert [ev["type"] for ev in events[:4]] == ["model_metric", "profile_stats"] * 2
    replayed = [ev for ev in events[4:] if ev["type"] == "episode"]
    assert [(ev["episode_id"], ev["event"]) for ev in replayed] == [(one, "start"), (one, "end")]
    assert all(ev["model"] == "cnn" for ev in events if ev["type"] == "prediction")
    records = [json.loads(x) for x in lab_home.notebook.read_text().splitlines()]
    assert [r["command"] for r in records][-2:] == ["publish", "publish"]


def test_the_page_shows_predictions_arriving_from_a_replay(lab):
    from core.dashboard.app import create_app
    from core.dashboard.hub import EventHub
    from core.dashboard.server import ThreadedServer
    from core.live.producers import ReplayThread, prepare_replay
    from tests.core.test_dashboard_browser import _chromium, _playwright
    executable, sync_playwright = _chromium(), _playwright()
    store, processed, artifacts = lab
    replay = prepare_replay(processed, artifacts, REG, "cnn", "realistic", "host", ["all"], store, speed=40)
    with ThreadedServer(create_app(EventHub(), ping_s=1)) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"], timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            problems = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(srv.url + "/")
            with ReplayThread(replay, srv.url) as rt:
                for scene in ("episode", "timeline", "telemetry", "metrics"):
                    page.wait_for_selector(f"#scene-{scene}[data-state=live]", timeout=20_000)
                page.wait_for_function("document.querySelector('#scene-timeline').innerText.includes('trust')",
                                       timeout=20_000)
                timeline = page.inner_text("#scene-timeline")
                assert "predicted" in timeline and rt.error is None
                assert replay.episodes[0][0] in page.inner_text("#scene-episode")
            assert problems == []
        finally:
            browser.close()


def test_a_replay_warms_its_model_up_on_a_full_width_empty_window(lab):
    """The first live window must not pay for first-call allocations; the
    warm-up window has the full input width the live windows will have."""
    from core.extract.episode import WindowSpec
    from core.live.producers import warm_up
    store, processed, artifacts = lab
    for model in ("gbt", "cnn"):
        m = load_checkpoint(artifacts / "models" / "host" / f"{model}_realistic", processed, REG)
        seen = []
        predict = m.predict_proba
        m.predict_proba = lambda inputs: seen.append(inputs) or predict(inputs)
        warm_up(m, WindowSpec(window_s=6.0, hop_s=3.0), len(REG.channels))
        (inputs,) = seen
        if model == "gbt":
            assert inputs.shape == (1, 6 * len(REG.channels)) and np.isnan(inputs).all()
        else:
            assert inputs[0].shape == inputs[1].shape == (1, len(REG.channels), 12) and not inputs[1].any()


def test_a_lab_extracted_with_other_windows_replays_the_windows_eval_scored(extracted_lab, tmp_path):
    """`cis490 extract --window 6 --hop 3`: the replay cuts the windows the
    model was trained on (the checkpoint's window spec), not extract's default."""
    from core.extract import ExtractConfig
    from core.extract.pipeline import run_extract
    from core.extract.episode import WindowSpec
    from core.live.producers import prepare_replay
    from core.split import SplitConfig, make_split
    from tests.labs import HOST_TRAIN
    paths, _ = extracted_lab
    processed, artifacts = tmp_path / "data" / "processed", tmp_path / "artifacts"
    processed.mkdir(parents=True)
    for name in ("validation_v1.parquet", "validation_v1.json"):
        shutil.copyfile(paths.processed / name, processed / name)
    spec = WindowSpec(window_s=6.0, hop_s=3.0)
    run_extract(processed, processed / "validation_v1.parquet", paths.default_store, REG, ExtractConfig(spec),
                workers=2)
    make_split(processed, SplitConfig("host", HOST_TRAIN), REG)
    train_one(processed, artifacts, REG, "gbt", "realistic", "host", {"n_estimators": 5}, seed=0)
    evaluate_model(processed, artifacts, REG, "gbt", "realistic", EvalConfig(resamples=20))
    replay = prepare_replay(processed, artifacts, REG, "gbt", "realistic", "host", ["all"], paths.default_store,
                            speed=1e5)
    assert replay.spec == spec
    replay.episodes, replay.loop = replay.episodes[:1], False
    preds = [ev for ev in _published(replay) if ev["type"] == "prediction"]
    offline = pl.read_parquet(next((artifacts / "eval" / "host" / "gbt_realistic").glob("*/predictions.parquet")))
    want = offline.filter(pl.col("episode_id") == replay.episodes[0][0])
    assert [p["window_id"] for p in preds] == want["window_id"].to_list()
    assert [p["predicted"] for p in preds] == want["predicted"].to_list()


def test_metrics_are_published_again_when_a_report_changes(lab, tmp_path):
    """What serve --replay and publish metrics --watch look at every 5 s."""
    from core.live.producers import ReportWatch
    store, processed, artifacts = lab
    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts / "eval", copy / "eval")
    watch = ReportWatch(copy, "host")
    first = watch.changed()
    assert {(e["type"], e["model"]) for e in first} == {(t, m) for t in ("model_metric", "profile_stats")
                                                         for m in ("gbt", "cnn")}
    assert watch.changed() is None                       # nothing new: nothing to send
    report = next((copy / "eval" / "host" / "gbt_realistic").glob("*/report.json"))
    doc = json.loads(report.read_text())
    doc["macro_f1"] = 0.5
    report.write_text(json.dumps(doc))
    again = watch.changed()
    assert [e["macro_f1"] for e in again if e["type"] == "model_metric" and e["model"] == "gbt"] == [0.5]
    assert watch.changed() is None
