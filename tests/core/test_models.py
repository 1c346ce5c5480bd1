import json
import shutil

import numpy as np
import pytest

import core.models.loop as loop_mod
from core.errors import ConfigError
from core.models import MODELS
from core.models.base import CheckpointError, TrainError
from core.models.loop import train_loop
from core.models.settings import LoopSettings
from core.registry import load_registry, parse_registry
from core.train import keep_mask, load_checkpoint, load_split_data, resolve_device, train_one
from tests.labs import host_split_copy

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

REG = load_registry()
FAST = {"epochs": 4, "batch_size": 128, "patience": 4}
SMALL_ROCKET = {"minirocket": {"n_features": 2000}, "mrhydra": {"n_kernels": 168, "hydra_groups": 8}}


@pytest.fixture(scope="module")
def lab(extracted_lab, tmp_path_factory):
    processed = host_split_copy(extracted_lab, tmp_path_factory, "models")
    data = {k: load_split_data(processed, "host", k) for k in ("summary", "tensor")}
    return processed, processed.parent / "artifacts", data


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_learns_and_round_trips(lab, name):
    processed, artifacts, data = lab
    cls = MODELS[name]
    d = data[cls.input_kind]
    # The ROCKET fronts narrower than their defaults: the same code in a
    # fraction of the time (their defaults are measured by bench/archive.py).
    overrides = FAST if cls.default_config.get("epochs") else SMALL_ROCKET.get(name)
    r = train_one(processed, artifacts, REG, name, "realistic", "host", overrides, seed=1, data=d)
    model = load_checkpoint(r.checkpoint, processed, REG)
    val = d.parts["val"]
    proba = model.predict_data(val)
    assert proba.shape == (len(val), 6)
    # Never a NaN probability, on any part (knn_semi learned from the test inputs).
    for part in ("train", "val", "test"):
        assert np.isfinite(model.predict_data(d.parts[part])).all(), part
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    acc = (proba.argmax(1) == val.y).mean()
    majority = np.bincount(d.parts["train"].y).argmax()
    assert acc > (val.y == majority).mean() + 0.15, f"{name}: accuracy {acc:.3f}"
    # The checkpoint scores exactly like the model that was trained.
    inputs = val.gather(np.arange(64)) if cls.input_kind == "summary" else val.store.rows(val.rows[:64])
    again = load_checkpoint(r.checkpoint, processed, REG).predict_proba(inputs)
    np.testing.assert_array_equal(model.predict_proba(inputs), again)
    header = json.loads((r.checkpoint / "header.json").read_text())
    assert header["training"]["split"] == "host" and header["mode"] == "realistic"
    assert len(header["pca"]["components"]) == 2
    # Temperature scaling, fitted on val once trained (or 1 where val was trained on), applied on every read.
    cal = header["calibration"]
    assert cal["temperature"] > 0 and model.temperature == cal["temperature"]
    if cal["fitted_on"] == "val":
        assert cal["val_nll_after"] <= cal["val_nll_before"] + 1e-9
    from core.calibrate import scale
    np.testing.assert_array_equal(proba, scale(model.predict_data(val, calibrated=False), cal["temperature"]))
    assert header["weights"]["file"] in ("weights.npz", "weights.json")
    if name == "knn_semi":
        pool = header["training"]["unlabeled_pool"]
        assert pool["windows_used"] > 0 and pool["labels_used"] is False and "test" in pool["source"]


def test_realistic_mode_never_sees_host_only_channels(lab):
    processed, _, _ = lab
    schema = json.loads((processed / "feature_schema_v1.json").read_text())
    deployable = {c.name for c in REG.channels if c.deployable}
    for kind, names in (("summary", schema["features"]), ("tensor", schema["channels"])):
        kept = [names[i] for i in keep_mask(REG, schema, kind, "realistic")]
        assert kept and all(n.split(":")[0] in deployable for n in kept)
        assert {n.split(":")[0] for n in kept} == deployable
        assert len(keep_mask(REG, schema, kind, "oracle")) == len(names)


