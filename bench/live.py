"""Live inference as the Pi runs it, one core: for each model, a real
`cis490 serve --dashboard --replay ... --model M` process pinned to one CPU
with one thread; cold start (process start to the first `prediction` event
on the dashboard), the server's RSS once replaying, and the per-window
end-to-end latency (cut one window from the aligned episode + preprocess +
predict) p50/p99 from its `perf` events.

    .venv/bin/python bench/live.py --home <lab home> [--models gbt,cnn] [--split host] [--seconds 12]
                                   [--base-python PATH]

Latency twice: "serving", from the process's own `perf` events (the replay
thread shares the GIL and the core with the server handling its posts), and
"one thread", bench/live_window.py on the same core with no server: the cost
of the window itself. Cold start is measured in a process of its own at
--speed 1000 (at 10x the first window's 10 s of episode time alone take 1 s
to pace out); latency and RSS after `--seconds` of replay at `--speed` (10x:
two windows a second; 40x gives p99 over a few hundred windows in 30 s).

Each model twice, in the same run: through its native checkpoint (torch,
XGBoost, scikit-learn: `--engine checkpoint`) and through its exported bundle
(`--engine bundle`; exported first with `cis490 export` when missing) as the
Pi's base install runs it: with `--base-python` the python of a venv holding
only the base install (`pip install .`), else this python with the lab's
packages made unimportable. The lab needs checkpoints of the models on the
split and its extracted episodes in the store (e.g. the demo lab: `cis490
demo`, then `--home <home>/demo --models gbt,cnn`). Goals on one core of a
workstation, for the bundles: cold start < 2 s, RSS < 150 MB, p99 < 20 ms per
window.

Then the watch (`serve --watch`): for each model and engine, bench/watch.py
on one core lands `--landings` episodes in the store one at a time and times
each from its manifest appearing to its first prediction event. Goal: under
1 s for a bundle.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._measure import rss_mb  # noqa: E402
from tests.serving import without_lab_modules  # noqa: E402


def one_core(python: str, pythonpath: str) -> tuple[list[str], dict]:
    """The command prefix and environment of a process pinned to one core with one thread."""
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return [*(["taskset", "-c", "0"] if shutil.which("taskset") else []), python], env


def measure(home: Path, model: str, split: str, seconds: float, engine: str, python: str, pythonpath: str,
            speed: float = 10) -> dict:
    """One serve process: the first prediction's time from process start,
    then (seconds > 0) RSS and the perf event after `seconds` more."""
    run, env = one_core(python, pythonpath)
    cmd = [*run, "-c", "from cis490cli.app import main; main()", "--home", str(home), "serve",
           "--dashboard", "--port", "0", "--replay", "all", "--model", model, "--split", split, "--speed", str(speed),
           "--engine", engine]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = re.search(r"Dashboard: (http://\S+/)", proc.stdout.readline()).group(1).rstrip("/")
        first = None
        while first is None and time.monotonic() - t0 < 60:
            if "prediction" in httpx.get(url + "/api/snapshot", timeout=5).json()["snapshot"]:
                first = time.monotonic() - t0
            time.sleep(0.02)
        if first is None or seconds <= 0:
            return {"cold_start_s": first}
        # Left alone while it replays: a snapshot is a large JSON document, and
        # serving one takes the GIL from the replay thread (it inflated p99 5x).
        time.sleep(seconds)
        perf = httpx.get(url + "/api/snapshot", timeout=5).json()["snapshot"].get("perf", [None])[0]
        return {"cold_start_s": first, "rss_mb": rss_mb(proc.pid), "perf": perf}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def one_thread(home: Path, model: str, split: str, engine: str, python: str, pythonpath: str) -> dict:
    """bench/live_window.py pinned to one core: the latency without a server beside it."""
    import json
    run, env = one_core(python, pythonpath)
    done = subprocess.run([*run, str(ROOT / "bench" / "live_window.py"), "--home", str(home), "--model", model,
                           "--engine", engine, "--split", split], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def watch_delays(home: Path, model: str, split: str, engine: str, python: str, pythonpath: str,
                 landings: int) -> dict:
    """bench/watch.py pinned to one core: manifest appearing -> first prediction event."""
    import json
    run, env = one_core(python, pythonpath)
    done = subprocess.run([*run, str(ROOT / "bench" / "watch.py"), "--home", str(home), "--model", model,
                           "--engine", engine, "--split", split, "--landings", str(landings)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bench/watch.py failed for {model} ({engine}): {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--models", default="gbt,cnn")
    ap.add_argument("--split", default="host")
    ap.add_argument("--seconds", type=float, default=12.0, help="replay this long before reading perf")
    ap.add_argument("--speed", type=float, default=10.0,
                    help="replay speed of the latency run (higher: more windows, so a p99 that is not the maximum)")
    ap.add_argument("--landings", type=int, default=10, help="episodes the watch measure lands, one at a time")
    ap.add_argument("--base-python", help="python of a venv with only the base install (default: this one, with "
                                          "the lab's packages made unimportable)")
    a = ap.parse_args()
    blocked = Path(tempfile.mkdtemp(prefix="cis490-no-lab-"))
    base = (a.base_python, str(ROOT)) if a.base_python else (sys.executable, f"{without_lab_modules(blocked)}:{ROOT}")
    nan = float("nan")
    print("serving: the replay in a `serve` process (perf event); one thread: bench/live_window.py, no server")
    print(f"{'':<23}{'':>13}{'':>8}{'serving':>16}{'one thread':>16}")
    print(f"{'model':<12}{'engine':<11}{'cold start s':>13}{'RSS MB':>8}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'p50 ms':>8}{'p99 ms':>8}")
    for model in a.models.split(","):
        if not (a.home / "artifacts" / "deploy" / a.split / f"{model}_realistic" / "bundle.json").exists():
            subprocess.run([sys.executable, "-c", "from cis490cli.app import main; main()", "--home", str(a.home),
                            "--quiet", "export", model, "--split", a.split], check=True, env={**os.environ,
                                                                                            "PYTHONPATH": str(ROOT)})
        rows = {}
        for engine, (python, path) in (("checkpoint", (sys.executable, str(ROOT))), ("bundle", base)):
            r = rows[engine] = measure(a.home, model, a.split, a.seconds, engine, python, path, speed=a.speed)
            # Cold start at 1000x: the first window's 10 s of episode time pace out in 0.01 s, not 1 s.
            r["cold_start_s"] = measure(a.home, model, a.split, 0, engine, python, path, speed=1000)["cold_start_s"]
            r["one"] = one_thread(a.home, model, a.split, engine, python, path)
            p = r["perf"] or {}
            print(f"{model:<12}{engine:<11}{r['cold_start_s'] or nan:>13.2f}{r['rss_mb']:>8.0f}"
                  f"{p.get('latency_p50_ms', nan):>8.2f}{p.get('latency_p99_ms', nan):>8.2f}"
                  f"{r['one']['p50_ms']:>8.2f}{r['one']['p99_ms']:>8.2f}")
        n, b = rows["checkpoint"], rows["bundle"]
        np_, bp = n["perf"] or {}, b["perf"] or {}
        print(f"{model:<12}{'ratio':<11}{(b['cold_start_s'] or nan) / (n['cold_start_s'] or nan):>13.2f}"
              f"{b['rss_mb'] / n['rss_mb']:>8.2f}"
              f"{bp.get('latency_p50_ms', nan) / np_.get('latency_p50_ms', nan):>8.2f}"
              f"{bp.get('latency_p99_ms', nan) / np_.get('latency_p99_ms', nan):>8.2f}"
              f"{b['one']['p50_ms'] / n['one']['p50_ms']:>8.2f}{b['one']['p99_ms'] / n['one']['p99_ms']:>8.2f}")
    print("ratio: bundle / checkpoint. Goals for the bundles (one core): cold start < 2 s, RSS < 150 MB, "
          "p99 < 20 ms per window")
    print()
    print(f"watch: an episode landing in the store -> its first prediction event, {a.landings} landings, one core")
    print(f"{'model':<12}{'engine':<11}{'median ms':>10}{'max ms':>8}")
    for model in a.models.split(","):
        rows = {engine: watch_delays(a.home, model, a.split, engine, python, path, a.landings)
                for engine, (python, path) in (("checkpoint", (sys.executable, str(ROOT))), ("bundle", base))}
        for engine, r in rows.items():
            print(f"{model:<12}{engine:<11}{r['median_ms']:>10.0f}{r['max_ms']:>8.0f}")
        print(f"{model:<12}{'ratio':<11}{rows['bundle']['median_ms'] / rows['checkpoint']['median_ms']:>10.2f}"
              f"{rows['bundle']['max_ms'] / rows['checkpoint']['max_ms']:>8.2f}")
    shutil.rmtree(blocked, ignore_errors=True)
    print("ratio: bundle / checkpoint. Goal for the bundles: median and max < 1000 ms")


if __name__ == "__main__":
    main()
