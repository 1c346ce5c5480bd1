"""Synth throughput: episodes/s and MB/s on N workers, against 1 worker in the same run.

    .venv/bin/python bench/synth.py [--episodes 1000] [--workers 2] [--duration 300]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.synth import SynthConfig, generate_store  # noqa: E402


def run(cfg: SynthConfig, workers: int, root: Path) -> tuple[float, int, int]:
    out = root / f"store-{workers}"
    t0 = time.perf_counter()
    r = generate_store(cfg, out, workers=workers)
    dt = time.perf_counter() - t0
    files = sum(1 for _ in out.rglob("*") if _.is_file())
    shutil.rmtree(out)
    return dt, r.bytes, files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--baseline-episodes", type=int, default=200, help="episodes for the 1-worker baseline")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base_cfg = SynthConfig(episodes=a.baseline_episodes, duration_s=a.duration, seed=1)
        b_dt, b_bytes, _ = run(base_cfg, 1, root)
        cfg = SynthConfig(episodes=a.episodes, duration_s=a.duration, seed=1)
        dt, nbytes, files = run(cfg, a.workers, root)
    b_rate = a.baseline_episodes / b_dt
    rate = a.episodes / dt
    print(f"synth {a.episodes} episodes x {a.duration:.0f} s on {a.workers} workers: {dt:.1f} s "
          f"({rate:.1f} episodes/s, {nbytes / dt / 1e6:.1f} MB/s written)")
    print(f"store size: {nbytes / 1e6:.1f} MB, {nbytes / a.episodes / 1e3:.0f} kB/episode, {files} files")
    print(f"baseline 1 worker ({a.baseline_episodes} episodes): {b_rate:.1f} episodes/s; "
          f"speed-up {rate / b_rate:.2f}x")
    target = 120.0 * a.episodes / 1000
    print(f"target: 1,000 episodes in < 120 s -> {'MET' if dt < target else 'MISSED'} "
          f"({dt / a.episodes * 1000:.1f} s per 1,000)")


if __name__ == "__main__":
    main()
