"""Splits a lab keeps side by side (issue 21): `split --name`, and every
`--split` takes the name."""
import json

import pytest

from tests.labs import install_lab, trained_lab
from tests.text import lines_to_fit

# Trains a model: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    return trained_lab(extracted_lab, tmp_path_factory, "named", [("gbt", "realistic")])


@pytest.fixture
def home(trained, lab_home, extracted_lab):
    import shutil
    install_lab(trained, lab_home)
    shutil.copytree(extracted_lab[0].default_store, lab_home.default_store)      # status reads the store
    return lab_home


def _rows(cli) -> dict:
    return {r["artifact"]: r for r in json.loads(cli("--json", "status").stdout)}


def test_named_splits_coexist_and_one_never_makes_another_s_checkpoints_stale(cli, home):
    """Regression: re-splitting with other train hosts replaced `host` and made every host checkpoint stale."""
    before = (home.processed / "splits" / "host.parquet").read_bytes()
    made = cli("split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-desktop", "--name", "host-one")
    assert made.exit_code == 0, made.stderr
    assert "Split 'host-one'" in made.output
    assert (home.processed / "splits" / "host.parquet").read_bytes() == before
    meta = json.loads((home.processed / "splits" / "host-one.json").read_text())
    assert meta["name"] == "host-one" and meta["recipe"] == "host" and meta["params"]["train_hosts"] == ["lab-thinkpad", "lab-desktop"]
    rows = _rows(cli)
    assert rows["checkpoint host/gbt_realistic"]["state"] == "fresh"
    assert rows["split host-one"]["state"] == "fresh"
    assert cli("train", "gbt", "--split", "host-one", "--mode", "realistic", "--set", "n_estimators=20").exit_code == 0
    result = cli("--json", "eval", "gbt", "--split", "host-one", "--resamples", "20")
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)[0]
    assert rep["split"] == "host-one" and rep["split_identity"]["name"] == "host-one"
    assert {h["host"] for h in rep["per_host"]} == {"lab-nuc", "lab-pi5"}
    rows = _rows(cli)
    assert rows["checkpoint host/gbt_realistic"]["state"] == "fresh"
    assert rows["checkpoint host-one/gbt_realistic"]["state"] == "fresh"
    # Making it again with other hosts makes only its own checkpoint stale, and says how to remake the split.
    # Regression (issue 35): remaking a split models were trained on replaced it without a word.
    refused = cli("split", "--recipe", "host", "--train-hosts", "lab-nuc,lab-desktop", "--name", "host-one")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == ("Error: split host-one holds other episodes than these; 1 checkpoint(s), 1 evaluation(s) were "
                                      "made on it and would go stale: pass --force to replace it, or --name NEW "
                                      "to keep both")
    assert rows == _rows(cli)                                    # nothing replaced, nothing stale
    # The same split made again (same episodes) is no replacement.
    assert cli("split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-desktop", "--name",
               "host-one").exit_code == 0
    assert cli("split", "--recipe", "host", "--train-hosts", "lab-nuc,lab-desktop", "--name", "host-one",
               "--force").exit_code == 0
    rows = _rows(cli)
    assert rows["checkpoint host/gbt_realistic"]["state"] == "fresh"
    assert rows["checkpoint host-one/gbt_realistic"]["state"] == "stale"
    # Regression (issue 35): the "re-make the split" hint left out --name, and pasting it replaced `host`.
    err = cli("eval", "gbt", "--split", "host-one").stderr
    assert ("re-make the split it was trained on with `cis490 split --recipe host --name host-one --train-hosts "
            "lab-thinkpad,lab-desktop --val-frac 0.2 --seed 0`") in err
    from core.lab import split_command
    assert split_command(meta["params"], "host-one") == ("cis490 split --recipe host --name host-one --train-hosts "
                                                         "lab-thinkpad,lab-desktop --val-frac 0.2 --seed 0")
    assert "--name" not in split_command(meta["params"], "host")


def test_an_unknown_split_name_lists_the_ones_there_and_a_bad_name_is_a_usage_error(cli, home):
    result = cli("eval", "gbt", "--split", "hostt")
    assert result.exit_code == 1
    assert "hostt.parquet not found: run `cis490 split --recipe RECIPE --name hostt` first (splits here: host)" \
        in result.stderr
    bad = cli("split", "--recipe", "host", "--train-hosts", "lab-nuc", "--name", "../up")
    assert bad.exit_code == 2 and "is not a split name" in bad.output
    assert cli("train", "gbt", "--split", "a b").exit_code == 2


