"""`cis490 serve` as a separate process, the way a user (or the Pi) runs it."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
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


class BaseInstall:
    """A fresh venv with cis490's base install only (what the Pi gets): the
    package built from a copy of this checkout, its dependencies from the
    registry. Built in a thread from the start of the session (tests/conftest.py
    starts it when a test asks for it): half a minute of pip that then overlaps
    the tests before it."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="cis490-base-install-"))
        self.python = self.root / "venv" / "bin" / "python"
        self.error: str | None = None
        self._thread = threading.Thread(target=self._build, daemon=True, name="cis490-base-install")
        self._thread.start()

    def _build(self) -> None:
        try:
            from scripts.pi_wheels import copy_package_source
            src = copy_package_source(self.root / "src")
            venv = self.root / "venv"
            # No pip of its own (this one installs into it, --python) and no
            # bytecode compiling: half the time of a plain venv and `pip install`.
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
            done = subprocess.run([sys.executable, "-m", "pip", "--python", str(self.python), "install", "--quiet",
                                   "--no-compile", "--disable-pip-version-check", str(src)],
                                  capture_output=True, text=True, timeout=480)
            if done.returncode != 0:
                self.error = f"pip could not make the base install: {done.stderr.strip()[-600:]}"
        except Exception as exc:  # noqa: BLE001 - reported by the test that needs it
            self.error = f"the base install failed: {exc}"

    def wait(self, timeout_s: float = 600) -> Path:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError("the base install took over 10 minutes")
        if self.error:
            raise RuntimeError(self.error)
        return self.python

    def remove(self) -> None:
        self._thread.join(600)
        shutil.rmtree(self.root, ignore_errors=True)
