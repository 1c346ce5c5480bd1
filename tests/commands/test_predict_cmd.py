"""`cis490 predict`: the phase of every window of runs nobody labelled,
equal to eval's for labelled ones, by checkpoint or bundle."""
import json
import shutil

import numpy as np
import polars as pl
import pytest

from core.predict import read_windows
from tests.labs import install_lab, trained_lab
from tests.text import lines_to_fit

# Trains a model and runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

PHASES = ["idle", "execute", "persist", "beacon", "act", "dormant"]


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    return trained_lab(extracted_lab, tmp_path_factory, "predicting", [("gbt", "realistic")])


@pytest.fixture
def home(trained, lab_home, extracted_lab):
    return install_lab(trained, lab_home, store_of=extracted_lab[0])


def _test_episode(home) -> str:
    split = pl.read_parquet(home.processed / "splits" / "host.parquet")
    return split.filter(pl.col("part") == "test")["episode_id"].sort()[0]


def _run_dir(home, model="gbt_realistic") -> list:
    return sorted((home.artifacts / "predict" / "host" / model).iterdir())


def _same_as_eval(home, windows: pl.DataFrame, episode: str) -> None:
    offline = pl.read_parquet(home.artifacts / "eval" / "host" / "gbt_realistic" / "test-episode-b20-s0" /
                              "predictions.parquet").filter(pl.col("episode_id") == episode)
    both = windows.join(offline, on="window_id", suffix="_eval")
    assert both.height == offline.height > 5              # every window eval scored, predicted here
    got = both.select([f"p_{p}" for p in PHASES]).to_numpy()
    want = both.select([f"p_{p}_eval" for p in PHASES]).to_numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (both["predicted"] == both["predicted_eval"]).all()
    np.testing.assert_allclose(both["trust"].to_numpy(), both["trust_eval"].to_numpy(), atol=1e-5)


def test_a_labelled_episode_gets_evals_predictions_and_a_timeline(cli, home, figures):
    assert cli("eval", "gbt", "--resamples", "20").exit_code == 0
    episode = _test_episode(home)
    result = cli("predict", "gbt", episode)
    assert result.exit_code == 0, result.output
    assert f"{episode} (accepted, test)" in result.output and "mean trust" in result.output
    assert max(len(x) for x in lines_to_fit(result.output)) <= 80
    (run,) = _run_dir(home)
    windows = read_windows(run)
    _same_as_eval(home, windows, episode)
    manifest = json.loads((run / "predict.json").read_text())
    assert manifest["engine"] == "checkpoint" and manifest["asked"] == episode
    segs = pl.read_csv(run / "segments.csv")
    assert segs["windows"].sum() == windows.height and set(segs["phase"]) <= set(PHASES)
    # Segments are runs of one phase: neighbours differ, and they tile the episode
    # (regression, issue 35: they overlapped by the windows' overlap).
    assert (segs["phase"][1:].to_numpy() != segs["phase"][:-1].to_numpy()).all()
    np.testing.assert_allclose(segs["start_s"][1:].to_numpy(), segs["end_s"][:-1].to_numpy())
    assert (run / f"timeline-{episode}.svg").exists()
    rec = json.loads(home.notebook.read_text().splitlines()[-1])
    assert rec["command"] == "predict" and rec["metrics"]["windows"] == windows.height


def test_the_exported_bundle_predicts_what_eval_did(cli, home):
    assert cli("eval", "gbt", "--resamples", "20").exit_code == 0
    assert cli("export", "gbt").exit_code == 0
    episode = _test_episode(home)
    result = cli("--json", "predict", "gbt", episode, "--engine", "bundle")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["engine"] == "bundle"
    _same_as_eval(home, read_windows(_run_dir(home)[0]), episode)
    # A Pi: the bundle and the store, no acceptance index: each episode is checked here by validate's rules.
    (home.processed / "validation_v1.parquet").unlink()
    again = json.loads(cli("--json", "predict", "gbt", episode, "--engine", "bundle",
                           "--store", str(home.default_store)).stdout)
    assert again["chosen"].startswith("checked here by validate's rules")
    _same_as_eval(home, read_windows(_run_dir(home)[-1]), episode)


