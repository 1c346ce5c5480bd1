"""Trust over time: a per-window score in [0, 1] of how far the live
prediction can be trusted, from the model's own probabilities over recent
windows of the same episode (docs/methods.md, "Trust over time").

    margin_t    = p_t(first) - p_t(second)         the top phase's lead: 0 at a tie, 1 at certain
    smoothed_t  = a * margin_t + (1 - a) * smoothed_{t-1}       (smoothed_1 = margin_1)
    changes_t   = changes of the predicted phase over the last N windows (N - 1 steps)
    stability_t = 1 - max(0, changes_t - 1) / (N - 2)
    trust_t     = smoothed_t * stability_t

Why these: one window's margin is noisy, so it is smoothed. Malware moves
from phase to phase, so one change among the last N windows is a transition
and costs nothing; a prediction that changes its mind again and again
(A, B, A, B) is a model that does not know, and loses all trust at N - 1
changes. Both factors are in [0, 1] and so is their product; it needs no
labels, so it can run live.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

SMOOTHING = 0.5      # a: the weight of the newest window's confidence
HISTORY = 5          # N: windows the stability looks back over (about 25 s at a 5 s hop)


@dataclass
class TrustMeter:
    """Trust of one episode's predictions, fed one window at a time."""
    smoothing: float = SMOOTHING
    history: int = HISTORY
    _smoothed: float | None = None
    _recent: deque = field(init=False)

    def __post_init__(self):
        self._recent = deque(maxlen=self.history)

    def update(self, proba) -> float:
        p = np.asarray(proba, dtype=np.float64)
        top = np.sort(p)[::-1]
        margin = float(np.clip(top[0] - (top[1] if len(top) > 1 else 0.0), 0.0, 1.0))
        self._smoothed = margin if self._smoothed is None else \
            self.smoothing * margin + (1 - self.smoothing) * self._smoothed
        self._recent.append(int(p.argmax()))
        recent = list(self._recent)
        changes = sum(1 for a, b in zip(recent, recent[1:]) if a != b)
        stability = 1.0 - max(0, changes - 1) / max(1, self.history - 2)
        return float(np.clip(self._smoothed * stability, 0.0, 1.0))


def trust_series(proba: np.ndarray, **kw) -> np.ndarray:
    """Trust of every window of one episode, windows in time order."""
    proba = np.asarray(proba)
    meter = TrustMeter(**kw)
    return np.array([meter.update(p) for p in proba])


def trust_of_episodes(proba: np.ndarray, groups: np.ndarray, smoothing: float = SMOOTHING,
                      history: int = HISTORY) -> np.ndarray:
    """`trust_series` of many episodes at once (windows grouped by episode and
    in time order within it), equal to it window for window: what eval
    ranks windows by, at millions of windows. The smoothing recurrence runs
    over the position within the episode, all episodes at each step."""
    n = len(proba)
    if n == 0:
        return np.zeros(0)
    p = np.asarray(proba, dtype=np.float64)
    top = np.sort(p, axis=1)[:, ::-1]
    margin = np.clip(top[:, 0] - (top[:, 1] if p.shape[1] > 1 else 0.0), 0.0, 1.0)
    first = np.r_[True, groups[1:] != groups[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    pos = np.arange(n) - start
    smoothed = margin.copy()
    order = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[order], np.arange(1, pos.max() + 2))
    for k in range(1, pos.max() + 1):
        i = order[bounds[k - 1]:bounds[k]]
        smoothed[i] = smoothing * margin[i] + (1 - smoothing) * smoothed[i - 1]
    pred = p.argmax(axis=1)
    change = np.r_[0, (pred[1:] != pred[:-1]).astype(np.int64)]
    change[first] = 0
    cs = np.cumsum(change)
    back = np.maximum(start, np.arange(n) - history + 1)
    changes = cs - cs[back]
    stability = 1.0 - np.maximum(0, changes - 1) / max(1, history - 2)
    return np.clip(smoothed * stability, 0.0, 1.0)
