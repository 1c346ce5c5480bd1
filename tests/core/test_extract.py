import gzip
import hashlib
import json
import shutil

import numpy as np
import polars as pl
import pytest

from core.extract import (EPISODES, FEATURES, SCHEMA, TENSORS, ExtractConfig, load_feature_schema, run_extract)
from core.extract.episode import (ExtractError, WindowSpec, _carry_one, _sample_grid, extract_episode,
                                  feature_names, summary_features)
from core.extract.tensors import TensorStore
from core.registry import load_registry
from core.store import Episode

REG = load_registry()


def _digests(processed):
    out = {}
    for p in sorted(processed.rglob("*")):
        if p.is_file() and "splits" not in p.parts and p.name != "validation_v1.parquet":
            out[p.relative_to(processed).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_outputs_are_aligned_row_for_row(extracted_lab):
    paths, summary = extracted_lab
    feats = pl.read_parquet(paths.processed / FEATURES)
    tindex = pl.read_parquet(paths.processed / TENSORS / "index.parquet")
    store = TensorStore.open(paths.processed / TENSORS)
    schema = load_feature_schema(paths.processed)
    assert feats.height == tindex.height == store.n_windows == summary.windows == schema["n_windows"]
    assert feats["window_id"].to_list() == tindex["window_id"].to_list()
    assert feats["window_id"].n_unique() == feats.height
    assert feats.columns[8:] == feature_names(REG) == schema["features"]
    assert len(schema["features"]) == 46 * 6
    assert store.meta["parts"][:-1] == [256] * (len(store.meta["parts"]) - 1) and len(store.meta["parts"]) > 3
    assert set(feats["label"].unique()) == set(REG.phases)
    assert (feats["label_id"].to_numpy() == np.array([REG.phases.index(x) for x in feats["label"]])).all()


def test_batch_equals_single_episode(extracted_lab):
    paths, _ = extracted_lab
    eps = pl.read_parquet(paths.processed / EPISODES).filter(pl.col("n_windows") > 0)
    feats = pl.read_parquet(paths.processed / FEATURES)
    store = TensorStore.open(paths.processed / TENSORS)
    for rec in eps.sample(3, seed=1).iter_rows(named=True):
        one = extract_episode(Episode.open(paths.default_store / rec["rel_path"], rec["rel_path"]), REG)
        rows = np.arange(rec["first_row"], rec["first_row"] + rec["n_windows"])
        vals, masks = store.rows(rows)
        np.testing.assert_array_equal(vals, one.values)
        np.testing.assert_array_equal(masks, one.mask)
        batch_f = feats.slice(rec["first_row"], rec["n_windows"])
        np.testing.assert_array_equal(batch_f.select(feature_names(REG)).to_numpy(), one.features)
        assert batch_f["label"].to_list() == one.labels


def test_tensor_store_is_memory_mapped(extracted_lab):
    paths, _ = extracted_lab
    store = TensorStore.open(paths.processed / TENSORS)
    part = store._part("values", 0)
    assert isinstance(part, np.memmap)
    vals, masks = store.rows(np.array([300, 5, 257]))
    np.testing.assert_array_equal(vals[1], store._part("values", 0)[5])
    np.testing.assert_array_equal(vals[0], store._part("values", 1)[300 - 256])
    assert vals.dtype == np.float32 and masks.dtype == np.uint8
    assert ((masks == 1) == ~np.isnan(vals)).all()


def test_rerun_is_deterministic_and_incremental(extracted_lab, tmp_path):
    paths, first = extracted_lab
    processed = tmp_path / "processed"
    shutil.copytree(paths.processed, processed)
    index = processed / "validation_v1.parquet"
    before = _digests(processed)
    again = run_extract(processed, index, paths.default_store, REG, ExtractConfig(part_windows=256), workers=1)
    assert again.reused == first.extracted and again.extracted == 0
    assert _digests(processed) == before
    shutil.rmtree(processed / TENSORS)
    (processed / SCHEMA).unlink()
    fresh = run_extract(processed, index, paths.default_store, REG, ExtractConfig(part_windows=256), workers=2)
    assert fresh.extracted == first.extracted and fresh.reused == 0
    assert _digests(processed) == before


def test_changed_window_spec_recomputes(extracted_lab, tmp_path):
    paths, first = extracted_lab
    processed = tmp_path / "p"
    shutil.copytree(paths.processed, processed)
    s = run_extract(processed, processed / "validation_v1.parquet", paths.default_store, REG,
                    ExtractConfig(WindowSpec(window_s=10, hop_s=10)), workers=1)
    assert s.reused == 0 and 0 < s.windows < first.windows
    assert load_feature_schema(processed)["window"]["hop_s"] == 10


def _clean_episode(paths, tmp_path):
    eps = pl.read_parquet(paths.processed / EPISODES).filter(pl.col("n_windows") > 0)
    rel = eps["rel_path"][0]
    dst = tmp_path / "ep"
    shutil.copytree(paths.default_store / rel, dst)
    return dst


def test_clock_base_guard_fires_on_native_netflow_stamps(extracted_lab, tmp_path):
    """Regression: the lab's first pipeline aligned netflow on the exporter's own clock."""
    paths, _ = extracted_lab
    ep_dir = _clean_episode(paths, tmp_path)
    rows = [json.loads(x) for x in gzip.decompress((ep_dir / "netflow.jsonl.gz").read_bytes()).splitlines()]
    assert rows
    for r in rows:
        r["t_wall_ns"] = r["t_exporter_ms"] * 1_000_000  # aligned on the native stamp
    (ep_dir / "netflow.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    with pytest.raises(ExtractError, match="source 'netflow' is present but none of its rows aligns"):
        extract_episode(Episode.open(ep_dir), REG)


def test_labels_at_phase_boundaries(extracted_lab, tmp_path):
    paths, _ = extracted_lab
    ep_dir = _clean_episode(paths, tmp_path)
    m = json.loads((ep_dir / "manifest.json").read_text())
    s = m["started_at_ns"]
    # Window k (10 s, hop 5 s) has its centre at 5 + 5k seconds.
    labels = [(0, "idle"), (15.0, "execute"), (25.000001, "act")]
    (ep_dir / "labels.jsonl").write_text("".join(json.dumps({"t_wall_ns": s + int(t * 1e9), "phase": p}) + "\n"
                                                 for t, p in labels))
    w = extract_episode(Episode.open(ep_dir), REG)
    centres = dict(zip(w.t_center_s.tolist(), w.labels))
    assert centres[10.0] == "idle"
    assert centres[15.0] == "execute"       # a label holds from its own time
    assert centres[25.0] == "execute"       # the next phase starts a microsecond later
    assert centres[30.0] == "act"


def test_counter_reset_gives_missing_not_negative():
    from core.registry import Channel
    ch = Channel("qmp.blk_rd_bytes", "qmp", "counter", "B/s", False)
    t = (np.arange(8) * 0.5e9).astype(np.int64)
    v = np.array([100, 200, 300, 5, 105, 205, 305, 405], dtype=float)  # reset after the third sample
    grid = _sample_grid(v, ch, np.arange(8), t, 8)
    assert np.isnan(grid[0])  # no earlier sample to difference with
    assert np.isnan(grid[3])  # the reset: missing, not -590 B/s, and not carried over
    np.testing.assert_allclose(grid[[1, 2, 4, 5, 6, 7]], 200.0)


def test_gauge_carries_forward_at_most_one_step():
    x = np.array([1.0, np.nan, np.nan, 4.0, np.nan, np.nan])
    sampled = np.array([True, False, False, True, False, True])  # the last step's sample was null
    np.testing.assert_array_equal(_carry_one(x, sampled), [1.0, 1.0, np.nan, 4.0, 4.0, np.nan])


def test_summary_features_by_hand():
    win = np.array([[[1.0, np.nan, 3.0, 5.0]]])
    f = summary_features(win)[0]
    mean, std, mn, mx, delta, present = f
    assert mean == 3.0 and mn == 1.0 and mx == 5.0 and delta == 4.0 and present == 0.75
    assert std == pytest.approx(np.std([1, 3, 5]))


def test_missing_index_says_what_to_run(tmp_path):
    from core.errors import ArtifactError
    with pytest.raises(ArtifactError, match=r"validation_v1.parquet not found: run `cis490 validate` first"):
        run_extract(tmp_path, tmp_path / "validation_v1.parquet", tmp_path, REG)
