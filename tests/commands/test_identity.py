"""Every number tied to what produced it: checkpoints belong to their split,
reports to their checkpoint and settings (issue "Honest results")."""
import json

import pytest

from core.split import SplitConfig
from tests.labs import HOST_TRAIN as TRAIN_HOSTS, install_lab, trained_lab

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    return trained_lab(extracted_lab, tmp_path_factory, "identity",
                       [("gbt", "realistic"), ("knn", "realistic"), ("knn_semi", "realistic")],
                       extra_splits=(SplitConfig("sample", seed=1),))


@pytest.fixture
def home(trained, lab_home):
    return install_lab(trained, lab_home)


def _records(home):
    return [json.loads(x) for x in home.notebook.read_text().splitlines()] if home.notebook.exists() else []


def test_training_on_another_split_keeps_the_host_checkpoint(cli, home):
    """Regression: `train gbt --split sample` replaced the host-trained gbt, which
    `eval gbt --split host` then scored on host/test episodes it trained on."""
    host_ck = home.artifacts / "models" / "host" / "gbt_realistic"
    before = (host_ck / "header.json").read_bytes()
    assert cli("train", "gbt", "--split", "sample", "--mode", "realistic").exit_code == 0
    assert (host_ck / "header.json").read_bytes() == before
    sample_header = json.loads((home.artifacts / "models" / "sample" / "gbt_realistic" / "header.json").read_text())
    assert sample_header["split"]["recipe"] == "sample"
    result = cli("--json", "eval", "gbt", "--split", "host", "--resamples", "50")
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)[0]
    assert rep["split_identity"]["recipe"] == "host" and rep["split_identity"]["params"]["train_hosts"] == list(
        TRAIN_HOSTS)
    assert rep["checkpoint"]["path"] == str(host_ck)


def test_a_resplit_with_other_hosts_is_refused_by_eval_and_compare(cli, home):
    """Regression: after `split --recipe host` with other train hosts, gbt was
    scored on a 'held-out' host it had trained on."""
    result = cli("split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-nuc", "--force")
    assert result.exit_code == 0, result.output
    for args in (("eval", "gbt", "--resamples", "50"), ("compare", "gbt", "knn", "--resamples", "50")):
        result = cli(*args)
        assert result.exit_code == 1, args
        err = result.stderr.strip()
        assert err.count("\n") == 0 and err.startswith("Error: gbt_realistic was trained on split host with "
                                                       "membership "), err
        assert "(--recipe host --train-hosts lab-thinkpad,lab-nuc,lab-desktop --val-frac 0.2 --seed 0;" in err
        assert "now holds membership" in err and "--train-hosts lab-thinkpad,lab-nuc --val-frac" in err
        assert err.endswith("retrain with `cis490 train gbt --split host --mode realistic`, or re-make the split "
                            "it was trained on with `cis490 split --recipe host --train-hosts "
                            "lab-thinkpad,lab-nuc,lab-desktop --val-frac 0.2 --seed 0`")
    assert not (home.artifacts / "eval").exists()


def test_reports_are_keyed_by_their_settings(cli, home):
    """Regression: `eval --unit window` overwrote the episode-unit report."""
    assert cli("eval", "gbt", "--resamples", "50").exit_code == 0
    assert cli("eval", "gbt", "--resamples", "50", "--unit", "window").exit_code == 0
    assert cli("eval", "gbt", "--resamples", "60", "--seed", "3", "--part", "val").exit_code == 0
    root = home.artifacts / "eval" / "host" / "gbt_realistic"
    dirs = sorted(p.name for p in root.iterdir())
    assert dirs == ["test-episode-b50-s0", "test-window-b50-s0", "val-episode-b60-s3"]
    for d in dirs:
        rep = json.loads((root / d / "report.json").read_text())
        assert f"{rep['part']}-{rep['unit']}-b{rep['resamples']}-s{rep['seed']}" == d


def test_compare_never_reuses_an_eval_of_a_changed_checkpoint(cli, home):
    assert cli("compare", "gbt", "knn", "--resamples", "50").exit_code == 0
    assert sum(r["command"] == "eval" for r in _records(home)) == 2
    assert cli("compare", "gbt", "knn", "--resamples", "50").exit_code == 0
    assert sum(r["command"] == "eval" for r in _records(home)) == 2          # both still current
    assert cli("train", "gbt", "--mode", "realistic", "--seed", "5").exit_code == 0
    assert cli("compare", "gbt", "knn", "--resamples", "50").exit_code == 0
    evals = [r for r in _records(home) if r["command"] == "eval"]
    assert len(evals) == 3 and evals[-1]["config"]["model"] == "gbt"
    # Weights replaced behind the header's back: never scored, never reused.
    weights = home.artifacts / "models" / "host" / "gbt_realistic" / "weights.json"
    weights.write_bytes(weights.read_bytes() + b" ")
    result = cli("compare", "gbt", "knn", "--resamples", "50")
    assert result.exit_code == 1
    assert "weights.json: weights missing or not the ones the header vouches for" in result.stderr


def test_compare_marks_transductive_models(cli, home):
    result = cli("--json", "compare", "gbt", "knn_semi", "--resamples", "50")
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    assert rep["transductive"] == ["knn_semi"] and "never the labels" in rep["transductive_note"]
    table = cli("compare", "gbt", "knn_semi", "--resamples", "50").stdout
    assert "knn_semi*" in table and "* transductive: knn_semi" in table
    ev = json.loads((home.artifacts / "eval" / "host" / "knn_semi_realistic" / "test-episode-b50-s0" /
                     "report.json").read_text())
    assert ev["transductive"] is True
