"""Every model with default settings on a tiny labelled set (core/synth/tiny.py:
4 classes, 6 channels, 200 steps, 32 train / 12 val / 100 test windows), over
a few seeds: test accuracy per model, and how far each neural model is from
the best model (goal: within 0.05).

    .venv/bin/python bench/train_small.py [--seeds 3] [--val-windows N] [--no-small-rule] [--steps N] [--config JSON]
        [--baseline /path/to/old/checkout]

With --baseline, the same windows are also fitted by another checkout of
cis490 (e.g. `git worktree add /tmp/base <rev>`) in its own process, in the
same run, so the figures before and after sit side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.synth.tiny import tiny_set  # noqa: E402

# Runs inside a child whose sys.path starts with the checkout under test; it
# only uses interfaces both old and new checkouts have (SummaryData(X, y) or
# SummaryData.from_array, and a duck-typed in-memory tensor store).
CHILD = r"""
import json, sys
import numpy as np
from core.models import MODELS
from core.models.data import SummaryData, TensorData
z = np.load(sys.argv[1])
names, seeds = sys.argv[2].split(","), [int(s) for s in sys.argv[3].split(",")]
config = json.loads(sys.argv[4]) or None
if sys.argv[5] == "off":            # --no-small-rule: the validation part always chooses
    import core.models.small_validation as sv
    sv.MIN_VAL_WINDOWS = sv.MIN_VAL_PER_PHASE = 0

class Store:
    def __init__(self, v, m):
        self.v, self.m, self.shape = v, m, v.shape[1:]
    def rows(self, r):
        return self.v[r], self.m[r]

def part(p, kind):
    y = z[p + "_y"]
    if kind == "summary":
        X = z[p + "_summary"]
        return SummaryData.from_array(X, y) if hasattr(SummaryData, "from_array") else SummaryData(X, y)
    return TensorData(Store(z[p + "_values"], z[p + "_masks"]), np.arange(len(y)), y)

out = {}
for name in names:
    if name not in MODELS:      # a model this checkout does not have
        continue
    cls = MODELS[name]
    accs = []
    for seed in seeds:
        m = cls(["slow", "fast", "burst", "ramp"], config, seed=seed)
        train, val, test = (part(p, cls.input_kind) for p in ("train", "val", "test"))
        keep = np.arange(z["train_summary"].shape[1] if cls.input_kind == "summary" else z["train_values"].shape[1])
        m.fit(train, val, keep)
        accs.append(float((m.predict_data(test).argmax(1) == test.y).mean()))
    out[name] = accs
print(json.dumps(out))
"""


def run(root: Path, data: Path, names: list[str], seeds: list[int], config: str = "{}",
        small_rule: bool = True) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(data), ",".join(names), ",".join(map(str, seeds)), config,
                           "on" if small_rule else "off"],
                          cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{root}: the fit failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--models", default="gbt,knn,knn_semi,mlp,cnn,gru,lstm,transformer,minirocket,mrhydra")
    ap.add_argument("--baseline", type=Path, help="another checkout of cis490 to compare with")
    ap.add_argument("--steps", type=int, default=200, help="steps per window (long windows: e.g. 1460)")
    ap.add_argument("--config", default="{}", help='settings for every model, as JSON (e.g. \'{"stem": "patch"}\')')
    ap.add_argument("--no-small-rule", action="store_true",
                    help="let the validation part choose however small (core/models/small_validation.py)")
    ap.add_argument("--val-windows", type=int, default=0,
                    help="keep only the first N validation windows (the small-validation rule's regime)")
    a = ap.parse_args()
    names, seeds = a.models.split(","), list(range(a.seeds))
    parts = tiny_set(steps=a.steps)
    if a.val_windows:
        v = parts["val"]
        parts["val"] = type(v)(*(getattr(v, k)[:a.val_windows] for k in ("values", "masks", "summary", "y")))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "tiny.npz"
        np.savez(data, **{f"{p}_{k}": getattr(v, k) for p, v in parts.items()
                          for k in ("values", "masks", "summary", "y")})
        results = {"this checkout": run(ROOT, data, names, seeds, a.config, not a.no_small_rule)}
        if a.baseline:
            results[f"baseline ({a.baseline})"] = run(a.baseline.resolve(), data, names, seeds)
    n = {p: len(v.y) for p, v in parts.items()}
    print(f"tiny set: {n['train']} train / {n['val']} val / {n['test']} test windows, 4 classes, 6 channels x {a.steps} "
          f"steps; {a.config if a.config != '{}' else ''} test accuracy, mean over seeds {seeds}, defaults")
    for label, res in results.items():
        means = {k: float(np.mean(v)) for k, v in res.items()}
        best = max(means.values())
        print(f"\n{label}:")
        print(f"{'model':<12}{'accuracy':>9}{'min':>7}{'max':>7}{'behind best':>13}")
        for k in names:
            if k not in res:
                print(f"{k:<12}{'(not in this checkout)':>36}")
                continue
            print(f"{k:<12}{means[k]:>9.3f}{min(res[k]):>7.3f}{max(res[k]):>7.3f}{best - means[k]:>13.3f}")
        neural = [k for k in names if k in ("mlp", "cnn", "gru", "lstm", "transformer") and k in res]
        worst = max(best - means[k] for k in neural) if neural else 0.0
        print(f"goal: every neural model within 0.05 of the best ({best:.3f}): "
              f"{'met' if worst <= 0.05 else f'not met (worst {worst:.3f} behind)'}")


if __name__ == "__main__":
    main()
