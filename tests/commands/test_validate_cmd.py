import json
import shutil

import polars as pl
import pytest


@pytest.fixture
def home_store(lab_home, tiny_store):
    shutil.copytree(tiny_store, lab_home.default_store)
    return lab_home.default_store


def test_validate_writes_index_and_exits_zero_with_rejections(cli, lab_home, home_store):
    result = cli("validate", "-j", "1")
    assert result.exit_code == 0, result.output
    assert "Status per host" in result.output
    idx = pl.read_parquet(lab_home.processed / "validation_v1.parquet")
    assert {"accepted", "degraded", "rejected", "errored"} <= set(idx["status"])
    rec = json.loads(lab_home.notebook.read_text().splitlines()[-1])
    assert rec["command"] == "validate" and rec["status"] == "ok"
    assert rec["metrics"]["status_counts"]["rejected"] > 0
    assert rec["inputs"][0]["kind"] == "store"


def test_validate_json_summary(cli, lab_home, home_store):
    result = cli("--json", "validate", "-j", "1")
    payload = json.loads(result.stdout)
    assert payload["episodes"] == sum(payload["counts"].values())
    assert len(payload["in_flight"]) == 1


def test_fail_on_gate(cli, lab_home, home_store):
    result = cli("validate", "-j", "1", "--fail-on", "errored")
    assert result.exit_code == 1
    summary = json.loads(cli("--json", "validate", "-j", "1").stdout)
    n = summary["counts"]["errored"]
    assert result.stderr.strip() == f"Error: validation gate failed: {n} errored episode(s) (--fail-on errored)"
    assert (lab_home.processed / "validation_v1.parquet").exists()  # the index is still written


def test_missing_store(cli, lab_home):
    result = cli("validate", "--store", "nowhere")
    assert result.exit_code == 2
    assert f"{lab_home.home / 'nowhere'}: no such folder" in result.output


def test_unwritable_output(cli, lab_home, home_store):
    (lab_home.home / "blocker").write_text("a file, not a directory")
    result = cli("validate", "-j", "1", "--out", "blocker/idx.parquet")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {lab_home.home / 'blocker'}: cannot create directory")
    assert not list(lab_home.home.glob("**/*.part.parquet"))


def test_since_last_second_run_reuses_everything(cli, lab_home, home_store):
    cli("validate", "-j", "1")
    payload = json.loads(cli("--json", "validate", "-j", "1", "--since-last").stdout)
    assert payload["reused"] == payload["episodes"]


def test_validate_names_the_episodes_it_refused(cli, lab_home, home_store):
    """Regression (issue 22): validate said how many episodes were rejected, not which."""
    payload = json.loads(cli("--json", "validate", "-j", "1").stdout)
    idx = pl.read_parquet(lab_home.processed / "validation_v1.parquet")
    idx_refused = idx.filter(pl.col("status").is_in(["rejected", "errored"])).sort("rel_path")
    assert [r["rel_path"] for r in payload["refused"]] == idx_refused["rel_path"].to_list()
    assert all(r["reasons"] for r in payload["refused"])
    assert len(payload["refused"]) == payload["counts"]["rejected"] + payload["counts"]["errored"] > 10
    table = cli("validate", "-j", "1").stdout
    assert f"Rejected and errored episodes (the first 10 of {idx_refused.height}" in " ".join(table.split())
    first = idx_refused.row(0, named=True)
    assert first["rel_path"].split("/")[-1][:20] in table


def test_a_mistyped_store_is_a_usage_error_that_makes_no_lab(cli, tmp_path, monkeypatch):
    """Regression (issue 35): a mistyped --store in an empty folder left
    artifacts/ behind (the folder became a lab), and a file as --store said
    "directory not found"."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.delenv("CIS490_HOME")
    result = cli("validate", "--store", "recevier")
    assert result.exit_code == 2 and "no such folder" in result.output
    assert list(empty.iterdir()) == []
    (empty / "notes.txt").write_text("x")
    result = cli("validate", "--store", "notes.txt")
    assert result.exit_code == 2 and "is a file; a store is a folder of <host>/<episode>/ folders" in result.output
    assert [p.name for p in empty.iterdir()] == ["notes.txt"]
