import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from core.errors import ConfigError
from core.evaluate import confusion_over_seen, parse_model_name
from core.evaluate.bootstrap import (bootstrap_p_value, bootstrap_scores, holm, paired_gap, percentile_ci)
from core.metrics import confusion, macro_f1, per_class_prf

K = 6


def _data(n=3000, e=60, acc=0.8, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.sort(rng.integers(0, e, n))
    truth = rng.integers(0, K, n)
    pred = np.where(rng.random(n) < acc, truth, rng.integers(0, K, n))
    return truth, pred, groups


def test_macro_and_per_class_f1_equal_scikit_learn():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 5, 500)            # phase 5 never true...
    pred = rng.integers(0, 6, 500)             # ...but sometimes predicted
    assert macro_f1(truth, pred, K) == pytest.approx(f1_score(truth, pred, average="macro"))
    _, _, f1 = per_class_prf(confusion(truth, pred, K))
    np.testing.assert_allclose(f1, f1_score(truth, pred, average=None, labels=range(K)))


def test_window_unit_ci_agrees_with_scipy_bootstrap():
    truth, pred, groups = _data(n=800, acc=0.7)
    ours = bootstrap_scores(truth, pred, groups, K, "window", 4000, np.random.default_rng(2))["macro_f1"]
    lo, hi = percentile_ci(ours)
    ref = stats.bootstrap((truth, pred), lambda t, p: f1_score(t, p, average="macro"), paired=True,
                          vectorized=False, n_resamples=1000, method="percentile", confidence_level=0.95,
                          random_state=3).confidence_interval
    width = ref.high - ref.low
    assert lo == pytest.approx(ref.low, abs=0.15 * width)
    assert hi == pytest.approx(ref.high, abs=0.15 * width)


def test_identical_predictions_give_zero_gap_and_p_one():
    truth, pred, groups = _data()
    for unit in ("episode", "window"):
        gaps = paired_gap(truth, pred, pred.copy(), groups, K, unit, 500, np.random.default_rng(0))
        assert np.all(gaps == 0)
        assert bootstrap_p_value(gaps) == 1.0


def test_large_true_gap_gives_the_smallest_possible_p():
    truth, good, groups = _data(acc=0.95)
    bad = np.where(np.random.default_rng(9).random(len(truth)) < 0.3, truth, (truth + 1) % K)
    b = 999
    gaps = paired_gap(truth, good, bad, groups, K, "episode", b, np.random.default_rng(0))
    assert gaps.min() > 0
    assert bootstrap_p_value(gaps) == 2 / (b + 1)


def test_episode_unit_is_wider_than_window_unit_when_errors_cluster():
    rng = np.random.default_rng(4)
    e, per = 40, 50
    groups = np.repeat(np.arange(e), per)
    truth = rng.integers(0, K, e * per)
    wrong_episode = rng.random(e) < 0.3          # errors come in whole episodes
    pred = np.where(wrong_episode[groups], (truth + 1) % K, truth)
    ep = bootstrap_scores(truth, pred, groups, K, "episode", 2000, np.random.default_rng(0))["macro_f1"]
    win = bootstrap_scores(truth, pred, groups, K, "window", 2000, np.random.default_rng(0))["macro_f1"]
    w_ep, w_win = np.subtract(*percentile_ci(ep)[::-1]), np.subtract(*percentile_ci(win)[::-1])
    assert w_ep > 2 * w_win


def test_holm_on_a_known_example():
    # Holm (1979): sorted p 0.01, 0.02, 0.03, 0.04 with m = 4 -> 0.04, 0.06, 0.06, 0.06.
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_confusion_keeps_a_label_seen_only_in_predictions():
    phases = ["idle", "execute", "persist", "beacon", "act", "dormant"]
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 5, 1, 1])                # dormant is never true, only predicted
    out = confusion_over_seen(confusion(truth, pred, K), phases)
    assert out["labels"] == ["idle", "execute", "dormant"]
    assert out["matrix"] == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]


@pytest.mark.parametrize("name,mode,expected", [
    ("gru", None, ("gru", "realistic")), ("gbt_oracle", None, ("gbt", "oracle")),
    ("knn_semi", None, ("knn_semi", "realistic")), ("knn_semi_oracle", None, ("knn_semi", "oracle")),
    ("gru", "oracle", ("gru", "oracle")), ("cnn_realistic", None, ("cnn", "realistic")),
])
def test_model_names(name, mode, expected):
    assert parse_model_name(name, mode) == expected


