"""Time to detect: how early each phase is caught (docs/methods.md, "Time to detect").

An occurrence of a phase is a maximal run of an episode's windows (in time
order) whose true phase is that phase; its onset is the label's time, the
start of that phase's stretch in labels.jsonl. It is detected at the end of
the first window that completes the detection rule: predicted as the phase
(with at least `min_trust` trust, when set) for `confirm` consecutive
windows of the occurrence. A live system only predicts once a window is
complete, so the delay includes the window's length; an occurrence never
detected is missed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.detect import Occurrences, occurrences  # noqa: F401 (re-exported: the rule itself, for eval and live)
from core.errors import ConfigError
from core.evaluate.bootstrap import CHUNK, defined_ci

QUANTILES = {"median": 0.5, "p90": 0.9}


@dataclass(frozen=True)
class DetectRule:
    confirm: int = 1          # consecutive windows predicted as the phase
    min_trust: float = 0.0    # a window counts only with at least this trust (core.live.trust)

    def check(self) -> None:
        if self.confirm < 1:
            raise ConfigError(f"--confirm must be at least 1, got {self.confirm}")
        if not 0.0 <= self.min_trust <= 1.0:
            raise ConfigError(f"--min-trust must be in [0, 1], got {self.min_trust}")


def weighted_quantiles(sorted_values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """The q-quantile (inverted CDF: the smallest value whose cumulative weight
    reaches q of the total) of `sorted_values` under each row of `weights`;
    NaN where a row's weights are all zero."""
    c = np.cumsum(weights, axis=1)
    total = c[:, -1:] if c.shape[1] else np.zeros((len(weights), 1))
    with np.errstate(invalid="ignore"):
        k = np.argmax(c >= q * total - 1e-9, axis=1) if c.shape[1] else np.zeros(len(weights), np.int64)
    out = sorted_values[k] if len(sorted_values) else np.full(len(weights), np.nan)
    return np.where(total[:, 0] > 0, out, np.nan)


def _multiplicities(n_groups: int, resamples: int, rng: np.random.Generator):
    """Episode multiplicities of each resample, a chunk at a time (as core.evaluate.bootstrap draws them)."""
    for lo in range(0, resamples, CHUNK):
        b = min(resamples, lo + CHUNK) - lo
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        yield np.bincount((np.arange(b)[:, None] * n_groups + draws).ravel(),
                          minlength=b * n_groups).reshape(b, n_groups).astype(np.float64)


def summarise(occ: Occurrences, phases: list[str], n_groups: int, resamples: int, rng: np.random.Generator) -> list[dict]:
    """Per phase: occurrences, median and 90th-percentile delay of the detected
    ones and the miss rate, each with its episode-bootstrap 95% interval."""
    present = sorted(set(occ.phase.tolist()))
    out = []
    stats = {p: {"median": [], "p90": [], "miss": []} for p in present}
    mults = list(_multiplicities(max(n_groups, 1), resamples, rng)) if n_groups else []
    for p in present:
        sel = occ.phase == p
        d, e = occ.delay_s[sel], occ.episode[sel]
        hit = ~np.isnan(d)
        order = np.argsort(d[hit], kind="stable")
        dv, de = d[hit][order], e[hit][order]
        occ_per = np.bincount(e, minlength=n_groups).astype(np.float64)
        miss_per = np.bincount(e[~hit], minlength=n_groups).astype(np.float64)
        for m in mults:
            w = m[:, de]
            for name, q in QUANTILES.items():
                stats[p][name].append(weighted_quantiles(dv, w, q))
            with np.errstate(invalid="ignore", divide="ignore"):
                stats[p]["miss"].append((m @ miss_per) / (m @ occ_per))
        row = {"phase": phases[p], "occurrences": int(sel.sum()), "detected": int(hit.sum()),
               "miss_rate": float((~hit).mean())}
        for name, q in QUANTILES.items():
            row[f"{name}_s"] = float(np.quantile(dv, q, method="inverted_cdf")) if len(dv) else None
            row[f"{name}_s_ci"] = defined_ci(np.concatenate(stats[p][name]))[0] if mults else None
        row["miss_rate_ci"] = defined_ci(np.concatenate(stats[p]["miss"]))[0] if mults else None
        out.append(row)
    return out


def paired_median_gap(occ_a: Occurrences, occ_b: Occurrences, n_groups: int, resamples: int,
                      rng: np.random.Generator) -> dict:
    """Median delay of A minus B over the same occurrences (both scored on the
    identical windows), all phases pooled; its CI and two-sided p-value from
    the same episode resamples for both (as the macro-F1 gap's)."""
    from core.evaluate.bootstrap import bootstrap_p_value
    gaps = []

    def sorted_hits(o):
        hit = ~np.isnan(o.delay_s)
        order = np.argsort(o.delay_s[hit], kind="stable")
        return o.delay_s[hit][order], o.episode[hit][order]

    (va, ea), (vb, eb) = sorted_hits(occ_a), sorted_hits(occ_b)
    for m in _multiplicities(max(n_groups, 1), resamples, rng):
        gaps.append(weighted_quantiles(va, m[:, ea], 0.5) - weighted_quantiles(vb, m[:, eb], 0.5))
    gaps = np.concatenate(gaps) if gaps else np.zeros(0)
    ok = gaps[~np.isnan(gaps)]
    point = (float(np.quantile(va, 0.5, method="inverted_cdf") - np.quantile(vb, 0.5, method="inverted_cdf"))
             if len(va) and len(vb) else None)
    return {"median_delay_gap_s": point, "ci": defined_ci(gaps)[0],
            "p_value": bootstrap_p_value(ok) if len(ok) else None, "occurrences": int(len(occ_a.delay_s)),
            # The medians are over detected occurrences: the misses beside them keep a model that
            # catches fewer phases from looking faster.
            "missed_a": int(np.isnan(occ_a.delay_s).sum()), "missed_b": int(np.isnan(occ_b.delay_s).sum())}
