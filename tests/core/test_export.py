"""Export: every model becomes a bundle that predicts what its checkpoint
predicts (checked before writing), runs without torch, and refuses to be
written, or loaded, when it does not."""
import json
import shutil

import numpy as np
import polars as pl
import pytest

from core.deploy.bundle import BUNDLE, GRAPH, REFERENCE, knn_proba, load_bundle
from core.lab import Lab, Ref
from core.deploy.export import ExportError, export_model
from core.errors import ArtifactError
from core.evaluate import EvalConfig, evaluate_model
from core.extract.episode import episode_grid
from core.live.producers import ReplayError, bundle_replay
from core.live.replay import ModelInfo, charted_channels, episode_events
from core.models import MODELS
from core.registry import load_registry
from core.store import Episode
from core.train import train_one
from tests.labs import host_split_copy

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

REG = load_registry()
QUICK = {"gbt": {"n_estimators": 15}, "mlp": {"epochs": 2}, "cnn": {"epochs": 2}, "gru": {"epochs": 1},
         "lstm": {"epochs": 1}, "transformer": {"epochs": 1}, "knn": {}, "knn_semi": {"max_unlabeled": 300},
         "minirocket": {"n_features": 2000}, "mrhydra": {"n_kernels": 84, "hydra_groups": 4}}
# One per runtime family: trees, numpy kNN, a recurrent graph, and the two
# ROCKET fronts (counted by binary search in torch, by comparisons in ONNX).
REPLAYED = ("gbt", "knn_semi", "gru", "minirocket", "mrhydra")


@pytest.fixture(scope="module")
def lab(extracted_lab, tmp_path_factory):
    paths, _ = extracted_lab
    processed = host_split_copy(extracted_lab, tmp_path_factory, "export")
    artifacts = processed.parent / "artifacts"
    for model in MODELS:
        train_one(processed, artifacts, REG, model, "realistic", "host", QUICK[model], seed=0)
    for model in REPLAYED:
        evaluate_model(processed, artifacts, REG, model, "realistic", EvalConfig(resamples=20))
    return paths.default_store, processed, artifacts


@pytest.fixture(scope="module")
def exported(lab):
    """Each model exported once for the module (the graphs take seconds)."""
    _, processed, artifacts = lab
    done = {}

    def get(model):
        if model not in done:
            done[model] = export_model(processed, artifacts, REG, model, "realistic", "host")
        return done[model]
    return get


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_exports_a_bundle_that_agrees_with_its_checkpoint(lab, exported, model):
    store, processed, artifacts = lab
    r = exported(model)
    assert r.directory == Lab(processed, artifacts).bundle(Ref("host", model, "realistic"))
    assert r.runtime == ("numpy-knn" if model.startswith("knn") else "onnxruntime")
    assert r.parity["windows"] > 100 and r.parity["batch_sizes"] == [1, 256]
    assert r.parity["max_abs_diff"] <= 1e-4 and r.parity["labels_differ"] == 0
    if model == "gbt":          # the labels agree on and around the trees' thresholds too
        assert r.parity["threshold_windows"] == 5 * 200
    header = json.loads((r.directory / BUNDLE).read_text())
    ck = json.loads((artifacts / "models" / "host" / f"{model}_realistic" / "header.json").read_text())
    for key in ("classes", "preprocessing", "registry_hash", "schema_hash", "split", "window", "keep_names",
                "calibration"):
        assert header[key] == ck[key], key
    assert header["checkpoint"]["weights_sha256"] == ck["weights"]["sha256"]
    assert set(header["files"]) == {GRAPH if r.runtime == "onnxruntime" else REFERENCE, "channels.toml"}
    # The bundle loads the way the Pi loads it and predicts a batch of any size.
    b = load_bundle(r.directory)
    assert b.name == model and b.classes == ck["classes"]
    # The checkpoint's temperature is applied after the graph: the bundle's probabilities are the checkpoint's.
    assert b.temperature == ck["calibration"]["temperature"]


