import json

import polars as pl
import pytest

from core.errors import ManifestError, StoreError
from core.registry import load_registry
from core.store import (Episode, file_digest, manifest_problems, scan_store, store_digest)


def _truth(store):
    rows = [json.loads(x) for x in (store.parent / "store.truth.jsonl").read_text().splitlines()]
    return {r["rel_path"]: r for r in rows}


def test_scan_finds_episodes_and_in_flight(tiny_store):
    truth = _truth(tiny_store)
    entries = list(scan_store(tiny_store))
    flight = {e.rel for e in entries if e.in_flight}
    episodes = {e.rel for e in entries if not e.in_flight}
    assert flight == {k for k, v in truth.items() if v["expected_status"] == "in_flight"}
    assert episodes == {k for k, v in truth.items() if v["expected_status"] != "in_flight"}
    assert [e.rel for e in entries] == sorted(e.rel for e in entries)


def test_clean_episode_reads_every_source(tiny_store):
    truth = _truth(tiny_store)
    reg = load_registry()
    rel = next(k for k, v in truth.items() if v["expected_status"] == "accepted")
    ep = Episode.open(tiny_store / rel, rel)
    assert manifest_problems(ep.manifest) == []
    for name, entry in ep.files.items():
        assert file_digest(ep.path / name) == (entry["sha256"], entry["bytes"])
    for src in reg.source_names():
        df = ep.read_source(src, reg)
        assert df.height == ep.files[ep.source_file(src)]["rows"]
        assert df["t_wall_ns"].dtype == pl.Int64
        assert df["t_wall_ns"].is_sorted()
        assert df["t_wall_ns"].min() >= ep.manifest["started_at_ns"]
        assert df["t_wall_ns"].max() < ep.manifest["ended_at_ns"]
        if src != "netflow":
            assert set(c.row_field for c in reg.channels_of(src)) <= set(df.columns)
            assert df.null_count().sum_horizontal().item() == 0
    labels = ep.read_labels()
    assert labels["phase"][0] == "idle"
    assert labels["t_wall_ns"][0] == ep.manifest["started_at_ns"]


def test_netflow_native_clock_is_not_wall_time(tiny_store):
    truth = _truth(tiny_store)
    rel = next(k for k, v in truth.items() if v["expected_status"] == "accepted")
    ep = Episode.open(tiny_store / rel, rel)
    df = ep.read_source("netflow", load_registry())
    clock = ep.manifest["clocks"]["netflow"]
    assert clock["native_field"] == "t_exporter_ms"
    native_as_ns = df["t_exporter_ms"] * clock["unit_ns"]
    assert (native_as_ns < ep.manifest["started_at_ns"]).all()
    assert ((native_as_ns + clock["offset_ns"] - df["t_wall_ns"]).abs() < 1_000_000).all()


def test_unparseable_manifest_raises(tmp_path):
    (tmp_path / "ep").mkdir()
    (tmp_path / "ep" / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Episode.open(tmp_path / "ep")


def test_manifest_problems_names_fields():
    assert manifest_problems([]) == ["manifest_not_object"]
    problems = manifest_problems({"format": "cis490-episode/v1", "episode_id": 5})
    assert "manifest_field_type:episode_id" in problems
    assert "manifest_field_missing:host_id" in problems


def test_store_digest_changes_with_a_manifest(tmp_path, tiny_store):
    import shutil
    copy = tmp_path / "s"
    shutil.copytree(tiny_store, copy)
    d1, n, flight = store_digest(copy)
    assert n > 0 and flight == 1
    m = next(copy.glob("*/*/manifest.json"))
    m.write_text(m.read_text().replace('"received_at"', '"received_at" ', 1))
    assert store_digest(copy)[0] != d1


def test_missing_store_is_an_error(tmp_path):
    with pytest.raises(StoreError, match="store directory not found"):
        list(scan_store(tmp_path / "none"))
