import json

import pytest

from core.registry import load_registry
from tests.labs import install_lab, trained_lab

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    return trained_lab(extracted_lab, tmp_path_factory, "trained",
                       [("gbt", "realistic"), ("knn", "realistic"), ("knn", "oracle"), ("knn_semi", "realistic")])


@pytest.fixture
def home(trained, lab_home):
    return install_lab(trained, lab_home)


def test_eval_writes_report_predictions_and_figures(cli, home):
    result = cli("eval", "gbt", "--resamples", "200")
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output and "Untested profiles" in result.output
    out = home.artifacts / "eval" / "host" / "gbt_realistic" / "test-episode-b200-s0"
    for name in ("report.json", "predictions.parquet", *(f"{f}.{e}" for f in ("confusion", "per_profile") for e in ("png", "pdf", "svg"))):
        assert (out / name).exists(), name
    rep = json.loads((out / "report.json").read_text())
    assert rep["unit"] == "episode" and rep["resamples"] == 200 and rep["untested_profiles"] == ["scan-and-dial"]
    assert rep["macro_f1_ci"][0] <= rep["macro_f1"] <= rep["macro_f1_ci"][1]
    assert {p["host"] for p in rep["per_host"]} == {"lab-pi5"}
    rec = json.loads(home.notebook.read_text().splitlines()[-1])
    assert rec["command"] == "eval" and rec["metrics"]["ci_method"].startswith("percentile bootstrap")


def test_compare_bare_names_and_parents(cli, home):
    result = cli("--json", "compare", "gbt", "knn", "knn_oracle", "--paired-bootstrap", "--resamples", "200")
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    assert rep["models"] == ["gbt", "knn", "knn_oracle"]
    assert len(rep["pairs"]) == 3 and all("p_holm" in p for p in rep["pairs"])
    records = [json.loads(x) for x in home.notebook.read_text().splitlines()]
    evals = [r["run_id"] for r in records if r["command"] == "eval"]
    cmp = records[-1]
    assert cmp["command"] == "compare" and len(evals) == 3
    assert cmp["parent_runs"] == evals
    # A second compare reuses the evaluations, which are still current.
    assert cli("compare", "gbt", "knn", "--resamples", "200").exit_code == 0
    records = [json.loads(x) for x in home.notebook.read_text().splitlines()]
    assert sum(r["command"] == "eval" for r in records) == 3


def test_compare_refuses_different_windows(cli, home):
    assert cli("eval", "gbt", "knn", "--resamples", "50").exit_code == 0
    import polars as pl
    p = home.artifacts / "eval" / "host" / "knn_realistic" / "test-episode-b50-s0" / "predictions.parquet"
    pl.read_parquet(p).head(10).write_parquet(p)
    from core.compare import compare_reports
    from core.evaluate import EvalConfig
    reports = [json.loads((home.artifacts / "eval" / "host" / f"{m}_realistic" / "test-episode-b50-s0" /
                           "report.json").read_text())
               for m in ("gbt", "knn")]
    from core.compare import CompareError
    with pytest.raises(CompareError, match="gbt and knn were scored on different windows"):
        compare_reports(home.artifacts, list(load_registry().phases), reports, EvalConfig(resamples=50))


def test_unknown_checkpoint_lists_the_trained_ones(cli, home):
    result = cli("eval", "gru")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("Error: no checkpoint for gru in realistic mode on split host")
    assert ("trained on host: gbt_realistic, knn_oracle, knn_realistic, knn_semi_realistic (run `cis490 train gru --split host "
            "--mode realistic`)") in result.stderr


def test_bad_unit_is_a_usage_error_listing_the_choices(cli, home):
    result = cli("eval", "gbt", "--unit", "host")
    assert result.exit_code == 2
    assert "'host' is not one of 'episode', 'window'" in result.stderr


def test_compare_table_fits_80_columns_with_four_models(cli, home):
    result = cli("compare", "gbt", "knn", "knn_oracle", "knn_semi", "--resamples", "50")
    assert result.exit_code == 0, result.output
    out = result.stdout
    table = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(table) > 10 and max(len(line) for line in table) <= 80
    assert "…" not in out and "knn_oracle - knn_semi*" in out and "p Holm" in out
    wide = cli("compare", "gbt", "knn", "knn_oracle", "knn_semi", "--resamples", "50", "--wide").stdout
    assert "F1 A" in wide and "p Holm" in wide


