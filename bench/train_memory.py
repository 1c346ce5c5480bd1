"""Peak RSS of training a tensor model against the size of the tensor store:
batches stream from the memory-mapped parts, so memory should stay flat.

    .venv/bin/python bench/train_memory.py [--small 300] [--large 1200] [--model cnn] [--epochs 2]

Each training runs in its own child process. Resident memory-mapped pages of
the store count in RSS but are file cache the kernel can drop; anonymous
memory (RssAnon) is what training itself holds, so both are printed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._measure import run_child  # noqa: E402
from core.extract import run_extract  # noqa: E402
from core.paths import LabPaths  # noqa: E402
from core.registry import load_registry  # noqa: E402
from core.split import SplitConfig, make_split  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402
from core.validate import run_validation  # noqa: E402

TRAIN = """
import json, time
from pathlib import Path
from core.registry import load_registry
from core.train import train_one
p = Path({home!r})
t0 = time.perf_counter()
r = train_one(p / "data" / "processed", p / "artifacts", load_registry(), {model!r}, "realistic", "host",
              {{"epochs": {epochs}, "patience": {epochs}}}, seed=0)
print(json.dumps({{"seconds": time.perf_counter() - t0, "windows": r.header["training"]["windows"]["train"]}}))
"""


def build(root: Path, episodes: int) -> LabPaths:
    paths = LabPaths(root)
    reg = load_registry()
    generate_store(SynthConfig(episodes=episodes, seed=31), paths.default_store, workers=2)
    index = paths.processed / "validation_v1.parquet"
    run_validation(paths.default_store, index, reg, workers=2)
    run_extract(paths.processed, index, paths.default_store, reg, workers=2)
    make_split(paths.processed, SplitConfig("host", ("lab-thinkpad", "lab-desktop", "lab-nuc")), reg)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=300)
    ap.add_argument("--large", type=int, default=1200)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (a.small, a.large):
            paths = build(Path(tmp) / f"lab{n}", n)
            store_mb = sum(f.stat().st_size for f in (paths.processed / "tensors_v1").iterdir()) / 1e6
            code = TRAIN.format(home=str(paths.home), model=a.model, epochs=a.epochs)
            res, rss = run_child(code)
            _, anon = run_child(code, "RssAnon:")
            out[n] = (rss, anon, store_mb)
            print(f"{n:>5} episodes: tensor store {store_mb:6.0f} MB, {res['windows']:,} train windows, "
                  f"{a.model} {a.epochs} epochs in {res['seconds']:.1f} s; peak RSS {rss:.0f} MB "
                  f"of which anonymous {anon:.0f} MB (the rest: memory-mapped store pages)")
    (m1, a1, s1), (m2, a2, s2) = out[a.small], out[a.large]
    print(f"store x{s2 / s1:.1f} -> peak anonymous memory x{a2 / a1:.2f} ({a1:.0f} -> {a2:.0f} MB); "
          f"peak RSS x{m2 / m1:.2f} ({m1:.0f} -> {m2:.0f} MB)")


if __name__ == "__main__":
    main()
