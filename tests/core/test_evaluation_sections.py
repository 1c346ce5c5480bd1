"""Time to detect, calibration, abstention, conformal sets, performance over
time and pitfalls, each on crafted data with hand-computed answers."""
import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError
from core.evaluate import calibration as cal
from core.evaluate.detection import DetectRule, occurrences, paired_median_gap, summarise, weighted_quantiles
from core.evaluate.pitfalls import over_time, parse_slice, pitfalls
from core.extract.episode import PhaseOnsets
from core.live.trust import trust_of_episodes, trust_series
from core.paths import eval_settings, eval_settings_options

PHASES = ["idle", "execute", "persist", "beacon", "act", "dormant"]


def _episode(truth, pred, onsets, hop=5.0, window=10.0, group=0):
    """Windows of one episode at a 5 s hop: centres 5, 10, ...; ends centre + 5."""
    n = len(truth)
    centre = (np.arange(n) + 1) * hop
    o = PhaseOnsets(tuple(t for t, _ in onsets), tuple(p for _, p in onsets))
    onset = np.array([o.onset_of(PHASES[c], float(t)) for c, t in zip(truth, centre)], dtype=float)
    return (np.full(n, group), centre + window / 2, onset, np.asarray(truth), np.asarray(pred))


def test_delays_and_misses_by_hand():
    # idle from 0 (right at once), execute from 12 (caught at its second window), persist from 27 (never).
    truth = [0, 0, 1, 1, 1, 2, 2]
    pred = [0, 0, 0, 1, 1, 3, 3]
    g, t_end, onset, tr, pr = _episode(truth, pred, [(0.0, "idle"), (12.0, "execute"), (27.0, "persist")])
    occ = occurrences(g, t_end, onset, tr, tr == pr)
    assert occ.phase.tolist() == [0, 1, 2]
    assert occ.onset_s.tolist() == [0.0, 12.0, 27.0]
    # idle: first window ends at 10 s; execute: windows centred 15, 20, 25 -> caught at the one ending 25 s.
    assert occ.delay_s[0] == 10.0 and occ.delay_s[1] == 25.0 - 12.0
    assert np.isnan(occ.delay_s[2])


def test_confirmation_rule_needs_consecutive_windows_inside_the_occurrence():
    truth = [1, 1, 1, 1, 1, 2, 2]
    pred = [1, 0, 1, 1, 1, 2, 0]
    g, t_end, onset, tr, pr = _episode(truth, pred, [(3.0, "execute"), (27.0, "persist")])
    one = occurrences(g, t_end, onset, tr, tr == pr, confirm=1)
    two = occurrences(g, t_end, onset, tr, tr == pr, confirm=2)
    three = occurrences(g, t_end, onset, tr, tr == pr, confirm=3)
    assert one.delay_s[0] == 10.0 - 3.0             # the very first window
    assert two.delay_s[0] == 25.0 - 3.0             # windows 3 and 4 in a row; the lone first hit does not count
    assert three.delay_s[0] == 30.0 - 3.0
    assert one.delay_s[1] == 35.0 - 27.0 and np.isnan(two.delay_s[1])   # persist: one hit only


def test_a_streak_does_not_run_over_from_the_previous_phase():
    # Predicting execute through an idle stretch is a false alarm, not an early catch of execute.
    truth = [0, 0, 1, 1]
    pred = [1, 1, 1, 1]
    g, t_end, onset, tr, pr = _episode(truth, pred, [(0.0, "idle"), (12.0, "execute")])
    occ = occurrences(g, t_end, onset, tr, tr == pr, confirm=2)
    assert np.isnan(occ.delay_s[0])
    assert occ.delay_s[1] == 25.0 - 12.0


def test_trust_threshold_makes_low_trust_windows_not_count():
    truth, pred = [1, 1, 1], [1, 1, 1]
    g, t_end, onset, tr, pr = _episode(truth, pred, [(0.0, "execute")])
    trust = np.array([0.2, 0.9, 0.9])
    occ = occurrences(g, t_end, onset, tr, (tr == pr) & (trust >= DetectRule(1, 0.5).min_trust))
    assert occ.delay_s[0] == 15.0


