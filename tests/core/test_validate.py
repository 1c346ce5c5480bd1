import gzip
import hashlib
import json
import shutil

import polars as pl
import pytest

import core.validate.checks as checks
from core.registry import load_registry
from core.validate.pipeline import index_schema, run_validation
from core.validate.checks import ValidateConfig, status_of, validate_episode
from core.validate.truth import check_against_truth

REG = load_registry()


@pytest.fixture(scope="module")
def swept(tiny_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("idx") / "validation_v1.parquet"
    summary = run_validation(tiny_store, out, REG, workers=2)
    return summary, out


def test_agrees_with_ground_truth_on_every_episode(swept, tiny_store):
    summary, out = swept
    check = check_against_truth(out, tiny_store.parent / "store.truth.jsonl", summary.in_flight)
    assert check.mismatches == []
    assert check.agree == check.total > 40


def test_clean_episodes_have_no_reasons(swept, tiny_store):
    _, out = swept
    truth = [json.loads(x) for x in (tiny_store.parent / "store.truth.jsonl").read_text().splitlines()]
    clean = {t["rel_path"] for t in truth if t["fault"] is None}
    idx = pl.read_parquet(out).filter(pl.col("rel_path").is_in(list(clean)))
    assert idx.height == len(clean)
    assert idx["status"].unique().to_list() == ["accepted"]
    assert idx["reasons"].list.len().max() == 0


def test_index_schema_and_identity(swept):
    summary, out = swept
    idx = pl.read_parquet(out)
    assert idx.schema == pl.Schema(index_schema(REG))
    assert {"episode_id", "host_id", "status", "reasons", "rows_proc", "rows_netflow", "bytes", "rel_path",
            "manifest_sha256", "validator_version", "validated_at", "duration_s"} <= set(idx.columns)
    assert idx.height == summary.episodes
    ok = idx.filter(pl.col("status") == "accepted")
    assert (ok["rows_proc"] > 0).all() and (ok["bytes"] > 0).all()
    assert summary.counts["errored"] >= 2  # the sweep went on past them


def test_workers_do_not_change_the_index(swept, tiny_store, tmp_path):
    _, out = swept
    serial = tmp_path / "serial.parquet"
    run_validation(tiny_store, serial, REG, workers=1)
    drop = ["validated_at"]
    assert pl.read_parquet(serial).drop(drop).equals(pl.read_parquet(out).drop(drop))


def test_since_last_reuses_unchanged_rows(tiny_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    out = tmp_path / "idx.parquet"
    first = run_validation(store, out, REG)
    second = run_validation(store, out, REG, since_last=True)
    assert second.reused == first.episodes
    assert second.counts == first.counts
    # Change one clean episode's manifest: only it is re-validated.
    before = pl.read_parquet(out)
    rel = before.filter(pl.col("status") == "accepted")["rel_path"][0]
    m = json.loads((store / rel / "manifest.json").read_text())
    m["received_at"] = "2026-12-01T00:00:00.000Z"
    (store / rel / "manifest.json").write_text(json.dumps(m))
    third = run_validation(store, out, REG, since_last=True)
    assert third.reused == first.episodes - 1
    after = pl.read_parquet(out)
    assert after.filter(pl.col("rel_path") == rel)["received_at"][0] == "2026-12-01T00:00:00.000Z"
    assert after.height == before.height
    assert third.duplicates == first.duplicates  # duplicates still found among reused rows


def test_an_interrupted_sweep_resumes_from_what_it_had_checked(swept, tiny_store, tmp_path, monkeypatch):
    import core.validate.pipeline as pipeline
    _, whole = swept
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    out = tmp_path / "idx.parquet"
    monkeypatch.setattr(pipeline, "BATCH", 5)

    def stop_after_twelve(done, total, **_):
        if done == 12:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_validation(store, out, REG, workers=2, progress=stop_after_twelve)
    journal = tmp_path / ".idx.journal"
    assert not out.exists() and len(list(journal.glob("part-*.parquet"))) == 2      # two whole batches of 5
    # One episode the interrupted sweep had checked is rewritten before the next one.
    first = pl.read_parquet(sorted(journal.glob("part-*.parquet"))[0])
    changed = first.filter(pl.col("status") == "accepted")["rel_path"][0]
    m = json.loads((store / changed / "manifest.json").read_text())
    m["received_at"] = "2026-12-01T00:00:00.000Z"
    (store / changed / "manifest.json").write_text(json.dumps(m))
    resumed = run_validation(store, out, REG)
    assert resumed.reused == 9                       # the ten it had checked, but the one changed since
    assert not journal.exists()
    drop = ["validated_at"]
    got = pl.read_parquet(out).drop(drop).filter(pl.col("rel_path") != changed)
    assert got.equals(pl.read_parquet(whole).drop(drop).filter(pl.col("rel_path") != changed))
    assert pl.read_parquet(out).filter(pl.col("rel_path") == changed)["received_at"][0] == "2026-12-01T00:00:00.000Z"


def test_a_journal_of_another_store_is_never_taken(tiny_store, tmp_path, monkeypatch):
    import core.validate.pipeline as pipeline
    monkeypatch.setattr(pipeline, "BATCH", 5)
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_store, a)
    shutil.copytree(tiny_store, b)
    out = tmp_path / "idx.parquet"

    def stop(done, total, **_):
        if done == 12:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_validation(a, out, REG, progress=stop)
    assert run_validation(b, out, REG).reused == 0


# -- hand-made edge cases ------------------------------------------------------

@pytest.fixture
def episode(swept, tiny_store, tmp_path):
    """A copy of one accepted episode, and a helper that rewrites a file and re-hashes it."""
    _, out = swept
    rel = pl.read_parquet(out).filter(pl.col("status") == "accepted")["rel_path"][0]
    ep = tmp_path / "store" / rel
    shutil.copytree(tiny_store / rel, ep)

    def rewrite(fname, raw: bytes, manifest_text=None):
        blob = gzip.compress(raw, mtime=0) if fname.endswith(".gz") else raw
        (ep / fname).write_bytes(blob)
        m = json.loads((ep / "manifest.json").read_text())
        m["files"][fname] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
                             "rows": raw.count(b"\n")}
        (ep / "manifest.json").write_text(manifest_text(m) if manifest_text else json.dumps(m))

    def check():
        return validate_episode(ep, rel, REG, ValidateConfig())
    return ep, rewrite, check


