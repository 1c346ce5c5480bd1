"""Bootstrap over confusion counts: vectorised, never a Python loop over windows.

Episode unit (cluster bootstrap): draw episodes with replacement and pool
their windows. Each episode is summarised once by its cell counts (truth x
prediction, or truth x A x B for a paired comparison); a resample is then a
vector of episode multiplicities, and all resamples together are one matrix
product. Window unit: resampling n windows with replacement gives cell counts
that are exactly Multinomial(n, cell frequencies), drawn directly.
"""
from __future__ import annotations

import numpy as np

from core.metrics import macro_f1_from_confusion, per_class_prf

CHUNK = 250  # resamples per matrix product: bounds memory at CHUNK x episodes


def cell_counts(cells: np.ndarray, n_cells: int, groups: np.ndarray | None = None, n_groups: int = 1) -> np.ndarray:
    """(n_groups, n_cells) counts of each cell id per group (episode)."""
    g = np.zeros(len(cells), np.int64) if groups is None else groups
    return np.bincount(g * n_cells + cells, minlength=n_groups * n_cells).reshape(n_groups, n_cells)


def resample_counts(per_group: np.ndarray, unit: str, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n_cells) cell counts of bootstrap samples.

    per_group: (E, n_cells) counts per episode. unit 'episode' draws E
    episodes with replacement; unit 'window' draws as many windows as there
    are, with replacement."""
    total = per_group.sum(axis=0)
    if unit == "window":
        n = int(total.sum())
        if n == 0:
            return np.zeros((resamples, len(total)), np.int64)
        return rng.multinomial(n, total / n, size=resamples)
    if unit != "episode":
        raise ValueError(f"unknown resampling unit '{unit}'")
    e = per_group.shape[0]
    out = np.empty((resamples, per_group.shape[1]), np.float64)
    pg = per_group.astype(np.float64)
    for lo in range(0, resamples, CHUNK):
        hi = min(resamples, lo + CHUNK)
        b = hi - lo
        draws = rng.integers(0, e, size=(b, e))
        # Multiplicity of each episode in each resample, all rows in one bincount.
        mult = np.bincount((np.arange(b)[:, None] * e + draws).ravel(), minlength=b * e).reshape(b, e)
        out[lo:hi] = mult.astype(np.float64) @ pg
    return np.rint(out).astype(np.int64)


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo, hi = np.percentile(samples, [100 * a, 100 * (1 - a)], axis=0)
    return float(lo), float(hi)


def defined_ci(samples: np.ndarray, level: float = 0.95) -> tuple[list[float] | None, int]:
    """The percentile interval over the resamples where the statistic is
    defined (not NaN), and how many those were; None when it never is."""
    ok = samples[~np.isnan(samples)]
    if len(ok) == 0:
        return None, 0
    return list(percentile_ci(ok, level)), int(len(ok))


def bootstrap_scores(truth: np.ndarray, pred: np.ndarray, groups: np.ndarray, k: int, unit: str, resamples: int,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Macro-F1, accuracy and per-class F1 of every resample. A class that a
    resample neither holds nor predicts has no F1 there (NaN), not 0: scoring it
    0 would drag a rare phase's interval towards 0 whenever its episodes were
    not drawn."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    per = cell_counts(truth * k + pred, k * k, groups, n_groups)
    cms = resample_counts(per, unit, resamples, rng).reshape(resamples, k, k)
    _, _, f1 = per_class_prf(cms)
    present = (cms.sum(axis=2) + cms.sum(axis=1)) > 0
    f1 = np.where(present, f1, np.nan)
    n = cms.sum(axis=(1, 2))
    acc = np.trace(cms, axis1=1, axis2=2) / np.maximum(n, 1)
    return {"macro_f1": macro_f1_from_confusion(cms), "accuracy": acc, "per_class_f1": f1}


def paired_gap(truth: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, groups: np.ndarray, k: int, unit: str,
               resamples: int, rng: np.random.Generator, paired: bool = True) -> np.ndarray:
    """Macro-F1(A) - macro-F1(B) of every resample. Paired: the same resamples
    (same episodes or windows) score both models; unpaired: independent ones."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    if paired:
        per = cell_counts((truth * k + pred_a) * k + pred_b, k ** 3, groups, n_groups)
        joint = resample_counts(per, unit, resamples, rng).reshape(resamples, k, k, k)
        return macro_f1_from_confusion(joint.sum(axis=3)) - macro_f1_from_confusion(joint.sum(axis=2))
    a = bootstrap_scores(truth, pred_a, groups, k, unit, resamples, rng)["macro_f1"]
    b = bootstrap_scores(truth, pred_b, groups, k, unit, resamples, rng)["macro_f1"]
    return a - b


def bootstrap_p_value(gaps: np.ndarray) -> float:
    """Two-sided: twice the smaller share of resampled gaps on either side of 0,
    each tail counted with +1 (so p is never 0: the smallest is 2/(B+1)), capped at 1."""
    b = len(gaps)
    tail = min(int((gaps <= 0).sum()), int((gaps >= 0).sum()))
    return min(1.0, 2 * (tail + 1) / (b + 1))


def holm(p_values: list[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in the input order."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()
