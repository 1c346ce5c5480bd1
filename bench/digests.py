"""What hashing the extract outputs costs: once while writing (now) against
the two extra passes over the tensor store it used to take (extract's commit
re-hashed every part, then the notebook hashed the whole directory again).

    .venv/bin/python bench/digests.py [--episodes 1000] [--workers 2]

One process, one store; the old passes are timed on the same files, cold
page cache not forced (so they are a lower bound of the old cost).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.extract import CHUNKS, ExtractConfig  # noqa: E402
from core.extract.pipeline import run_extract  # noqa: E402
from core.notebook import describe_path  # noqa: E402
from core.registry import load_registry  # noqa: E402
from core.store import file_digest  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402
from core.validate.pipeline import run_validation  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    reg = load_registry()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, proc = root / "store", root / "processed"
        generate_store(SynthConfig(episodes=args.episodes, duration_s=300.0, seed=1, in_flight=0), store,
                       workers=args.workers)
        run_validation(store, proc / "validation_v1.parquet", reg, workers=args.workers)
        t0 = time.perf_counter()
        s = run_extract(proc, proc / "validation_v1.parquet", store, reg, ExtractConfig(), workers=args.workers)
        extract_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        describe_path(proc / CHUNKS, "chunks", s.digests["chunks"])          # what the notebook does now
        now_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for p in sorted(q for q in (proc / CHUNKS).rglob("*") if q.is_file()):  # the old commit pass
            file_digest(p)
        old_commit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        entry = describe_path(proc / CHUNKS, "chunks")                       # the old notebook pass
        old_notebook_s = time.perf_counter() - t0
        assert entry["sha256"] == s.digests["chunks"]["sha256"], "write-time digest differs from a fresh one"
        gb = s.digests["chunks"]["bytes"] / 1e9
        print(f"episodes {args.episodes:,}, windows {s.windows:,}, extract (features and tensors) {gb:.2f} GB")
        print(f"extract (hashing while writing): {extract_s:.2f} s")
        print(f"notebook record of the extract now: {now_s * 1000:.1f} ms (digest reused)")
        print(f"old extra passes: commit re-hash {old_commit_s:.2f} s + notebook re-hash {old_notebook_s:.2f} s "
              f"= {old_commit_s + old_notebook_s:.2f} s, {2 * gb:.2f} GB read "
              f"({(old_commit_s + old_notebook_s) / extract_s:.0%} of the extract itself)")
        print(f"at the real corpus (~65 GB of tensors) the old passes read ~130 GB; "
              f"at this machine's measured {2 * gb / max(old_commit_s + old_notebook_s, 1e-9):.2f} GB/s "
              f"that is ~{130 / max(2 * gb / max(old_commit_s + old_notebook_s, 1e-9), 1e-9) / 60:.0f} min")


if __name__ == "__main__":
    main()
