"""A full disk: one line naming the file and the space, nothing half-written,
no C++ backtrace (issue 19)."""
import errno

import pytest

from tests.labs import install_lab, trained_lab


def _full(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_in_validate_names_the_index_and_keeps_the_old_one(cli, lab_home, monkeypatch):
    """Regression: "unexpected OSError: [Errno 28] No space left on device", no file named."""
    import pyarrow.parquet as pq
    assert cli("synth", "-n", "12", "--duration", "60", "-j", "1").exit_code == 0
    assert cli("validate", "-j", "1").exit_code == 0
    index = lab_home.processed / "validation_v1.parquet"
    before = index.read_bytes()
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _full)
    result = cli("validate", "-j", "1")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {index}: disk full (") and "free on its filesystem" in line
    assert line.endswith("free some space and re-run (nothing was replaced)")
    assert index.read_bytes() == before
    assert not [p.name for p in lab_home.processed.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    root = trained_lab(extracted_lab, tmp_path_factory, "diskfull", [])
    (root / "artifacts").mkdir(exist_ok=True)
    return root


def test_a_full_disk_under_xgboost_s_own_writes_is_one_line_not_a_backtrace(cli, lab_home, trained, monkeypatch):
    """Regression: gbt printed XGBoost's 13-line C++ backtrace. XGBoost writes
    its external-memory pages itself, and a full disk there reads
    "FileStream.Write incomplete" (seen on a full tmpfs), with no errno."""
    import xgboost
    install_lab(trained, lab_home)

    def full(*a, **k):
        raise xgboost.core.XGBoostError(
            "[01:12:01] /workspace/dmlc-core/src/io/local_filesys.cc:37: Check failed: std::fwrite(ptr, 1, size, "
            "fp_) == size: FileStream.Write incomplete\nStack trace:\n"
            + "".join(f"  [bt] ({i}) /usr/lib/libxgboost.so(+0x{i:x}) [0x{i:x}]\n" for i in range(12)))
    monkeypatch.setattr(xgboost, "train", full)
    result = cli("train", "gbt", "--split", "host", "--set", "n_estimators=3", "--mode", "realistic")
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: disk full (") and "FileStream.Write incomplete" in line
    assert "Stack trace" not in result.output and "[bt]" not in result.output
    assert not (lab_home.artifacts / "models" / "host" / "gbt_realistic").exists()


def test_a_full_disk_outside_a_writer_is_one_line(cli, lab_home, monkeypatch):
    import core.synth
    monkeypatch.setattr(core.synth, "generate_store", _full)
    result = cli("synth", "-n", "2")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: disk full (") and line.endswith("No space left on device")


def _full_when(name: str, real):
    """`real` (a write), failing with ENOSPC for a path named `name`."""
    def write(self, *a, **k):
        if self.name == name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)
    return write


def test_a_full_disk_while_gbt_writes_its_weights_names_the_checkpoint(cli, lab_home, trained, monkeypatch):
    """Regression (issue 32): on a real full disk XGBoost wrote the weights
    itself and said "unexpected XGBoostError ... FileStream.Write incomplete"
    with its C++ backtrace; the notebook's own write then hid even that."""
    import pathlib
    install_lab(trained, lab_home)
    monkeypatch.setattr(pathlib.Path, "write_bytes", _full_when("weights.json", pathlib.Path.write_bytes))
    result = cli("train", "gbt", "--split", "host", "--set", "n_estimators=3", "--mode", "realistic")
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    ckpt = lab_home.artifacts / "models" / "host" / "gbt_realistic"
    assert line.startswith(f"Error: {ckpt}: disk full (") and "nothing was replaced" in line
    assert not ckpt.exists() and not ckpt.parent.exists()           # no orphan folder either


def test_xgboost_s_own_write_failure_reads_as_a_full_disk():
    from cis490cli.app import _disk_full_line
    exc = RuntimeError("[01:12:01] /workspace/dmlc-core/src/io/local_filesys.cc:37: Check failed: std::fwrite(ptr, "
                       "1, size, fp_) == size: FileStream.Write incomplete\nStack trace:\n  [bt] (0) libxgboost.so")
    line = _disk_full_line(exc)
    assert line.startswith("disk full (") and "FileStream.Write incomplete" in line and "[bt]" not in line


def _record_json_full(monkeypatch):
    import core.notebook
    real = core.notebook.atomic_write_text

    def full_record(target, text):
        if target.name == "record.json":
            from core.paths import disk_full
            raise disk_full(target, 10)
        return real(target, text)
    monkeypatch.setattr(core.notebook, "atomic_write_text", full_record)


def test_a_full_disk_while_the_notebook_records_a_failed_run_keeps_the_run_s_own_error(cli, lab_home, trained,
                                                                                        monkeypatch):
    """Regression (issue 32): the notebook's write hid the real failure and left an empty run folder."""
    import pathlib
    install_lab(trained, lab_home)
    monkeypatch.setattr(pathlib.Path, "write_bytes", _full_when("weights.json", pathlib.Path.write_bytes))
    _record_json_full(monkeypatch)
    result = cli("train", "gbt", "--split", "host", "--set", "n_estimators=3", "--mode", "realistic")
    [line] = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and "gbt_realistic: disk full" in line          # the run's own error
    assert not lab_home.runs.exists() or not any(lab_home.runs.iterdir())        # no empty run folder


def test_a_run_that_worked_but_whose_record_could_not_be_written_says_where_the_record_is(cli, lab_home, trained,
                                                                                         monkeypatch):
    install_lab(trained, lab_home)
    _record_json_full(monkeypatch)
    result = cli("split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-nuc,lab-desktop")
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "record.json: disk full" in line and "the run's record is in notebook.jsonl" in line
    assert not lab_home.runs.exists() or not any(lab_home.runs.iterdir())


def test_a_full_disk_in_eval_keeps_the_last_report_and_its_predictions(cli, lab_home, trained, monkeypatch):
    """Regression (issue 32): eval said "nothing was replaced" but had rewritten
    its predictions, and left an orphan folder."""
    import polars as pl
    install_lab(trained, lab_home)
    assert cli("train", "gbt", "--split", "host", "--set", "n_estimators=3", "--mode", "realistic").exit_code == 0
    assert cli("eval", "gbt", "--resamples", "20").exit_code == 0
    report = next((lab_home.artifacts / "eval").rglob("report.json")).parent
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    real = pl.DataFrame.write_parquet

    def written_then_full(self, file, *a, **k):
        real(self, file, *a, **k)                      # the predictions are written, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pl.DataFrame, "write_parquet", written_then_full)
    for seed, target in (("1", report.parent / "test-episode-b20-s1"), ("0", report)):
        result = cli("eval", "gbt", "--resamples", "20", "--seed", seed)
        assert result.exit_code == 1
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"Error: {target}: disk full (") and "nothing was replaced" in line
    assert not (report.parent / "test-episode-b20-s1").exists()          # no orphan folder
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before   # the last report, as it was
    assert not [p.name for p in report.parent.iterdir() if p.name.startswith(".")]


def test_a_full_disk_in_extract_names_what_it_wrote_and_its_filesystem(cli, lab_home, trained, extracted_lab,
                                                                        monkeypatch):
    """Regression (issue 32): pyarrow's "[Errno 28] Error writing bytes to
    file" named no file, and the line gave the current directory's free space."""
    import pyarrow.parquet as pq
    install_lab(trained, lab_home, store_of=extracted_lab[0])
    schema = lab_home.processed / "feature_schema_v1.json"
    before = (schema.read_bytes(), sorted(p.name for p in (lab_home.processed / "extract_v2").iterdir()))
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _full)
    result = cli("extract", "--full", "--store", str(lab_home.default_store))
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {lab_home.processed / 'extract_v2'}: disk full (")
    assert "on its filesystem" in line and "nothing was replaced" in line
    # The last extract, as it was: no half-written chunk left beside it.
    assert (schema.read_bytes(), sorted(p.name for p in (lab_home.processed / "extract_v2").iterdir())) == before
