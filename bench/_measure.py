"""Helpers for bench scripts: run a Python snippet in a child process and
sample the peak RSS of its whole process tree (the child and its workers)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    """One process's resident memory now (NaN once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _tree_rss_kb(pid: int, field: str = "VmRSS:") -> int:
    """Summed over the process tree: VmRSS (all resident pages) or RssAnon
    (anonymous memory only, without memory-mapped file pages the kernel may drop)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def run_child(code: str, field: str = "VmRSS:", root: Path = ROOT) -> tuple[dict, float]:
    """Run `code` (which prints one JSON line last) in a child; return (its JSON, peak tree RSS in MB)."""
    res, peaks = run_child_peaks(code, (field,), root)
    return res, peaks[field]


def run_child_peaks(code: str, fields=("VmRSS:", "RssAnon:"), root: Path = ROOT) -> tuple[dict, dict[str, float]]:
    """Run `code` with `root` (a checkout of cis490) first on its path; return
    (its last JSON line, the peak of each /proc field over its process tree, MB)."""
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    peak = dict.fromkeys(fields, 0)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for f in fields:
                peak[f] = max(peak[f], _tree_rss_kb(proc.pid, f))
            time.sleep(0.05)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    stop.set()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{code}")
    return json.loads(out.strip().splitlines()[-1]), {f: v / 1024 for f, v in peak.items()}


def floor_episode(d: str) -> int:
    """The raw floor of reading one episode: sha256 + gunzip + read_ndjson, no checks."""
    import io

    import polars as pl

    from core.store import file_digest, read_maybe_gzip
    n = 0
    for f in sorted(os.listdir(d)):
        if f == "manifest.json":
            continue
        p = Path(d) / f
        n += file_digest(p)[1]
        try:
            pl.read_ndjson(io.BytesIO(read_maybe_gzip(p)))
        except Exception:  # noqa: BLE001 - the floor does no checking, faulty files included
            pass
    return n
