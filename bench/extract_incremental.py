"""What an extract costs when runs land: incremental against from scratch.

    .venv/bin/python bench/extract_incremental.py [--episodes 2000] [--land 100] [--workers 2]

A lab of `--episodes` runs is validated and extracted; then `--land` new runs
(another synthetic store's) land in it and are validated. On the same lab,
each in its own child process (RSS: the peak over it and its workers):
  - `cis490 extract` with nothing new (the lab is up to date);
  - `cis490 extract` after the runs landed (incremental: new chunks only);
  - `cis490 extract --full` on the same lab (what every extract did before).
It prints each one's time, peak RSS and bytes written, and the ratios.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._measure import run_child  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402

VALIDATE = """
import json
from pathlib import Path
from core.registry import load_registry
from core.validate.pipeline import run_validation
s = run_validation(Path({store!r}), Path({proc!r}) / "validation_v1.parquet", load_registry(), workers={workers},
                   since_last=True)
print(json.dumps({{"seconds": s.seconds}}))
"""
EXTRACT = """
import json
from pathlib import Path
from core.registry import load_registry
from core.extract.pipeline import run_extract
p = Path({proc!r})
s = run_extract(p, p / "validation_v1.parquet", Path({store!r}), load_registry(), workers={workers}, full={full})
print(json.dumps({{"seconds": s.seconds, "extracted": s.extracted, "reused": s.reused, "windows": s.windows,
                   "new_chunks": s.new_chunks, "chunks": s.chunks}}))
"""


def written(proc: Path, before: dict[str, int]) -> int:
    """Bytes of the extract's files that are new or other than before."""
    now = {str(p): p.stat().st_ino for p in proc.rglob("*") if p.is_file()}
    return sum(Path(p).stat().st_size for p, ino in now.items() if before.get(p) != ino)


def snapshot(proc: Path) -> dict[str, int]:
    return {str(p): p.stat().st_ino for p in proc.rglob("*") if p.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--land", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, proc, other = root / "store", root / "processed", root / "landed"
        proc.mkdir()
        generate_store(SynthConfig(episodes=a.episodes, seed=11, in_flight=0), store, workers=a.workers)
        generate_store(SynthConfig(episodes=a.land, seed=12, in_flight=0), other, workers=a.workers)
        run_child(VALIDATE.format(store=str(store), proc=str(proc), workers=a.workers))
        first, _ = run_child(EXTRACT.format(store=str(store), proc=str(proc), workers=a.workers, full=False))
        before = snapshot(proc)
        noop, noop_rss = run_child(EXTRACT.format(store=str(store), proc=str(proc), workers=a.workers, full=False))
        noop_bytes = written(proc, before)
        for ep in sorted(other.glob("*/*")):
            shutil.copytree(ep, store / ep.parent.name / f"landed-{ep.name}")
        run_child(VALIDATE.format(store=str(store), proc=str(proc), workers=a.workers))
        before = snapshot(proc)
        inc, inc_rss = run_child(EXTRACT.format(store=str(store), proc=str(proc), workers=a.workers, full=False))
        inc_bytes = written(proc, before)
        before = snapshot(proc)
        full, full_rss = run_child(EXTRACT.format(store=str(store), proc=str(proc), workers=a.workers, full=True))
        full_bytes = written(proc, before)
    print(f"lab: {a.episodes:,} episodes ({first['windows']:,} windows, {first['chunks']} chunks), "
          f"then {a.land:,} landed ({inc['windows'] - first['windows']:,} windows); workers {a.workers}")
    rows = [("nothing new", noop, noop_rss, noop_bytes), ("after runs landed", inc, inc_rss, inc_bytes),
            ("--full (as before)", full, full_rss, full_bytes)]
    print(f"  {'extract':<20}{'seconds':>9}{'extracted':>11}{'reused':>8}{'new chunks':>12}{'peak RSS':>10}"
          f"{'written':>10}")
    for name, r, rss, b in rows:
        print(f"  {name:<20}{r['seconds']:>9.2f}{r['extracted']:>11,}{r['reused']:>8,}{r['new_chunks']:>12}"
              f"{rss:>8.0f} MB{b / 1e6:>7.0f} MB")
    print(f"incremental / full: time {inc['seconds'] / full['seconds']:.3f}, "
          f"bytes written {inc_bytes / max(full_bytes, 1):.3f}; nothing new / full: time "
          f"{noop['seconds'] / full['seconds']:.3f}")


if __name__ == "__main__":
    main()
