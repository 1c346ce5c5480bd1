import json

import pytest

from core.registry import load_registry
from tests.labs import install_lab, trained_lab
from tests.text import lines_to_fit

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    return trained_lab(extracted_lab, tmp_path_factory, "trained",
                       [("gbt", "realistic"), ("knn", "realistic"), ("knn", "oracle"), ("knn_semi", "realistic")])


@pytest.fixture
def home(trained, lab_home):
    return install_lab(trained, lab_home)


def test_eval_writes_report_predictions_and_figures(cli, home, monkeypatch):
    monkeypatch.setenv("CIS490_FIGURE_FORMATS", "png,pdf,svg")      # the default; the suite draws none
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


def test_figures_for_a_paper(cli, home, monkeypatch):
    # The kNN evals beforehand, without figures (compare reuses them): the
    # figures read below are gbt's and the comparison's.
    assert cli("eval", "knn", "knn_oracle", "--resamples", "50").exit_code == 0
    monkeypatch.delenv("CIS490_FIGURE_FORMATS")                         # the default: PNG, PDF and SVG
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


def test_eval_reports_detection_trust_and_pitfalls(cli, home, figures):
    result = cli("eval", "knn", "--resamples", "100")
    assert result.exit_code == 0, result.output
    out = result.output
    for words in ("Time to detect", "Calibration (15 equal-width bins)", "Conformal sets (alpha 0.1",
                  "What this split can and cannot claim", "received before the latest train episode"):
        assert words in out, words
    assert max(len(line) for line in lines_to_fit(out)) <= 80
    d = home.artifacts / "eval" / "host" / "knn_realistic" / "test-episode-b100-s0"
    rep = json.loads((d / "report.json").read_text())
    det = rep["detection"]
    assert det["onsets_known"] and {r["phase"] for r in det["per_phase"]} <= set(load_registry().phases)
    for r in det["per_phase"]:
        assert 0 <= r["miss_rate"] <= 1 and r["occurrences"] >= r["detected"]
        if r["median_s"] is not None:
            # A phase is caught at the earliest when its first window completes: at least half a window in.
            assert r["median_s"] >= 0 and r["median_s"] <= r["p90_s"]
    cal = rep["calibration"]
    assert cal["temperature"] > 0 and cal["val_windows"] > 0
    assert 0 <= cal["before"]["ece"] <= 1 and 0 <= cal["conformal"]["coverage"] <= 1
    ids = [p["id"] for p in rep["pitfalls"]]
    assert ids == ["sample_overlap", "temporal_snooping", "phase_proportions", "hosts", "profiles",
                   "resampling_unit"]
    assert rep["over_time"] is None                     # the host recipe, no --slice
    for fig in ("detection", "calibration"):
        assert (d / f"{fig}.svg").exists() and f"{fig}.svg" in rep["figures"]
    import polars as pl
    preds = pl.read_parquet(d / "predictions.parquet")
    assert {"t_end_s", "onset_s", "trust"} <= set(preds.columns)
    assert (preds["t_end_s"] > preds["onset_s"]).all()
    rec = json.loads(home.notebook.read_text().splitlines()[-1])
    assert "median_delay_s" in rec["metrics"] and "ece" in rec["metrics"]
    assert any(o["path"].endswith("detection.svg") for o in rec["outputs"])


def test_detection_rule_and_slices_make_their_own_report(cli, home):
    result = cli("--json", "eval", "knn", "--resamples", "50", "--confirm", "2", "--slice", "1d")
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)[0]
    assert rep["detection"]["confirm"] == 2 and rep["over_time"]["slice_s"] == 86400
    once = json.loads(cli("--json", "eval", "knn", "--resamples", "50").stdout)[0]
    # Two in a row can only be later (or missed) than one.
    for a, b in zip(once["detection"]["per_phase"], rep["detection"]["per_phase"]):
        assert b["detected"] <= a["detected"]
    assert (home.artifacts / "eval" / "host" / "knn_realistic" / "test-episode-b50-s0-c2-sl1d").is_dir()


@pytest.mark.parametrize("args", [("--confirm", "0"), ("--alpha", "1"), ("--min-trust", "2"), ("--slice", "7y")])
def test_out_of_range_section_options_are_usage_errors(cli, home, args):
    result = cli("eval", "knn", *args)
    assert result.exit_code == 2, result.output