def test_leave_one_host_out_makes_a_split_per_host_and_a_report_across_them(cli, home):
    made = cli("split", "--recipe", "host", "--rotate")
    assert made.exit_code == 0, made.stderr
    hosts = ["lab-desktop", "lab-nuc", "lab-pi5", "lab-thinkpad"]
    for h in hosts:
        meta = json.loads((home.processed / "splits" / f"host-out-{h}.json").read_text())
        assert meta["hosts"]["test"] == [h] and h not in meta["params"]["train_hosts"]
    assert "Rotation 'host-rotation'" in made.output
    trained = cli("train", "gbt", "--split", "host-rotation", "--mode", "realistic", "--set", "n_estimators=15")
    assert trained.exit_code == 0
    # Regression (issue 35): four rows without a fold column, and the closing line named only the first fold.
    assert "split" in trained.output and all(f"host-out-{h}" in trained.output for h in hosts)
    assert sum(line.startswith("Checkpoints: ") for line in trained.output.splitlines()) == 4
    result = cli("--json", "eval", "gbt", "--split", "host-rotation", "--resamples", "50")
    assert result.exit_code == 0, result.stderr
    (rep,) = json.loads(result.stdout)
    assert [f["host"] for f in rep["folds"]] == hosts
    f1 = [f["macro_f1"] for f in rep["folds"]]
    assert rep["mean_macro_f1"] == pytest.approx(sum(f1) / len(f1))
    lo, hi = rep["mean_macro_f1_ci"]
    assert lo <= rep["mean_macro_f1"] <= hi and rep["worst"]["macro_f1"] == min(f1)
    table = cli("eval", "all", "--split", "host-rotation", "--mode", "realistic", "--resamples", "50").output
    assert "mean over hosts" in table and "Worst held-out host" in table
    # compare over the rotation: each pair's gap per held-out host, and the mean with its CI.
    assert cli("train", "knn", "--split", "host-rotation", "--mode", "realistic").exit_code == 0
    result = cli("--json", "compare", "gbt", "knn", "--split", "host-rotation", "--resamples", "50")
    assert result.exit_code == 0, result.stderr
    cmp = json.loads(result.stdout)
    (pair,) = cmp["pairs"]
    assert [h["host"] for h in pair["per_host"]] == hosts
    assert pair["mean_gap"] == pytest.approx(sum(h["gap"] for h in pair["per_host"]) / 4)
    assert pair["mean_gap_ci"][0] <= pair["mean_gap"] <= pair["mean_gap_ci"][1] and 0 < pair["p_value"] <= 1
    # Regression (issue 35): a verdict from within-host resampling alone, blind to host-to-host spread.
    gaps = [h["gap"] for h in pair["per_host"]]
    assert pair["hosts_won"] == {"gbt": sum(g > 0 for g in gaps), "knn": sum(g < 0 for g in gaps)}
    lo, hi = pair["host_interval"]
    assert lo <= pair["mean_gap"] <= hi and hi - lo > pair["mean_gap_ci"][1] - pair["mean_gap_ci"][0]
    assert pair["p_hosts"] >= 2 / 16 - 1e-9                       # 4 hosts: 16 sign flips
    assert "across hosts" in pair["verdict"] and "resampling episodes within each held-out host" in pair["verdict"]
    table = cli("compare", "gbt", "knn", "--split", "host-rotation", "--resamples", "50").output
    assert "paired gaps, mean over held-out hosts" in table and "Gap per held-out host" in table
    assert "hosts won" in table and "host-unit 95% CI" in table and "across hosts" in table
    assert max(len(x) for x in lines_to_fit(table)) <= 80
    # status lists the reports across the folds, fresh while every fold's eval is the same.
    rows = _rows(cli)
    settings = "test-episode-b50-s0"
    across = {"eval": f"eval host-rotation/gbt_realistic/rotation-{settings}",
              "compare": f"compare host-rotation/rotation/gbt_vs_knn-{settings}"}
    for artifact in across.values():
        assert rows[artifact]["state"] == "fresh", rows[artifact]
    # A fold's model retrained: its eval, the report across the folds and the comparison are stale, and say why.
    assert cli("train", "gbt", "--split", "host-out-lab-nuc", "--mode", "realistic", "--set",
               "n_estimators=5").exit_code == 0
    rows = _rows(cli)
    fold_eval = f"eval host-out-lab-nuc/gbt_realistic/{settings}"
    assert rows[fold_eval]["state"] == "stale"
    for artifact in across.values():
        assert rows[artifact]["state"] == "stale" and fold_eval in rows[artifact]["reason"], rows[artifact]
    assert rows[across["eval"]]["command"] == ("cis490 eval gbt --mode realistic --split host-rotation --part test "
                                               "--unit episode --resamples 50 --seed 0")
    assert rows[across["compare"]]["command"].startswith("cis490 compare gbt knn --split host-rotation --part test")
    # Once the rotation is evaluated again, the report is fresh again.
    assert cli("eval", "gbt", "--split", "host-rotation", "--resamples", "50").exit_code == 0
    assert _rows(cli)[across["eval"]]["state"] == "fresh"
    refused = cli("export", "gbt", "--split", "host-rotation")
    assert refused.exit_code == 1
    bad = cli("split", "--recipe", "host", "--rotate", "--train-hosts", "lab-nuc")
    assert bad.exit_code == 2