def _unlabelled_copy(home, episode_id: str) -> None:
    """A run nobody labelled: a copy of a held-out episode without its labels, under a new id."""
    index = pl.read_parquet(home.processed / "validation_v1.parquet")
    rel = index.filter(pl.col("episode_id") == _test_episode(home))["rel_path"][0]
    new = home.default_store / "lab-pi5" / episode_id
    shutil.copytree(home.default_store / rel, new)
    m = json.loads((new / "manifest.json").read_text())
    m["episode_id"] = episode_id
    del m["files"]["labels.jsonl"]
    (new / "labels.jsonl").unlink()
    (new / "manifest.json").write_text(json.dumps(m))


def test_an_unlabelled_run_is_validated_kept_and_predicted_and_goes_stale_with_its_model(cli, home):
    _unlabelled_copy(home, "ep999999-unlabel")
    assert cli("validate").exit_code == 0
    # Only an unlabelled run was added: what extract reads is unchanged, so the lab stays fresh (by content).
    status = json.loads(cli("--json", "status").stdout)
    assert all(r["state"] == "fresh" for r in status if r["artifact"].startswith(("features", "split", "checkpoint")))
    assert next(r for r in status if r["artifact"] == "acceptance index")["reason"].startswith("1 unlabelled")
    from tests.labs import HOST_TRAIN
    split = cli("split", "--recipe", "host", "--train-hosts", ",".join(HOST_TRAIN))
    assert "1 unlabelled episode(s) left out" in split.output

    result = cli("predict", "gbt", "--unlabelled")
    assert result.exit_code == 0, result.output
    assert "ep999999-unlabel (unlabelled, unseen)" in result.output
    (run,) = _run_dir(home)
    windows = read_windows(run)
    assert windows["episode_id"].unique().to_list() == ["ep999999-unlabel"]
    assert windows["truth"].null_count() == windows.height and windows.height > 5
    rows = {r["artifact"]: r for r in json.loads(cli("--json", "status").stdout)}
    assert rows[f"predict host/gbt_realistic/{run.name}"]["state"] == "fresh"
    # Asked again: nothing new for this model, said, nothing written.
    again = cli("predict", "gbt", "--unlabelled")
    assert again.exit_code == 0, again.output
    assert "Nothing new: gbt (checkpoint) predicted every one of the 1 unlabelled episode(s) already, in run " \
        f"{run.name} (--again predicts them again)." in " ".join(again.output.split())
    assert _run_dir(home) == [run]
    # A second unlabelled run lands: only it is read.
    _unlabelled_copy(home, "ep999998-unlabel")
    assert cli("validate").exit_code == 0
    only_new = json.loads(cli("--json", "predict", "gbt", "--unlabelled").stdout)
    assert [e["episode_id"] for e in only_new["episodes"]] == ["ep999998-unlabel"]
    assert only_new["already_predicted"] == 1 and only_new["earlier_runs"] == [run.name]
    every = json.loads(cli("--json", "predict", "gbt", "--unlabelled", "--again").stdout)
    assert sorted(e["episode_id"] for e in every["episodes"]) == ["ep999998-unlabel", "ep999999-unlabel"]
    assert cli("predict", "gbt", "--all", "--again").exit_code == 2
    # Its model retrained: these predictions came from another one.
    assert cli("train", "gbt", "--mode", "realistic", "--set", "n_estimators=30").exit_code == 0
    rows = {r["artifact"]: r for r in json.loads(cli("--json", "status").stdout)}
    row = rows[f"predict host/gbt_realistic/{run.name}"]
    assert row["state"] == "stale" and "retrained since these predictions" in row["reason"]
    assert "cis490 predict gbt --split host --mode realistic --unlabelled" in row["command"]
    # ... and the retrained model has predicted nothing yet: every unlabelled run is new to it.
    retrained = json.loads(cli("--json", "predict", "gbt", "--unlabelled").stdout)
    assert len(retrained["episodes"]) == 2 and "already_predicted" not in retrained