def _raw(ep, fname):
    return gzip.decompress((ep / fname).read_bytes()) if fname.endswith(".gz") else (ep / fname).read_bytes()


def test_empty_file_is_too_few_rows(episode):
    ep, rewrite, check = episode
    rewrite("proc.jsonl.gz", b"")
    row = check()
    assert row["status"] == "rejected"
    assert any(r.startswith("too_few_rows:proc:0<") for r in row["reasons"])


def test_one_bad_line_makes_the_episode_errored(episode):
    ep, rewrite, check = episode
    lines = _raw(ep, "guest.jsonl.gz").splitlines(keepends=True)
    lines[5] = b'{"t_wall_ns": 12, "cpu_pct": \n'
    rewrite("guest.jsonl.gz", b"".join(lines))
    row = check()
    assert row["status"] == "errored"
    assert row["reasons"] == ["read_error:guest.jsonl.gz"]
    assert row["error"] == "guest.jsonl.gz: line 6 is not valid JSON"


def test_wrong_field_type_is_rejected(episode):
    ep, rewrite, check = episode
    lines = _raw(ep, "qmp.jsonl.gz").splitlines(keepends=True)
    row = json.loads(lines[3])
    row["vcpu_time_s"] = "12.5"
    lines[3] = (json.dumps(row) + "\n").encode()
    rewrite("qmp.jsonl.gz", b"".join(lines))
    got = check()
    assert got["status"] == "rejected"
    assert "field_type:qmp.jsonl.gz.vcpu_time_s:line=4" in got["reasons"]


def test_labels_with_equal_timestamps_are_not_monotonic(episode):
    ep, rewrite, check = episode
    labels = [json.loads(x) for x in (ep / "labels.jsonl").read_text().splitlines()]
    labels[2]["t_wall_ns"] = labels[1]["t_wall_ns"]
    rewrite("labels.jsonl", "".join(json.dumps(x) + "\n" for x in labels).encode())
    row = check()
    assert row["status"] == "rejected"
    assert f"labels_not_monotonic:t={labels[1]['t_wall_ns']}" in row["reasons"]


