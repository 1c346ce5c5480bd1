"""Peak memory of training and evaluating against the size of the lab.

    .venv/bin/python bench/train_memory.py [--small 2000] [--large 8000] [--labs DIR] [--baseline CHECKOUT]
    .venv/bin/python bench/train_memory.py --jobs tensor --small 300 --large 1200   # cnn on the tensor store
    .venv/bin/python bench/train_memory.py --jobs rocket --small 300 --large 1200   # minirocket

Summary models (default): `train gbt`, `train mlp` and `eval gbt` on two
synthetic labs at least 4x apart; the goal is peak anonymous memory growing by
less than 1.5x when the feature table grows 4x, and under 2 GB at the larger
size. Tensor models: `train cnn`, whose batches stream from the memory-mapped
store. Each job runs in its own child process; anonymous memory (RssAnon) is
what the job itself holds, RSS adds resident file pages (memory-mapped tensors,
parquet reads) the kernel can drop, so both are printed.

--labs keeps the synthesised labs between runs (they take minutes to build);
--baseline also runs every job with another checkout of cis490 (e.g. a
`git worktree` of an older commit) on the same labs, in the same run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._measure import ROOT, run_child_peaks  # noqa: E402
from core.extract import CHUNKS  # noqa: E402
from core.extract.pipeline import run_extract  # noqa: E402
from core.paths import LabPaths  # noqa: E402
from core.registry import load_registry  # noqa: E402
from core.split import SplitConfig, make_split  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402
from core.validate.pipeline import run_validation  # noqa: E402

TRAIN = """
import json, time
from pathlib import Path
from core.registry import load_registry
from core.train import train_one
p = Path({home!r})
t0 = time.perf_counter()
r = train_one(p / "data" / "processed", p / "artifacts", load_registry(), {model!r}, "realistic", "host",
              {settings!r}, seed=0)
print(json.dumps({{"seconds": time.perf_counter() - t0, "windows": r.header["training"]["windows"]["train"]}}))
"""

EVAL = """
import json, time
from pathlib import Path
from core.evaluate import EvalConfig, evaluate_model
from core.registry import load_registry
p = Path({home!r})
t0 = time.perf_counter()
r = evaluate_model(p / "data" / "processed", p / "artifacts", load_registry(), {model!r}, "realistic",
                   EvalConfig(resamples=200))
print(json.dumps({{"seconds": time.perf_counter() - t0, "windows": r.report["windows"]}}))
"""

# Settings that keep the jobs short: memory does not depend on the number of
# rounds or epochs, only on what a round or an epoch holds.
JOBS = {
    "summary": [("train", "gbt", {"n_estimators": 60}), ("eval", "gbt", None),
                ("train", "mlp", {"epochs": 2, "patience": 2})],
    "tensor": [("train", "cnn", {"epochs": 2, "patience": 2})],
    # The ROCKET head is chosen by size: ridge while the features fit the
    # memory budget, a softmax head on streamed features above it.
    "rocket": [("train", "minirocket", {"epochs": 2, "patience": 2})],
}


def build(root: Path, episodes: int) -> LabPaths:
    paths = LabPaths(root)
    if (paths.processed / "splits" / "host.parquet").exists():
        return paths
    reg = load_registry()
    generate_store(SynthConfig(episodes=episodes, seed=31), paths.default_store, workers=2)
    index = paths.processed / "validation_v1.parquet"
    run_validation(paths.default_store, index, reg, workers=2)
    run_extract(paths.processed, index, paths.default_store, reg, workers=2)
    make_split(paths.processed, SplitConfig("host", ("lab-thinkpad", "lab-desktop", "lab-nuc")), reg)
    return paths


def measure(paths: LabPaths, jobs, root: Path) -> dict:
    out = {}
    for what, model, settings in jobs:
        code = (TRAIN if what == "train" else EVAL).format(home=str(paths.home), model=model, settings=settings)
        res, peaks = run_child_peaks(code, root=root)
        out[f"{what} {model}"] = (res, peaks["VmRSS:"], peaks["RssAnon:"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=8000)
    ap.add_argument("--jobs", choices=sorted(JOBS), default="summary")
    ap.add_argument("--labs", type=Path, help="keep the built labs here and reuse them")
    ap.add_argument("--baseline", type=Path, help="another checkout of cis490 to measure on the same labs")
    a = ap.parse_args()
    checkouts = {"this checkout": ROOT, **({f"baseline ({a.baseline})": a.baseline.resolve()} if a.baseline else {})}
    with tempfile.TemporaryDirectory() as tmp:
        labs = a.labs or Path(tmp)
        sizes = {}
        results = {label: {} for label in checkouts}
        for n in (a.small, a.large):
            paths = build(labs / f"lab{n}", n)
            sizes[n] = sum(p.stat().st_size for p in (paths.processed / CHUNKS).glob("chunk-*/features.parquet")) / 1e6
            # The baseline first: each checkout's own checkpoint is what its eval reads.
            for label, root in reversed(list(checkouts.items())):
                results[label][n] = measure(paths, JOBS[a.jobs], root)
    for label, res in results.items():
        print(f"\n{label}")
        for job in res[a.small]:
            for n in (a.small, a.large):
                r, rss, anon = res[n][job]
                print(f"  {job:<10}{n:>6,} episodes ({sizes[n]:5.0f} MB features, {r['windows']:>8,} windows): "
                      f"peak anonymous {anon:6.0f} MB, RSS {rss:6.0f} MB, {r['seconds']:6.1f} s")
            (_, m1, a1), (_, m2, a2) = res[a.small][job], res[a.large][job]
            print(f"  {job:<10}table x{sizes[a.large] / sizes[a.small]:.1f} -> anonymous x{a2 / a1:.2f}, "
                  f"RSS x{m2 / m1:.2f}{'' if a2 / a1 < 1.5 and a2 < 2048 else '  (goal: < 1.5x and < 2 GB)'}")


if __name__ == "__main__":
    main()