def test_compare_gives_the_paired_gap_of_median_delays(cli, home):
    result = cli("--json", "compare", "gbt", "knn", "--resamples", "100")
    assert result.exit_code == 0, result.output
    pair = json.loads(result.stdout)["pairs"][0]
    d = pair["delay"]
    assert d["occurrences"] > 0 and d["p_value"] is not None and d["ci"][0] <= d["median_delay_gap_s"] <= d["ci"][1]
    table = cli("compare", "gbt", "knn", "--resamples", "100").output
    assert "Median time to detect" in table and "missed A / B" in table


def test_delay_gaps_of_several_pairs_are_holm_adjusted_as_the_macro_f1_gaps_are(cli, home):
    """Regression (issue 35): time-to-detect p-values were raw beside Holm-adjusted macro-F1 ones."""
    from core.evaluate.bootstrap import holm
    result = cli("--json", "compare", "gbt", "knn", "knn_oracle", "--resamples", "100")
    assert result.exit_code == 0, result.output
    pairs = [p for p in json.loads(result.stdout)["pairs"] if p["delay"] and p["delay"]["p_value"] is not None]
    assert len(pairs) == 3
    assert [p["delay"]["p_holm"] for p in pairs] == holm([p["delay"]["p_value"] for p in pairs])
    table = cli("compare", "gbt", "knn", "knn_oracle", "--resamples", "100").output
    block = table.split("Median time to detect")[1]
    assert "p Holm" in "\n".join(block.splitlines()[:4])


def test_a_deleted_figure_or_an_older_report_makes_the_eval_stale(cli, home, figures):
    assert cli("eval", "knn", "--resamples", "50").exit_code == 0
    d = home.artifacts / "eval" / "host" / "knn_realistic" / "test-episode-b50-s0"
    (d / "detection.svg").unlink()
    ev = _status_row(cli, "eval host/knn_realistic/test-episode-b50-s0")
    assert ev["state"] == "stale" and "detection.svg" in ev["reason"]
    assert cli("eval", "knn", "--resamples", "50").exit_code == 0
    rep = json.loads((d / "report.json").read_text())
    rep.pop("report_version")
    (d / "report.json").write_text(json.dumps(rep))
    ev = _status_row(cli, "eval host/knn_realistic/test-episode-b50-s0")
    assert ev["state"] == "stale" and "older cis490" in ev["reason"]


def _status_row(cli, artifact: str) -> dict:
    return next(r for r in json.loads(cli("--json", "status").stdout) if r["artifact"] == artifact)


def test_eval_draws_training_curves_per_host_bars_and_a_log_scaled_confusion(cli, home, figures):
    """Regression (issue 22): the training history in every checkpoint header
    was never drawn, hosts had no figure, and a linear colour scale left every
    off-diagonal cell of the confusion white."""
    assert cli("eval", "gbt", "knn", "--resamples", "50").exit_code == 0
    base = home.artifacts / "eval" / "host"
    gbt, knn = base / "gbt_realistic" / "test-episode-b50-s0", base / "knn_realistic" / "test-episode-b50-s0"
    header = json.loads((home.artifacts / "models" / "host" / "gbt_realistic" / "header.json").read_text())
    history = header["training"]["history"]
    assert len(history) == header["training"]["rounds_run"] and history[0]["round"] == 1
    svg = (gbt / "training.svg").read_text()
    assert "validation loss" in svg and f"kept: round {header['training']['best_epoch']}" in svg
    assert not (knn / "training.svg").exists()             # kNN has no curve to draw
    rep = json.loads((knn / "report.json").read_text())
    assert "training.svg" not in rep["figures"] and "per_host.svg" in rep["figures"]
    assert "lab-pi5" in (knn / "per_host.svg").read_text()
    assert "log scale" in (gbt / "confusion.svg").read_text()


def test_figure_formats_follow_the_environment_and_a_bad_one_is_one_line(cli, home, monkeypatch):
    monkeypatch.setenv("CIS490_FIGURE_FORMATS", "png")
    assert cli("eval", "knn", "--resamples", "20").exit_code == 0
    d = home.artifacts / "eval" / "host" / "knn_realistic" / "test-episode-b20-s0"
    assert (d / "confusion.png").exists() and not (d / "confusion.svg").exists()
    monkeypatch.setenv("CIS490_FIGURE_FORMATS", "png,jpeg")
    result = cli("eval", "knn", "--resamples", "20")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: CIS490_FIGURE_FORMATS='png,jpeg': formats are png, pdf, svg "
                                     "(comma-separated), or none")

