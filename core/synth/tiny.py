"""A tiny labelled window set (tens of windows): the small-data end of what a
training default must survive, used by the small-data test and
bench/train_small.py.

Four classes over six channels, each window a few hundred steps: a slow and a
fast oscillation on channels 0-1, a burst and a ramp on channels 2-3, channels
4-5 noise only. Phase, position, amplitude and a per-window baseline are
random and noise is added everywhere, so the classes are separable but not by
one summary statistic.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("slow", "fast", "burst", "ramp")
SUMMARY = ("mean", "std", "min", "max", "mean_abs_diff")


@dataclass(frozen=True)
class TinyPart:
    values: np.ndarray     # (n, C, T) float32
    masks: np.ndarray      # (n, C, T) uint8, all present
    summary: np.ndarray    # (n, C * len(SUMMARY)) float32
    y: np.ndarray          # (n,) class ids


def _window(cls: int, channels: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(steps, dtype=np.float64)
    x = rng.normal(0.0, 0.4, (channels, steps)) + rng.normal(0.0, 0.5, (channels, 1))
    amp = rng.uniform(0.8, 1.4)
    if cls in (0, 1):
        period = rng.uniform(80, 120) if cls == 0 else rng.uniform(14, 22)
        x[0:2] += amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    elif cls == 2:
        start = rng.integers(0, steps - steps // 5)
        x[2:4, start:start + steps // 5] += 2 * amp
    else:
        x[2:4] += amp * (2 * t / steps - 1) * rng.choice([-1.5, 1.5])
    return x


def summarise(values: np.ndarray) -> np.ndarray:
    """Per channel: mean, std, min, max, mean absolute step-to-step change."""
    feats = [values.mean(axis=2), values.std(axis=2), values.min(axis=2), values.max(axis=2),
             np.abs(np.diff(values, axis=2)).mean(axis=2)]
    return np.stack(feats, axis=2).reshape(len(values), -1).astype(np.float32)


def tiny_set(per_class: dict[str, int] | None = None, channels: int = 6, steps: int = 200,
             seed: int = 0) -> dict[str, TinyPart]:
    """Parts 'train', 'val', 'test' with `per_class[part]` windows of each class
    (default 8 / 3 / 25: 32 train windows, like the small real set)."""
    per_class = per_class or {"train": 8, "val": 3, "test": 25}
    rng = np.random.default_rng(seed)
    parts = {}
    for part, n in per_class.items():
        y = np.repeat(np.arange(len(CLASSES)), n)
        y = y[rng.permutation(len(y))]
        values = np.stack([_window(int(c), channels, steps, rng) for c in y]).astype(np.float32)
        parts[part] = TinyPart(values, np.ones(values.shape, np.uint8), summarise(values), y.astype(np.int64))
    return parts
