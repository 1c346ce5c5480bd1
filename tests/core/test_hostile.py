"""A store nobody has to trust (issue 19): a sweep over every kind of hostile
episode finishes, writes its index and gives each its reason; extract never
makes more windows than the rows support; a file changed after validation is
noticed; a run killed with -9 leaves no worker and no temporary behind."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from core.extract import ExtractConfig, read_extracted_episodes
from core.extract.pipeline import run_extract
from core.registry import load_registry, parse_registry
from core.storescan import store_digest
from core.validate.pipeline import run_validation
from core.validate.checks import ValidateConfig, validate_episode
from tests.hostile import build_hostile_store, slow_and_long

REG = load_registry()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hostile(tiny_store, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    store = tmp / "store"
    expect = build_hostile_store(tiny_store, store, tmp / "outside")
    out = tmp / "validation_v1.parquet"
    summary = run_validation(store, out, REG, workers=2)
    return store, expect, out, summary


def test_a_sweep_over_every_hostile_episode_finishes_and_names_each(hostile, tiny_store):
    """Regression: each of these was accepted (poisoning the data), read
    outside the store, held a bomb in memory, or stopped the sweep."""
    store, expect, out, summary = hostile
    rows = {r["rel_path"]: r for r in pl.read_parquet(out).iter_rows(named=True)}
    assert summary.episodes == len(rows)
    for rel, exp in expect.items():
        got = rows[rel]
        assert got["status"] == exp.status, (rel, got["reasons"])
        if exp.reason:
            assert any(r == exp.reason or r.startswith(exp.reason) for r in got["reasons"]), (rel, got["reasons"])
    bomb = next(rel for rel, e in expect.items() if e.reason.startswith("decompressed_too_large"))
    assert "expands beyond" in rows[bomb]["error"]
    clean = pl.read_parquet(run_validation(tiny_store, out.with_name("clean.parquet"), REG).index)
    untouched = clean.filter(~pl.col("rel_path").is_in(list(expect)))
    assert [rows[r]["status"] for r in untouched["rel_path"]] == untouched["status"].to_list()


def test_nothing_outside_an_episode_is_opened(tiny_store, tmp_path, monkeypatch):
    """Regression: `files` entries ../../../../etc/hostname and /etc/passwd were opened and hashed."""
    store = tmp_path / "store"
    build_hostile_store(tiny_store, store, tmp_path / "outside")
    opened: list[str] = []
    real_open = open

    def spy(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)
    monkeypatch.setattr("builtins.open", spy)
    run_validation(store, tmp_path / "idx.parquet", REG, workers=1)
    assert not [f for f in opened if "/etc/" in f or str(tmp_path / "outside") in f]


def test_implausible_claims_are_rejected_and_the_limits_are_the_registry_s(tiny_store, tmp_path):
    idx = pl.read_parquet(run_validation(tiny_store, tmp_path / "i.parquet", REG).index)
    rel = idx.filter(pl.col("status") == "accepted")["rel_path"][0]
    ep = tmp_path / "ep"
    shutil.copytree(tiny_store / rel, ep)
    m = json.loads((ep / "manifest.json").read_text())
    m["sampling_hz"]["proc"] = 0.005
    (ep / "manifest.json").write_text(json.dumps(m))
    row = validate_episode(ep, "ep", REG, ValidateConfig())
    assert row["status"] == "rejected"
    assert "manifest_implausible:sampling_hz.proc=0.005" in row["reasons"]
    raw = __import__("tomllib").loads((ROOT / "core" / "channels.toml").read_text())
    raw["limits"]["min_hz"] = 0.001
    lenient = parse_registry(raw)
    assert validate_episode(ep, "ep", lenient, ValidateConfig())["status"] == "accepted"
    assert lenient.schema_hash == REG.schema_hash        # limits change no feature's meaning


def test_registry_limits_are_checked():
    from core.errors import RegistryError
    raw = __import__("tomllib").loads((ROOT / "core" / "channels.toml").read_text())
    for bad, words in (({"max_hz": -1}, "'max_hz' must be a positive number"),
                       ({"max_hz": 0.001}, "'min_hz' must be below 'max_hz'"),
                       ({"speed": 1}, "unknown key 'speed'")):
        with pytest.raises(RegistryError, match=words):
            parse_registry({**raw, "limits": {**raw["limits"], **bad}})


def test_extract_never_makes_more_windows_than_the_rows_support(tiny_store, tmp_path):
    """Regression: an episode claiming hours at a slow rate, with a minute of
    rows, was accepted and cut into a window per hop of the claimed time,
    nearly all empty (69,119 of a lab's 69,584 windows from one episode)."""
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store, symlinks=True)
    processed = tmp_path / "processed"
    index = processed / "validation_v1.parquet"
    run_validation(store, index, REG, workers=2)
    before = read_extracted_episodes(_extract(processed, index, store).parent)
    rel = pl.read_parquet(index).filter(pl.col("status") == "accepted")["rel_path"][0]
    slow_and_long(store / rel, hours=2.0)
    row = pl.read_parquet(run_validation(store, index, REG, workers=2).index).filter(pl.col("rel_path") == rel)
    assert row["status"][0] == "degraded"          # plausible claims, a gap: still extracted
    after = read_extracted_episodes(_extract(processed, index, store).parent)
    n = dict(zip(after["rel_path"], after["n_windows"]))
    was = dict(zip(before["rel_path"], before["n_windows"]))
    # Windows overlapping the rows, no more (two windows reach past the old
    # end): two hours claimed made 1,439 windows before the fix.
    assert 0 < n[rel] <= was[rel] + 2
    assert {k: v for k, v in n.items() if k != rel} == {k: v for k, v in was.items() if k != rel}


