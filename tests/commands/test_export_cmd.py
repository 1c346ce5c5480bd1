"""`cis490 export` and what it is for: a bundle that `cis490 serve --replay`
runs where torch, scikit-learn and XGBoost are not installed (the Pi)."""
import json
import shutil
from pathlib import Path
import signal
import sys

import polars as pl
import pytest

from tests.labs import install_lab, trained_lab
from tests.serving import ROOT, replayed_episode, start_serve, without_lab_modules

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab_root(extracted_lab, tmp_path_factory):
    from core.evaluate import EvalConfig, evaluate_model
    from core.paths import LabPaths
    from core.registry import load_registry
    from core.deploy.export import export_model
    root = trained_lab(extracted_lab, tmp_path_factory, "export_cmd", [("gbt", "realistic"), ("cnn", "realistic")])
    processed, reg = LabPaths(root).processed, load_registry()
    evaluate_model(processed, root / "artifacts", reg, "cnn", "realistic", EvalConfig(resamples=20))
    for model in ("gbt", "cnn"):      # the bundles the serving tests run (the export tests make their own)
        export_model(processed, root / "artifacts", reg, model, "realistic", "host")
    return root


@pytest.fixture
def lab(lab_root, lab_home, extracted_lab):
    install_lab(lab_root, lab_home)
    return lab_home, extracted_lab[0].default_store


def test_export_writes_checked_bundles_and_records_the_run(cli, lab):
    home, _ = lab
    shutil.rmtree(home.artifacts / "deploy")
    result = cli("export", "gbt")
    assert result.exit_code == 0, result.stderr
    assert "Exported to" in result.stdout and "onnxruntime" in result.stdout
    assert "cis490 serve --dashboard --replay all --model gbt" in result.stdout
    payload = json.loads(cli("--json", "export", "all").stdout)         # every checkpoint of the split
    assert [(p["model"], p["mode"]) for p in payload] == [("gbt", "realistic"), ("cnn", "realistic")]
    for model in ("gbt", "cnn"):
        header = json.loads((home.artifacts / "deploy" / "host" / f"{model}_realistic" / "bundle.json").read_text())
        assert header["parity"]["max_abs_diff"] <= 1e-4 and header["parity"]["labels_differ"] == 0
        assert header["parity"]["windows"] > 0
    recs = [json.loads(line) for line in home.notebook.read_text().splitlines()]
    exports = [r for r in recs if r["command"] == "export"]
    assert [r["config"]["model"] for r in exports] == ["gbt", "gbt", "cnn"]
    assert exports[0]["status"] == "ok" and exports[0]["metrics"]["runtime"] == "onnxruntime"


