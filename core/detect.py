"""Phase occurrences and when each was caught: the rule of time to detect,
numpy only, shared by eval (core.evaluate.detection adds the statistics)
and by live replay (the episode end event carries each phase's delay), so
the Pi's base install runs it too. docs/methods.md, "Time to detect"."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Occurrences:
    """Every occurrence of every phase in the scored windows, one row each."""
    episode: np.ndarray       # (n,) episode group (as the bootstrap numbers them)
    phase: np.ndarray         # (n,) phase id
    onset_s: np.ndarray       # (n,) seconds from the episode start
    delay_s: np.ndarray       # (n,) NaN where missed


def occurrences(groups: np.ndarray, t_end_s: np.ndarray, onset_s: np.ndarray, truth: np.ndarray,
                hits: np.ndarray, confirm: int = 1) -> Occurrences:
    """Occurrences of the windows, which must be grouped by episode and in time
    order within it. Per window: `t_end_s` when it completes, `onset_s` when
    the labelled stretch of its true phase began (NaN: unknown, and the
    occurrence is left out rather than given a made-up onset), `hits[i]`
    whether it counts as predicting its true phase (right, trusted enough)."""
    n = len(truth)
    if n == 0:
        return Occurrences(*(np.zeros(0, t) for t in (np.int64, np.int64, np.float64, np.float64)))
    new_run = np.r_[True, (groups[1:] != groups[:-1]) | (truth[1:] != truth[:-1])]
    run = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    # Length of the streak of hits ending at each window, restarting at each
    # run: a miss breaks it at itself, a run's start just before itself.
    pos = np.arange(n)
    brk = np.where(~hits, pos, np.where(new_run, pos - 1, -n - 1))
    streak = np.where(hits, pos - np.maximum.accumulate(brk), 0)
    done = streak >= confirm
    first_done = np.full(len(starts), -1)
    idx = np.flatnonzero(done)
    # The first confirming window of each run: idx is ascending, so the first per run wins.
    r_of = run[idx]
    uniq, first = np.unique(r_of, return_index=True)
    first_done[uniq] = idx[first]
    keep = np.isfinite(onset_s[starts])
    j = first_done[keep]
    onset = onset_s[starts][keep]
    delay = np.where(j >= 0, t_end_s[np.maximum(j, 0)] - onset, np.nan)
    return Occurrences(groups[starts][keep].astype(np.int64), truth[starts][keep].astype(np.int64),
                       onset.astype(np.float64), delay.astype(np.float64))