@pytest.mark.parametrize("model", REPLAYED)
def test_a_bundle_replays_exactly_evals_predictions(lab, exported, model):
    store, processed, artifacts = lab
    exported(model)
    bundle = Lab(processed, artifacts).bundle(Ref("host", model, "realistic"))
    replay = bundle_replay(bundle, artifacts, "realistic", "host", ["all"], store, 10)
    m = replay.model
    test_eps = {e for e, _ in replay.episodes}
    offline = pl.read_parquet(next((artifacts / "eval" / "host" / f"{model}_realistic").glob("*/predictions.parquet")))
    assert test_eps == set(offline["episode_id"].unique().to_list())   # the split's test part, from the bundle
    info = ModelInfo(model, "realistic", m.input_kind, m.classes)
    charted = charted_channels(replay.registry.channel_names, m.header["keep_names"])
    for episode_id, rel in replay.episodes[:2]:
        grid = episode_grid(Episode.open(store / rel, rel), replay.registry, replay.spec)
        preds = [ev for _, ev in episode_events(grid, m.predict_proba, info, replay.registry.channel_names, charted)
                 if ev["type"] == "prediction"]
        want = offline.filter(pl.col("episode_id") == episode_id)
        assert [p["window_id"] for p in preds] == want["window_id"].to_list()
        assert [p["predicted"] for p in preds] == want["predicted"].to_list()
        got = np.array([[p["probabilities"][c] for c in m.classes] for p in preds])
        np.testing.assert_allclose(got, want.select([f"p_{c}" for c in m.classes]).to_numpy(), atol=1e-5)


def _tamper_graph(directory):
    import onnx
    from onnx import numpy_helper
    g = onnx.load(str(directory / GRAPH))
    init = max(g.graph.initializer, key=lambda t: int(np.prod(t.dims)))   # the largest weight matrix
    w = numpy_helper.to_array(init)
    init.CopyFrom(numpy_helper.from_array((w * 1.5).astype(w.dtype), init.name))
    onnx.save(g, str(directory / GRAPH))


def _tamper_trees(directory):
    import onnx
    g = onnx.load(str(directory / GRAPH))
    trees = next(n for n in g.graph.node if n.op_type == "TreeEnsembleClassifier")
    leaves = next(a for a in trees.attribute if a.name == "class_weights")
    leaves.floats[:] = [v * 1.5 for v in leaves.floats]
    onnx.save(g, str(directory / GRAPH))


def _tamper_threshold_mode(directory):
    """x <= t instead of x < t: the same label on every window but those on a threshold."""
    import onnx
    g = onnx.load(str(directory / GRAPH))
    trees = next(n for n in g.graph.node if n.op_type == "TreeEnsembleClassifier")
    modes = next(a for a in trees.attribute if a.name == "nodes_modes")
    modes.strings[:] = [b"BRANCH_LEQ" if m == b"BRANCH_LT" else m for m in modes.strings]
    onnx.save(g, str(directory / GRAPH))


def _tamper_reference(directory):
    with np.load(directory / REFERENCE) as z:
        ref, dist = z["reference"], z["distributions"]
    np.savez(directory / REFERENCE, reference=ref, distributions=dist[::-1].copy())


@pytest.mark.parametrize("model, tamper", [("cnn", _tamper_graph), ("gbt", _tamper_trees),
                                           ("gbt", _tamper_threshold_mode), ("knn", _tamper_reference)])
def test_export_refuses_a_tampered_model_and_keeps_the_good_bundle(lab, exported, model, tamper):
    store, processed, artifacts = lab
    good = exported(model)
    before = (good.directory / BUNDLE).read_bytes()
    with pytest.raises(ExportError, match=rf"{model} \(realistic\): the exported .* disagrees with the checkpoint "
                                          r"on \d+ test windows( and \d+ at tree thresholds)? \(max \|p diff\| .*nothing written"):
        export_model(processed, artifacts, REG, model, "realistic", "host", check=tamper)
    assert (good.directory / BUNDLE).read_bytes() == before
    assert not [p for p in good.directory.parent.iterdir() if p.name.startswith(".")]
    load_bundle(good.directory)


def test_a_bundle_with_a_changed_file_is_refused_with_the_command_that_remakes_it(lab, exported, tmp_path):
    r = exported("mlp")
    copy = tmp_path / "mlp_realistic"
    shutil.copytree(r.directory, copy)
    with open(copy / GRAPH, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match=r"model.onnx: missing or not the file the bundle's header vouches for: "
                                            r"re-export with `cis490 export mlp --split host --mode realistic`"):
        load_bundle(copy)
    (copy / BUNDLE).write_text("{")
    with pytest.raises(ArtifactError, match="bundle.json"):
        load_bundle(copy)