def test_occurrences_are_per_episode_and_unknown_onsets_are_left_out():
    a = _episode([0, 0, 1], [0, 0, 1], [(0.0, "idle"), (8.0, "execute")], group=0)
    b = _episode([1, 1], [0, 1], [(0.0, "execute")], group=1)
    g, t_end, onset, tr, pr = (np.concatenate(x) for x in zip(a, b))
    occ = occurrences(g, t_end, onset, tr, tr == pr)
    assert occ.episode.tolist() == [0, 0, 1] and occ.delay_s.tolist() == [10.0, 12.0, 15.0]
    onset[:] = np.nan
    assert len(occurrences(g, t_end, onset, tr, tr == pr).phase) == 0


def test_phase_onsets_merge_repeats_and_answer_for_their_own_phase_only():
    o = PhaseOnsets.of_labels([10**9, 3 * 10**9, 5 * 10**9, 9 * 10**9], ["idle", "execute", "execute", "act"], 0)
    assert o.t_s == (1.0, 3.0, 9.0) and o.phases == ("idle", "execute", "act")
    assert o.onset_of("execute", 7.5) == 3.0
    assert o.onset_of("idle", 7.5) is None and o.onset_of("idle", 0.5) is None


def test_weighted_quantiles_match_numpy_and_follow_the_weights():
    v = np.array([1.0, 2.0, 5.0, 7.0, 11.0])
    for q in (0.1, 0.5, 0.9):
        assert weighted_quantiles(v, np.ones((1, 5)), q)[0] == np.quantile(v, q, method="inverted_cdf")
    # Weight 3 on the last value: the median moves to it; zero weights give NaN.
    w = np.array([[1, 1, 0, 0, 3], [0, 0, 0, 0, 0]], float)
    got = weighted_quantiles(v, w, 0.5)
    assert got[0] == 11.0 and np.isnan(got[1])


def test_summary_gives_point_figures_and_intervals_that_hold_them():
    rng = np.random.default_rng(0)
    n_ep = 40
    ep = np.repeat(np.arange(n_ep), 3)
    phase = np.tile([0, 1, 2], n_ep)
    delay = rng.uniform(5, 30, len(ep))
    delay[phase == 2] = np.where(rng.random((phase == 2).sum()) < 0.25, np.nan, delay[phase == 2])
    from core.evaluate.detection import Occurrences
    occ = Occurrences(ep, phase, np.zeros(len(ep)), delay)
    rows = summarise(occ, PHASES, n_ep, 300, np.random.default_rng(1))
    assert [r["phase"] for r in rows] == ["idle", "execute", "persist"]
    p = rows[2]
    assert p["occurrences"] == n_ep and p["miss_rate"] == pytest.approx(np.isnan(delay[phase == 2]).mean())
    assert p["miss_rate_ci"][0] <= p["miss_rate"] <= p["miss_rate_ci"][1]
    assert p["median_s"] == np.quantile(delay[(phase == 2) & ~np.isnan(delay)], 0.5, method="inverted_cdf")
    assert p["median_s_ci"][0] <= p["median_s"] <= p["median_s_ci"][1] and p["p90_s"] >= p["median_s"]


def test_paired_delay_gap_is_zero_for_one_model_and_signed_for_a_faster_one():
    from core.evaluate.detection import Occurrences
    ep = np.arange(30)
    slow = Occurrences(ep, np.zeros(30, int), np.zeros(30), np.full(30, 20.0))
    fast = Occurrences(ep, np.zeros(30, int), np.zeros(30), np.full(30, 10.0))
    same = paired_median_gap(slow, slow, 30, 200, np.random.default_rng(0))
    assert same["median_delay_gap_s"] == 0.0 and same["p_value"] == 1.0
    diff = paired_median_gap(fast, slow, 30, 200, np.random.default_rng(0))
    assert diff["median_delay_gap_s"] == -10.0 and diff["ci"] == [-10.0, -10.0]
    assert diff["p_value"] == pytest.approx(2 / 201)


