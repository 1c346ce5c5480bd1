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


def test_a_full_disk_while_saving_gbt_is_one_line_not_a_backtrace(cli, lab_home, trained, monkeypatch):
    """Regression: gbt printed XGBoost's 13-line C++ backtrace."""
    import xgboost
    install_lab(trained, lab_home)

    def full(*a, **k):
        raise xgboost.core.XGBoostError(
            "[14:22:01] /workspace/src/common/io.h:112: Check failed: fo->Write(): No space left on device\n"
            "Stack trace:\n" + "".join(f"  [bt] ({i}) /usr/lib/libxgboost.so(+0x{i:x}) [0x{i:x}]\n"
                                       for i in range(12)))
    monkeypatch.setattr(xgboost.Booster, "save_model", full)
    result = cli("train", "gbt", "--split", "host", "--set", "n_estimators=3", "--mode", "realistic")
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    ckpt = lab_home.artifacts / "models" / "host" / "gbt_realistic"
    assert line.startswith(f"Error: {ckpt}: disk full (")
    assert "Stack trace" not in result.output and "[bt]" not in result.output
    assert not ckpt.exists()


def test_a_full_disk_outside_a_writer_is_one_line(cli, lab_home, monkeypatch):
    import core.synth
    monkeypatch.setattr(core.synth, "generate_store", _full)
    result = cli("synth", "-n", "2")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: disk full (") and line.endswith("No space left on device")
