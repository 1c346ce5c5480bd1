"""`cis490 serve` as a separate process, the way a user (or the Pi) runs it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# Stand-ins that fail to import, as on the Pi's base install: a process that
# needs one of them fails the way it would there.
LAB_MODULES = ("torch", "sklearn", "scipy", "xgboost", "matplotlib", "onnx", "onnxmltools", "onnxscript",
               "pyarrow")


def without_lab_modules(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in LAB_MODULES:
        (directory / f"{name}.py").write_text(f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n")
    return directory


def start_serve(home: Path, *args: str, python: str = sys.executable, pythonpath: str | None = str(ROOT),
                timeout_s: float = 30):
    """A running `cis490 serve` and its dashboard URL and token (None on loopback)."""
    env = {**os.environ, "CIS490_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.Popen([python, "-c", "from cis490cli.app import main; main()", "serve", *args],
                            cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    deadline = time.monotonic() + timeout_s
    while len(lines) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        lines.append(proc.stdout.readline())
    url = re.search(r"Dashboard: (http://\S+/)", lines[0]).group(1)
    token = re.search(r"Bearer (\S+)'", lines[1])
    return proc, url.rstrip("/"), token.group(1) if token else None


def replayed_episode(url: str, timeout_s: float = 60) -> list[dict]:
    """The events of the first replayed episode, from its start to its end."""
    events, ev = [], {}
    with httpx.stream("GET", url + "/events?after=0", timeout=timeout_s) as resp:
        for line in resp.iter_lines():
            if line == "":
                if "data" in ev:
                    events.append(json.loads(ev["data"]))
                    if events[-1]["type"] == "episode" and events[-1]["event"] == "end":
                        return events
                ev = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(": ")
                ev[k] = v
    raise AssertionError(f"the stream ended before an episode did: {events[-3:]}")