def test_calibration_figures_by_hand():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    truth = np.array([0, 1, 1, 0])
    c = cal.calibration(proba, truth, bins=10)
    # Bins: 0.9 (right), 0.6 (wrong), 0.7 (right), 0.8 (right): each alone in its bin.
    assert c["ece"] == pytest.approx((abs(1 - 0.9) + abs(0 - 0.6) + abs(1 - 0.7) + abs(1 - 0.8)) / 4)
    brier = ((0.1 ** 2 * 2) + (0.6 ** 2 * 2) + (0.3 ** 2 * 2) + (0.2 ** 2 * 2)) / 4
    assert c["brier"] == pytest.approx(brier)
    assert c["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.7, 0.8])))
    assert sum(b["windows"] for b in c["reliability"]) == 4


def test_calibration_agrees_with_scikit_learn_on_brier_and_log_loss():
    from sklearn.metrics import brier_score_loss, log_loss
    rng = np.random.default_rng(3)
    p1 = rng.uniform(0.01, 0.99, 5000)
    y = (rng.random(5000) < p1).astype(int)
    proba = np.c_[1 - p1, p1]
    c = cal.calibration(proba, y)
    assert c["nll"] == pytest.approx(log_loss(y, proba))
    # Two classes: the multi-class Brier (sum over both columns) is twice the binary one.
    assert c["brier"] == pytest.approx(2 * brier_score_loss(y, p1))
    assert c["ece"] < 0.06                     # probabilities that are calibrated by construction


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 6))
    true_p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(6, p=p) for p in true_p])
    overconfident = cal.scale(true_p, 1 / 2.5)          # a model whose logits are 2.5 times too large
    assert cal.fit_temperature(overconfident, truth) == pytest.approx(2.5, rel=0.05)
    fixed = cal.scale(overconfident, cal.fit_temperature(overconfident, truth))
    assert cal.calibration(fixed, truth)["ece"] < cal.calibration(overconfident, truth)["ece"] / 3


def test_conformal_sets_cover_exchangeable_windows_at_the_target():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (6000, 6))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(6, p=row) for row in p])
    thr = cal.conformal_threshold(p[:3000], y[:3000], 0.1)
    rep = cal.conformal_report(p[3000:], y[3000:], thr, 0.1, PHASES)
    assert rep["coverage"] == pytest.approx(0.9, abs=0.02) and not rep["below_target"]
    assert 1 < rep["mean_set_size"] < 6
    # Windows from elsewhere (a shifted model) miss the target, and the report says so.
    shifted = cal.conformal_report(np.roll(p[3000:], 1, axis=1), y[3000:], thr, 0.1, PHASES)
    assert shifted["below_target"]


def test_risk_coverage_by_hand():
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]])
    truth = np.array([0, 0, 1, 0])                      # the third most confident is the one error
    r = cal.risk_coverage(proba, truth)
    # Kept 1..4: accuracies 1, 1, 2/3, 3/4 -> risks 0, 0, 1/3, 1/4.
    assert r["aurc"] == pytest.approx((0 + 0 + 1 / 3 + 1 / 4) / 4)
    assert r["accuracy_at"]["0.5"] == 1.0 and r["accuracy_at"]["1"] == 0.75
    by_score = cal.risk_coverage(proba, truth, score=np.array([0.1, 0.2, 0.0, 0.3]))
    assert by_score["aurc"] == pytest.approx(0.25 / 4)  # the error ranked last: the least one error allows


def test_aut_by_hand_and_slices_of_received_at():
    day = 86400 * 10**9
    ns = np.array([0, 0, 1, 8, 9, 15]) * day            # 7-day slices: {0,1}, {8,9}, {15}
    groups = np.arange(6)
    truth = np.array([0, 1, 0, 1, 0, 1])
    pred = np.array([0, 1, 0, 0, 1, 1])                  # slice 0 perfect, slice 1 all wrong, slice 2 right
    t = over_time(np.repeat(ns, 1), groups, truth, pred, 2, parse_slice("7d"), "episode", 50,
                  np.random.default_rng(0))
    f = [s["macro_f1"] for s in t["slices"]]
    assert [s["slice"] for s in t["slices"]] == [0, 1, 2] and f[0] == 1.0 and f[1] == 0.0 and f[2] == 1.0
    assert t["aut"] == pytest.approx(((1 + 0) / 2 + (0 + 1) / 2) / 2)
    one = over_time(ns[:2], groups[:2], truth[:2], pred[:2], 2, 7 * 86400, "episode", 50, np.random.default_rng(0))
    assert one["aut"] is None


