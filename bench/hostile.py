"""Validate and extract over a hostile store, against the same store without
the hostile episodes: peak RSS, time, and windows per good episode.

    .venv/bin/python bench/hostile.py [--episodes 500] [--bomb-gib 1] [--workers 2]

The hostile store is the clean one plus a gzip bomb (proc.jsonl.gz of one
episode expanding to --bomb-gib GiB, its manifest rehashed to match), the
four-day crafted episode (every rate 1e-9 Hz), a row bomb (65,536 rows of
4 kB claimed), the limit episode (a day at 0.01 Hz,
its rows really there: accepted) and a --sparse-gib GiB sparse file, each
replacing a good episode.
Each run is a child process; RSS is the peak over it and its workers.
Goals (issues 19 and 32): peak RSS within 1.2x of the clean store's, every
good episode's windows unchanged, and the limit episode's share of what
models fit on within split --max-episode-share.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._measure import run_child  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402
import numpy as np  # noqa: E402

from core.split import MAX_EPISODE_SHARE, episode_cap  # noqa: E402
from tests.hostile import crafted_four_days, gzip_bomb, limit_episode, row_bomb  # noqa: E402

VALIDATE = """
import json
from pathlib import Path
from core.registry import load_registry
from core.validate.pipeline import run_validation
s = run_validation(Path({store!r}), Path({proc!r}) / "validation_v1.parquet", load_registry(), workers={workers})
print(json.dumps({{"seconds": s.seconds, "counts": s.counts}}))
"""
EXTRACT = """
import json
from pathlib import Path
import polars as pl
from core.registry import load_registry
from core.extract.pipeline import run_extract
p = Path({proc!r})
s = run_extract(p, p / "validation_v1.parquet", Path({store!r}), load_registry(), workers={workers})
eps = pl.read_parquet(p / "extract_episodes_v1.parquet")
print(json.dumps({{"seconds": s.seconds, "windows": s.windows,
                   "per_episode": dict(zip(eps["rel_path"].to_list(), eps["n_windows"].to_list()))}}))
"""


def measure(store: Path, proc: Path, workers: int) -> dict:
    proc.mkdir(parents=True, exist_ok=True)
    val, val_rss = run_child(VALIDATE.format(store=str(store), proc=str(proc), workers=workers))
    ext, ext_rss = run_child(EXTRACT.format(store=str(store), proc=str(proc), workers=workers))
    return {"validate": val, "validate_rss": val_rss, "extract": ext, "extract_rss": ext_rss}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=500)
    ap.add_argument("--bomb-gib", type=float, default=1.0)
    ap.add_argument("--sparse-gib", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clean = tmp / "clean"
        generate_store(SynthConfig(episodes=a.episodes, seed=11, fault_rate=0.0, in_flight=0), clean,
                       workers=a.workers)
        hostile = tmp / "hostile"
        shutil.copytree(clean, hostile)
        eps = sorted(p.parent for p in hostile.glob("*/*/manifest.json"))
        bomb, crafted, rows, limit, sparse = eps[:5]
        gzip_bomb(bomb, int(a.bomb_gib * 2 ** 30))
        crafted_four_days(crafted)
        row_bomb(rows, rows=65_536)
        limit_episode(limit)
        with open(sparse / "guest.jsonl.gz", "r+b") as f:           # a sparse file of another size than listed
            f.truncate(a.sparse_gib << 30)
        bad = {p.relative_to(hostile).as_posix() for p in (bomb, crafted, rows, sparse)}
        limit_rel = limit.relative_to(hostile).as_posix()
        print(f"{a.episodes} episodes, {a.workers} workers; the hostile store swaps five of them for a "
              f"{a.bomb_gib:g} GiB gzip bomb ({(bomb / 'proc.jsonl.gz').stat().st_size / 1e6:.1f} MB on disk), "
              f"the four-day 1e-9 Hz episode, a row bomb (65,536 rows of 4 kB claimed, "
              f"{(rows / 'proc.jsonl.gz').stat().st_size / 1e6:.1f} MB on disk), the day-long 0.01 Hz limit "
              f"episode and a {a.sparse_gib} GiB sparse file")
        base = measure(clean, tmp / "p-clean", a.workers)
        hos = measure(hostile, tmp / "p-hostile", a.workers)
    for stage in ("validate", "extract"):
        b, h = base[stage]["seconds"], hos[stage]["seconds"]
        rb, rh = base[f"{stage}_rss"], hos[f"{stage}_rss"]
        print(f"  {stage:8s} clean {b:6.2f} s {rb:6.0f} MB | hostile {h:6.2f} s {rh:6.0f} MB | "
              f"time x{h / b:.2f}, peak RSS x{rh / rb:.2f} (goal <= 1.20)")
    print(f"  validate statuses, hostile store: {json.dumps(hos['validate']['counts'])}")
    good_b = {k: v for k, v in base["extract"]["per_episode"].items() if k not in bad and k != limit_rel}
    good_h = {k: v for k, v in hos["extract"]["per_episode"].items() if k not in bad and k != limit_rel}
    same = sum(good_h.get(k) == v for k, v in good_b.items())
    print(f"  windows per good episode unchanged: {same:,} of {len(good_b):,} episodes "
          f"({base['extract']['windows']:,} windows clean, {hos['extract']['windows']:,} hostile); "
          f"windows from the four refused hostile episodes: "
          f"{sum(hos['extract']['per_episode'].get(k, 0) for k in bad)}")
    # The limit episode is accepted (degraded) and makes a window wherever its
    # rows are; what it may weigh is what models fit on (core.split.capped_rows).
    per = hos["extract"]["per_episode"]
    sizes = np.array([n for n in per.values() if n])
    cap = episode_cap(sizes, MAX_EPISODE_SHARE)
    kept = np.minimum(sizes, cap) if cap is not None else sizes
    lim = per.get(limit_rel, 0)
    print(f"  the limit episode: {lim:,} windows, {lim / sizes.sum():.1%} of the extracted windows; as models fit "
          f"on them (every episode in train): {min(lim, cap or lim) / kept.sum():.1%} (bound "
          f"{MAX_EPISODE_SHARE:.0%}, split --max-episode-share)")


if __name__ == "__main__":
    main()
