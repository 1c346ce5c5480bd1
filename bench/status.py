"""`cis490 status` on a large lab: its cost is fingerprinting the store by its
manifests (one small read per episode) plus a few small files.

    .venv/bin/python bench/status.py [--episodes 76660] [--workers 2]

Makes a synthetic store of short episodes (only the count of episodes
matters to status), validates it once, then times status cold-ish and warm,
and again after adding 12 episodes (which it must report).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.paths import LabPaths  # noqa: E402
from core.registry import load_registry  # noqa: E402
from core.status import lab_status  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402
from core.validate import run_validation  # noqa: E402


def timed(paths: LabPaths) -> tuple[float, list]:
    t0 = time.perf_counter()
    rows = lab_status(paths)
    return time.perf_counter() - t0, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=76_660)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = LabPaths(Path(tmp))
        t0 = time.perf_counter()
        generate_store(SynthConfig(episodes=args.episodes, duration_s=40.0, seed=2, fault_rate=0.0, in_flight=0),
                       paths.default_store, workers=args.workers)
        t_synth = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_validation(paths.default_store, paths.processed / "validation_v1.parquet", load_registry(),
                       workers=args.workers)
        t_validate = time.perf_counter() - t0
        print(f"{args.episodes:,} episodes: synth {t_synth:.0f} s, validate {t_validate:.0f} s")
        first, _ = timed(paths)
        warm = min(timed(paths)[0] for _ in range(3))
        src = next(p for p in sorted(paths.default_store.glob("*/*")) if (p / "manifest.json").exists())
        for k in range(12):
            shutil.copytree(src, src.with_name(f"{src.name}-copy{k}"))
        after, rows = timed(paths)
        index = next(r for r in rows if r.artifact == "acceptance index")
        print(f"status: first {first:.2f} s, warm {warm:.2f} s, after adding 12 episodes {after:.2f} s "
              f"({index.state}: {index.reason})")


if __name__ == "__main__":
    main()
