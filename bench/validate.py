"""Validate throughput against the raw floor, and peak RSS against store size.

    .venv/bin/python bench/validate.py [--episodes 2000] [--small 500] [--workers 2]

Floor = sha256 + gunzip + polars.read_ndjson of the same files on the same
workers with no checks. Each measurement runs in its own child process; RSS
is the peak summed over that child and its worker processes.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._measure import run_child  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402

VALIDATE = """
import json, time
from pathlib import Path
from core.registry import load_registry
from core.validate.pipeline import run_validation
s = run_validation(Path({store!r}), Path({out!r}), load_registry(), workers={workers})
again = run_validation(Path({store!r}), Path({out!r}), load_registry(), workers={workers}, since_last=True)
print(json.dumps({{"seconds": s.seconds, "episodes": s.episodes, "bytes": s.bytes,
                   "since_last_seconds": again.seconds, "reused": again.reused}}))
"""

FLOOR = """
import json, time
from pathlib import Path
from bench._measure import floor_episode
from core.parallel import process_pool
dirs = sorted(str(p.parent) for p in Path({store!r}).glob("*/*/manifest.json"))
t0 = time.perf_counter()
with process_pool({workers}) as pool:
    total = sum(pool.map(floor_episode, dirs, chunksize=8))
print(json.dumps({{"seconds": time.perf_counter() - t0, "episodes": len(dirs), "bytes": total}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for n in (a.small, a.episodes):
            store = Path(tmp) / f"store{n}"
            generate_store(SynthConfig(episodes=n, seed=11), store, workers=a.workers)
            floor, floor_rss = run_child(FLOOR.format(
                store=str(store), workers=a.workers))
            val, val_rss = run_child(VALIDATE.format(store=str(store), out=str(Path(tmp) / f"idx{n}.parquet"),
                                                     workers=a.workers))
            results[n] = (floor, floor_rss, val, val_rss)
    for n, (floor, floor_rss, val, val_rss) in results.items():
        mb = val["bytes"] / 1e6
        print(f"{n:>5} episodes ({mb:.0f} MB compressed), {a.workers} workers:")
        print(f"   validate: {val['seconds']:6.2f} s  {val['episodes'] / val['seconds']:7.1f} episodes/s  "
              f"{mb / val['seconds']:6.1f} MB/s  peak RSS (tree) {val_rss:6.0f} MB")
        print(f"   floor:    {floor['seconds']:6.2f} s  {floor['episodes'] / floor['seconds']:7.1f} episodes/s  "
              f"{floor['bytes'] / 1e6 / floor['seconds']:6.1f} MB/s  peak RSS (tree) {floor_rss:6.0f} MB")
        print(f"   validate / floor throughput: {floor['seconds'] / val['seconds']:.0%} (target >= 80%)")
        print(f"   --since-last on the unchanged store: {val['since_last_seconds']:.2f} s "
              f"({val['reused']:,} of {val['episodes']:,} rows reused)")
    small, big = results[a.small][3], results[a.episodes][3]
    print(f"peak RSS {a.small} -> {a.episodes} episodes: {small:.0f} MB -> {big:.0f} MB "
          f"(x{big / small:.2f}; target <= 1500 MB and flat)")


if __name__ == "__main__":
    main()