def test_eval_all_and_compare_all(cli, home):
    result = cli("--json", "eval", "all", "--resamples", "20")
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in json.loads(result.stdout)] == ["gbt", "knn", "knn_oracle", "knn_semi"]
    result = cli("--json", "compare", "all", "--resamples", "20")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["models"] == ["gbt", "knn", "knn_semi"]        # realistic ones
    assert json.loads(cli("--json", "eval", "all", "--mode", "oracle", "--resamples", "20").stdout)[0]["name"] \
        == "knn_oracle"
    result = cli("eval", "all", "--split", "sample")
    assert result.exit_code == 1
    assert "no checkpoint trained on split sample (run `cis490 train all --split sample`)" in result.stderr
    assert cli("eval", "all", "gbt").exit_code == 1


def test_figures_for_a_paper(cli, home):
    assert cli("compare", "gbt", "knn", "knn_oracle", "--resamples", "50").exit_code == 0
    out = home.artifacts / "eval" / "host" / "gbt_realistic" / "test-episode-b50-s0"
    from PIL import Image
    with Image.open(out / "confusion.png") as im:
        assert round(im.info["dpi"][0]) == 300
    assert (out / "confusion.pdf").read_bytes()[:5] == b"%PDF-"
    svg = (out / "per_profile.svg").read_text()
    assert "gbt (realistic): trained on host split [lab-thinkpad, lab-nuc, lab-desktop]" in svg
    assert "tested on host/test [lab-pi5]" in svg
    stem = home.artifacts / "compare" / "host" / "gbt_vs_knn_vs_knn_oracle-test-episode-b50-s0"
    for ext in ("png", "pdf", "svg"):
        assert stem.with_suffix(f".{ext}").stat().st_size > 1000, ext
    assert "gbt - knn_oracle" in stem.with_suffix(".svg").read_text()
    rec = json.loads(home.notebook.read_text().splitlines()[-1])
    assert {o["role"] for o in rec["outputs"]} >= {"forest_png", "forest_pdf", "forest_svg"}


def test_compare_checks_its_models_before_any_work(cli, home):
    """Regression (issue 22): `compare gbt` ran a whole eval and recorded an
    "ok" run before saying that compare needs two models."""
    for args, words in ((("gbt",), "compare needs at least two models, got gbt"),
                        (("gbt", "gbt_realistic"), "a model is named twice: gbt, gbt")):
        result = cli("compare", *args, "--resamples", "50")
        assert result.exit_code == 1
        assert result.stderr.strip() == f"Error: {words}"
    assert not (home.artifacts / "eval").exists()
    runs = [json.loads(x) for x in home.notebook.read_text().splitlines()] if home.notebook.exists() else []
    assert [r["status"] for r in runs if r["command"] != "compare"] == []
    assert all(r["status"] == "error" for r in runs)


def test_eval_of_several_models_ends_with_one_table_of_all(cli, home):
    """Regression (issue 22): `eval all` printed four long reports and no summary."""
    result = cli("eval", "all", "--resamples", "20")
    assert result.exit_code == 0, result.output
    tail = result.stdout.split("Every model on host/test")[1]
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    assert any("macro-F1 [95% CI]" in ln and "worst host" in ln for ln in lines)
    for name in ("gbt", "knn", "knn_oracle", "knn_semi*"):
        assert any(ln.split()[1:2] == [name] or ln.lstrip("│┃ ").startswith(name + " ") for ln in lines), name
    assert all(len(ln) <= 80 for ln in lines)
    assert "* transductive" in tail


def test_compare_says_when_p_values_sit_at_the_resamples_floor(cli, home):
    """Regression (issue 22): six Holm-adjusted p-values all at the smallest the
    resamples allow were shown without saying more resamples would separate them."""
    result = cli("compare", "gbt", "knn_oracle", "--resamples", "20")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    rep = json.loads(cli("--json", "compare", "gbt", "knn_oracle", "--resamples", "20").stdout)
    assert rep["p_floor"] == 2 / 21 and rep["pairs"][0]["p_at_floor"] is True      # 0.878 vs 0.577
    assert "every pair's p is the smallest 20 resamples allow (2/(B+1) = 0.095)" in text
    assert "more --resamples would" in text
