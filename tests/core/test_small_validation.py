"""The small-validation rule (core/models/small_validation.py): a validation
part too small to choose by makes cross-validation on train + val choose, and
the checkpoint says which rule chose."""
from __future__ import annotations

import numpy as np
import pytest

from core.models import MODELS
from core.models.data import ArrayStore, SummaryData
from core.models.small_validation import MIN_VAL_PER_PHASE, MIN_VAL_WINDOWS, folds, too_small
from core.synth.tiny import CLASSES, tiny_set


def _labels(y):
    return SummaryData.from_array(np.zeros((len(y), 1), np.float32), np.asarray(y))


def test_the_threshold_counts_windows_and_each_phase_train_has():
    train = _labels([0, 1, 2, 3] * 5)
    assert too_small(train, _labels([0, 1, 2, 3] * 12), list(CLASSES)) == "48 validation windows (fewer than 50)"
    assert too_small(train, _labels([0, 1, 2, 3] * 13), list(CLASSES)) is None            # 52, 13 a phase
    lopsided = too_small(train, _labels([0] * 20 + [1] * 20 + [2] * 20 + [3] * 4), list(CLASSES))
    assert lopsided == f"4 validation windows of phase 'ramp' (fewer than {MIN_VAL_PER_PHASE})"
    # A phase the split holds nowhere does not make every validation part "too small".
    assert too_small(_labels([0, 1, 2] * 5), _labels([0, 1, 2] * 20), list(CLASSES)) is None
    assert MIN_VAL_WINDOWS == 50


def test_folds_keep_each_episode_whole():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(12), 3)
    pool = SummaryData.from_array(rng.normal(size=(36, 2)).astype(np.float32), np.repeat(np.arange(12) % 2, 3),
                                  groups=groups)
    splits = folds(pool, seed=0)
    assert len(splits) == 3
    for tr, te in splits:
        assert not set(groups[tr]) & set(groups[te])
    assert sorted(np.concatenate([te for _, te in splits]).tolist()) == list(range(36))


def _parts(kind, val_windows):
    parts = tiny_set({"train": 8, "val": 13, "test": 25}, seed=1)
    out = {}
    for p, v in parts.items():
        n = val_windows if p == "val" else len(v.y)
        out[p] = (SummaryData.from_array(v.summary[:n], v.y[:n]) if kind == "summary"
                  else ArrayStore.data(v.values[:n], v.masks[:n], v.y[:n]))
    return out


@pytest.mark.parametrize("name,chosen", [("knn", "k"), ("gbt", "rounds"), ("mlp", "epochs")])
def test_a_tiny_validation_part_is_decided_by_cross_validation_and_recorded(name, chosen):
    cls = MODELS[name]
    d = _parts(cls.input_kind, 7)
    m = cls(list(CLASSES), None, seed=0)
    m.fit(d["train"], d["val"], np.arange(d["train"].width))
    record = m.training["small_validation"]
    assert record["reason"] == "7 validation windows (fewer than 50)"
    assert "cross-validation on train + val" in record["rule"] and len(record["folds"]) == 3
    assert set(record["chosen"]) == {chosen} and m.training["choice_rule"].startswith("cross-validation")
    if name == "mlp":          # the final fit runs exactly the chosen epochs, on train + val
        assert m.training["epochs_run"] == record["chosen"]["epochs"]
    if name == "knn":          # the reference set is train + val
        assert m.k == record["chosen"]["k"]
    proba = m.predict_data(d["test"])
    assert np.isfinite(proba).all() and (proba.argmax(1) == d["test"].y).mean() > 0.4


def test_a_tensor_model_pools_windows_of_two_in_memory_stores():
    """Regression: train + val of two in-memory stores read val's rows from train's store."""
    from core.models.data import concat_parts
    d = _parts("tensor", 7)
    pool = concat_parts(d["train"], d["val"])
    values, _ = pool.store.rows(pool.rows)
    assert np.array_equal(values[32:], d["val"].store.values) and np.array_equal(pool.y[32:], d["val"].y)


def test_a_validation_part_big_enough_still_chooses():
    d = _parts("summary", 52)
    m = MODELS["knn"](list(CLASSES), None, seed=0)
    m.fit(d["train"], d["val"], np.arange(d["train"].width))
    assert "small_validation" not in m.training
    assert m.training["choice_rule"] == "the validation part (52 windows)"


def test_with_too_few_episodes_for_folds_the_validation_part_still_chooses():
    """Regression: a train + val of one episode made no fold, and the model
    was never fitted (an empty record, then a failure at prediction)."""
    parts = tiny_set({"train": 8, "val": 2, "test": 5}, seed=1)
    d = {p: SummaryData.from_array(v.summary, v.y, groups=np.zeros(len(v.y), np.int64)) for p, v in parts.items()}
    m = MODELS["knn"](list(CLASSES), None, seed=0)
    m.fit(d["train"], d["val"], np.arange(d["train"].width))
    assert m.training["small_validation"]["rule"] == "too few episodes for two folds: the validation part chose"
    assert m.training["choice_rule"].startswith("the validation part (8 windows") and m.k >= 1
    assert np.isfinite(m.predict_data(d["test"])).all()