def test_bad_model_names():
    with pytest.raises(ConfigError, match="unknown model 'rnn'"):
        parse_model_name("rnn")
    with pytest.raises(ConfigError, match="'gru_oracle' names mode oracle but --mode says realistic"):
        parse_model_name("gru_oracle", "realistic")


def test_per_phase_ci_of_an_always_right_rare_phase():
    """Regression: a resample without the rare phase scored its F1 as 0, so a
    phase always predicted right got the interval (0.0, 1.0)."""
    from core.evaluate.bootstrap import defined_ci
    truth, pred, groups = _data(n=3000, e=60, acc=0.8, seed=3)
    truth, pred = np.where(truth == 5, 0, truth), np.where(pred == 5, 0, pred)
    rare = np.isin(groups, [7, 41])              # two episodes hold the rare phase...
    truth[rare] = pred[rare] = 5                 # ...and it is always predicted right
    boot = bootstrap_scores(truth, pred, groups, K, "episode", 1000, np.random.default_rng(0))
    ci, n = defined_ci(boot["per_class_f1"][:, 5])
    assert ci == [1.0, 1.0]
    # About (58/60)^60 = 13% of resamples draw neither episode: those are left out, and counted.
    assert 800 < n < 940
    assert defined_ci(np.full(10, np.nan)) == (None, 0)


@pytest.mark.slow
def test_one_eval_reads_the_split_and_the_feature_schema_once(extracted_lab, tmp_path_factory, monkeypatch):
    """Issue 23: one split view is handed on from loading the checkpoint;
    an eval read the split parquet three times and the schema twice or more."""
    import core.loading as loading
    from core.evaluate import EvalConfig, evaluate_model
    from core.registry import load_registry
    from core.train import train_one
    from tests.labs import host_split_copy
    processed = host_split_copy(extracted_lab, tmp_path_factory, "reads")
    artifacts = processed.parent / "artifacts"
    reg = load_registry()
    train_one(processed, artifacts, reg, "knn", "realistic", "host", seed=0)
    reads: list[str] = []
    for name in ("read_json", "read_parquet"):
        real = getattr(loading, name)

        def spy(path, *a, _real=real, **k):
            reads.append(path.name)
            return _real(path, *a, **k)
        monkeypatch.setattr(loading, name, spy)
    import core.extract
    import core.split
    import core.train
    for module in (core.extract, core.split, core.train):
        for name in ("read_json", "read_parquet"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, getattr(loading, name))
    evaluate_model(processed, artifacts, reg, "knn", "realistic", EvalConfig(resamples=20))
    assert reads.count("host.parquet") == 1 and reads.count("host.json") == 1
    assert reads.count("feature_schema_v1.json") == 1


def test_a_profile_is_scored_over_the_phases_its_episodes_hold():
    """Regression (issue 22): a miner's episodes hold four phases; two stray
    predictions of a fifth gave that phase F1 0 and the profile 0.666 with
    0.998 accuracy."""
    from core.evaluate import EvalConfig, _profile_scores
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 50)
    truth = np.tile(np.repeat([0, 1, 2, 3], [10, 15, 15, 10]), 20)
    pred = truth.copy()
    pred[7], pred[507] = 5, 4                           # two phases miners never have
    s = _profile_scores(truth, pred, groups, K, EvalConfig(resamples=200), rng)
    assert s["held"] == [0, 1, 2, 3] and s["accuracy"] == 0.998
    assert s["macro_f1"] > 0.99 and s["macro_f1_ci"][0] > 0.98
    assert f1_score(truth, pred, average="macro") < 0.67      # what it was: over the six phases seen
    # A profile's held phase predicted as another held phase still costs both.
    pred2 = truth.copy()
    pred2[truth == 3] = 2
    s2 = _profile_scores(truth, pred2, groups, K, EvalConfig(resamples=50), rng)
    assert s2["macro_f1"] == pytest.approx(f1_score(truth, pred2, labels=[0, 1, 2, 3], average="macro"))
