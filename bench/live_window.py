"""One thread, no server: per-window latency of live inference (cut one
window from the aligned episode + preprocess + predict), as run by
`cis490 serve --replay` but without the server beside it. bench/live.py runs
this in a process pinned to one core, under the base install for bundles.

    python bench/live_window.py --home <lab home> --model gbt --engine bundle [--windows 600]

Prints one JSON line: windows, p50_ms, p99_ms, max_ms."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import numpy as np

    from core.extract.episode import episode_grid
    from core.live.producers import lab_replay
    from core.paths import LabPaths
    from core.store import Episode
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--engine", choices=("bundle", "checkpoint"), required=True)
    ap.add_argument("--split", default="host")
    ap.add_argument("--windows", type=int, default=600)
    a = ap.parse_args()
    replay = lab_replay(LabPaths(a.home), "all", a.model, "realistic", a.split, None, 10.0, a.engine)
    m = replay.model
    lat = []
    for _, rel in replay.episodes:
        grid = episode_grid(Episode.open(replay.store / rel, rel), replay.registry, replay.spec)
        for k in range(grid.n):
            t0 = time.perf_counter()
            values, mask, features = grid.window_at(k)
            m.predict_proba(features[None] if m.input_kind == "summary" else (values[None], mask[None]))
            lat.append((time.perf_counter() - t0) * 1000)
        if len(lat) >= a.windows:
            break
    x = np.asarray(lat)
    print(json.dumps({"windows": len(x), "p50_ms": round(float(np.percentile(x, 50)), 3),
                      "p99_ms": round(float(np.percentile(x, 99)), 3), "max_ms": round(float(x.max()), 3)}))


if __name__ == "__main__":
    main()
