"""Training throughput, data loading vs compute, single-window inference latency,
checkpoint size, for every registered model (CPU; CUDA with AMP where present).

    .venv/bin/python bench/train.py [--episodes 400] [--epochs 3] [--device auto] [--repeat 1]
                                    [--baseline CHECKOUT]

With --baseline, another checkout of cis490 (e.g. `git worktree add /tmp/base
<rev>`) runs its own bench/train.py on the same synthetic lab (same seeds)
right after, and the throughput of each model is printed as a ratio.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.extract.pipeline import run_extract  # noqa: E402
from core.models import MODELS  # noqa: E402
from core.paths import LabPaths  # noqa: E402
from core.registry import load_registry  # noqa: E402
from core.split import SplitConfig, make_split  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402
from core.train import load_checkpoint, load_split_data, resolve_device, train_one  # noqa: E402
from core.validate.pipeline import run_validation  # noqa: E402


def latency_ms(model, one, n: int = 300, warmup: int = 30) -> tuple[float, float]:
    for _ in range(warmup):
        model.predict_proba(one)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        model.predict_proba(one)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeat", type=int, default=1, help="train each model this many times; keep the fastest")
    ap.add_argument("--baseline", type=Path, help="another checkout of cis490 to compare throughput with")
    a = ap.parse_args()
    ours = measure(a)
    if a.baseline:
        cmd = [sys.executable, str(a.baseline / "bench" / "train.py"), "--episodes", str(a.episodes),
               "--epochs", str(a.epochs), "--device", a.device, "--models", a.models]
        theirs: dict[str, float] = {}
        # The baseline's own script, run --repeat times; the fastest run of each model counts.
        for _ in range(a.repeat):
            out = subprocess.run(cmd, cwd=a.baseline, capture_output=True, text=True, check=True).stdout
            print(f"\nbaseline ({a.baseline}):\n{out}")
            for line in out.splitlines():
                if line.split() and line.split()[0] in MODELS:
                    name, rate = line.split()[0], float(line.split()[1].replace(",", ""))
                    theirs[name] = max(theirs.get(name, 0.0), rate)
        print("training throughput, this checkout / baseline:")
        for name, rate in ours.items():
            if name in theirs:
                print(f"  {name:<12}{rate:>10,.0f} / {theirs[name]:>10,.0f} windows/s = x{rate / theirs[name]:.2f}")


def measure(a) -> dict[str, float]:
    rates = {}
    device = resolve_device(a.device)
    reg = load_registry()
    with tempfile.TemporaryDirectory() as tmp:
        paths = LabPaths(Path(tmp))
        generate_store(SynthConfig(episodes=a.episodes, seed=21), paths.default_store, workers=2)
        index = paths.processed / "validation_v1.parquet"
        run_validation(paths.default_store, index, reg, workers=2)
        ext = run_extract(paths.processed, index, paths.default_store, reg, workers=2)
        make_split(paths.processed, SplitConfig("host", ("lab-thinkpad", "lab-desktop", "lab-nuc")), reg)
        data = {k: load_split_data(paths.processed, "host", k) for k in ("summary", "tensor")}
        n_train = len(data["summary"].parts["train"])
        print(f"data: {ext.windows:,} windows, {n_train:,} in train; device {device}; "
              f"neural models {a.epochs} epochs, batch 256")
        print(f"{'model':<12}{'train win/s':>12}{'load s':>8}{'compute s':>10}{'load %':>8}"
              f"{'p50 ms':>8}{'p99 ms':>8}{'ckpt kB':>9}{'val F1':>8}")
        for name in a.models.split(","):
            cls = MODELS[name]
            d = data[cls.input_kind]
            over = {"epochs": a.epochs, "patience": a.epochs} if "epochs" in cls.default_config else None
            dt = float("inf")
            for _ in range(a.repeat):      # the fastest of --repeat trainings: the machine's noise only adds
                t0 = time.perf_counter()
                r = train_one(paths.processed, paths.artifacts, reg, name, "realistic", "host", over, seed=0,
                              device=device, data=d)
                dt = min(dt, time.perf_counter() - t0)
            t = r.header["training"]
            epochs = t.get("epochs_run", 1)
            load, comp = t.get("load_s"), t.get("compute_s")
            model = load_checkpoint(r.checkpoint, paths.processed, reg)
            val = d.parts["val"]
            one = val.gather(np.arange(1)) if cls.input_kind == "summary" else val.store.rows(val.rows[:1])
            p50, p99 = latency_ms(model, one)
            size = sum(f.stat().st_size for f in r.checkpoint.iterdir())
            loop = load is not None  # only neural models run the epoch loop
            share = f"{100 * load / (load + comp):.0f}%" if loop else "-"
            load_s, comp_s = (f"{load:.2f}", f"{comp:.2f}") if loop else ("-", "-")
            rates[name] = n_train * epochs / dt
            print(f"{name:<12}{n_train * epochs / dt:>12,.0f}{load_s:>8}{comp_s:>10}{share:>8}"
                  f"{p50:>8.2f}{p99:>8.2f}{size / 1e3:>9.0f}{t['val_macro_f1']:>8.3f}")
    print("target: every model under 5 ms p50 single-window CPU inference")
    return rates


if __name__ == "__main__":
    main()
