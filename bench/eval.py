"""Bootstrap speed at corpus scale: 1,000 resamples over 1 million windows and
20,000 episodes (target: under 10 s on 2 cores), against a naive Python loop
over resamples that recomputes macro-F1 from the windows, in the same run.

    .venv/bin/python bench/eval.py [--windows 1000000] [--episodes 20000] [--resamples 1000]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.evaluate.bootstrap import bootstrap_scores, paired_gap  # noqa: E402
from core.metrics import macro_f1  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=1_000_000)
    ap.add_argument("--episodes", type=int, default=20_000)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--naive-resamples", type=int, default=20)
    a = ap.parse_args()
    k = 6
    rng = np.random.default_rng(0)
    groups = np.sort(rng.integers(0, a.episodes, a.windows))
    truth = rng.integers(0, k, a.windows)
    pred_a = np.where(rng.random(a.windows) < 0.85, truth, rng.integers(0, k, a.windows))
    pred_b = np.where(rng.random(a.windows) < 0.83, truth, rng.integers(0, k, a.windows))
    for unit in ("episode", "window"):
        t0 = time.perf_counter()
        bootstrap_scores(truth, pred_a, groups, k, unit, a.resamples, rng)
        t_eval = time.perf_counter() - t0
        t0 = time.perf_counter()
        paired_gap(truth, pred_a, pred_b, groups, k, unit, a.resamples, rng)
        t_pair = time.perf_counter() - t0
        print(f"{unit:>7} unit: eval bootstrap {t_eval:.2f} s, paired compare {t_pair:.2f} s "
              f"({a.resamples} resamples, {a.windows:,} windows, {a.episodes:,} episodes; target < 10 s)")
    # Naive: draw episodes, gather their windows, recompute macro-F1, in a Python loop.
    starts = np.searchsorted(groups, np.arange(a.episodes))
    ends = np.searchsorted(groups, np.arange(a.episodes), side="right")
    t0 = time.perf_counter()
    for _ in range(a.naive_resamples):
        eps = rng.integers(0, a.episodes, a.episodes)
        idx = np.concatenate([np.arange(starts[e], ends[e]) for e in eps])
        macro_f1(truth[idx], pred_a[idx], k)
    per = (time.perf_counter() - t0) / a.naive_resamples
    t0 = time.perf_counter()
    bootstrap_scores(truth, pred_a, groups, k, "episode", a.resamples, rng)
    ours = (time.perf_counter() - t0) / a.resamples
    print(f"naive loop (gather windows per resample): {per * 1000:.0f} ms/resample -> "
          f"{per * a.resamples:.0f} s for {a.resamples}; vectorised {ours * 1000:.2f} ms/resample "
          f"({per / ours:.0f}x faster)")


if __name__ == "__main__":
    main()