@pytest.mark.parametrize("args, message", [
    (("gbt",), "say which episodes: episode ids, --unlabelled or --all (one of them)"),
    (("gbt", "--all", "--unlabelled"), "say which episodes"),
    (("gbt", "ep404404-nothere"), "episode ep404404-nothere is not in the store's acceptance index"),
    (("gbt", "--unlabelled"), "no unlabelled episode to predict"),
    (("gbtt", "--all"), "unknown model 'gbtt'"),
    (("gbt", "--all", "--engine", "bundle"), "no exported bundle for gbt on split host"),
])
def test_what_cannot_be_predicted_is_one_line(cli, home, args, message):
    result = cli("predict", *args)
    assert result.exit_code == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (home.artifacts / "predict").exists()


def _wait(predicate, timeout_s=30.0) -> bool:
    import time
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _land(home, rel: str, new_id: str, broken: bool = False):
    """Copy an episode into the store under a new id, manifest last (as the receiver writes it)."""
    src = home.default_store / rel
    dst = home.default_store / rel.split("/")[0] / new_id
    tmp = dst.with_name(new_id + ".part")
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("manifest.json"))
    if broken:
        (tmp / "proc.jsonl.gz").unlink()
    m = json.loads((src / "manifest.json").read_text())
    m["episode_id"] = new_id
    tmp.rename(dst)
    (dst / "manifest.json").write_text(json.dumps(m))


def test_a_watched_store_predicts_what_lands_and_refuses_what_validate_would(home):
    """Issue 21: live inference on episodes as they arrive, each checked by
    validate's rules first (a refusal is a notice, never a prediction)."""
    from core.dashboard.app import create_app
    from core.dashboard.events import validate
    from core.dashboard.hub import EventHub
    from core.dashboard.server import ThreadedServer
    from core.live.watch import WatchThread
    from core.predict import load_engine
    eng = load_engine(home, "gbt", "realistic", "host")
    index = pl.read_parquet(home.processed / "validation_v1.parquet")
    rel = index.filter(pl.col("episode_id") == _test_episode(home))["rel_path"][0]
    hub = EventHub()

    def events():
        return hub.events()
    with ThreadedServer(create_app(hub)) as srv, WatchThread(home.default_store, eng, "realistic", srv.url) as w:
        assert _wait(lambda: any(e["type"] == "notice" and e["text"].startswith("watching") for e in events()))
        _land(home, rel, "ep888888-landed")
        _land(home, rel, "ep888889-broken", broken=True)
        assert _wait(lambda: any(e["type"] == "episode" and e["event"] == "end" for e in events())
                     and any(e.get("level") == "refused" for e in events()))
    assert w.error is None
    got = events()
    for e in got:
        validate(e)
    assert not any(e.get("episode_id", "").startswith("ep0") for e in got if e["type"] == "prediction")
    preds = [e for e in got if e["type"] == "prediction"]
    assert preds and all(e["episode_id"] == "ep888888-landed" for e in preds)
    start = next(e for e in got if e["type"] == "episode")
    assert start["source"] == "watch"
    refused = next(e for e in got if e.get("level") == "refused")
    assert refused["episode_id"] == "ep888889-broken" and "not predicted" in refused["text"]
    assert any(e.get("level") == "info" and "ep888888-landed" in e["text"] for e in got)


def test_serve_watch_takes_a_store_and_a_model(cli, home):
    result = cli("serve", "--dashboard", "--watch", "nowhere", "--model", "gbt")
    assert result.exit_code == 2 and "is not a directory" in result.output
    result = cli("serve", "--dashboard", "--watch", str(home.default_store), "--replay", "all", "--model", "gbt")
    assert result.exit_code == 2 and "--replay or --watch, not both" in result.output