def test_manifest_listing_a_file_twice_is_rejected(episode):
    ep, rewrite, check = episode

    def twice(m):
        text = json.dumps(m)
        entry = json.dumps({"proc.jsonl.gz": m["files"]["proc.jsonl.gz"]})[1:-1]
        return text.replace('"files": {', '"files": {' + entry + ", ", 1)
    rewrite("labels.jsonl", (ep / "labels.jsonl").read_bytes(), manifest_text=twice)
    row = check()
    assert row["status"] == "rejected"
    assert "manifest_duplicate_key:proc.jsonl.gz" in row["reasons"]


def test_a_huge_line_is_read_not_fatal(episode):
    ep, rewrite, check = episode
    lines = _raw(ep, "guest.jsonl.gz").splitlines(keepends=True)
    row = json.loads(lines[2])
    row["agent_note"] = "x" * 4_000_000
    lines[2] = (json.dumps(row) + "\n").encode()
    rewrite("guest.jsonl.gz", b"".join(lines))
    got = check()
    assert got["status"] == "accepted", got["reasons"]


def test_unexpected_exception_is_errored_and_the_sweep_goes_on(tiny_store, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = checks._check_labels

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk on fire")
        return real(*a, **k)
    monkeypatch.setattr(checks, "_check_labels", flaky)
    out = tmp_path / "idx.parquet"
    summary = run_validation(tiny_store, out, REG, workers=1)
    idx = pl.read_parquet(out)
    boom = idx.filter(pl.col("error") == "RuntimeError: disk on fire")
    assert boom.height == 1 and boom["status"][0] == "errored"
    assert boom["reasons"][0].to_list() == ["exception:RuntimeError"]
    assert summary.episodes == idx.height > 40


def test_status_is_derived_from_reasons():
    assert status_of([]) == "accepted"
    assert status_of(["null_values:guest:0.01"]) == "degraded"
    assert status_of(["null_values:guest:0.01", "too_few_rows:proc:3<60"]) == "rejected"
    assert status_of(["sha256_mismatch:x", "read_error:y"]) == "errored"


def _edit_manifest(ep_dir, **fields):
    m = json.loads((ep_dir / "manifest.json").read_text())
    m.update(fields)
    (ep_dir / "manifest.json").write_text(json.dumps(m))


def test_received_at_must_be_a_time(tiny_store, tmp_path):
    """Regression: 'not a date' was accepted, and later sorted as text."""
    idx = pl.read_parquet(run_validation(tiny_store, tmp_path / "i.parquet", REG).index)
    rel = idx.filter(pl.col("status") == "accepted")["rel_path"][0]
    ep = tmp_path / "ep"
    shutil.copytree(tiny_store / rel, ep)
    for bad in ("not a date", "2026-02-30T10:00:00Z", "2026-03-01T10:00:00+25:00"):
        _edit_manifest(ep, received_at=bad)
        row = validate_episode(ep, "ep", REG, ValidateConfig())
        assert row["status"] == "rejected" and "manifest_field_value:received_at" in row["reasons"], bad
    # Received a day after the episode ended (earlier is implausible: received_at_implausible).
    from datetime import datetime, timedelta, timezone
    end = json.loads((ep / "manifest.json").read_text())["ended_at_ns"]
    day = datetime.fromtimestamp(end // 10 ** 9, timezone.utc) + timedelta(days=1)
    for good in (day.strftime("%Y-%m-%dT%H:%M:%S.5Z"), (day + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+01:00"),
                 day.strftime("%Y-%m-%dT%H:%M:%S.123456789Z")):
        _edit_manifest(ep, received_at=good)
        assert validate_episode(ep, "ep", REG, ValidateConfig())["status"] == "accepted", good


def test_store_without_episodes_is_an_error_and_keeps_the_old_index(tiny_store, tmp_path):
    from core.errors import StoreError
    out = tmp_path / "validation_v1.parquet"
    out.write_bytes(b"a good old index")
    empty = tmp_path / "empty"
    (empty / "lab-x" / "upload").mkdir(parents=True)
    with pytest.raises(StoreError) as err:
        run_validation(empty, out, REG)
    assert str(err.value).startswith(f"{empty}: no episode found (1 upload(s) in flight, without a manifest yet)")
    assert out.read_bytes() == b"a good old index"


def test_crafted_episodes_are_rejected_and_the_sweep_writes_its_index(tiny_store, tmp_path):
    """Regression: a lone surrogate in `sample_name` ("unexpected
    UnicodeEncodeError"), `started_at_ns: 10**30` ("unexpected OverflowError")
    and a symlink loop in the store ("unexpected OSError: [Errno 40]") each
    stopped the whole sweep, with no index written."""
    from core.store import store_digest
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store, symlinks=True)
    clean = pl.read_parquet(run_validation(store, tmp_path / "clean.parquet", REG).index)
    accepted = clean.filter(pl.col("status") == "accepted")["rel_path"].to_list()
    surrogate, huge = accepted[0], accepted[1]
    _edit_manifest(store / surrogate, sample_name="\ud800")
    _edit_manifest(store / huge, started_at_ns=10 ** 30)
    host = (store / surrogate).parent
    (host / "loop").symlink_to("..")
    out = tmp_path / "validation_v1.parquet"
    summary = run_validation(store, out, REG, workers=2)
    idx = pl.read_parquet(out)
    assert idx.height == clean.height == summary.episodes
    rows = {r["rel_path"]: r for r in idx.iter_rows(named=True)}
    assert rows[surrogate]["status"] == "rejected"
    assert "manifest_not_utf8:sample_name" in rows[surrogate]["reasons"]
    assert rows[surrogate]["sample_name"] == "\\ud800"
    assert rows[huge]["status"] == "rejected" and rows[huge]["started_at_ns"] is None
    assert "manifest_field_value:started_at_ns" in rows[huge]["reasons"]
    others = idx.filter(~pl.col("rel_path").is_in([surrogate, huge]))
    assert others["status"].to_list() == clean.filter(~pl.col("rel_path").is_in([surrogate, huge]))["status"].to_list()
    _, episodes, _ = store_digest(store)        # what `cis490 status` walks
    assert episodes == clean.height


def test_a_copy_reusing_an_episode_id_never_gets_the_original_rejected(tiny_store, tmp_path):
    """Regression: a duplicate episode_id rejected every copy, so an upload
    reusing a good episode's id got that episode rejected. The copy the
    receiver received first is kept; later ones are rejected."""
    store = tmp_path / "store"
    shutil.copytree(tiny_store, store)
    clean = pl.read_parquet(run_validation(store, tmp_path / "clean.parquet", REG).index)
    original = clean.filter(pl.col("status") == "accepted").row(0, named=True)
    host = (store / original["rel_path"]).parent
    copy = host / "000-copy"                                # its path sorts before the original's
    shutil.copytree(store / original["rel_path"], copy)
    _edit_manifest(copy, received_at="2099-01-01T00:00:00Z")  # received later
    idx = pl.read_parquet(run_validation(store, tmp_path / "idx.parquet", REG).index)
    rows = {r["rel_path"]: r for r in idx.iter_rows(named=True)}
    assert rows[original["rel_path"]]["status"] == "accepted"
    assert "duplicate_episode_id" not in rows[original["rel_path"]]["reasons"]
    late = rows[copy.relative_to(store).as_posix()]
    assert late["status"] == "rejected" and "duplicate_episode_id" in late["reasons"]


def test_an_episode_without_labels_is_unlabelled_not_rejected(episode):
    """Issue 21: an episode nobody labelled was rejected (labels_missing); it
    is sound, and kept as `unlabelled` for `cis490 predict`."""
    ep, rewrite, check = episode
    m = json.loads((ep / "manifest.json").read_text())
    del m["files"]["labels.jsonl"]
    (ep / "manifest.json").write_text(json.dumps(m))
    (ep / "labels.jsonl").unlink()
    row = check()
    assert row["status"] == "unlabelled" and row["reasons"] == ["labels_missing"]
    # Anything wrong besides still decides: an unlabelled episode with too few rows is rejected.
    rewrite("proc.jsonl.gz", b"")
    assert check()["status"] == "rejected"


def test_unlabelled_sits_between_degraded_and_rejected():
    assert status_of(["labels_missing"]) == "unlabelled"
    assert status_of(["labels_missing", "null_values:guest:0.01"]) == "unlabelled"
    assert status_of(["labels_missing", "sha256_mismatch:x"]) == "rejected"