def test_changed_registry_makes_loading_refuse(lab):
    processed, artifacts, data = lab
    r = train_one(processed, artifacts, REG, "knn", "oracle", "host", seed=0, data=data["summary"])
    import tomllib
    from core.registry import DEFAULT_REGISTRY
    raw = tomllib.loads(DEFAULT_REGISTRY.read_text())
    raw["channel"][0]["unit"] = "ms/s"
    other = parse_registry(raw, "other.toml")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(r.checkpoint, processed, other)
    assert "trained with channel registry" in str(err.value)
    assert "retrain with `cis490 train knn --split host --mode oracle`" in str(err.value)
    assert "pass --channels" in str(err.value)


def test_other_format_version_is_refused(lab, tmp_path):
    processed, artifacts, data = lab
    r = train_one(processed, artifacts, REG, "knn", "realistic", "host", seed=0, data=data["summary"])
    copy = tmp_path / "ck"
    shutil.copytree(r.checkpoint, copy)
    h = json.loads((copy / "header.json").read_text())
    h["format_version"] = 99
    (copy / "header.json").write_text(json.dumps(h))
    with pytest.raises(CheckpointError, match="checkpoint format 99, this cis490 reads 3"):
        load_checkpoint(copy, processed, REG)


def test_weights_that_do_not_fit_the_header_are_refused_in_one_line(lab, tmp_path):
    """Regression: a minirocket header whose config no longer describes its
    weights' shapes gave "unexpected RuntimeError: Error(s) in loading state_dict"."""
    processed, artifacts, data = lab
    r = train_one(processed, artifacts, REG, "minirocket", "realistic", "host", {"n_features": 2000}, seed=0,
                  data=data["tensor"])
    copy = tmp_path / "ck"
    shutil.copytree(r.checkpoint, copy)
    h = json.loads((copy / "header.json").read_text())
    h["config"]["n_features"] = 4000
    (copy / "header.json").write_text(json.dumps(h))
    with pytest.raises(CheckpointError, match=r"weights.npz: the weights do not fit the model the header describes "
                                              r"\(Error\(s\) in loading state_dict.*\): retrain with `cis490 train"):
        load_checkpoint(copy, processed, REG)


def test_same_seed_same_validation_score(lab):
    processed, artifacts, data = lab
    scores = [train_one(processed, artifacts, REG, "cnn", "realistic", "host", {"epochs": 2}, seed=7,
                        data=data["tensor"]).header["training"]["val_macro_f1"] for _ in range(2)]
    assert scores[0] == scores[1]


def test_early_stopping_restores_the_best_epoch(monkeypatch):
    import torch
    net = torch.nn.Linear(3, 2)
    scripted = iter([0.2, 0.6, 0.5, 0.4, 0.3, 0.9])
    snapshots = []

    def fake_evaluate(net, val_batches, k, device, autocast):
        snapshots.append({n: v.clone() for n, v in net.state_dict().items()})
        return next(scripted), 0.0
    monkeypatch.setattr(loop_mod, "evaluate", fake_evaluate)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    info = train_loop(net, lambda r, b: iter([(x, y)]), 64, lambda: iter([]), np.ones(2),
                      LoopSettings(epochs=6, patience=3, lr=0.1, warmup_frac=0.0), "cpu", 0)
    assert info["best_epoch"] == 2 and info["epochs_run"] == 5 and info["val_macro_f1"] == 0.6
    for n, v in net.state_dict().items():
        torch.testing.assert_close(v, snapshots[1][n])


def test_a_class_missing_from_train_is_refused(lab):
    processed, _, data = lab
    d = data["summary"]
    train = d.parts["train"]
    no_dormant = train.take(np.nonzero(train.y != 5)[0])
    m = MODELS["knn"](list(REG.phases))
    with pytest.raises(TrainError, match="train part has no windows of phase 'dormant'"):
        m.fit(no_dormant, d.parts["val"], np.arange(10))


def test_device_resolution():
    import torch
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ConfigError, match="torch sees no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="--device must be auto, cpu or cuda"):
        resolve_device("tpu")


