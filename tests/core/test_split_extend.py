"""`split --extend`: the runs that landed added to a split by its own recipe,
as its next version; what was made on it stays usable, and status says so."""
from __future__ import annotations

import json

import polars as pl
import pytest

from core.paths import LabPaths
from core.split import SplitConfig, SplitError, extend_split, load_split, make_split
from core.status import lab_status
from tests.core.test_extract_chunks import REG, _extract, _lab, _land, _validate


def _grown(tmp_path, cfg: SplitConfig | None = None, hosts: int = 4) -> tuple[LabPaths, dict, pl.DataFrame]:
    """A lab split by `cfg`, then new runs landed, validated and extracted."""
    paths = _lab(tmp_path / "lab", episodes=24)
    _validate(paths)
    _extract(paths)
    eps = pl.read_parquet(paths.processed / "extract_episodes_v1.parquet")
    cfg = cfg or SplitConfig("host", (sorted(eps["host_id"].unique().to_list())[0],), seed=3)
    made = make_split(paths.processed, cfg, REG, artifacts=paths.artifacts)
    old, _ = load_split(paths.processed, cfg.recipe)
    _land(paths, tmp_path, episodes=16, seed=21, hosts=hosts)
    _validate(paths)
    _extract(paths)
    return paths, made.meta, old


def _new_parts(paths, old: pl.DataFrame, name: str) -> pl.DataFrame:
    now = pl.read_parquet(paths.processed / "splits" / f"{name}.parquet")
    eps = pl.read_parquet(paths.processed / "extract_episodes_v1.parquet")
    return now.filter(~pl.col("episode_id").is_in(old["episode_id"].implode())).join(eps, on="episode_id")


def test_host_extend_keeps_every_part_and_holds_out_new_hosts(tmp_path):
    paths, v1, old = _grown(tmp_path)
    train_host = v1["params"]["train_hosts"][0]
    r = extend_split(paths.processed, "host", REG)
    now, meta = load_split(paths.processed, "host")
    assert meta["version"] == 2 and meta["history"][0]["membership_sha256"] == v1["membership_sha256"]
    # Every episode it held keeps its part.
    assert old.join(now, on="episode_id", how="left")["part_right"].to_list() == old["part"].to_list()
    new = _new_parts(paths, old, "host")
    assert new.height == sum(r.meta["added"].values()) > 0
    assert set(new.filter(pl.col("host_id") != train_host)["part"]) <= {"test"}
    assert set(new.filter(pl.col("host_id") == train_host)["part"]) <= {"train", "val"}
    assert (new.filter(pl.col("host_id") != train_host)["host_id"].is_in(v1["hosts"]["test"]).not_().any()), \
        "the landed runs bring a host the split never saw"
    assert set(pl.read_parquet(paths.processed / "splits" / "host.parquet")["version"]) == {1, 2}
    # Nothing new: nothing written.
    before = (paths.processed / "splits" / "host.json").read_bytes()
    again = extend_split(paths.processed, "host", REG)
    assert again.meta["added"] == {"train": 0, "val": 0, "test": 0}
    assert (paths.processed / "splits" / "host.json").read_bytes() == before


def test_time_extend_tests_on_what_came_after_and_sample_extend_holds_out_new_samples(tmp_path):
    paths, _, old = _grown(tmp_path, SplitConfig("time", seed=1), hosts=2)
    extend_split(paths.processed, "time", REG)
    now, meta = load_split(paths.processed, "time")
    eps = pl.read_parquet(paths.processed / "extract_episodes_v1.parquet")
    from core.split import received_ns
    full = received_ns(now.join(eps, on="episode_id"))
    # The time recipe's invariant holds across versions: nothing fitted on came after a test episode.
    assert full.filter(pl.col("part") != "test")["received_ns"].max() <= \
        full.filter(pl.col("part") == "test")["received_ns"].min()
    new = _new_parts(paths, old, "time")
    assert new.height and meta["version"] == 2

    sample = make_split(paths.processed, SplitConfig("sample", seed=2), REG, name="by-sample")
    frame, _ = load_split(paths.processed, "by-sample")
    where = dict(frame.join(eps, on="episode_id").select("sample_name", "part").unique().iter_rows())
    _land(paths, tmp_path, episodes=10, seed=22)
    _validate(paths)
    _extract(paths)
    extend_split(paths.processed, "by-sample", REG)
    added = _new_parts(paths, frame, "by-sample")
    assert added.height and sample.meta
    for s, p in added.select("sample_name", "part").iter_rows():
        assert p == where.get(s, "test")


def test_a_model_trained_before_the_extension_is_still_usable_and_status_says_what_it_has_not_seen(tmp_path):
    from core.train import load_split_checkpoint, train_one
    paths, _, _ = _grown(tmp_path)
    train_one(paths.processed, paths.artifacts, REG, "knn", "realistic", "host", seed=0)
    rows = {r.artifact: r for r in lab_status(paths)}
    assert rows["split host"].state == "fresh" and "new episodes since, not in it" in rows["split host"].reason
    assert "`cis490 split --extend host` adds them" in rows["split host"].reason
    extend_split(paths.processed, "host", REG)
    load_split_checkpoint(paths.processed, paths.artifacts, REG, "knn", "realistic", "host")    # not refused
    rows = {r.artifact: r for r in lab_status(paths)}
    ck = rows["checkpoint host/knn_realistic"]
    assert ck.state == "fresh" and "split extended since training" in ck.reason and "version 2" in ck.reason
    assert rows["split host"].state == "fresh" and rows["split host"].reason == ""


def test_a_split_whose_own_episodes_changed_is_not_extended(tmp_path):
    paths, _, old = _grown(tmp_path)
    eps = pl.read_parquet(paths.processed / "extract_episodes_v1.parquet")
    eps.with_columns(pl.when(pl.col("episode_id") == old["episode_id"][0]).then(pl.lit("0" * 64))
                     .otherwise(pl.col("windows_sha256")).alias("windows_sha256")).write_parquet(
        paths.processed / "extract_episodes_v1.parquet")
    before = json.loads((paths.processed / "splits" / "host.json").read_text())
    with pytest.raises(SplitError, match="is stale"):
        extend_split(paths.processed, "host", REG)
    assert json.loads((paths.processed / "splits" / "host.json").read_text()) == before
