"""`cis490 ingest`: the day's runs validated, extracted and predicted, and
only those; the model chosen once."""
import json
import shutil

import polars as pl
import pytest

from tests.labs import install_lab, trained_lab

# Trains a model and runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    return trained_lab(extracted_lab, tmp_path_factory, "ingesting", [("gbt", "realistic")])


@pytest.fixture
def home(trained, lab_home, extracted_lab):
    return install_lab(trained, lab_home, store_of=extracted_lab[0])


def _copy(home, new_id: str, labelled: bool) -> None:
    """A run landing: a copy of one of the store's runs under a new id (without its labels: unlabelled)."""
    index = pl.read_parquet(home.processed / "validation_v1.parquet").filter(pl.col("status") == "accepted")
    rel = index["rel_path"].sort()[0]
    new = home.default_store / rel.split("/")[0] / new_id
    shutil.copytree(home.default_store / rel, new)
    m = json.loads((new / "manifest.json").read_text())
    m["episode_id"] = new_id
    if not labelled:
        del m["files"]["labels.jsonl"]
        (new / "labels.jsonl").unlink()
    (new / "manifest.json").write_text(json.dumps(m))


def _steps(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.output
    return {s["name"]: s for s in json.loads(result.stdout)["steps"]}


def test_a_day_of_runs_is_validated_extracted_and_predicted_once(cli, home):
    _copy(home, "ep900001-landed", labelled=True)
    _copy(home, "ep900002-landed", labelled=False)
    first = cli("--json", "ingest", "--model", "gbt")
    steps = _steps(first)
    assert steps["validate"]["new"] == {"accepted": 1, "unlabelled": 1}
    assert steps["extract"]["extracted"] == 1 and steps["extract"]["reused"] > 50
    assert steps["predict"]["episodes"] == 1
    doc = json.loads(first.stdout)
    assert doc["model"] == {"model": "gbt", "mode": "realistic", "split": "host", "engine": "auto"}
    assert doc["notes"] == ["split host: 1 new episode not in it (`cis490 split --extend host` adds them)"]
    windows = pl.read_parquet(sorted((home.artifacts / "predict" / "host" / "gbt_realistic").glob("*/windows/*")))
    assert windows["episode_id"].unique().to_list() == ["ep900002-landed"]
    # The notebook holds the ingest and each of its steps, as their own commands would record them.
    records = [json.loads(x) for x in home.notebook.read_text().splitlines()]
    assert [r["command"] for r in records] == ["validate", "extract", "predict", "ingest"]
    assert {r["parent_run"] for r in records[:3]} == {records[3]["run_id"]}

    # The next day, nothing landed: nothing is redone, and the model is the one chosen.
    table = cli("ingest")
    assert table.exit_code == 0, table.output
    assert "no new run" in table.output and "split host: 1 new episode not in it" in table.output
    steps = _steps(cli("--json", "ingest"))
    assert steps["validate"]["said"] == "no new run" and steps["extract"]["extracted"] == 0
    assert steps["predict"]["said"] == "nothing new for gbt: it predicted all 1 unlabelled run(s) already"


def test_without_a_model_nothing_is_predicted_and_the_table_says_how_to_choose_one(cli, home):
    _copy(home, "ep900003-landed", labelled=False)
    steps = _steps(cli("--json", "ingest"))
    assert steps["predict"]["said"] == "no model chosen: pass --model NAME once (it is remembered)"
    assert not (home.artifacts / "predict").exists()


@pytest.mark.parametrize("args,message", [
    (("--model", "gbtt"), "unknown model 'gbtt'"),
    (("--store", "/nonexistent/store"), "/nonexistent/store: no such folder"),
])
def test_what_cannot_run_is_said_before_anything_runs(cli, home, args, message):
    before = home.notebook.read_text() if home.notebook.exists() else ""
    result = cli("ingest", *args)
    assert result.exit_code in (1, 2) and message in " ".join(result.output.split())
    assert (home.notebook.read_text() if home.notebook.exists() else "") == before


def test_a_damaged_choice_is_one_line(cli, home):
    (home.artifacts / "ingest.json").write_text("{not json")
    result = cli("ingest")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {home.artifacts / 'ingest.json'}: damaged, not valid JSON: pass --model "
                                     "to choose the model again")
