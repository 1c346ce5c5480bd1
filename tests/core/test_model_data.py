"""Summary models out of core: features streamed from the parquet in batches
of the kept columns, statistics in chunks, gbt from a batch iterator, and a
bounded kNN reference set with k chosen on validation."""
import json

import numpy as np
import polars as pl
import pytest

from core.extract import load_feature_schema, read_features
from core.models.base import Preprocessor
from core.models.data import SummaryData, slog
from core.models.tabular import GBTModel, KNNModel
from core.registry import load_registry
from core.train import keep_mask, load_split_data, train_one
from tests.labs import host_split_copy

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

REG = load_registry()
PHASES = list(REG.phases)


@pytest.fixture(scope="module")
def lab(extracted_lab, tmp_path_factory):
    return host_split_copy(extracted_lab, tmp_path_factory, "data")


def test_parts_stream_exactly_the_parquet_rows_of_the_kept_columns(lab):
    data = load_split_data(lab, "host", "summary", capped=False)      # every window (the cap: test_episode_share)
    schema = load_feature_schema(lab)
    keep = keep_mask(REG, schema, "summary", "realistic")
    whole = read_features(lab).with_row_index("row")
    split = pl.read_parquet(lab / "splits" / "host.parquet")
    for part, d in data.parts.items():
        want = whole.join(split, on="episode_id", maintain_order="left").filter(pl.col("part") == part)
        expected = want.select([schema["features"][i] for i in keep]).to_numpy().astype(np.float32)
        np.testing.assert_array_equal(d.y, want["label_id"].to_numpy())
        got = np.concatenate([x for x, _ in d.batches(100, cols=keep)])
        np.testing.assert_array_equal(got, expected)
        # A shuffled pass holds every window once, each with its own label.
        xs, ys = zip(*d.batches(64, np.random.default_rng(0), cols=keep))
        xs, ys = np.concatenate(xs), np.concatenate(ys)
        order = np.lexsort(xs.T[::-1])
        ref = np.lexsort(expected.T[::-1])
        np.testing.assert_array_equal(xs[order], expected[ref])
        np.testing.assert_array_equal(ys[order], d.y[ref])
        idx = np.array([0, 5, len(d) - 1])
        np.testing.assert_array_equal(d.gather(idx, cols=keep), expected[idx])


def test_streamed_statistics_equal_the_whole_matrix_ones():
    rng = np.random.default_rng(0)
    X = rng.lognormal(2, 2, (5000, 7)).astype(np.float32) * rng.choice([-1, 1], (5000, 7))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 6] = np.nan                                   # a feature never present
    data = SummaryData.from_array(X, np.zeros(5000, np.int64), group_rows=333)
    pre = Preprocessor.fit(data, np.arange(7), seed=0)
    s = slog(X[:, :6].astype(np.float64))
    np.testing.assert_allclose(pre.mean[:6], np.nanmean(s, axis=0), rtol=1e-9)
    np.testing.assert_allclose(pre.std[:6], np.nanstd(s, axis=0), rtol=1e-9)
    np.testing.assert_allclose(pre.median[:6], np.nanmedian(s, axis=0), rtol=1e-9)
    assert (pre.mean[6], pre.median[6], pre.std[6]) == (0.0, 0.0, 1.0)
    out = pre.transform_summary(X)
    assert out.dtype == np.float32 and np.isfinite(out).all()


def _blobs(n, seed, flip=0.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 6, n)
    X = (rng.normal(0, 1.0, (n, 12)) + 2.5 * np.eye(6, 12)[y]).astype(np.float32)
    noisy = rng.random(n) < flip
    y = np.where(noisy, rng.integers(0, 6, n), y)
    return SummaryData.from_array(X, y, group_rows=97)


