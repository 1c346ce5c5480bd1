"""A missing or damaged derived file is one line naming the file and the
command that rebuilds it (the loading layer, core/loading.py), never
"unexpected ..." and never a traceback."""
import json
import shutil

import pytest

from tests.labs import install_lab, trained_lab

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    return trained_lab(extracted_lab, tmp_path_factory, "damaged", [("gbt", "realistic")])


@pytest.fixture
def home(trained, lab_home):
    return install_lab(trained, lab_home)


def _one_line(result, expected_start, expected_end=""):
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert err.count("\n") == 0, err
    assert "unexpected" not in err and "Traceback" not in result.output
    assert err.startswith(expected_start), err
    assert err.endswith(expected_end), err


CHUNK = ("extract_v2", "chunk-000000")


def test_deleted_chunk(cli, home):
    shutil.rmtree(home.processed.joinpath(*CHUNK))
    _one_line(cli("train", "cnn", "--epochs", "1"),
              f"Error: {home.processed.joinpath(*CHUNK, 'features.parquet')} not found: run `cis490 extract` first")


def test_deleted_features(cli, home):
    home.processed.joinpath(*CHUNK, "features.parquet").unlink()
    _one_line(cli("train", "knn"),
              f"Error: {home.processed.joinpath(*CHUNK, 'features.parquet')} not found: run `cis490 extract` first")


def test_deleted_tensor_part(cli, home):
    part = home.processed.joinpath(*CHUNK, "mask_00000.npy")
    part.unlink()
    _one_line(cli("train", "cnn", "--epochs", "1"), f"Error: {part} not found: run `cis490 extract` first")


def test_truncated_tensor_part(cli, home):
    """Regression: 'mmap length is greater than file size' from numpy."""
    part = home.processed.joinpath(*CHUNK, "values_00000.npy")
    part.write_bytes(part.read_bytes()[:5000])
    _one_line(cli("train", "cnn", "--epochs", "1"), f"Error: {part}: damaged, truncated (5,000 of ",
              "bytes); rebuild it with `cis490 extract`")


def test_garbage_split(cli, home):
    """Regression: a polars ComputeError."""
    (home.processed / "splits" / "host.parquet").write_bytes(b"not parquet at all" * 10)
    _one_line(cli("train", "gbt"), f"Error: {home.processed / 'splits' / 'host.parquet'}: damaged, not a readable "
                                   "parquet file (", "); rebuild it with `cis490 split --recipe host`")


def test_garbage_acceptance_index(cli, home):
    (home.processed / "validation_v1.parquet").write_bytes(b"\x00" * 100)
    _one_line(cli("extract", "-j", "1", "--store", str(home.home)),
              f"Error: {home.processed / 'validation_v1.parquet'}: damaged, not a readable parquet file (",
              "); rebuild it with `cis490 validate`")


def test_damaged_feature_schema(cli, home):
    (home.processed / "feature_schema_v1.json").write_text('{"version": 1')
    _one_line(cli("eval", "gbt"), f"Error: {home.processed / 'feature_schema_v1.json'}: damaged, not valid JSON (",
              "); rebuild it with `cis490 extract`")


@pytest.mark.parametrize("content, problem", [('{"format_version": 1, "mo', "damaged, not valid JSON ("),
                                              ("{}", "damaged, it lacks 'format_version'"),
                                              ("[1, 2]", "damaged, not a JSON object")])
def test_damaged_checkpoint_header(cli, home, content, problem):
    """Regression: JSONDecodeError / KeyError from a truncated or key-less header."""
    header = home.artifacts / "models" / "host" / "gbt_realistic" / "header.json"
    header.write_text(content)
    _one_line(cli("eval", "gbt"), f"Error: {header}: {problem}",
              "; rebuild it with `cis490 train gbt --split host --mode realistic`")


def test_damaged_split_metadata(cli, home):
    meta = home.processed / "splits" / "host.json"
    meta.write_text(json.dumps({"recipe": "host"}))
    _one_line(cli("eval", "gbt"), f"Error: {meta}: damaged, it lacks 'params'",
              "; rebuild it with `cis490 split --recipe host`")