def test_knn_semi_never_emits_nan_probabilities():
    """Regression: a crowd of duplicated unlabelled windows got NaN label
    distributions (a directed kNN graph left some without neighbours), and
    windows near them NaN probabilities, read as 'idle' by argmax."""
    import warnings
    from core.models.data import SummaryData
    from core.models.tabular import KNNSemiModel
    rng = np.random.default_rng(0)
    xl = np.concatenate([rng.normal(3 * c, 0.3, (20, 8)) for c in range(6)]).astype(np.float32)
    yl = np.repeat(np.arange(6), 20)
    crowd = np.tile(rng.normal(50, 0.3, (1, 8)), (60, 1))
    xu = np.concatenate([crowd, rng.normal(6, 0.3, (30, 8))]).astype(np.float32)
    m = KNNSemiModel(list(REG.phases), None, seed=0)
    m.unlabeled = SummaryData.from_array(xu, np.full(len(xu), -1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # and nothing leaks a RuntimeWarning under --quiet
        m.fit(SummaryData.from_array(xl, yl), SummaryData.from_array(xl[::2], yl[::2]), np.arange(8))
        proba = m.predict_proba(np.concatenate([xu, xl]))
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert m.training["unlabeled_pool"]["windows_unreached"] == 60


def test_non_finite_probabilities_are_refused(lab):
    from core.models.base import ModelError
    processed, artifacts, data = lab
    r = train_one(processed, artifacts, REG, "knn", "realistic", "host", seed=0, data=data["summary"])
    model = load_checkpoint(r.checkpoint, processed, REG)
    model.dist_fit = np.full_like(model.dist_fit, np.nan)
    with pytest.raises(ModelError, match="knn: 5 of 5 windows got non-finite probabilities"):
        model.predict_proba(data["summary"].parts["val"].gather(np.arange(5)))


def test_training_on_zero_samples_fails_and_keeps_the_old_checkpoint(lab, monkeypatch):
    """Regression: --batch-size 1 trained on nothing (loss 0.0 every epoch) and
    replaced the checkpoint with an untrained one, exit 0."""
    processed, artifacts, data = lab
    good = train_one(processed, artifacts, REG, "mlp", "oracle", "host", FAST, seed=0, data=data["summary"])
    before = {p.name: p.read_bytes() for p in good.checkpoint.iterdir()}
    with pytest.raises(ConfigError, match="mlp: setting batch_size=1 is out of range"):
        train_one(processed, artifacts, REG, "mlp", "oracle", "host", {**FAST, "batch_size": 1}, seed=0,
                  data=data["summary"])
    plan = loop_mod.schedule
    monkeypatch.setattr(loop_mod, "schedule", lambda n, cfg: {**plan(n, cfg), "batch_size": 1})
    with pytest.raises(TrainError, match="epoch 1 trained on no window: every batch was smaller than 2 windows"):
        train_one(processed, artifacts, REG, "mlp", "oracle", "host", FAST, seed=0, data=data["summary"])
    assert {p.name: p.read_bytes() for p in good.checkpoint.iterdir()} == before
    assert [p.name for p in good.checkpoint.parent.iterdir() if p.name.startswith(".")] == []


def test_schema_mismatch_says_what_differs(lab, tmp_path):
    """Regression: the message could print two identical window specs when the hash differed."""
    processed, artifacts, data = lab
    r = train_one(processed, artifacts, REG, "knn", "realistic", "host", seed=0, data=data["summary"])
    other = tmp_path / "processed"
    shutil.copytree(processed, other)
    schema = json.loads((other / "feature_schema_v1.json").read_text())
    changed = {**schema, "window": {**schema["window"], "hop_s": 10.0}, "spec_hash": "0" * 16}
    (other / "feature_schema_v1.json").write_text(json.dumps(changed))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(r.checkpoint, other, REG)
    assert ("trained on other inputs than the current extract (window spec {'step_s': 0.5, 'window_s': 10.0, "
            "'hop_s': 5.0} then, {'step_s': 0.5, 'window_s': 10.0, 'hop_s': 10.0} now)") in str(err.value)
    changed = {**schema, "features": schema["features"][:-6]}
    (other / "feature_schema_v1.json").write_text(json.dumps(changed))
    with pytest.raises(CheckpointError, match=r"\(276 inputs then, 270 inputs now \(another feature/channel list\)\)"):
        load_checkpoint(r.checkpoint, other, REG)
