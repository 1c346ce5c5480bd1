"""Trust against accuracy: windows binned by their trust score (core/live/trust.py,
computed per episode in time order from a model's own test probabilities),
with the accuracy of each bin. Trust is useful if accuracy rises with it.

    .venv/bin/python bench/trust.py --home ~/.cis490/demo [--model gbt --model cnn] [--split host]

Reads the eval reports' predictions.parquet (run `cis490 demo`, or `cis490
eval`, first); every report of the split is used when no --model is given.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.live.trust import trust_series  # noqa: E402

BINS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0001)


def trust_of(pred: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    phases = [c[2:] for c in pred.columns if c.startswith("p_")]
    pred = pred.with_columns(pl.col("window_id").str.split(":").list.last().cast(pl.Int64).alias("centre_ms"))
    trust, right = [], []
    for _, ep in pred.sort(["episode_id", "centre_ms"]).group_by("episode_id", maintain_order=True):
        trust.append(trust_series(ep.select([f"p_{p}" for p in phases]).to_numpy()))
        right.append((ep["truth"] == ep["predicted"]).to_numpy())
    return np.concatenate(trust), np.concatenate(right)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, required=True, help="a lab home with eval reports")
    ap.add_argument("--split", default="host")
    ap.add_argument("--model", action="append", help="model_mode folder, e.g. gbt_realistic (repeatable)")
    a = ap.parse_args()
    root = a.home / "artifacts" / "eval" / a.split
    files = sorted(root.glob("*/test-*/predictions.parquet"))
    if a.model:
        files = [f for f in files if f.parent.parent.name in a.model or f.parent.parent.name.split("_")[0] in a.model]
    if not files:
        raise SystemExit(f"no test predictions under {root}: run `cis490 eval` first")
    for f in files:
        trust, right = trust_of(pl.read_parquet(f))
        print(f"\n{f.parent.parent.name} ({f.parent.name}): {len(right):,} test windows, accuracy {right.mean():.3f}")
        print(f"  {'trust':<12}{'windows':>9}{'share':>8}{'accuracy':>10}")
        for lo, hi in zip(BINS[:-1], BINS[1:]):
            sel = (trust >= lo) & (trust < hi)
            acc = f"{right[sel].mean():.3f}" if sel.any() else "-"
            print(f"  [{lo:.1f}, {min(hi, 1.0):.1f}{']' if hi > 1 else ')'}{'':<2}{int(sel.sum()):>9,}"
                  f"{sel.mean():>8.1%}{acc:>10}")
        rho = np.corrcoef(trust, right)[0, 1] if right.std() > 0 else float("nan")
        print(f"  correlation of trust with being right: {rho:.3f}")


if __name__ == "__main__":
    main()
