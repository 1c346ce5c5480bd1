"""How far a probability can be trusted: calibration, temperature scaling,
abstention and split-conformal prediction sets (docs/methods.md, "Trusting
a probability").

Everything here reads probabilities (windows x phases) and true phase ids;
nothing is fitted on the part being scored: the temperature and the
conformal threshold are fitted on the validation part.
"""
from __future__ import annotations

import numpy as np

from core.calibrate import fit_temperature, scale  # noqa: F401 (the one temperature scaling, re-exported)

BINS = 15                       # equal-width confidence bins (Guo et al. 2017 use 15)
EPS = 1e-12
COVERAGES = (0.5, 0.8, 0.9)     # shares of windows kept, reported on the risk-coverage curve
ALPHA = 0.1


def calibration(proba: np.ndarray, truth: np.ndarray, bins: int = BINS) -> dict:
    """Expected calibration error (top-label, `bins` equal-width bins of
    confidence, weighted by the windows in each), multi-class Brier score
    (mean over windows of the squared distance to the one-hot truth, 0..2),
    negative log-likelihood (natural log, probabilities floored at 1e-12),
    and the reliability diagram's bins."""
    n, k = proba.shape
    conf, pred = proba.max(axis=1), proba.argmax(axis=1)
    right = pred == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    b = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    count = np.bincount(b, minlength=bins)
    conf_sum = np.bincount(b, weights=conf, minlength=bins)
    right_sum = np.bincount(b, weights=right.astype(np.float64), minlength=bins)
    ece = float(np.abs(right_sum - conf_sum).sum() / max(n, 1))
    onehot = np.zeros_like(proba, dtype=np.float64)
    onehot[np.arange(n), truth] = 1.0
    brier = float(((proba - onehot) ** 2).sum(axis=1).mean()) if n else 0.0
    nll = float(-np.log(np.clip(proba[np.arange(n), truth], EPS, 1.0)).mean()) if n else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        diagram = [{"lo": float(edges[i]), "hi": float(edges[i + 1]), "windows": int(count[i]),
                    "confidence": float(conf_sum[i] / count[i]), "accuracy": float(right_sum[i] / count[i])}
                   for i in range(bins) if count[i]]
    return {"ece": ece, "brier": brier, "nll": nll, "bins": bins, "reliability": diagram}


def risk_coverage(proba: np.ndarray, truth: np.ndarray, score: np.ndarray | None = None) -> dict:
    """Abstention: keep the windows the score ranks highest (default: the
    top probability) and report the accuracy of those kept at each coverage,
    and the area under the risk-coverage curve (AURC; Geifman & El-Yaniv,
    "Selective classification for deep neural networks", NeurIPS 2017):
    the mean, over every coverage k/n, of the error rate of the k kept. The
    least it can be, for the errors there are, is reached by ranking every
    error last."""
    n = len(truth)
    if n == 0:
        return {"aurc": None, "accuracy_at": {}, "curve": []}
    s = proba.max(axis=1) if score is None else score
    order = np.argsort(-s, kind="stable")
    right = (proba.argmax(axis=1) == truth)[order].astype(np.float64)
    kept_acc = np.cumsum(right) / np.arange(1, n + 1)
    def at(c: float) -> float:
        return float(kept_acc[max(int(np.ceil(c * n)) - 1, 0)])
    return {"aurc": float((1.0 - kept_acc).mean()), "accuracy_at": {f"{c:g}": at(c) for c in (*COVERAGES, 1.0)},
            "curve": [[round(c, 2), at(c)] for c in np.linspace(0.05, 1.0, 20)]}


def _aps_mass(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window, each phase's rank order (most probable first) and the
    probability mass of the phases ranked strictly above it."""
    order = np.argsort(-proba, axis=1, kind="stable")
    ranked = np.take_along_axis(proba, order, axis=1)
    above_ranked = np.cumsum(ranked, axis=1) - ranked
    above = np.empty_like(above_ranked)
    np.put_along_axis(above, order, above_ranked, axis=1)
    return order, above


def conformal_threshold(proba: np.ndarray, truth: np.ndarray, alpha: float = ALPHA, seed: int = 0) -> float:
    """Split-conformal threshold with the randomised adaptive prediction sets
    score (APS; Romano, Sesia & Candes, NeurIPS 2020): a window's score is the
    probability mass of the phases ranked above its true phase plus a uniform
    draw U times the true phase's own; the threshold is the
    ceil((n+1)(1-alpha))/n empirical quantile of the validation scores. With
    exchangeable windows a set then holds the truth at least 1 - alpha of the
    time, and not much more: the draws (seeded: the same report every run)
    are what keep sets small for a model that is near certain on validation,
    where the unrandomised score gave 4 of 6 phases and the "least ambiguous"
    score 1 - p gave empty sets on new hosts."""
    n = len(truth)
    if n == 0:
        return 1.0
    _, above = _aps_mass(proba)
    u = np.random.default_rng([seed, 1]).random(n)
    scores = above[np.arange(n), truth] + u * proba[np.arange(n), truth]
    level = min(1.0, np.ceil((n + 1) * (1 - alpha)) / n)
    return float(np.quantile(scores, level, method="higher"))


def conformal_sets(proba: np.ndarray, threshold: float, seed: int = 0) -> np.ndarray:
    """(windows, phases) bool: phase k is in a window's set when the mass
    ranked above it plus U times its own is at most the threshold (one seeded
    draw U per window; a set may be empty: no phase plausible enough)."""
    _, above = _aps_mass(proba)
    u = np.random.default_rng([seed, 2]).random((len(proba), 1))
    return above + u * proba <= threshold + 1e-12


def conformal_report(proba: np.ndarray, truth: np.ndarray, threshold: float, alpha: float,
                     phases: list[str], seed: int = 0) -> dict:
    """Empirical coverage and mean set size, overall and per true phase."""
    sets = conformal_sets(proba, threshold, seed)
    n = len(truth)
    covered = sets[np.arange(n), truth] if n else np.zeros(0, bool)
    size = sets.sum(axis=1)
    per = []
    for c in np.unique(truth):
        sel = truth == c
        per.append({"phase": phases[c], "windows": int(sel.sum()), "coverage": float(covered[sel].mean()),
                    "mean_set_size": float(size[sel].mean())})
    return {"alpha": alpha, "threshold": threshold, "coverage": float(covered.mean()) if n else None,
            "mean_set_size": float(size.mean()) if n else None, "per_phase": per,
            "single_share": float((size == 1).mean()) if n else None,
            "empty_share": float((size == 0).mean()) if n else None, "score": "randomised APS (seeded)",
            # Below by more than two binomial standard errors: an empirical coverage a shade
            # under the target is what exchangeable windows give half the time.
            "below_target": bool(n and covered.mean() < 1 - alpha - 2 * np.sqrt(alpha * (1 - alpha) / n))}
