"""Every reader bounded, every failure a reason (issue 32): manifests read as
data files are, a file changed behind validation's back, names a filesystem
gives that are not UTF-8, rows beyond what a manifest can claim."""
import gzip
import json
import os
import shutil

import polars as pl
import pytest

from core.extract import ExtractConfig, read_extracted_episodes
from core.extract.pipeline import run_extract
from core.registry import load_registry
from core.storescan import store_digest
from core.validate.checks import ValidateConfig, validate_episode
from core.validate.pipeline import run_validation

REG = load_registry()


@pytest.fixture
def store(tiny_store, tmp_path):
    out = tmp_path / "store"
    shutil.copytree(tiny_store, out)
    return out


def _accepted(store, tmp_path, n=1) -> list[str]:
    idx = pl.read_parquet(run_validation(store, tmp_path / "first.parquet", REG).index)
    return idx.filter(pl.col("status") == "accepted")["rel_path"].sort().to_list()[:n]


def _check(store, rel):
    return validate_episode(store / rel, rel, REG, ValidateConfig(), root=store)


def test_a_manifest_is_read_as_a_data_file_is(store, tmp_path):
    """Regression: a manifest linked out of the store was read and the episode
    accepted; one linked to /dev/zero was read without limit; a FIFO hung
    validate and status."""
    fifo, zero, away, big = _accepted(store, tmp_path, 4)
    os.remove(store / fifo / "manifest.json")
    os.mkfifo(store / fifo / "manifest.json")
    os.remove(store / zero / "manifest.json")
    (store / zero / "manifest.json").symlink_to("/dev/zero")
    outside = tmp_path / "outside.json"
    shutil.move(store / away / "manifest.json", outside)
    (store / away / "manifest.json").symlink_to(outside)
    m = json.loads((store / big / "manifest.json").read_text())
    m["padding"] = "x" * (2 << 20)
    (store / big / "manifest.json").write_text(json.dumps(m))
    assert _check(store, fifo)["reasons"] == ["file_not_regular:manifest.json"]
    assert _check(store, zero)["reasons"] == ["file_outside_store:manifest.json"]
    assert _check(store, away)["reasons"] == ["file_outside_store:manifest.json"]
    row = _check(store, big)
    assert row["status"] == "rejected" and row["reasons"] == ["file_too_large:manifest.json"]
    summary = run_validation(store, tmp_path / "idx.parquet", REG, workers=2)      # finishes: no hang
    assert summary.counts["rejected"] >= 4
    assert store_digest(store)[1] == summary.episodes                              # status's pass too


def test_a_file_changed_with_its_size_and_time_put_back_is_noticed_and_never_extracted(store, tmp_path):
    """Regression: same size, modification time restored: never noticed, and
    a fresh extract used the unverified bytes."""
    (rel,) = _accepted(store, tmp_path)
    processed = tmp_path / "processed"
    index = processed / "validation_v1.parquet"
    run_validation(store, index, REG)
    run_extract(processed, index, store, REG, ExtractConfig(), workers=1)
    f = store / rel / "proc.jsonl.gz"
    st = f.stat()
    blob = bytearray(f.read_bytes())
    raw = bytearray(gzip.decompress(bytes(blob)))
    at = raw.index(b'"cpu_user_s":') + len(b'"cpu_user_s":')
    at += next(i for i, c in enumerate(raw[at:]) if chr(c).isdigit())
    raw[at] = ord("9") if raw[at] != ord("9") else ord("8")      # one digit of one value
    new = gzip.compress(bytes(raw), mtime=0)
    new = new + b"\0" * (len(blob) - len(new)) if len(new) <= len(blob) else new
    f.write_bytes(new[:max(len(blob), len(new))])
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert len(new) == len(blob)
    run_extract(processed, index, store, REG, ExtractConfig(), workers=1, full=True)      # a fresh extract
    row = read_extracted_episodes(processed).filter(pl.col("rel_path") == rel)
    assert row["status"][0] == "failed"
    assert row["error"][0] == "proc.jsonl.gz changed since validation: re-run `cis490 validate`"
    # validate --since-last re-hashes it (its change time and inode moved) and rejects it.
    again = run_validation(store, index, REG, since_last=True)
    assert again.reused == again.episodes - 1
    row = pl.read_parquet(index).filter(pl.col("rel_path") == rel)
    assert row["status"][0] == "rejected" and "sha256_mismatch:proc.jsonl.gz" in row["reasons"][0].to_list()
    # A copy of the store keeps its digest (what status compares): only size and time count there.
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    assert store_digest(copy)[0] == store_digest(store)[0]


def test_a_size_mismatch_is_found_before_hashing(store, tmp_path, monkeypatch):
    """Regression: a 64 GiB sparse file whose size already differed from the
    manifest was hashed whole (159 s; SIGTERM took 100 s)."""
    (rel,) = _accepted(store, tmp_path)
    f = store / rel / "guest.jsonl.gz"
    with open(f, "r+b") as fh:
        fh.truncate(64 << 30)                                                    # sparse: no disk used
    import core.validate.checks as checks
    hashed = []
    real = checks.read_once
    monkeypatch.setattr(checks, "read_once", lambda p, cap: hashed.append(p.name) or real(p, cap))
    row = _check(store, rel)
    assert "size_mismatch:guest.jsonl.gz" in row["reasons"] and row["status"] == "rejected"
    assert "guest.jsonl.gz" not in hashed


