"""The extract in chunks: runs that land are added, never re-extracted; an
interrupted extract resumes; what was made on a split stays fresh."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import polars as pl
import pytest

from core.errors import ArtifactError, Cis490Error
from core.extract import (CHUNKS, EPISODES, SCHEMA, ExtractConfig, extract_chunks, open_tensors, read_features)
from core.extract.pipeline import run_extract
from core.paths import LabPaths
from core.registry import load_registry
from core.synth import SynthConfig, generate_store
from core.validate.pipeline import run_validation

REG = load_registry()
CFG = ExtractConfig(part_windows=64, chunk_episodes=5)


def _lab(root, episodes=12, seed=11) -> LabPaths:
    paths = LabPaths(root)
    generate_store(SynthConfig(episodes=episodes, hosts=2, duration_s=60.0, seed=seed, fault_rate=0.0, in_flight=0),
                   paths.default_store, workers=1)
    return paths


def _validate(paths):
    run_validation(paths.default_store, paths.processed / "validation_v1.parquet", REG, workers=1)


def _extract(paths, cfg=CFG, **kw):
    return run_extract(paths.processed, paths.processed / "validation_v1.parquet", paths.default_store, REG, cfg,
                       workers=1, **kw)


def _land(paths, tmp_path, episodes=7, seed=12, hosts=2) -> int:
    """Runs of another synthetic store copied into the lab's, as new uploads land."""
    other = tmp_path / f"other{seed}"
    generate_store(SynthConfig(episodes=episodes, hosts=hosts, duration_s=60.0, seed=seed, fault_rate=0.0,
                               in_flight=0), other, workers=1)
    n = 0
    for ep in sorted(other.glob("*/*")):
        shutil.copytree(ep, paths.default_store / ep.parent.name / f"new-{ep.name}")
        n += 1
    return n


def _by_window(processed):
    """Every window's features, values and mask, by window id (row order aside)."""
    feats = read_features(processed).with_row_index("r").sort("window_id")
    vals, masks = open_tensors(processed).rows(feats["r"].to_numpy())
    return feats.drop("r"), vals, masks


def _same_as_from_scratch(paths, tmp_path):
    scratch = tmp_path / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    shutil.copy(paths.processed / "validation_v1.parquet", scratch)
    run_extract(scratch, scratch / "validation_v1.parquet", paths.default_store, REG, CFG, workers=1)
    (fa, va, ma), (fb, vb, mb) = _by_window(paths.processed), _by_window(scratch)
    assert fa.equals(fb)
    assert np.array_equal(va, vb, equal_nan=True) and np.array_equal(ma, mb)
    ea = pl.read_parquet(paths.processed / EPISODES).drop("first_row", "chunk").sort("rel_path")
    eb = pl.read_parquet(scratch / EPISODES).drop("first_row", "chunk").sort("rel_path")
    assert ea.equals(eb)


def _chunk_files(paths):
    return {p.relative_to(paths.processed / CHUNKS).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (paths.processed / CHUNKS).rglob("*") if p.is_file()}


def test_runs_that_land_are_added_in_new_chunks_and_nothing_else_is_written(tmp_path):
    paths = _lab(tmp_path / "lab")
    _validate(paths)
    first = _extract(paths)
    assert first.chunks == 3 and first.new_chunks == 3          # 12 episodes, 5 per chunk
    before = _chunk_files(paths)
    added = _land(paths, tmp_path)
    _validate(paths)
    second = _extract(paths)
    assert second.extracted == added and second.reused == 12
    assert second.new_chunks == 2 and second.chunks == 5
    after = _chunk_files(paths)
    assert {k: v for k, v in after.items() if k in before} == before          # the old chunks untouched
    assert sorted({k.split("/")[0] for k in after} - {k.split("/")[0] for k in before}) == [
        "chunk-000003", "chunk-000004"]
    _same_as_from_scratch(paths, tmp_path)


def test_an_episode_that_left_rewrites_its_chunk_only(tmp_path):
    paths = _lab(tmp_path / "lab")
    _validate(paths)
    _extract(paths)
    eps = pl.read_parquet(paths.processed / EPISODES).sort("first_row")
    gone = eps.filter(pl.col("chunk") == "chunk-000001")["rel_path"][0]
    shutil.rmtree(paths.default_store / gone)
    before = _chunk_files(paths)
    _validate(paths)
    s = _extract(paths)
    assert s.extracted == 0 and s.reused == 11 and s.new_chunks == 1        # nothing extracted again: copied
    names = sorted({k.split("/")[0] for k in _chunk_files(paths)})
    assert names == ["chunk-000000", "chunk-000002", "chunk-000003"]
    assert {k: v for k, v in _chunk_files(paths).items() if k.startswith(("chunk-000000", "chunk-000002"))} == \
        {k: v for k, v in before.items() if k.startswith(("chunk-000000", "chunk-000002"))}
    assert gone not in pl.read_parquet(paths.processed / EPISODES)["rel_path"].to_list()
    _same_as_from_scratch(paths, tmp_path)


