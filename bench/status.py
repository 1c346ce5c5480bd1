"""`cis490 status` on a lab the size of the real corpus (76,660 episodes).

    .venv/bin/python bench/status.py [--episodes 76660] [--base 2000] [--workers 2]

Status reads each episode's manifest (the store's fingerprint) and a few
small files, never telemetry. Generating and validating 76,660 episodes takes
far longer than this 2-core machine should spend, so the bench synthesises
and validates `--base` episodes, then replicates their directories (manifests
copied, telemetry hard-linked) up to `--episodes` and records that store in
the index's sidecar as validate would. It times status twice (the first with
a cold-ish page cache for the new manifests), then adds 12 episodes, which
status must report, and times it again.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.paths import LabPaths  # noqa: E402
from core.registry import load_registry  # noqa: E402
from core.status import lab_status  # noqa: E402
from core.store import store_digest  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402
from core.validate.pipeline import run_validation  # noqa: E402


def replicate(src: Path, dst: Path) -> None:
    dst.mkdir()
    for f in src.iterdir():
        (shutil.copyfile if f.name == "manifest.json" else os.link)(f, dst / f.name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=76_660)
    ap.add_argument("--base", type=int, default=2_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = LabPaths(Path(tmp))
        store = paths.default_store
        generate_store(SynthConfig(episodes=args.base, duration_s=40.0, seed=2, fault_rate=0.0, in_flight=0),
                       store, workers=args.workers)
        index = paths.processed / "validation_v1.parquet"
        run_validation(store, index, load_registry(), workers=args.workers)
        episodes = sorted(p for p in store.glob("*/*") if (p / "manifest.json").exists())
        t0 = time.perf_counter()
        k = len(episodes)
        while k < args.episodes:
            src = episodes[k % len(episodes)]
            replicate(src, src.with_name(f"{src.name}-r{k}"))
            k += 1
        # Record the grown store as validate would have.
        side = json.loads(index.with_suffix(".json").read_text())
        side["store_sha256"], side["store_episodes"], _ = store_digest(store)
        index.with_suffix(".json").write_text(json.dumps(side))
        print(f"store: {side['store_episodes']:,} episodes ({args.base:,} synthesised and validated, "
              f"replicated in {time.perf_counter() - t0:.0f} s)")
        os.system("sync")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            rows = lab_status(paths)
            times.append(time.perf_counter() - t0)
        assert next(r for r in rows if r.artifact == "acceptance index").state == "fresh"
        src = episodes[0]
        for j in range(12):
            replicate(src, src.with_name(f"{src.name}-new{j}"))
        t0 = time.perf_counter()
        rows = lab_status(paths)
        after = time.perf_counter() - t0
        index_row = next(r for r in rows if r.artifact == "acceptance index")
        print(f"status: {times[0]:.2f} s first, {min(times[1:]):.2f} s warm; after adding 12 episodes {after:.2f} s "
              f"-> acceptance index {index_row.state}: {index_row.reason}")


if __name__ == "__main__":
    main()