def test_a_digest_mismatch_is_named_even_when_the_stream_is_broken_too(store, tmp_path):
    """Regression: bytes changed so that the gzip stream broke as well gave
    `errored` with only read_error; the mismatch is what the status contract names."""
    (rel,) = _accepted(store, tmp_path)
    f = store / rel / "qmp.jsonl.gz"
    blob = bytearray(f.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    f.write_bytes(bytes(blob))
    row = _check(store, rel)
    assert row["status"] == "rejected" and "sha256_mismatch:qmp.jsonl.gz" in row["reasons"]


@pytest.mark.parametrize("received", ["0001-01-01T00:00:00+23:00", "9999-12-31T23:59:59-23:00"])
def test_a_received_at_out_of_datetime_s_range_is_a_rejection(store, tmp_path, received):
    """Regression: errored with OverflowError instead of the documented rejection."""
    (rel,) = _accepted(store, tmp_path)
    m = json.loads((store / rel / "manifest.json").read_text())
    (store / rel / "manifest.json").write_text(json.dumps({**m, "received_at": received}))
    row = _check(store, rel)
    assert row["status"] == "rejected" and "manifest_field_value:received_at" in row["reasons"]


def test_a_folder_name_that_is_not_utf8_is_a_rejected_episode_with_its_path_escaped(store, tmp_path):
    """Regression: validate aborted ("unexpected UnicodeEncodeError") after it
    had replaced the index, and every later validate did the same."""
    (rel,) = _accepted(store, tmp_path)
    host = os.fsencode(store / rel.split("/")[0])
    shutil.copytree(os.fsencode(store / rel), host + b"/\xff\xfe-bad")
    os.makedirs(host + b"/\xfe-in-flight")
    index = tmp_path / "validation_v1.parquet"
    for since_last in (False, True):
        summary = run_validation(store, index, REG, since_last=since_last)
        rows = pl.read_parquet(index).filter(pl.col("rel_path").str.contains("\\xff", literal=True))
        assert rows["rel_path"].to_list() == [rel.split("/")[0] + "/\\xff\\xfe-bad"]
        assert rows["status"][0] == "rejected" and "path_not_utf8" in rows["reasons"][0].to_list()
        assert rel.split("/")[0] + "/\\xfe-in-flight" in summary.in_flight


def test_the_index_its_sidecar_and_its_stat_file_are_replaced_together_or_not_at_all(store, tmp_path, monkeypatch):
    from core.validate import sidecar_path, stat_path
    index = tmp_path / "validation_v1.parquet"
    run_validation(store, index, REG)
    before = {p: p.read_bytes() for p in (index, sidecar_path(index), stat_path(index))}
    (rel,) = _accepted(store, tmp_path)
    shutil.rmtree(store / rel)                      # the next index would differ

    def fail(*_):
        raise OSError("the disk went away")
    monkeypatch.setattr("core.validate.pipeline.store_digest", fail)
    with pytest.raises(OSError, match="the disk went away"):
        run_validation(store, index, REG)
    assert {p: p.read_bytes() for p in before} == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_lab_home_whose_path_is_not_utf8_is_one_line(tmp_path, cli, monkeypatch):
    home = os.fsencode(tmp_path) + b"/home\xff"
    os.makedirs(home)
    monkeypatch.chdir(home)
    monkeypatch.delenv("CIS490_HOME")
    for args in (("validate", "--store", "."), ("status",)):
        result = cli(*args)
        assert result.exit_code == 1 and "its path is not UTF-8" in result.stderr and "\\xff" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_rows_beyond_what_the_duration_and_rate_allow_are_never_parsed(store, tmp_path, monkeypatch):
    """Regression: a 0.5 MB gzip under the size cap claiming 65,536 rows of
    a one-minute episode peaked at 2.5 GB while parsed."""
    from tests.hostile import row_bomb
    claims, lies = _accepted(store, tmp_path, 2)
    row_bomb(store / claims, rows=65_536)
    row_bomb(store / lies, rows=65_536, claim=100, line_bytes=40)
    import core.validate.checks as checks
    parsed = []
    monkeypatch.setattr(checks, "parse_jsonl", lambda data, schema: parsed.append(len(data)) or
                        __import__("core.store", fromlist=["x"]).parse_jsonl(data, schema))
    row = _check(store, claims)
    assert row["status"] == "rejected"
    assert any(r.startswith("manifest_implausible:rows.proc.jsonl.gz=65536>") for r in row["reasons"])
    row = _check(store, lies)
    assert row["status"] == "rejected" and any(r.startswith("too_many_rows:proc.jsonl.gz:65536>")
                                               for r in row["reasons"])
    assert max(parsed) < 1 << 20                      # the bombs' rows were never handed to the parser


def test_json_lines_parse_in_bounded_chunks_to_the_same_frame(monkeypatch):
    import core.store
    from core.store import parse_jsonl
    schema = {"t_wall_ns": pl.Int64, "x": pl.Float64}
    data = b"".join(b'{"t_wall_ns": %d, "x": %d.5}\n' % (i, i) for i in range(1000)) + b"\n\n"
    whole = parse_jsonl(data, schema)
    monkeypatch.setattr(core.store, "PARSE_CHUNK", 100)
    assert parse_jsonl(data, schema).equals(whole) and whole.height == 1000