def _extract(processed, index, store):
    run_extract(processed, index, store, REG, ExtractConfig(), workers=1)
    return processed / "extract_episodes_v1.parquet"


def test_a_data_file_changed_after_validation_is_noticed(tiny_store, tmp_path):
    """Regression: a data file rewritten after validate (its manifest the same)
    left `status` fresh, `--since-last` accepting it and extract using its rows."""
    import gzip
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    processed = tmp_path / "processed"
    index = processed / "validation_v1.parquet"
    first = run_validation(store, index, REG)
    rel = pl.read_parquet(index).filter(pl.col("status") == "accepted")["rel_path"][0]
    digest = store_digest(store)
    f = store / rel / "proc.jsonl.gz"
    rows = [json.loads(x) for x in gzip.decompress(f.read_bytes()).splitlines()]
    for r in rows:
        r["cpu_user_s"] = r["cpu_user_s"] * 1000
    f.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode(), mtime=0))
    assert store_digest(store) != digest                       # what status compares
    run_extract(processed, index, store, REG, ExtractConfig(), workers=1)
    eps = read_extracted_episodes(processed)
    failed = eps.filter(pl.col("rel_path") == rel)
    assert failed["status"][0] == "failed"
    assert failed["error"][0] == "proc.jsonl.gz changed since validation: re-run `cis490 validate`"
    again = run_validation(store, index, REG, since_last=True)
    assert again.reused == first.episodes - 1
    row = pl.read_parquet(index).filter(pl.col("rel_path") == rel)
    assert row["status"][0] == "rejected" and "sha256_mismatch:proc.jsonl.gz" in row["reasons"][0].to_list()


def test_a_file_merely_touched_changes_nothing_made_from_the_index(tiny_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    index = tmp_path / "validation_v1.parquet"
    run_validation(store, index, REG)
    before = index.read_bytes()
    rel = pl.read_parquet(index).filter(pl.col("status") == "accepted")["rel_path"][0]
    os.utime(store / rel / "proc.jsonl.gz", ns=(1, 1))
    again = run_validation(store, index, REG, since_last=True)
    assert again.reused == again.episodes - 1                  # re-hashed, found the same
    assert index.read_bytes() == before


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_kill_9_mid_extract_leaves_no_worker_and_no_temporary(tmp_path):
    """Regression: `kill -9` of extract left its workers running for minutes
    and `.extract-NNNN/` behind for good."""
    from core.synth import SynthConfig, generate_store
    store = tmp_path / "store"
    generate_store(SynthConfig(episodes=24, hosts=2, duration_s=900.0, seed=3, fault_rate=0.0, in_flight=0),
                   store, workers=1)
    processed = tmp_path / "processed"
    index = processed / "validation_v1.parquet"
    run_validation(store, index, REG, workers=1)
    code = ("from pathlib import Path; from core.registry import load_registry; "
            "from core.extract import ExtractConfig; from core.extract.pipeline import run_extract; "
            f"run_extract(Path({str(processed)!r}), Path({str(index)!r}), Path({str(store)!r}), load_registry(), "
            "ExtractConfig(), workers=2)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = [c for c in _children(proc.pid) if "spawn" in (Path("/proc") / str(c) / "cmdline").read_text()]
        if len(workers) >= 2 and list(processed.glob("extract_v2/.chunk.~*")):
            break
        time.sleep(0.05)
    assert proc.poll() is None and workers, "extract finished before it could be killed"
    temps = list(processed.glob("extract_v2/.chunk.~*"))
    assert temps
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)], "workers outlived their killed parent"
    assert temps[0].exists()                                   # what a dead run leaves ...
    run_extract(processed, index, store, REG, ExtractConfig(), workers=1)
    assert not [p.name for p in processed.rglob(".*")]                          # ... the next run removes
