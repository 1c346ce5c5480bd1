"""Does `memory_budget_mb` hold? The ROCKET family's ridge head, fitted on
n windows, at its real peak against what `ridge_mb` says it takes (the
estimate the head is chosen by: ridge within the budget, else softmax).

    .venv/bin/python bench/rocket_budget.py [--sizes 2000,6000,12000] [--features 4000]

Each size is fitted in a child process on in-memory windows (46 channels x
20 steps); the peak is the child's peak RSS minus its RSS once the windows
are made and torch and scikit-learn imported (what the fit itself adds). Goal (issue 35): measured / estimated
<= 1.0 at every size, so a budget a user sets holds.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys
import numpy as np
import torch, sklearn.linear_model  # their own footprint is no part of the fit's
torch.zeros(1)
sys.path.insert(0, {root!r})
from core.models.data import ArrayStore
from core.models.rocket import MiniRocketModel
n, width = {n}, {width}
rng = np.random.default_rng(0)
classes = ["idle", "execute", "persist", "beacon", "act", "dormant"]
values = rng.standard_normal((n, 46, 20)).astype(np.float32)
masks = np.ones((n, 46, 20), np.uint8)
y = rng.integers(0, 6, n)
data = ArrayStore.data(values, masks, y, np.arange(n) // 20)
m = MiniRocketModel(classes, {{"n_features": width, "head": "ridge"}}, seed=0)
m.pre = None
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
half = n // 5
train, val = data.take(np.arange(half, n)), data.take(np.arange(half))
m.fit(train, val, np.arange(46))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = m.training
print(json.dumps({{"n": t["fit_windows"], "features": t["features"], "estimated_mb": t["ridge_memory_mb"],
                   "measured_mb": (peak - before) * 1.048576}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2000,6000,12000")
    ap.add_argument("--features", type=int, default=4000)
    a = ap.parse_args()
    print(f"{'windows':>8} {'features':>8} {'estimated MB':>13} {'measured MB':>12} {'measured/est':>13}")
    for n in (int(x) for x in a.sizes.split(",")):
        out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), n=n, width=a.features)],
                             capture_output=True, text=True, check=True, env={"OMP_NUM_THREADS": "2",
                                                                                "PATH": "/usr/bin:/bin"})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['n']:>8,} {r['features']:>8,} {r['estimated_mb']:>13,.0f} {r['measured_mb']:>12,.0f} "
              f"{r['measured_mb'] / r['estimated_mb']:>13.2f}")


if __name__ == "__main__":
    main()
