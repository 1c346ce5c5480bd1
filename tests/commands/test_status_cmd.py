"""`cis490 status`: exactly the artefacts downstream of a change go stale, each with its reason."""
import json
import shutil

import pytest

from tests.labs import install_lab, trained_lab

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    """Two checkpoints, evaluated and compared once for the module (reports
    record lab paths relative to the home, so copies of the lab stay fresh)."""
    from typer.testing import CliRunner

    from cis490cli.app import app
    root = trained_lab(extracted_lab, tmp_path_factory, "status", [("gbt", "realistic"), ("knn", "realistic")])
    runner = CliRunner()
    for args in (("eval", "gbt", "knn"), ("compare", "gbt", "knn")):
        result = runner.invoke(app, ["--home", str(root), *args, "--resamples", "50"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def home(trained, lab_home, extracted_lab):
    paths, _ = extracted_lab
    install_lab(trained, lab_home)
    shutil.copytree(paths.default_store, lab_home.default_store)        # the lab's own store, to change
    side = lab_home.processed / "validation_v1.json"
    doc = json.loads(side.read_text())
    doc["store"] = str(lab_home.default_store)
    side.write_text(json.dumps(doc))
    return lab_home


def _status(cli, *args):
    result = cli("--json", "status", *args)
    return result, {r["artifact"]: r for r in json.loads(result.stdout)}


def _states(rows):
    return {name: r["state"] for name, r in rows.items()}


EVALS = ("eval host/gbt_realistic/test-episode-b50-s0", "eval host/knn_realistic/test-episode-b50-s0")
COMPARE = "compare host/gbt_vs_knn-test-episode-b50-s0"


def test_a_fresh_lab_is_all_fresh(cli, home):
    result, rows = _status(cli, "--fail-on-stale")
    assert result.exit_code == 0
    assert set(_states(rows).values()) == {"fresh"}
    assert {"store data/raw/store", "acceptance index", "features and tensors", "split host",
            "checkpoint host/gbt_realistic", "checkpoint host/knn_realistic", *EVALS, COMPARE} == set(rows)
    assert all(set(r) >= {"artifact", "state", "reason", "command"} for r in rows.values())
    table = cli("status").stdout
    assert "fresh" in table and "…" not in table


def test_episodes_added_to_the_store(cli, home):
    src = next(p for p in sorted(home.default_store.glob("*/*")) if (p / "manifest.json").exists())
    shutil.copytree(src, src.with_name(src.name + "-again"))
    result, rows = _status(cli)
    assert result.exit_code == 0
    assert rows["acceptance index"]["state"] == "stale"
    assert rows["acceptance index"]["reason"].startswith("store: 1 episode(s) added since validate; re-validate "
                                                         "first")
    assert rows["acceptance index"]["command"] == "cis490 validate"
    # Regression (issue 35): every downstream row was listed stale with its own remake command ("1 fresh,
    # 56 stale") though re-validating alone brought them all back: they go stale only if the index changes.
    assert [name for name, state in _states(rows).items() if state != "fresh"] == ["acceptance index"]
    result = cli("status", "--fail-on-stale")
    assert result.exit_code == 1 and result.stderr.startswith("Error: 1 artefact(s) stale or missing, first: "
                                                              "acceptance index (store: 1 episode(s) added")
    assert cli("validate").exit_code == 0                      # the copy's id is the original's: rejected
    assert set(_states(_status(cli)[1]).values()) == {"fresh"}


def test_a_changed_registry(cli, home):
    from core.registry import DEFAULT_REGISTRY
    reg = home.home / "lab.toml"
    reg.write_text(DEFAULT_REGISTRY.read_text())
    side = home.processed / "validation_v1.json"
    doc = json.loads(side.read_text())
    doc["registry"]["path"] = str(reg)
    side.write_text(json.dumps(doc))
    assert _status(cli)[1]["acceptance index"]["state"] == "fresh"
    reg.write_text(reg.read_text().replace('"dropper"]', '"dropper", "standing"]'))
    _, rows = _status(cli)
    assert rows["acceptance index"]["reason"] == "registry changed since validate (lab.toml)"
    assert rows["acceptance index"]["command"] == f"cis490 validate --channels {reg}"


def test_a_split_remade_with_other_hosts(cli, home):
    assert cli("split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-nuc", "--force").exit_code == 0
    _, rows = _status(cli)
    states = _states(rows)
    assert [n for n, s in states.items() if s != "fresh"] == ["checkpoint host/gbt_realistic",
                                                           "checkpoint host/knn_realistic", *EVALS, COMPARE]
    ck = rows["checkpoint host/gbt_realistic"]
    assert ck["reason"] == "split host re-made with other train hosts"
    assert ck["command"] == "cis490 train gbt --split host --mode realistic"
    assert rows[EVALS[0]]["reason"] == "split host re-made since this eval"


def test_one_model_retrained(cli, home):
    assert cli("train", "gbt", "--mode", "realistic", "--seed", "3").exit_code == 0
    _, rows = _status(cli)
    stale = {n: r for n, r in rows.items() if r["state"] != "fresh"}
    assert list(stale) == [EVALS[0], COMPARE]
    assert stale[EVALS[0]]["reason"] == "checkpoint retrained after this eval"
    assert stale[EVALS[0]]["command"] == ("cis490 eval gbt --mode realistic --split host --part test --unit episode "
                                          "--resamples 50 --seed 0")
    assert stale[COMPARE]["reason"] == f"made from {EVALS[0]}, which is stale"
    assert stale[COMPARE]["command"] == ("cis490 compare gbt knn --split host --part test --unit episode "
                                         "--resamples 50 --seed 0")
    # Following the commands makes the lab fresh again.
    assert cli("compare", "gbt", "knn", "--resamples", "50").exit_code == 0
    assert set(_states(_status(cli)[1]).values()) == {"fresh"}


def test_a_bundle_goes_stale_when_its_model_is_retrained(cli, home):
    assert cli("export", "knn").exit_code == 0
    _, rows = _status(cli)
    assert rows["bundle host/knn_realistic"]["state"] == "fresh"
    assert cli("train", "knn", "--mode", "realistic", "--set", "k=3").exit_code == 0
    _, rows = _status(cli)
    b = rows["bundle host/knn_realistic"]
    assert b["state"] == "stale" and b["reason"] == "checkpoint retrained after this export"
    assert b["command"] == "cis490 export knn --split host --mode realistic"
    # On the Pi the bundle stands alone: fresh, as exported.
    shutil.rmtree(home.artifacts / "models")
    b = _status(cli)[1]["bundle host/knn_realistic"]
    assert b["state"] == "fresh" and b["reason"] == "no checkpoint here: as exported"


def test_a_checkpoint_of_an_older_format_is_stale(cli, home):
    """A checkpoint an older cis490 wrote cannot be loaded: status says so
    before eval does, and what depends on it is stale too."""
    hpath = home.artifacts / "models" / "host" / "knn_realistic" / "header.json"
    header = json.loads(hpath.read_text())
    hpath.write_text(json.dumps({**header, "format_version": 1}))
    _, rows = _status(cli)
    ck = rows["checkpoint host/knn_realistic"]
    assert ck["state"] == "stale" and ck["reason"] == "checkpoint format 1 (this cis490 reads 3)"
    assert ck["command"] == "cis490 train knn --split host --mode realistic"
    assert rows[EVALS[1]]["state"] == "stale"


def test_status_of_an_empty_lab_says_what_to_run(cli, lab_home):
    lab_home.data.mkdir()                  # a lab whose store is not there yet
    _, rows = _status(cli)
    assert [(n, r["state"], r["command"]) for n, r in rows.items()] == [
        ("store data/raw/store", "missing", "cis490 synth   (or: cis490 validate --store DIR)"),
        ("acceptance index", "missing", "cis490 validate"),
        ("features and tensors", "missing", "cis490 extract")]


def test_a_damaged_bundle_or_a_deleted_prediction_file_is_never_fresh(cli, home):
    """Regression: status said fresh for a bundle whose model file was deleted,
    truncated or bit-flipped, and for an eval whose predictions.parquet was deleted."""
    assert cli("export", "gbt").exit_code == 0
    onnx = home.artifacts / "deploy" / "host" / "gbt_realistic" / "model.onnx"
    good = onnx.read_bytes()
    onnx.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))                 # one bit flipped
    b = _status(cli)[1]["bundle host/gbt_realistic"]
    assert b["state"] == "stale" and b["reason"] == "its model.onnx changed since the export"
    onnx.write_bytes(good[: len(good) // 2])                             # truncated
    assert _status(cli)[1]["bundle host/gbt_realistic"]["state"] == "stale"
    onnx.unlink()
    b = _status(cli)[1]["bundle host/gbt_realistic"]
    assert b["state"] == "missing" and b["reason"] == "its model.onnx is gone"
    assert b["command"] == "cis490 export gbt --split host --mode realistic"
    preds = home.artifacts / "eval" / "host" / "gbt_realistic" / "test-episode-b50-s0" / "predictions.parquet"
    preds.write_bytes(preds.read_bytes()[:100])
    e = _status(cli)[1][EVALS[0]]
    assert e["state"] == "stale" and e["reason"] == "its predictions.parquet changed since this eval"
    preds.unlink()
    e = _status(cli)[1][EVALS[0]]
    assert e["state"] == "missing" and e["reason"] == "its predictions.parquet is gone"


def test_a_data_file_rewritten_under_its_manifest(cli, home):
    """Regression: a data file changed after validate (its manifest the same) left the index fresh."""
    import gzip
    ep = next(p for p in sorted(home.default_store.glob("*/*")) if (p / "manifest.json").exists())
    f = ep / "qmp.jsonl.gz"
    f.write_bytes(gzip.compress(gzip.decompress(f.read_bytes()).replace(b"1", b"7"), mtime=0))
    _, rows = _status(cli)
    assert rows["acceptance index"]["state"] == "stale"
    assert rows["acceptance index"]["reason"].startswith("store: manifests or files changed since validate")


def test_an_identical_re_run_of_its_evals_leaves_a_comparison_fresh(cli, home):
    """Regression (issue 23): a comparison went stale when its evaluations were
    merely re-run with the same result; freshness is by content."""
    assert cli("eval", "gbt", "knn", "--resamples", "50").exit_code == 0
    _, rows = _status(cli)
    assert rows[COMPARE]["state"] == "fresh" and set(_states(rows).values()) == {"fresh"}
    # Predictions that really differ make it stale, naming which.
    assert cli("train", "gbt", "--mode", "realistic", "--seed", "3").exit_code == 0
    assert cli("eval", "gbt", "--resamples", "50").exit_code == 0
    _, rows = _status(cli)
    assert rows[EVALS[0]]["state"] == "fresh"
    assert rows[COMPARE]["state"] == "stale" and rows[COMPARE]["reason"] == "eval of gbt changed since this comparison"


def test_status_and_compare_agree_on_a_deleted_prediction_file(cli, home):
    """Regression (issue 23): status and compare's reuse of evaluations each
    had their own rule. Now one: an eval status calls missing, compare redoes."""
    evals = home.artifacts / "eval" / "host"
    preds = evals / "knn_realistic" / "test-episode-b50-s0" / "predictions.parquet"
    kept = evals / "gbt_realistic" / "test-episode-b50-s0" / "report.json"
    when = kept.stat().st_mtime_ns
    preds.unlink()
    assert _status(cli)[1][EVALS[1]]["state"] == "missing"
    assert cli("compare", "gbt", "knn", "--resamples", "50").exit_code == 0
    assert preds.is_file()                                        # compare re-ran that eval ...
    assert kept.stat().st_mtime_ns == when                        # ... and only that one
    assert set(_states(_status(cli)[1]).values()) == {"fresh"}


def test_features_depend_on_the_rows_extract_reads_not_on_the_whole_index(tmp_path):
    """Regression (issue 21): validating a store where only unlabelled (or refused) runs were added
    made the features, every split and every checkpoint stale, though extract would read the same rows."""
    import polars as pl

    from core.lab import extractable_digest
    rows = {"rel_path": ["h/a", "h/b"], "manifest_sha256": ["1", "2"], "episode_id": ["a", "b"],
            "received_at": ["2026-09-01T00:00:00Z"] * 2, "status": ["accepted", "degraded"]}
    index = tmp_path / "validation_v1.parquet"
    pl.DataFrame(rows).write_parquet(index)
    before = extractable_digest(index)
    more = {k: v + [v[0]] for k, v in rows.items()}
    for status in ("unlabelled", "rejected", "errored"):
        more["rel_path"][-1], more["status"][-1] = f"h/new-{status}", status
        pl.DataFrame(more).write_parquet(index)
        assert extractable_digest(index) == before, status
    changed = {**rows, "manifest_sha256": ["1", "3"]}
    pl.DataFrame(changed).write_parquet(index)
    assert extractable_digest(index) != before


def test_an_eval_drawn_without_figures_is_complete_and_fresh(cli, home, monkeypatch):
    """CIS490_FIGURE_FORMATS=none: a sweep that reads only the numbers draws
    nothing (drawing was half an eval's time); what was written is complete."""
    monkeypatch.setenv("CIS490_FIGURE_FORMATS", "none")
    assert cli("compare", "gbt", "knn", "--resamples", "20").exit_code == 0
    d = home.artifacts / "eval" / "host" / "knn_realistic" / "test-episode-b20-s0"
    assert sorted(p.name for p in d.iterdir()) == ["predictions.parquet", "report.json"]
    assert json.loads((d / "report.json").read_text())["figures"] == []
    drawn = [p.name for p in (home.artifacts / "compare" / "host").glob("*-b20-s0.*")]
    assert drawn == ["gbt_vs_knn-test-episode-b20-s0.json"]
    _, rows = _status(cli)
    assert rows["eval host/knn_realistic/test-episode-b20-s0"]["state"] == "fresh"
    assert rows["compare host/gbt_vs_knn-test-episode-b20-s0"]["state"] == "fresh"
    # Drawn later, by a re-run: the same numbers, now with figures.
    monkeypatch.setenv("CIS490_FIGURE_FORMATS", "svg")
    assert cli("eval", "knn", "--resamples", "20").exit_code == 0
    assert "confusion.svg" in json.loads((d / "report.json").read_text())["figures"]
    assert (d / "confusion.svg").exists()
    assert _status(cli)[1]["eval host/knn_realistic/test-episode-b20-s0"]["state"] == "fresh"


def test_the_validate_status_asks_for_names_a_store_that_lives_elsewhere(cli, home, tmp_path):
    """Regression (issue 32): for a lab whose store lives elsewhere, the
    command status suggested (`cis490 validate`) looked in data/raw/store and failed."""
    elsewhere = tmp_path / "receiver"
    shutil.move(str(home.default_store), elsewhere)
    side = home.processed / "validation_v1.json"
    doc = json.loads(side.read_text())
    doc["store"] = str(elsewhere)
    side.write_text(json.dumps(doc))
    shutil.rmtree(next(p for p in (elsewhere / "lab-nuc").iterdir() if p.is_dir()))    # the store changed
    _, rows = _status(cli)
    row = rows["acceptance index"]
    assert row["state"] == "stale" and row["command"] == f"cis490 validate --store {elsewhere}"
    result = cli(*row["command"].split()[1:])
    assert result.exit_code == 0, result.output
    assert _status(cli)[1]["acceptance index"]["state"] == "fresh"


def test_a_read_only_checkpoint_folder_stops_train_before_it_trains(cli, home, monkeypatch):
    """Regression (issue 32): a read-only artifacts/models was found only after training finished."""
    import os
    import core.train
    models = home.artifacts / "models"
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK and str(p) == str(models / "host")
                        else real(p, mode))
    trained_at_all = []
    monkeypatch.setattr(core.train, "train_one", lambda *a, **k: trained_at_all.append(1))
    result = cli("train", "gbt", "--mode", "realistic")
    assert result.exit_code == 1 and not trained_at_all
    assert result.stderr.strip() == (f"Error: {models / 'host'}: not writable (train writes "
                                     f"{models / 'host' / 'gbt_realistic'}); nothing was changed")