@pytest.mark.parametrize("text", ["0d", "7", "d7", "1y", ""])
def test_bad_slices_are_refused(text):
    with pytest.raises(ConfigError, match="--slice"):
        parse_slice(text)


def test_pitfalls_on_crafted_splits():
    windows = pl.DataFrame({"episode_id": ["a", "b", "c", "d"], "part": ["train", "train", "test", "test"],
                            "sample_name": ["s1", "s2", "s1", "s3"], "label_id": [0, 1, 0, 0]})
    episodes = pl.DataFrame({"episode_id": ["a", "b", "c", "d"], "part": ["train", "train", "test", "test"],
                             "host_id": ["h1", "h2", "h2", "h3"], "profile": ["p1", "p2", "p1", "p1"],
                             "received_ns": [10, 40, 20, 50]})
    found = {p["id"]: p for p in pitfalls(windows, episodes, "test", "window", "host", PHASES[:2])}
    assert found["sample_overlap"]["value"] == 0.5 and found["sample_overlap"]["avoid"] == "cis490 split --recipe sample"
    assert found["temporal_snooping"]["value"] == 0.5            # c (20) came before b (40)
    assert found["phase_proportions"]["value"] == pytest.approx(0.5)   # train 50/50, test all idle
    assert found["hosts"]["shared_with_train"] == ["h2"] and found["hosts"]["absent"] == ["h1"]
    assert found["profiles"]["absent"] == ["p2"]
    assert "too narrow" in found["resampling_unit"]["finding"]
    clean = pl.DataFrame({"episode_id": ["a", "b", "c", "d"], "part": ["train", "train", "test", "test"],
                          "host_id": ["h1", "h1", "h2", "h2"], "profile": ["p1", "p2", "p1", "p2"],
                          "received_ns": [1, 2, 3, 4]})
    w2 = windows.with_columns(pl.Series("sample_name", ["s1", "s2", "s3", "s4"]))
    found = {p["id"]: p for p in pitfalls(w2, clean, "test", "episode", "time", PHASES[:2])}
    assert all(p["avoid"] is None for p in found.values())


def test_trust_of_many_episodes_equals_the_live_meter():
    rng = np.random.default_rng(4)
    lengths = [1, 2, 9, 40, 3]
    proba = np.concatenate([rng.dirichlet(np.full(6, 0.4), n) for n in lengths])
    groups = np.repeat(np.arange(len(lengths)), lengths)
    live = np.concatenate([trust_series(proba[groups == g]) for g in range(len(lengths))])
    np.testing.assert_allclose(trust_of_episodes(proba, groups), live, atol=1e-12)


def test_settings_names_carry_non_default_options_and_read_back():
    assert eval_settings("test", "episode", 1000, 0) == "test-episode-b1000-s0"
    name = eval_settings("test", "episode", 1000, 0, confirm=2, min_trust=0.5, alpha=0.05, slice="3d")
    assert name == "test-episode-b1000-s0-c2-t0.5-a0.05-sl3d"
    assert eval_settings_options(name) == ("--part test --unit episode --resamples 1000 --seed 0 --confirm 2 "
                                           "--min-trust 0.5 --alpha 0.05 --slice 3d")


def test_a_validation_part_with_no_error_leaves_the_temperature_at_one():
    """Regression: MiniRocket, right on every validation window, got T = 0.02
    (the search's edge): certain of every answer, its test NLL went 0.17 -> 1.07."""
    from core.calibrate import fit_checked
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 400)
    right = np.full((400, 3), 0.1)
    right[np.arange(400), y] = 0.8
    assert cal.fit_temperature(right, y) < 0.05                    # what the bare fit does
    assert fit_checked(right, y) == (1.0, "every validation window is right: nothing to calibrate against")
    wrong = right.copy()
    wrong[:40] = np.roll(wrong[:40], 1, axis=1)                     # 10% wrong, as confident as the rest
    t, why = fit_checked(wrong, y)
    assert why is None and 0.05 < t < 20