def test_an_interrupted_extract_leaves_the_last_one_and_resumes(tmp_path):
    paths = _lab(tmp_path / "lab")
    _validate(paths)
    _extract(paths)
    schema_before = (paths.processed / SCHEMA).read_bytes()
    _land(paths, tmp_path, episodes=12, seed=13)
    _validate(paths)

    def stop_after_eight(done, total, **_):
        if done >= 12 + 8:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        _extract(paths, progress=stop_after_eight)
    # The lab is the last extract's, whole: the schema lists what it did.
    assert (paths.processed / SCHEMA).read_bytes() == schema_before
    assert read_features(paths.processed).height == sum(c.n_windows for c in extract_chunks(paths.processed))
    # One new chunk was whole (five episodes), the second was being written: removed.
    assert sorted(p.name for p in (paths.processed / CHUNKS).iterdir()) == [
        "chunk-000000", "chunk-000001", "chunk-000002", "chunk-000003"]
    s = _extract(paths)
    assert s.extracted == 7 and s.reused == 17
    _same_as_from_scratch(paths, tmp_path)


def test_a_killed_extract_s_half_written_chunk_and_a_damaged_chunk_are_made_again(tmp_path):
    paths = _lab(tmp_path / "lab")
    _validate(paths)
    _extract(paths)
    half = paths.processed / CHUNKS / ".chunk.~999999999~chunk-000003-x"     # what kill -9 leaves mid-chunk
    half.mkdir()
    (half / "features.parquet").write_bytes(b"PAR1 half")
    (paths.processed / CHUNKS / "chunk-000001" / "chunk.json").write_text("{not json")
    s = _extract(paths)
    assert s.extracted == 5 and s.reused == 7
    assert not half.exists()
    _same_as_from_scratch(paths, tmp_path)


def test_a_split_and_its_models_stay_fresh_as_runs_land_and_go_stale_when_its_episodes_change(tmp_path):
    from core.split import SplitConfig, SplitError, load_split, make_split
    paths = _lab(tmp_path / "lab", episodes=16)
    _validate(paths)
    _extract(paths)
    made = make_split(paths.processed, SplitConfig(recipe="time"), REG, artifacts=paths.artifacts)
    _land(paths, tmp_path)
    _validate(paths)
    _extract(paths)
    frame, meta = load_split(paths.processed, "time")
    assert meta["features_sha256"] == made.meta["features_sha256"] and frame.height == 16
    # One of its episodes gone from the store: the split is no longer the one recorded.
    member = pl.read_parquet(paths.processed / EPISODES).filter(
        pl.col("episode_id") == frame["episode_id"][0])["rel_path"][0]
    shutil.rmtree(paths.default_store / member)
    _validate(paths)
    _extract(paths)
    with pytest.raises(SplitError, match="is stale: some of its episodes were extracted again .* or are gone"):
        load_split(paths.processed, "time")


def test_an_extract_of_the_older_format_is_named_and_replaced(tmp_path):
    paths = _lab(tmp_path / "lab", episodes=6)
    _validate(paths)
    _extract(paths)
    schema = json.loads((paths.processed / SCHEMA).read_text())
    # A lab of the format before chunks: one features file, one tensor folder.
    (paths.processed / SCHEMA).write_text(json.dumps({**schema, "version": 1}))
    shutil.rmtree(paths.processed / CHUNKS)
    (paths.processed / "features_window_v1.parquet").write_bytes(b"old")
    (paths.processed / "tensors_v1").mkdir()
    with pytest.raises(ArtifactError, match=r"made by an older cis490 \(extract format 1, this one reads 2\): "
                                            r"re-run `cis490 extract`"):
        read_features(paths.processed)
    s = _extract(paths)
    assert s.extracted == 6
    assert not (paths.processed / "features_window_v1.parquet").exists()
    assert not (paths.processed / "tensors_v1").exists()
    read_features(paths.processed)


@pytest.mark.parametrize("listed", ["../../outside", "chunk-000000/../../x", 7])
def test_a_schema_listing_a_chunk_outside_the_extract_is_refused(tmp_path, listed):
    paths = _lab(tmp_path / "lab", episodes=6)
    _validate(paths)
    _extract(paths)
    schema = json.loads((paths.processed / SCHEMA).read_text())
    schema["chunks"][0]["dir"] = listed
    (paths.processed / SCHEMA).write_text(json.dumps(schema))
    with pytest.raises(ArtifactError, match=f"{SCHEMA}: damaged, it lists '{listed}' as a chunk"):
        open_tensors(paths.processed)


def test_a_chunk_s_features_of_another_length_than_recorded_is_named(tmp_path):
    paths = _lab(tmp_path / "lab", episodes=6)
    _validate(paths)
    _extract(paths)
    chunk = extract_chunks(paths.processed)[0]
    pl.read_parquet(chunk.features).head(3).write_parquet(chunk.features)
    with pytest.raises(Cis490Error, match=f"{chunk.features}: damaged, 3 rows where .* were recorded"):
        read_features(paths.processed)
    assert os.path.exists(chunk.features)