def test_an_edited_bundle_header_is_refused_and_status_calls_it_stale(lab, exported, tmp_path):
    """Regression (issue 32): bundle.json was covered by no digest: classes
    swapped or another temperature stayed "fresh" and predict used it."""
    import hashlib

    from core.deploy.bundle import HEADER_DIGEST
    from core.paths import LabPaths
    from core.status import lab_status
    r = exported("gbt")
    _, processed, _ = lab
    home = LabPaths(tmp_path / "pi")          # a Pi's lab: the bundle, no checkpoint
    copy = home.artifacts / "deploy" / "host" / "gbt_realistic"
    shutil.copytree(r.directory, copy)
    assert (copy / HEADER_DIGEST).read_text().split() == [hashlib.sha256((copy / BUNDLE).read_bytes()).hexdigest(),
                                                          BUNDLE]

    def row():
        return {x.artifact: x for x in lab_status(home)}["bundle host/gbt_realistic"]
    assert row().state == "fresh"
    header = json.loads((copy / BUNDLE).read_text())
    header["classes"] = header["classes"][::-1]
    (copy / BUNDLE).write_text(json.dumps(header, indent=1) + "\n")
    with pytest.raises(ArtifactError, match=r"bundle.json: changed since the export .*re-export with "
                                            r"`cis490 export gbt --split host --mode realistic`"):
        load_bundle(copy)
    assert row().state == "stale" and "changed since the export" in row().reason
    (copy / HEADER_DIGEST).unlink()
    with pytest.raises(ArtifactError, match=r"no bundle.sha256 vouches for it"):
        load_bundle(copy)


def test_a_bundle_replays_only_held_out_episodes_the_store_holds(lab, exported, tmp_path):
    store, processed, artifacts = lab
    r = exported("gbt")
    test = [tuple(e) for e in json.loads((r.directory / BUNDLE).read_text())["test_episodes"]]
    partial = tmp_path / "store"
    for _, rel in test[:2]:
        shutil.copytree(store / rel, partial / rel)
    replay = bundle_replay(r.directory, artifacts, "realistic", "host", ["all"], partial, 10)
    assert replay.episodes == test[:2] and replay.held == len(test)
    with pytest.raises(ReplayError, match="holds none of the"):
        bundle_replay(r.directory, artifacts, "realistic", "host", ["all"], tmp_path / "empty", 10)
    train_ep = pl.read_parquet(processed / "splits" / "host.parquet").filter(pl.col("part") == "train")["episode_id"][0]
    with pytest.raises(ReplayError, match=f"episode {train_ep} is not in the host split's test part"):
        bundle_replay(r.directory, artifacts, "realistic", "host", [train_ep], store, 10)


def test_numpy_knn_matches_a_tree_search():
    from sklearn.neighbors import NearestNeighbors

    from core.models.tabular import _vote
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(700, 12)).astype(np.float32)
    dist = rng.dirichlet(np.ones(4), size=700).astype(np.float32)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    for k in (1, 5, 25):
        d, i = NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(x)
        np.testing.assert_allclose(knn_proba(x, ref, dist, k), _vote(dist, d, i), atol=1e-6)


def test_threshold_windows_sit_on_and_around_each_split(lab):
    """The gbt parity windows: the chosen feature is the split's threshold and
    its float32 neighbours, the rest of the window unchanged."""
    import xgboost as xgb
    from core.deploy.export import _near_thresholds
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(X, label=(X[:, 1] > 0.3).astype(int)), 3)

    from core.models.tabular import GBTModel

    class Native:
        split_thresholds = GBTModel.split_thresholds
    native = Native()
    native.booster, native.best_iteration = booster, 2
    near = _near_thresholds(native, X[:10], splits_compared=3)
    assert near.shape == (15, 4) and near.dtype == np.float32
    for i in range(3):
        five = near[5 * i:5 * i + 5]
        changed = np.flatnonzero((five != X[i]).any(axis=0))
        assert len(changed) <= 1
        f = int(changed[0]) if len(changed) else 1
        v = five[:, f]
        assert (np.nextafter(v[:-1], np.float32(np.inf)) == v[1:]).all()     # one ULP apart each


def test_pi_check_compares_every_window_with_evals_predictions(tmp_path):
    """scripts/pi_check.py's verdict, on crafted predictions: a label that
    differs and a probability past 1e-5 are both counted."""
    from scripts.pi_check import compare
    d = tmp_path / "artifacts" / "eval" / "host" / "gbt_realistic" / "test-episode-b1000-s0"
    d.mkdir(parents=True)
    pl.DataFrame({"window_id": ["w1", "w2", "w3"], "predicted": ["a", "b", "a"],
                  "p_a": [0.9, 0.2, 0.6], "p_b": [0.1, 0.8, 0.4]}).write_parquet(d / "predictions.parquet")
    pi = {"gbt_realistic": {"classes": ["a", "b"],
                            "windows": {"w1": [0.9, 0.1], "w2": [0.2, 0.8], "w3": [0.4, 0.6 + 2e-5]}}}
    [row] = compare(tmp_path, "host", pi)
    assert row == {"model": "gbt_realistic", "windows": 3, "pi_windows": 3, "labels_equal": 2,
                   "max_abs_diff": pytest.approx(0.2 + 2e-5)}