def test_windows_go_out_in_parts_so_memory_stays_bounded(cli, home, monkeypatch, figures):
    import core.predict
    monkeypatch.setattr(core.predict, "PART_WINDOWS", 50)
    monkeypatch.setattr(core.predict, "FIGURES", 3)
    result = cli("--json", "predict", "gbt", "--all")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    (run,) = _run_dir(home)
    parts = sorted((run / "windows").glob("part-*.parquet"))
    assert out["window_parts"] == len(parts) > 3
    windows = read_windows(run)
    assert windows.height == out["windows"] == pl.read_csv(run / "windows.csv").height
    # Regression (issue 35): --all mixed episodes the model trained on with new ones, unmarked.
    split = dict(pl.read_parquet(home.processed / "splits" / "host.parquet").iter_rows())
    marked = dict(windows.select("episode_id", "part").unique().iter_rows())
    assert marked == {e: split.get(e, "unseen") for e in marked} and {"train", "val", "test"} <= set(marked.values())
    assert set(pl.read_csv(run / "segments.csv")["part"]) == set(marked.values())
    agreement = out["agreement"]
    assert set(agreement) >= {"train", "val", "test"}
    assert agreement["train"]["accuracy"] >= agreement["test"]["accuracy"] - 0.05      # in-sample is no held-out figure
    assert all(e["part"] == marked.get(e["episode_id"], e["part"]) for e in out["episodes"])
    assert windows["window_id"].n_unique() == windows.height
    assert sum(e["windows"] for e in out["episodes"]) == out["windows"]
    assert len(list(run.glob("timeline-*.svg"))) == 3         # the first FIGURES episodes drawn


def test_episodes_missing_from_the_store_are_an_error_that_writes_nothing(cli, home, tmp_path):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    result = cli("predict", "gbt", _test_episode(home), "--store", str(empty))
    assert result.exit_code == 1 and "no episode could be read" in result.stderr
    assert "--store names the store" in result.stderr
    assert not (home.artifacts / "predict").exists() or not any((home.artifacts / "predict").rglob("predict.json"))


def test_an_id_names_the_copy_validate_kept_and_a_prefix_names_an_id(cli, home):
    """Regression (issue 35): `predict gbt ID` refused an accepted episode
    when the index also held a rejected re-sent copy of it, though `--all`
    predicted it; and predict took no id prefix, as notebook does."""
    episode = _test_episode(home)
    index = pl.read_parquet(home.processed / "validation_v1.parquet")
    rel = index.filter(pl.col("episode_id") == episode)["rel_path"][0]
    resent = home.default_store / rel.split("/")[0] / "zz-resent"
    shutil.copytree(home.default_store / rel, resent)
    assert cli("validate").exit_code == 0
    rows = pl.read_parquet(home.processed / "validation_v1.parquet").filter(pl.col("episode_id") == episode)
    assert sorted(rows["status"].to_list()) == ["accepted", "rejected"]
    result = cli("--json", "predict", "gbt", episode[:10])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [e["episode_id"] for e in out["episodes"]] == [episode] and out["episodes"][0]["rel_path"] == rel
    assert "is the start of" in cli("predict", "gbt", "ep").stderr


def test_runs_that_landed_since_validate_are_named_when_none_is_found(cli, home):
    """Regression (issue 35): right after runs landed, `predict --unlabelled`
    said "no unlabelled episode" while status knew they were there."""
    episode = _test_episode(home)
    index = pl.read_parquet(home.processed / "validation_v1.parquet")
    rel = index.filter(pl.col("episode_id") == episode)["rel_path"][0]
    _land(home, rel, "ep777777-landed")
    result = cli("predict", "gbt", "--unlabelled")
    assert result.exit_code == 1
    assert "1 episode(s) landed since validate: run `cis490 validate` first" in result.stderr
    result = cli("predict", "gbt", "ep777777-landed")
    assert result.exit_code == 1 and "landed since validate: run `cis490 validate` first" in result.stderr