@pytest.mark.slow
def test_gbt_through_the_batch_iterator_equals_in_memory_training():
    train, val, test = _blobs(3000, 0), _blobs(600, 1), _blobs(2000, 2)
    preds, accs = [], []
    for batch_rows, budget in ((10**9, 1024), (128, 1024), (128, 0)):   # one batch; many; paged to disk
        m = GBTModel(PHASES, {"n_estimators": 30, "memory_budget_mb": budget}, seed=0)
        m.batch_rows = batch_rows
        m.fit(train, val, np.arange(12))
        assert m.training["data"]["external_memory"] is (budget == 0)
        p = m.predict_data(test).argmax(1)
        preds.append(p)
        accs.append((p == test.y).mean())
    for p in preds[1:]:
        assert (p == preds[0]).mean() >= 0.99
    assert max(accs) - min(accs) <= 0.005


def test_knn_chooses_k_on_validation_and_records_its_reference_set():
    # A fifth of the train labels are noise: one neighbour copies it, many outvote it.
    train, val = _blobs(3000, 0, flip=0.2), _blobs(600, 1)
    m = KNNModel(PHASES, {"max_train": 1200}, seed=0)
    m.fit(train, val, np.arange(12))
    t = m.training
    scores = {int(k): v for k, v in t["k_scores"].items()}
    assert t["k"] == max(scores, key=lambda k: (scores[k], k)) and t["k"] >= 9
    assert scores[t["k"]] > scores[1] + 0.05
    assert t["reference"] == {"windows": 1200, "of": 3000, "cap": 1200, "sample": "stratified by phase"}
    counts = np.bincount(m.dist_fit.argmax(1), minlength=6) / 1200
    np.testing.assert_allclose(counts, np.bincount(train.y, minlength=6) / 3000, atol=0.01)
    fixed = KNNModel(PHASES, {"k": 1}, seed=0)
    fixed.fit(train, val, np.arange(12))
    assert fixed.training["k"] == 1 and fixed.training["k_choice"] == "set"


def test_eval_of_a_summary_model_never_reads_the_whole_table(lab, tmp_path, monkeypatch):
    """Prediction streams the evaluated part's kept columns in batches."""
    from core.models.data import ParquetTable
    r = train_one(lab, tmp_path, REG, "gbt", "realistic", "host", {"n_estimators": 5}, seed=0)
    keep = json.loads((r.checkpoint / "header.json").read_text())["preprocessing"]["keep"]
    seen = []
    real = ParquetTable.read_group

    def spy(self, g, cols):
        seen.append(len(cols))
        return real(self, g, cols)
    monkeypatch.setattr(ParquetTable, "read_group", spy)
    from core.train import load_checkpoint
    m = load_checkpoint(r.checkpoint, lab, REG)
    m.predict_data(load_split_data(lab, "host", "summary").parts["test"], batch=50)
    assert seen and set(seen) == {len(keep)} and len(keep) < len(load_feature_schema(lab)["features"])


def test_a_part_over_the_memory_budget_streams_and_trains_the_same_gbt(lab, tmp_path, monkeypatch):
    import core.models.data as data_mod
    from core.train import load_checkpoint
    test = load_split_data(lab, "host", "summary").parts["test"]
    small = train_one(lab, tmp_path / "a", REG, "gbt", "realistic", "host", {"n_estimators": 30}, seed=0)
    monkeypatch.setattr(data_mod, "IN_MEMORY_MB", 0.0)
    big = train_one(lab, tmp_path / "b", REG, "gbt", "realistic", "host", {"n_estimators": 30}, seed=0)
    assert small.header["training"]["inputs"] == {"train": "in memory (read once)", "val": "in memory (read once)"}
    assert big.header["training"]["inputs"] == {"train": "streamed", "val": "streamed"}
    p1 = load_checkpoint(small.checkpoint, lab, REG).predict_data(test).argmax(1)
    p2 = load_checkpoint(big.checkpoint, lab, REG).predict_data(test).argmax(1)
    assert (p1 == p2).mean() >= 0.99
