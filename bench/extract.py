"""Extract throughput, memory and disk, against validate and a pandas baseline.

    .venv/bin/python bench/extract.py [--episodes 2000] [--small 500] [--workers 2]

Each measurement runs in its own child process; RSS is the peak summed over
that child and its workers. Same store, same workers, same run for validate.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._measure import run_child  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402

VALIDATE = """
import json
from pathlib import Path
from core.registry import load_registry
from core.validate.pipeline import run_validation
s = run_validation(Path({store!r}), Path({proc!r}) / "validation_v1.parquet", load_registry(), workers={workers})
print(json.dumps({{"seconds": s.seconds}}))
"""
EXTRACT = """
import json
from pathlib import Path
from core.registry import load_registry
from core.extract.pipeline import run_extract
p = Path({proc!r})
s = run_extract(p, p / "validation_v1.parquet", Path({store!r}), load_registry(), workers={workers})
print(json.dumps({{"seconds": s.seconds, "episodes": s.episodes - len(s.failed), "windows": s.windows,
                   "bytes": s.bytes_on_disk}}))
"""


def pandas_ratio(store: Path, k: int = 12) -> tuple[float, float, float]:
    import numpy as np
    import polars as pl

    from bench.pandas_windowing import pandas_episode_windows
    from core.extract.episode import extract_episode
    from core.registry import load_registry
    from core.store import Episode
    reg = load_registry()
    idx = pl.read_parquet(store.parent / "processed" / "validation_v1.parquet").filter(
        pl.col("status") == "accepted")
    rels = idx["rel_path"].to_list()[:k]
    t0 = time.perf_counter()
    ours = [extract_episode(Episode.open(store / r, r), reg).features for r in rels]
    t_ours = (time.perf_counter() - t0) / k
    t0 = time.perf_counter()
    theirs = [pandas_episode_windows(store / r, reg) for r in rels]
    t_pd = (time.perf_counter() - t0) / k
    # Same numbers (pandas' std is population std here too); a sanity check, not a test.
    diff = max(float(np.nanmax(np.abs(a - b) / (np.abs(b) + 1e-3))) for a, b in zip(ours, theirs)
               if a.shape == b.shape)
    return t_ours, t_pd, diff


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (a.small, a.episodes):
            root = Path(tmp) / f"lab{n}"
            store, proc = root / "store", root / "processed"
            proc.mkdir(parents=True)
            generate_store(SynthConfig(episodes=n, seed=11), store, workers=a.workers)
            val, _ = run_child(VALIDATE.format(store=str(store), proc=str(proc), workers=a.workers))
            ext, rss = run_child(EXTRACT.format(store=str(store), proc=str(proc), workers=a.workers))
            res[n] = (val, ext, rss)
        t_ours, t_pd, diff = pandas_ratio(Path(tmp) / f"lab{a.small}" / "store")
    for n, (val, ext, rss) in res.items():
        print(f"{n:>5} episodes, {a.workers} workers: extract {ext['seconds']:.1f} s "
              f"({ext['episodes'] / ext['seconds']:.0f} episodes/s, {ext['windows'] / ext['seconds']:,.0f} windows/s, "
              f"{ext['windows']:,} windows), peak RSS (tree) {rss:.0f} MB")
        print(f"       validate {val['seconds']:.1f} s on the same store -> extract/validate = "
              f"{ext['seconds'] / val['seconds']:.2f}x (target <= 2x)")
        print(f"       on disk: {ext['bytes'] / ext['windows'] * 1000 / 1e6:.2f} MB per 1,000 windows "
              "(features parquet + tensors)")
    print(f"peak RSS {a.small} -> {a.episodes} episodes: {res[a.small][2]:.0f} MB -> {res[a.episodes][2]:.0f} MB")
    print(f"one episode's windowing, 1 core: cis490 {t_ours * 1000:.1f} ms, pandas {t_pd * 1000:.1f} ms "
          f"-> {t_pd / t_ours:.1f}x faster (max relative feature difference {diff:.1e})")


if __name__ == "__main__":
    main()
