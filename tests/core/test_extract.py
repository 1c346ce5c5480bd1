import gzip
import hashlib
import json
import shutil

import numpy as np
import polars as pl
import pytest

from core.extract import (CHUNKS, EPISODES, SCHEMA, ExtractConfig, extract_chunks, load_feature_schema, open_tensors,
                          read_features, read_tensor_index)
from core.extract.pipeline import run_extract
from core.extract.episode import (ExtractError, WindowSpec, _carry_one, _sample_grids, extract_episode,
                                  feature_names, summary_features)
from core.registry import load_registry
from core.store import Episode
from tests.conftest import SMALL_CHUNKS

REG = load_registry()


def _digests(processed):
    out = {}
    for p in sorted(processed.rglob("*")):
        if p.is_file() and "splits" not in p.parts and p.name != "validation_v1.parquet":
            out[p.relative_to(processed).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_outputs_are_aligned_row_for_row(extracted_lab):
    paths, summary = extracted_lab
    feats = read_features(paths.processed)
    tindex = read_tensor_index(paths.processed)
    store = open_tensors(paths.processed)
    schema = load_feature_schema(paths.processed)
    assert feats.height == tindex.height == store.n_windows == summary.windows == schema["n_windows"]
    assert feats["window_id"].to_list() == tindex["window_id"].to_list()
    assert tindex["row"].to_list() == list(range(feats.height))
    assert feats["window_id"].n_unique() == feats.height
    assert feats.columns[8:] == feature_names(REG) == schema["features"]
    assert len(schema["features"]) == 46 * 6
    chunks = extract_chunks(paths.processed)
    assert len(chunks) == -(-summary.episodes // 32) == summary.chunks > 1      # 32 episodes per chunk
    for c in chunks:
        parts = c.meta["parts"]
        assert parts[:-1] == [256] * (len(parts) - 1) and sum(parts) == c.n_windows
        assert c.episodes().height == 32 or c is chunks[-1]
    assert set(feats["label"].unique()) == set(REG.phases)
    assert (feats["label_id"].to_numpy() == np.array([REG.phases.index(x) for x in feats["label"]])).all()


def test_batch_equals_single_episode(extracted_lab):
    paths, _ = extracted_lab
    eps = pl.read_parquet(paths.processed / EPISODES).filter(pl.col("n_windows") > 0)
    feats = read_features(paths.processed)
    store = open_tensors(paths.processed)
    for rec in eps.sample(6, seed=1).iter_rows(named=True):
        one = extract_episode(Episode.open(paths.default_store / rec["rel_path"], rec["rel_path"]), REG)
        rows = np.arange(rec["first_row"], rec["first_row"] + rec["n_windows"])
        vals, masks = store.rows(rows)
        np.testing.assert_array_equal(vals, one.values)
        np.testing.assert_array_equal(masks, one.mask)
        batch_f = feats.slice(rec["first_row"], rec["n_windows"])
        np.testing.assert_array_equal(batch_f.select(feature_names(REG)).to_numpy(), one.features)
        assert batch_f["label"].to_list() == one.labels


def test_a_window_extracted_on_demand_equals_the_extracted_one(extracted_lab):
    """Live replay cuts one window at a time as it completes: bit for bit what
    `cis490 extract` wrote (tensor values, mask, summary features, label, centre)."""
    from core.extract.episode import episode_grid
    paths, _ = extracted_lab
    eps = pl.read_parquet(paths.processed / EPISODES).filter(pl.col("n_windows") > 1)
    feats = read_features(paths.processed)
    store = open_tensors(paths.processed)
    for rec in eps.sample(3, seed=2).iter_rows(named=True):
        grid = episode_grid(Episode.open(paths.default_store / rec["rel_path"], rec["rel_path"]), REG)
        assert grid.n == rec["n_windows"]
        for i in (0, grid.n // 2, grid.n - 1):
            values, mask, features = grid.window_at(i)
            row = rec["first_row"] + i
            vals, masks = store.rows(np.array([row]))
            assert values.tobytes() == vals[0].tobytes() and mask.tobytes() == masks[0].tobytes()
            stored = feats.slice(row, 1)
            assert features.tobytes() == stored.select(feature_names(REG)).to_numpy()[0].tobytes()
            assert grid.labels[i] == stored["label"][0] and grid.t_center_s(i) == stored["t_center_s"][0]
            assert grid.end_s(i) == grid.t_center_s(i) + 5.0     # complete once its second half is recorded


def test_tensor_store_is_memory_mapped_across_chunks(extracted_lab):
    paths, _ = extracted_lab
    store = open_tensors(paths.processed)
    assert isinstance(store._part(0, 0), np.memmap)
    first = extract_chunks(paths.processed)[0].n_windows
    rows = np.array([first + 3, 5, 257, first - 1, store.n_windows - 1])   # across parts and chunks, any order
    vals, masks = store.rows(rows)
    for i, r in enumerate(rows):
        k = int(np.searchsorted(store.starts, r, side="right") - 1)
        values_file, mask_file, _ = store.parts[k]
        np.testing.assert_array_equal(vals[i], np.load(values_file)[r - store.starts[k]])
        np.testing.assert_array_equal(masks[i], np.load(mask_file)[r - store.starts[k]])
    assert vals.dtype == np.float32 and masks.dtype == np.uint8
    assert ((masks == 1) == ~np.isnan(vals)).all()


def test_rerun_is_deterministic_and_incremental(extracted_lab, tmp_path):
    paths, first = extracted_lab
    processed = tmp_path / "processed"
    shutil.copytree(paths.processed, processed)
    index = processed / "validation_v1.parquet"
    before = _digests(processed)
    again = run_extract(processed, index, paths.default_store, REG, SMALL_CHUNKS, workers=1)
    assert again.reused == first.episodes and again.extracted == 0 and again.new_chunks == 0
    assert _digests(processed) == before
    shutil.rmtree(processed / CHUNKS)
    (processed / SCHEMA).unlink()
    fresh = run_extract(processed, index, paths.default_store, REG, SMALL_CHUNKS, workers=2)
    assert fresh.extracted == first.extracted and fresh.reused == 0
    assert _digests(processed) == before
    full = run_extract(processed, index, paths.default_store, REG, SMALL_CHUNKS, workers=1, full=True)
    n = first.chunks
    assert full.extracted == first.extracted and full.reused == 0 and full.new_chunks == n
    assert sorted(p.name for p in (processed / CHUNKS).iterdir()) == [f"chunk-{i:06d}" for i in range(n, 2 * n)]


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


def _rewrite(ep_dir, name: str, blob: bytes) -> None:
    """A file of the episode rewritten, and its manifest entry with it (extract
    reads only what the manifest's sha256 vouches for)."""
    import hashlib
    (ep_dir / name).write_bytes(blob)
    m = json.loads((ep_dir / "manifest.json").read_text())
    m["files"][name].update(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
    (ep_dir / "manifest.json").write_text(json.dumps(m))


def test_clock_base_guard_fires_on_native_netflow_stamps(extracted_lab, tmp_path):
    """Regression: the lab's first pipeline aligned netflow on the exporter's own clock."""
    paths, _ = extracted_lab
    ep_dir = _clean_episode(paths, tmp_path)
    rows = [json.loads(x) for x in gzip.decompress((ep_dir / "netflow.jsonl.gz").read_bytes()).splitlines()]
    assert rows
    for r in rows:
        r["t_wall_ns"] = r["t_exporter_ms"] * 1_000_000  # aligned on the native stamp
    _rewrite(ep_dir, "netflow.jsonl.gz", gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    with pytest.raises(ExtractError, match="source 'netflow' is present but none of its rows aligns"):
        extract_episode(Episode.open(ep_dir), REG)


def test_labels_at_phase_boundaries(extracted_lab, tmp_path):
    paths, _ = extracted_lab
    ep_dir = _clean_episode(paths, tmp_path)
    m = json.loads((ep_dir / "manifest.json").read_text())
    s = m["started_at_ns"]
    # Window k (10 s, hop 5 s) has its centre at 5 + 5k seconds.
    labels = [(0, "idle"), (15.0, "execute"), (25.000001, "act")]
    _rewrite(ep_dir, "labels.jsonl", "".join(json.dumps({"t_wall_ns": s + int(t * 1e9), "phase": p}) + "\n"
                                             for t, p in labels).encode())
    w = extract_episode(Episode.open(ep_dir), REG)
    centres = dict(zip(w.t_center_s.tolist(), w.labels))
    assert centres[10.0] == "idle"
    assert centres[15.0] == "execute"       # a label holds from its own time
    assert centres[25.0] == "execute"       # the next phase starts a microsecond later
    assert centres[30.0] == "act"
    # The onsets time to detect measures from: each phase's own label time.
    assert w.onsets.t_s == (0.0, 15.0, pytest.approx(25.000001)) and w.onsets.phases == ("idle", "execute", "act")


def test_the_episodes_table_records_each_episode_s_phase_onsets(extracted_lab):
    paths, _ = extracted_lab
    eps = pl.read_parquet(paths.processed / EPISODES).filter(pl.col("n_windows") > 0).head(3)
    for row in eps.iter_rows(named=True):
        ep = Episode.open(paths.default_store / row["rel_path"], row["rel_path"])
        labels = ep.read_labels().sort("t_wall_ns")
        start = ep.manifest["started_at_ns"]
        want = [((t - start) / 1e9, p) for t, p in zip(labels["t_wall_ns"], labels["phase"])]
        merged = [x for i, x in enumerate(want) if i == 0 or x[1] != want[i - 1][1]]
        got = list(zip(row["onset_s"], row["onset_phase"]))
        assert [(round(t, 6), p) for t, p in got] == [(round(t, 6), p) for t, p in merged]


def test_counter_reset_gives_missing_not_negative():
    t = (np.arange(8) * 0.5e9).astype(np.int64)
    v = np.array([100, 200, 300, 5, 105, 205, 305, 405], dtype=float)  # reset after the third sample
    grids = _sample_grids(np.column_stack([v, v]), np.array([True, False]), np.arange(8), t, 8)
    np.testing.assert_array_equal(grids[1], v)                        # the gauge beside it: its samples
    grid = grids[0]
    assert np.isnan(grid[0])  # no earlier sample to difference with
    assert np.isnan(grid[3])  # the reset: missing, not -590 B/s, and not carried over
    np.testing.assert_allclose(grid[[1, 2, 4, 5, 6, 7]], 200.0)


def test_gauge_carries_forward_at_most_one_step():
    x = np.array([1.0, np.nan, np.nan, 4.0, np.nan, np.nan])
    sampled = np.array([True, False, False, True, False, True])  # the last step's sample was null
    np.testing.assert_array_equal(_carry_one(x[None], sampled)[0], [1.0, 1.0, np.nan, 4.0, 4.0, np.nan])


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


def _flows(start, rows):
    return "".join(json.dumps({"t_wall_ns": start + int(r["t"] * 1e9), **{k: v for k, v in r.items() if k != "t"}})
                   + "\n" for r in rows)


def test_netflow_duplicates_and_nulls_by_hand(extracted_lab, tmp_path):
    """Regression: duplicated flows were counted twice; a null field failed the
    episode (distinct counts) or was zero-filled (sums, means)."""
    from core.extract.episode import align_episode
    paths, _ = extracted_lab
    ep_dir = _clean_episode(paths, tmp_path)
    start = json.loads((ep_dir / "manifest.json").read_text())["started_at_ns"]
    web = {"t": 0.1, "proto": "tcp", "src_ip": "10.0.0.9", "dst_ip": "10.0.0.1", "src_port": 5000, "dst_port": 443,
           "duration_ms": 100.0, "bytes_out": 1000, "bytes_in": 10, "packets_out": 3, "packets_in": 1,
           "tcp_flags": 0x18}
    dns = {"t": 0.2, "proto": "udp", "src_ip": "10.0.0.9", "dst_ip": None, "src_port": 5001, "dst_port": 53,
           "duration_ms": None, "bytes_out": None, "bytes_in": 80, "packets_out": 1, "packets_in": 1,
           "tcp_flags": None}
    syn = {"t": 0.3, "proto": "tcp", "src_ip": "10.0.0.9", "dst_ip": "10.0.0.1", "src_port": 5002, "dst_port": 80,
           "duration_ms": 100.0, "bytes_out": 500, "bytes_in": 0, "packets_out": 1, "packets_in": 0,
           "tcp_flags": 0x02}
    rows = [dict(web), dict(web), dns, syn]          # the first flow recorded twice
    _rewrite(ep_dir, "netflow.jsonl.gz", gzip.compress(_flows(start, rows).encode()))
    grid, _ = align_episode(Episode.open(ep_dir), REG, WindowSpec())
    step0 = {c.name: grid[i, 0] for i, c in enumerate(REG.channels) if c.source == "netflow"}
    assert step0["netflow.new_flows"] == 3                 # the duplicate is one flow
    assert step0["netflow.bytes_out"] == 1500              # the null is skipped, not a 0
    assert step0["netflow.bytes_in"] == 90
    assert step0["netflow.unique_dst_ips"] == 1            # a null address is not a distinct address
    assert step0["netflow.unique_dst_ports"] == 3
    assert step0["netflow.mean_duration_ms"] == 100        # (100 + 100) / 2, not (100 + 0 + 100) / 3
    assert step0["netflow.dns_queries"] == 1 and step0["netflow.tcp_flows"] == 2
    assert step0["netflow.syn_only_flows"] == 1
    later = {c.name: grid[i, 1] for i, c in enumerate(REG.channels) if c.source == "netflow"}
    assert later["netflow.new_flows"] == 0 and np.isnan(later["netflow.mean_duration_ms"])
    # A step whose only flow lacks the field: the sum is unknown, not 0.
    _rewrite(ep_dir, "netflow.jsonl.gz", gzip.compress(_flows(start, [dict(dns)]).encode()))
    grid, _ = align_episode(Episode.open(ep_dir), REG, WindowSpec())
    names = REG.channel_names
    assert np.isnan(grid[names.index("netflow.bytes_out"), 0]) and grid[names.index("netflow.new_flows"), 0] == 1


def test_extraction_code_version_is_part_of_the_reuse_key(extracted_lab, tmp_path):
    paths, _ = extracted_lab
    processed = tmp_path / "processed"
    shutil.copytree(paths.processed, processed)
    schema = json.loads((processed / SCHEMA).read_text())
    assert schema["extract_version"]
    schema["extract_version"] = "0-older-code"
    (processed / SCHEMA).write_text(json.dumps(schema))
    for chunk in extract_chunks(processed):
        meta = json.loads((chunk.path / "chunk.json").read_text())
        meta["key"]["extract_version"] = "0-older-code"
        (chunk.path / "chunk.json").write_text(json.dumps(meta))
    summary = run_extract(processed, processed / "validation_v1.parquet", paths.default_store, REG,
                          SMALL_CHUNKS, workers=1)
    assert summary.reused == 0 and summary.extracted > 0


def test_digests_are_taken_once_while_writing(extracted_lab):
    from core.notebook import describe_path
    paths, summary = extracted_lab
    for chunk in extract_chunks(paths.processed):
        for name, d in chunk.meta["files"].items():
            assert hashlib.sha256((chunk.path / name).read_bytes()).hexdigest() == d["sha256"]
    # What the notebook records of the chunks' folder, without reading it
    # again, is its digest of the folder.
    assert summary.digests["chunks"]["sha256"] == describe_path(paths.processed / CHUNKS)["sha256"]
    assert summary.digests["chunks"]["bytes"] == describe_path(paths.processed / CHUNKS)["bytes"]


def test_readers_of_a_lab_and_the_window_cut_need_no_lab_extra(tmp_path):
    """What the Pi's base install imports (the readers of an index and of an
    extract, the one window cut, the watch and predict) never loads pyarrow;
    the writing sweeps need it and say so."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.serving import without_lab_modules
    root = Path(__file__).resolve().parents[2]
    blocked = without_lab_modules(tmp_path / "blocked")
    code = ("import sys, core.extract, core.validate, core.extract.episode, core.validate.checks, core.live.watch, "
            "core.predict, core.status; assert 'pyarrow' not in sys.modules, 'pyarrow loaded'\n"
            "for mod in ('core.extract.pipeline', 'core.validate.pipeline'):\n"
            "    try:\n        __import__(mod)\n    except ModuleNotFoundError as e:\n        print(mod, e.name)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{blocked}:{root}"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["core.extract.pipeline pyarrow", "core.validate.pipeline pyarrow"]
