"""No value poisons the lab (issue 32): values beyond float32, NaN and
infinities in a store become a named reason and missing values, never an
infinity in the features or a model that cannot train."""
import gzip
import hashlib
import json
import shutil

import numpy as np
import polars as pl
import pytest

from core.extract import ExtractConfig, read_features
from core.extract.pipeline import run_extract
from core.registry import load_registry, parse_registry
from core.validate.checks import ValidateConfig, validate_episode
from core.validate.pipeline import run_validation

REG = load_registry()


def poison(ep, rows=slice(3, 6)) -> None:
    """1e39 in a gauge (beyond float32) and 1e308 / -1e308 in a counter (its
    rate overflows float64), rows of proc.jsonl.gz, the manifest rehashed (the
    agent writing it is as hostile as the data)."""
    f = ep / "proc.jsonl.gz"
    lines = [json.loads(x) for x in gzip.decompress(f.read_bytes()).splitlines()]
    for i in range(len(lines))[rows]:
        lines[i]["rss_bytes"] = 1e39
        lines[i]["cpu_user_s"] = 1e308 if i % 2 else -1e308
    blob = gzip.compress("".join(json.dumps(r) + "\n" for r in lines).encode(), mtime=0)
    f.write_bytes(blob)
    m = json.loads((ep / "manifest.json").read_text())
    m["files"]["proc.jsonl.gz"].update(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
    (ep / "manifest.json").write_text(json.dumps(m))


def _accepted(store, tmp_path) -> str:
    idx = pl.read_parquet(run_validation(store, tmp_path / "first.parquet", REG).index)
    return idx.filter(pl.col("status") == "accepted")["rel_path"][0]


def test_values_beyond_float32_are_a_reason_and_missing_never_infinite(tiny_store, tmp_path):
    """Regression: 1e39 in a gauge and 1e308 in a counter were accepted
    without a reason and extract wrote inf into the features."""
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    rel = _accepted(store, tmp_path)
    poison(store / rel)
    row = validate_episode(store / rel, rel, REG, ValidateConfig())
    assert row["status"] == "degraded", row["reasons"]
    assert "values_out_of_range:proc.rss_bytes:3" in row["reasons"]
    assert "values_out_of_range:proc.cpu_user_s:3" in row["reasons"]
    processed = tmp_path / "processed"
    index = processed / "validation_v1.parquet"
    run_validation(store, index, REG)
    run_extract(processed, index, store, REG, ExtractConfig(), workers=1)
    features = read_features(processed)
    numeric = features.select(pl.selectors.by_dtype(pl.Float32)).to_numpy()
    assert not np.isinf(numeric).any()
    mine = features.filter(pl.col("episode_id") == row["episode_id"])
    assert mine.height > 0 and mine["proc.rss_bytes:max"].max() < 1e15


def test_a_channel_s_declared_range_bounds_its_values(tiny_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    rel = _accepted(store, tmp_path)
    raw = __import__("tomllib").loads(open(REG.path, "rb").read().decode())
    for ch in raw["channel"]:
        if ch["name"] == "proc.rss_bytes":
            ch["range"] = [0, 1]                  # every real reading is beyond it
    narrow = parse_registry(raw)
    assert narrow.schema_hash != REG.schema_hash                    # it changes what a feature holds
    row = validate_episode(store / rel, rel, narrow, ValidateConfig())
    assert row["status"] == "degraded"
    assert f"values_out_of_range:proc.rss_bytes:{row['rows_proc']}" in row["reasons"]
    for ch in raw["channel"]:
        if ch["name"] in ("proc.rss_bytes", "proc.cpu_user_s", "proc.cpu_system_s"):
            ch["range"] = [0, 1e-9]
    row = validate_episode(store / rel, rel, parse_registry(raw), ValidateConfig())
    # Out of range counts with the nulls: half of proc's values gone is too many.
    assert row["status"] == "rejected" and any(r.startswith("too_many_nulls:proc") for r in row["reasons"])


@pytest.mark.parametrize("bad, words", [([1], "'range' must be"), ([2, 1], "low < high"), (["a", 1], "'range'")])
def test_a_declared_range_is_checked(bad, words):
    from core.errors import RegistryError
    raw = __import__("tomllib").loads(open(REG.path, "rb").read().decode())
    raw["channel"][0]["range"] = bad
    with pytest.raises(RegistryError, match=words):
        parse_registry(raw)


def test_the_shipped_registry_keeps_its_hash():
    """No channel declares a range and the value bound is the default: labs
    made before either existed stay fresh (the hash before issue 32)."""
    assert REG.schema_hash == "7062b7c8b8d182c44df8a1b838c58c3af3d604217c5efd4e68de7240d76fe85e"
    raw = __import__("tomllib").loads(open(REG.path, "rb").read().decode())
    raw["limits"]["max_abs_value"] = 1e12
    assert parse_registry(raw).schema_hash != REG.schema_hash          # another bound, other features


def _copy_with_id_of(store, rel: str, folder: str, received_at: str) -> str:
    copy = (store / rel).parent / folder
    shutil.copytree(store / rel, copy)
    m = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**m, "received_at": received_at}))
    return copy.relative_to(store).as_posix()


def test_a_copy_claiming_an_earlier_receipt_never_displaces_the_original(tiny_store, tmp_path):
    """Regression: a duplicated id whose copy claimed received_at 1970 won,
    and the original became rejected."""
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    rel = _accepted(store, tmp_path)
    index = tmp_path / "validation_v1.parquet"

    def status(r):
        row = pl.read_parquet(index).filter(pl.col("rel_path") == r).row(0, named=True)
        return row["status"], row["reasons"]
    forged = _copy_with_id_of(store, rel, "000-forged", "1970-01-01T00:00:00Z")
    run_validation(store, index, REG)
    assert status(rel)[0] == "accepted"
    assert status(forged)[0] == "rejected" and "duplicate_episode_id" in status(forged)[1]
    assert any(r.startswith("received_at_implausible") for r in status(forged)[1])
    # A plausible earlier time, landing after the original was validated: the index's history decides.
    m = json.loads((store / rel / "manifest.json").read_text())
    from datetime import datetime, timezone
    just_after_end = datetime.fromtimestamp(m["ended_at_ns"] / 1e9 + 1, timezone.utc).isoformat()
    sneaky = _copy_with_id_of(store, rel, "000-sneaky", just_after_end)
    run_validation(store, index, REG)
    assert status(rel)[0] == "accepted"
    assert status(sneaky)[0] == "rejected" and "duplicate_episode_id" in status(sneaky)[1]