@pytest.mark.parametrize("args, message", [
    (("export", "cnn", "--mode", "both"), "no checkpoint for cnn in oracle mode on split host"),
    (("export", "gpt"), "unknown model 'gpt'"),
    (("export", "gbt", "--split", "sample"), "no checkpoint for gbt in realistic mode on split sample"),
])
def test_export_without_its_checkpoint_says_so_and_writes_nothing(cli, lab, args, message):
    home, _ = lab
    shutil.rmtree(home.artifacts / "deploy")
    result = cli(*args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (home.artifacts / "deploy").exists()


def _serves_evals_predictions(home, store, offline, episode, **how):
    """`serve --replay EPISODE` of the cnn bundle: its predictions are eval's."""
    proc, url, _ = start_serve(home.home, "--dashboard", "--port", "0", "--replay", episode, "--model", "cnn",
                               "--speed", "500", "--store", str(store), **how)
    try:
        assert "run by " + str(home.artifacts / "deploy" / "host" / "cnn_realistic") in proc.stdout.readline()
        preds = [ev for ev in replayed_episode(url) if ev["type"] == "prediction"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0 and err == "", err
    want = offline.filter(pl.col("episode_id") == episode)
    assert [p["window_id"] for p in preds] == want["window_id"].to_list()
    assert [p["predicted"] for p in preds] == want["predicted"].to_list()
    for p, row in zip(preds, want.iter_rows(named=True)):
        assert all(abs(p["probabilities"][c] - row[f"p_{c}"]) <= 1e-5 for c in p["probabilities"])


def test_serve_runs_a_bundle_without_torch_and_predicts_what_eval_did(cli, lab, tmp_path):
    home, store = lab
    offline = pl.read_parquet(next((home.artifacts / "eval" / "host" / "cnn_realistic").glob("*/predictions.parquet")))
    episode = offline["episode_id"][0]
    blocked = without_lab_modules(tmp_path / "blocked")
    _serves_evals_predictions(home, store, offline, episode, pythonpath=f"{blocked}:{ROOT}")


def test_a_bundle_older_than_its_checkpoint_is_not_served(cli, lab):
    home, store = lab
    assert cli("train", "gbt", "--mode", "realistic", "--set", "n_estimators=12").exit_code == 0
    result = cli("serve", "--dashboard", "--replay", "all", "--model", "gbt", "--store", str(store))
    assert result.exit_code == 1
    assert "exported from an earlier checkpoint" in result.stderr
    assert "re-export with `cis490 export gbt --split host --mode realistic`" in result.stderr
    # The checkpoint itself can still be replayed, when asked for.
    from core.live.producers import lab_replay
    replay = lab_replay(home, "all", "gbt", "realistic", "host", store, 10, engine="checkpoint")
    assert replay.source == str(home.artifacts / "models" / "host" / "gbt_realistic")


def test_engine_bundle_needs_an_exported_bundle(cli, lab):
    home, store = lab
    shutil.rmtree(home.artifacts / "deploy")
    result = cli("serve", "--dashboard", "--replay", "all", "--model", "gbt", "--engine", "bundle", "--store", str(store))
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: no exported bundle for gbt in realistic mode on split host "
                                     f"({home.artifacts / 'deploy' / 'host' / 'gbt_realistic'}): run "
                                     "`cis490 export gbt --split host --mode realistic`")


def test_without_the_lab_extra_help_works_and_training_says_what_to_install(lab, tmp_path):
    import os
    import subprocess
    home, _ = lab
    blocked = without_lab_modules(tmp_path / "blocked")
    env = {**os.environ, "PYTHONPATH": f"{blocked}:{ROOT}", "CIS490_HOME": str(home.home)}

    def run(*args):
        return subprocess.run([sys.executable, "-c", "from cis490cli.app import main; main()", *args],
                              capture_output=True, text=True, env=env, cwd=home.home, timeout=60)
    assert run("--help").returncode == 0
    for args in (("train", "gbt"), ("export", "gbt")):
        r = run(*args)
        assert r.returncode == 1, r
        assert r.stderr.strip().startswith(f"Error: `cis490 {args[0]}` needs the lab extra (")
        assert r.stderr.strip().endswith("is not installed): pip install 'cis490[lab]'")


def test_the_base_install_serves_a_bundle_with_evals_predictions(cli, lab, base_install):
    """What the Pi runs: no torch, scikit-learn, XGBoost or pyarrow installed."""
    import subprocess
    home, store = lab
    python = base_install
    lacking = subprocess.run([str(python), "-c", "import importlib.util as u; print([m for m in "
                              "('torch', 'sklearn', 'xgboost', 'scipy', 'matplotlib', 'pyarrow', 'onnx') "
                              "if u.find_spec(m)])"], capture_output=True, text=True, timeout=60)
    assert lacking.stdout.strip() == "[]", lacking
    offline = pl.read_parquet(next((home.artifacts / "eval" / "host" / "cnn_realistic").glob("*/predictions.parquet")))
    episode = offline["episode_id"][-1]
    _serves_evals_predictions(home, store, offline, episode, python=str(python), pythonpath=None)
    # `cis490 predict` on the Pi: the bundle, no torch, no matplotlib (no figures, and says so); eval's numbers.
    done = subprocess.run([str(python.parent / "cis490"), "--json", "predict", "cnn", episode, "--engine", "bundle",
                           "--store", str(store)],
                          capture_output=True, text=True, cwd=home.home, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["engine"] == "bundle" and out["figures"] == []
    from core.predict import read_windows
    windows = read_windows(Path(out["directory"])).join(offline, on="window_id", suffix="_eval")
    assert windows.height == offline.filter(pl.col("episode_id") == episode).height
    import numpy as np
    classes = [c.removeprefix("p_") for c in offline.columns if c.startswith("p_")]
    np.testing.assert_allclose(windows.select([f"p_{c}" for c in classes]).to_numpy(),
                               windows.select([f"p_{c}_eval" for c in classes]).to_numpy(), atol=1e-5)
    train = subprocess.run([str(python.parent / "cis490"), "train", "cnn"], capture_output=True, text=True,
                           cwd=home.home, timeout=60)
    assert train.returncode == 1
    assert train.stderr.strip() == "Error: `cis490 train` needs the lab extra (torch is not installed): " \
                                   "pip install 'cis490[lab]'"
