"""cis490 against aeon's MiniRocket on public sets of the UCR/UEA archive.

Each case of a set becomes a receiver-store episode holding one window that
covers it (core/archive.py); the archive's train cases are host `train`, its
test cases host `test`, so the cis490 pipeline (validate, extract, split by
host, train with default settings, eval) runs on them as on any lab. Beside
it, in the same run, aeon's `MiniRocketClassifier` (random_state 0, one
thread) fits the same arrays (unequal lengths zero-padded, as aeon expects)
in a separate venv the script makes.

    .venv/bin/python bench/archive.py [--sets GunPoint,ItalyPowerDemand,...] [--models minirocket,gbt,...]

The sets are read from the aeon 1.6.0 wheel (`pip download aeon==1.6.0
--no-deps`, pinned by sha256 below); the wheel and the aeon venv are kept
under --cache (default ~/.cache/cis490-bench) for the next run.

Printed per set: every model's test accuracy with its 95% bootstrap CI and
train seconds (the whole `train_one`: data loading, fit, checkpoint), aeon's
accuracy and fit+predict seconds (numba's compile excluded by a warm-up fit),
and our minirocket's fit+predict seconds measured the same way (warm, on the
arrays already in memory). Goals: the best cis490 model within 0.01 of aeon's
accuracy on every set; minirocket within 3x of aeon's time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AEON = "aeon==1.6.0"
WHEEL = "aeon-1.6.0-py3-none-any.whl"
WHEEL_SHA256 = "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409"
SETS = ("GunPoint", "ItalyPowerDemand", "JapaneseVowels", "PickupGestureWiimoteZ")
MODELS = ("minirocket", "mrhydra", "gbt", "knn", "mlp", "cnn", "gru", "lstm", "transformer")

# Runs in the aeon venv: fit and predict once to compile numba's kernels, then time it.
AEON_CHILD = r"""
import json, sys, time
import numpy as np
from aeon.classification.convolution_based import MiniRocketClassifier
z = np.load(sys.argv[1])
Xtr, ytr, Xte, yte = z["Xtr"], z["ytr"], z["Xte"], z["yte"]
few = np.concatenate([np.unique(ytr, return_index=True)[1], np.arange(min(10, len(ytr)))])
warm = MiniRocketClassifier(random_state=0, n_jobs=1).fit(Xtr[few], ytr[few])
warm.predict(Xte[:10])
t0 = time.perf_counter()
clf = MiniRocketClassifier(random_state=0, n_jobs=1).fit(Xtr, ytr)
pred = clf.predict(Xte)
print(json.dumps({"accuracy": float((pred == yte).mean()), "seconds": time.perf_counter() - t0}))
"""


def wheel(cache: Path) -> Path:
    path = cache / WHEEL
    if not path.exists():
        print(f"downloading {AEON} (the wheel holds the archive sets) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", AEON, "--no-deps", "-d", str(cache)],
                       check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{path}: sha256 {digest}, expected {WHEEL_SHA256}; delete it to download it again")
    return path


def aeon_python(cache: Path, whl: Path) -> Path:
    venv = cache / "aeon-venv"
    python = venv / "bin" / "python"
    if not (venv / "ready").exists():
        print(f"making the aeon venv {venv} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(whl)], check=True)
        (venv / "ready").write_text(AEON + "\n")
    return python


def read_set(whl: Path, name: str):
    from core.archive import read_ts
    with zipfile.ZipFile(whl) as z:
        return {part: read_ts(z.read(f"aeon/datasets/data/{name}/{name}_{part.upper()}.ts").decode(),
                              f"{name}_{part.upper()}") for part in ("train", "test")}


def padded(ts, length: int) -> np.ndarray:
    X = np.zeros((len(ts.cases), ts.channels, length))
    for i, c in enumerate(ts.cases):
        X[i, :, :c.shape[1]] = np.nan_to_num(c)
    return X


def run_aeon(python: Path, parts: dict, work: Path) -> dict:
    length = max(p.max_length for p in parts.values())
    data = work / "arrays.npz"
    np.savez(data, Xtr=padded(parts["train"], length), ytr=np.array(parts["train"].labels),
             Xte=padded(parts["test"], length), yte=np.array(parts["test"].labels))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.run([str(python), "-c", AEON_CHILD, str(data)], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"aeon failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def minirocket_fit_predict_s(lab) -> float:
    """Our minirocket's fit + predict on the arrays in memory, warm (the first
    run pays torch's first calls, as aeon's warm-up pays numba's compile)."""
    from core.models import MODELS as REGISTERED
    from core.train import load_split_data
    data = load_split_data(lab.processed, "host", "tensor")
    parts = {p: d for p, d in data.parts.items()}
    keep = np.arange(parts["train"].store.shape[0])
    seconds = []
    for _ in range(2):
        t0 = time.perf_counter()
        m = REGISTERED["minirocket"](list(lab.registry.phases), None, seed=0)
        m.fit(parts["train"], parts["val"], keep)
        m.predict_data(parts["test"])
        seconds.append(time.perf_counter() - t0)
    return seconds[-1]


