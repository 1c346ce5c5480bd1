import pytest
import json
"""Ctrl-C during a parallel stage prints one line, leaves nothing half-written."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.synth import SynthConfig, generate_store
from core.registry import load_registry
from core.validate.pipeline import run_validation

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
        except OSError:
            continue
    return out


def test_ctrl_c_in_extract_prints_one_line(lab_home):
    """Regression: 2-3 worker tracebacks came before "Error: interrupted"."""
    generate_store(SynthConfig(episodes=200, duration_s=120.0, seed=11, fault_rate=0.0, in_flight=0),
                   lab_home.default_store, workers=1)
    run_validation(lab_home.default_store, lab_home.processed / "validation_v1.parquet", load_registry(), workers=1)
    cmd = [sys.executable, "-c", "from cis490cli.app import main; main()", "extract", "-j", "2"]
    # A terminal's Ctrl-C reaches the whole process group: the parent and every worker.
    proc = subprocess.Popen(cmd, cwd=lab_home.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "CIS490_HOME": str(lab_home.home),
                                                 "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    deadline = time.monotonic() + 60
    # Interrupt once the workers run: a fixed wait raced a faster extract.
    chunks = lab_home.processed / "extract_v2"
    while not (chunks.is_dir() and any(p.name.startswith(".chunk.~") for p in chunks.iterdir())
               and len(_children(proc.pid)) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    time.sleep(0.2)                       # workers are importing or extracting
    assert proc.poll() is None, "extract finished before the interrupt; the test needs a larger store"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert err == "Error: interrupted\n"
    # Nothing half-written is left, and no output looks complete: the chunk being written
    # (all 200 episodes: under one chunk's 512) is gone, and no schema lists anything.
    assert sorted(p.name for p in lab_home.processed.iterdir()) == ["extract_v2", "validation_v1.json",
                                                                       "validation_v1.parquet",
                                                                       "validation_v1.stat.parquet"]
    assert list(chunks.iterdir()) == []


def test_sigterm_is_recorded_as_interrupted_with_exit_143(lab_home):
    """Regression: SIGTERM (how a scheduler or systemd stops a job) left no notebook record."""
    cmd = [sys.executable, "-c", "from cis490cli.app import main; main()", "synth", "-n", "3000", "--duration",
           "600", "-j", "1"]
    proc = subprocess.Popen(cmd, cwd=lab_home.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "CIS490_HOME": str(lab_home.home),
                                                         "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    deadline = time.monotonic() + 60
    data = lab_home.home / "data"
    while not (data.exists() and any(data.rglob("*.gz"))):          # synth is writing episodes
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    assert err == "Error: terminated\n"
    [record] = [json.loads(x) for x in lab_home.notebook.read_text().splitlines()]
    assert record["command"] == "synth" and record["status"] == "interrupted" and record["error"] == "Terminated"


STUCK = """
import signal, sys, time
from core.errors import Terminated
from core.parallel import pool_map, process_pool

def terminate(*_):
    raise Terminated()
signal.signal(signal.SIGTERM, terminate)
try:
    with process_pool(2) as pool:
        print("started", flush=True)
        list(pool_map(pool, time.sleep, [300, 300]))
except Terminated:
    sys.exit(143)
"""


def test_sigterm_stops_workers_busy_or_blocked_within_seconds(tmp_path):
    """Regression: SIGTERM while a worker was busy (or blocked in a read)
    took 100 s, past systemd's 90 s stop timeout, or was never answered."""
    proc = subprocess.Popen([sys.executable, "-c", STUCK], stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.stdout.readline() == "started\n"
    deadline = time.monotonic() + 30
    while len(_children(proc.pid)) < 3:          # the two workers (and the resource tracker)
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)                              # each is in its 300 s job
    workers = _children(proc.pid)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)             # the parent alone, as `kill PID` sends it
    assert proc.wait(timeout=20) == 143
    assert time.monotonic() - t0 < 5
    time.sleep(0.5)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and (Path(f"/proc/{w}") / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive
