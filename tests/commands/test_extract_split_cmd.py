import json
import shutil

import pytest


@pytest.fixture
def validated_home(cli, lab_home, extracted_lab):
    paths, _ = extracted_lab
    shutil.copytree(paths.default_store, lab_home.default_store)
    assert cli("validate", "-j", "1").exit_code == 0
    return lab_home


def test_extract_then_split(cli, validated_home):
    home = validated_home
    result = cli("extract", "-j", "2")
    assert result.exit_code == 0, result.output
    assert "Windows per phase and host" in result.output
    assert (home.processed / "extract_v2" / "chunk-000000" / "features.parquet").exists()
    again = json.loads(cli("--json", "extract", "-j", "1").stdout)
    # Regression (issue 35): the table was alphabetical (act, beacon, dormant, ...), not the life-cycle's order.
    from core.registry import load_registry
    phases = list(again["per_phase_host"])
    assert phases == [p for p in load_registry().phases if p in phases]
    assert again["extracted"] == 0 and again["reused"] > 0
    split = cli("split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-nuc", "--train-hosts", "lab-desktop")
    assert split.exit_code == 0, split.output
    assert "untested profiles" in split.output and "scan-and-dial" in split.output
    meta = json.loads((home.processed / "splits" / "host.json").read_text())
    assert meta["hosts"]["test"] == ["lab-pi5"]
    records = [json.loads(x) for x in home.notebook.read_text().splitlines()]
    assert [r["command"] for r in records] == ["validate", "extract", "extract", "split"]
    assert records[1]["metrics"]["windows"] > 0
    # Extending a split that holds every extracted episode: said, nothing written.
    before = (home.processed / "splits" / "host.json").read_bytes()
    extend = cli("split", "--extend", "host")
    assert extend.exit_code == 0, extend.output
    assert "Split 'host' holds every extracted episode already: nothing to add (version 1)." in extend.output
    assert (home.processed / "splits" / "host.json").read_bytes() == before


@pytest.mark.parametrize("args,says", [
    (("split",), "name the recipe (host, sample or time), or pass --extend NAME"),
    (("split", "--extend", "host", "--recipe", "time"), "a split is extended by its own recipe and parameters: "
                                                       "no --recipe"),
    (("split", "--extend", "host", "--name", "x"), "no --name"),
    (("split", "--extend", "../x"), "'../x' is not a split name"),
])
def test_split_usage_errors(cli, lab_home, args, says):
    result = cli(*args)
    assert result.exit_code == 2
    assert says in " ".join(result.output.split())


def test_extract_before_validate_says_what_to_run(cli, lab_home):
    lab_home.data.mkdir()                  # a lab, never validated
    result = cli("extract")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {lab_home.processed / 'validation_v1.parquet'} not found: "
                                     "run `cis490 validate` first")


def test_split_before_extract_says_what_to_run(cli, lab_home):
    lab_home.data.mkdir()                  # a lab, never extracted
    result = cli("split", "--recipe", "time")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {lab_home.processed / 'feature_schema_v1.json'} not found: "
                                     "run `cis490 extract` first")


def test_split_host_without_train_hosts(cli, lab_home):
    """A usage error (exit 2), as every missing option is (issue 35: it was 1)."""
    result = cli("split", "--recipe", "host")
    assert result.exit_code == 2
    assert "the host recipe trains on --train-hosts and tests on every other host" in result.output
    assert "--rotate" in result.output


def test_bad_window_spec(cli, lab_home):
    result = cli("extract", "--window", "10.2")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: --window must be a whole number of 0.5 s steps"


def test_extract_finds_the_store_the_index_was_validated_from(cli, lab_home, extracted_lab):
    paths, _ = extracted_lab
    elsewhere = lab_home.home / "srv" / "receiver"
    shutil.copytree(paths.default_store, elsewhere)
    assert cli("validate", "--store", str(elsewhere), "-j", "1").exit_code == 0
    assert not lab_home.default_store.exists()
    result = cli("--json", "extract", "-j", "1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["windows"] > 0


def test_split_with_a_read_only_artifacts_folder_changes_nothing(cli, lab_home, extracted_lab, monkeypatch):
    """Regression: `split` with a read-only artifacts/ replaced the split files,
    then failed with Errno 30 and no record."""
    import os
    paths, _ = extracted_lab
    shutil.copytree(paths.processed, lab_home.processed)
    first = cli("split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-nuc,lab-desktop")
    assert first.exit_code == 0, first.stderr
    before = {p.name: p.read_bytes() for p in (lab_home.processed / "splits").iterdir()}
    notebook = lab_home.notebook.read_bytes()
    real = os.access
    # Read-only, simulated: root may write anywhere.
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK and str(p) == str(lab_home.artifacts)
                        else real(p, mode))
    result = cli("split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-nuc")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {lab_home.artifacts}: not writable (commands that do work write "
                                     "there); nothing was changed")
    assert {p.name: p.read_bytes() for p in (lab_home.processed / "splits").iterdir()} == before
    assert lab_home.notebook.read_bytes() == notebook


def test_a_validate_that_changes_nothing_leaves_the_lineage_fresh(cli, validated_home):
    """Regression: a no-change `validate` marked everything downstream stale until `extract` ran again."""
    home = validated_home
    assert cli("extract", "-j", "1").exit_code == 0
    index = home.processed / "validation_v1.parquet"
    before = index.read_bytes()
    assert cli("validate", "-j", "1").exit_code == 0
    assert index.read_bytes() == before
    rows = {r["artifact"]: r["state"] for r in json.loads(cli("--json", "status").stdout)}
    assert rows["acceptance index"] == rows["features and tensors"] == "fresh"