def bench_set(name: str, whl: Path, python: Path, models: list[str]) -> dict:
    from core.archive import archive_lab
    from core.evaluate import EvalConfig, evaluate_model
    from core.train import train_one
    parts = read_set(whl, name)
    tr, te = parts["train"], parts["test"]
    print(f"\n{name}: {len(tr.cases)} train / {len(te.cases)} test cases, {tr.channels} channel(s), "
          f"length up to {max(tr.max_length, te.max_length)}, {len(tr.classes)} classes", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        lab = archive_lab(parts, Path(tmp) / "lab", workers=2)
        rows = {}
        for model in models:
            r = train_one(lab.processed, lab.artifacts, lab.registry, model, "realistic")
            rep = evaluate_model(lab.processed, lab.artifacts, lab.registry, model, "realistic",
                                 EvalConfig(unit="window")).report
            rows[model] = {"accuracy": rep["accuracy"], "ci": rep["accuracy_ci"], "train_s": r.seconds}
            ci = rep["accuracy_ci"]
            print(f"  {model:<12}{rep['accuracy']:>9.4f}  [{ci[0]:.3f}, {ci[1]:.3f}]{r.seconds:>9.2f} s", flush=True)
        ours = minirocket_fit_predict_s(lab) if "minirocket" in models else None
        theirs = run_aeon(python, parts, Path(tmp))
    print(f"  {'aeon MiniRocketClassifier':<26}{theirs['accuracy']:>9.4f}{theirs['seconds']:>19.2f} s (fit+predict)")
    if ours is not None:
        print(f"  {'cis490 minirocket':<26}{'':>9}{ours:>19.2f} s (fit+predict, warm): "
              f"{ours / theirs['seconds']:.1f}x aeon's")
    return {"models": rows, "aeon": theirs, "minirocket_fit_predict_s": ours}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "cis490-bench")
    a = ap.parse_args()
    a.cache.mkdir(parents=True, exist_ok=True)
    whl = wheel(a.cache)
    python = aeon_python(a.cache, whl)
    models = a.models.split(",")
    print(f"test accuracy (95% bootstrap CI over test cases), train seconds; {AEON} in its own venv")
    results = {name: bench_set(name, whl, python, models) for name in a.sets.split(",")}
    print(f"\n{'set':<24}{'aeon':>8}{'best cis490':>24}{'gap':>8}{'mr time':>9}")
    met_acc = met_time = True
    for name, r in results.items():
        best = max(r["models"], key=lambda m: r["models"][m]["accuracy"])
        acc, aeon = r["models"][best]["accuracy"], r["aeon"]["accuracy"]
        ratio = (r["minirocket_fit_predict_s"] / r["aeon"]["seconds"]) if r["minirocket_fit_predict_s"] else None
        met_acc &= acc >= aeon - 0.01
        met_time &= ratio is None or ratio <= 3
        print(f"{name:<24}{aeon:>8.4f}{best:>14} {acc:.4f}{acc - aeon:>+8.4f}"
              f"{'' if ratio is None else f'{ratio:>8.1f}x'}")
    print(f"goal: best cis490 model within 0.01 of aeon's accuracy on every set: {'met' if met_acc else 'not met'}")
    print(f"goal: minirocket fit+predict within 3x of aeon's: {'met' if met_time else 'not met'}")


if __name__ == "__main__":
    main()
