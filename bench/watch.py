"""A watched store, live: the time from an episode's manifest appearing in
the store to its first `prediction` event on the dashboard, on one core.

A dashboard server and the watch (core/live/watch.py: poll every 0.2 s,
validate's rules, align, predict) run in this process pinned to one CPU with
one thread for numpy and ONNX Runtime, as on the Pi; episodes of the lab's
store land one at a time under new ids (files first, the manifest last, as
the receiver writes them), and the dashboard's event ring is polled every
5 ms for the first prediction of each. Goal: under 1 s for a bundle.
bench/live.py runs it for each model and engine as the Pi would (the base
install's python); alone:

    cis490 demo --home /tmp/cis-demo && cis490 --home /tmp/cis-demo/demo export gbt
    .venv/bin/python bench/watch.py --home /tmp/cis-demo/demo [--model gbt] [--engine bundle] [--landings 10]

Its last line is the figures as JSON, for bench/live.py.
"""
from __future__ import annotations

import os

os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polars as pl  # noqa: E402

from core.dashboard.app import create_app  # noqa: E402
from core.dashboard.hub import EventHub  # noqa: E402
from core.dashboard.server import ThreadedServer  # noqa: E402
from core.live.watch import POLL_S, WatchThread  # noqa: E402
from core.paths import LabPaths  # noqa: E402
from core.predict import load_engine  # noqa: E402


def land(store: Path, rel: str, new_id: str) -> tuple[Path, float]:
    """Copy an episode under a new id, manifest last; (its folder, when the manifest appeared)."""
    src = store / rel
    dst = store / rel.split("/")[0] / new_id
    part = dst.with_name(new_id + ".part")
    shutil.copytree(src, part, ignore=shutil.ignore_patterns("manifest.json"))
    part.rename(dst)
    m = json.loads((src / "manifest.json").read_text())
    m["episode_id"] = new_id
    tmp = dst / ".manifest.tmp"
    tmp.write_text(json.dumps(m))
    t = time.perf_counter()
    tmp.rename(dst / "manifest.json")
    return dst, t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--model", default="gbt")
    ap.add_argument("--mode", default="realistic")
    ap.add_argument("--split", default="host")
    ap.add_argument("--engine", default="bundle")
    ap.add_argument("--landings", type=int, default=10)
    a = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    paths = LabPaths(a.home)
    eng = load_engine(paths, a.model, a.mode, a.split, a.engine)
    index = pl.read_parquet(paths.processed / "validation_v1.parquet").filter(pl.col("status") == "accepted")
    store = paths.default_store
    hub = EventHub()
    landed: list[Path] = []
    delays = []
    try:
        with ThreadedServer(create_app(hub)) as srv, WatchThread(store, eng, a.mode, srv.url):
            while not any(ev["type"] == "notice" for ev in hub.events()):
                time.sleep(0.01)
            for i, rel in enumerate(index["rel_path"].head(a.landings).to_list()):
                new_id = f"ep7{i:05d}-watched"
                folder, t0 = land(store, rel, new_id)
                landed.append(folder)
                while not any(ev["type"] == "prediction" and ev["episode_id"] == new_id for ev in hub.events()):
                    if time.perf_counter() - t0 > 30:
                        raise SystemExit(f"no prediction for {new_id} within 30 s")
                    time.sleep(0.005)
                delays.append(time.perf_counter() - t0)
                time.sleep(0.3)          # the next one lands once this one is done, as runs do
    finally:
        for folder in landed:
            shutil.rmtree(folder, ignore_errors=True)
    delays.sort()
    med = delays[len(delays) // 2]
    print(f"{a.model} ({a.mode}, {eng.kind}) on one core, store {store}: manifest appears -> first prediction "
          f"event, {len(delays)} landings: median {med * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms "
          f"(polling every {POLL_S * 1000:.0f} ms: {POLL_S * 500:.0f} ms of it on average); goal < 1000 ms")
    print(json.dumps({"engine": eng.kind, "landings": len(delays), "median_ms": med * 1000,
                      "max_ms": delays[-1] * 1000}))


if __name__ == "__main__":
    main()
