"""One command at a time writes a lab (issue 32): the second says which run
holds it and stops, or waits (--wait); nothing half-written, no record lost."""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.lablock import lab_lock, lock_path
from tests.labs import install_lab, trained_lab

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    root = trained_lab(extracted_lab, tmp_path_factory, "locking", [])
    (root / "artifacts").mkdir(exist_ok=True)
    return root


@pytest.fixture
def home(trained, lab_home, extracted_lab):
    return install_lab(trained, lab_home, store_of=extracted_lab[0])


@pytest.mark.parametrize("holding, second", [
    ("validate", ("extract",)),
    ("train", ("train", "gbt", "--mode", "realistic", "--set", "n_estimators=5")),
    ("extract", ("train", "gbt", "--mode", "realistic", "--set", "n_estimators=5")),
    ("extract", ("validate",)),
])
def test_a_second_writer_names_the_first_and_stops_without_writing(cli, home, holding, second):
    """Regression: a validate during an extract left status calling the
    features fresh while 37 usable episodes were missing from them."""
    before = {p: p.stat().st_mtime_ns for p in home.processed.rglob("*") if p.is_file()}
    records = home.notebook.read_text().splitlines() if home.notebook.exists() else []
    with lab_lock(home.artifacts, holding, f"cis490 {holding}"):
        result = cli(*second)
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert f"`cis490 {holding}` (pid {os.getpid()}, since " in line and "is writing this lab" in line
    assert "add --wait" in line
    assert {p: p.stat().st_mtime_ns for p in home.processed.rglob("*") if p.is_file()} == before
    assert (home.notebook.read_text().splitlines() if home.notebook.exists() else []) == records


def test_wait_waits_for_the_first_and_then_runs(cli, home):
    release = threading.Event()
    held = threading.Event()

    def first():
        with lab_lock(home.artifacts, "extract", "cis490 extract"):
            held.set()
            release.wait(10)
    t = threading.Thread(target=first)
    t.start()
    assert held.wait(5)
    # The lock is flock(2): a second open file in this same process is refused as another process would be.
    threading.Timer(1.0, release.set).start()
    t0 = time.monotonic()
    result = cli("--wait", "split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-nuc,lab-desktop")
    t.join()
    assert result.exit_code == 0, result.output
    assert time.monotonic() - t0 >= 0.9
    assert "waiting for `cis490 extract`" in result.stderr
    assert json.loads(home.notebook.read_text().splitlines()[-1])["command"] == "split"


def test_a_lock_held_by_a_killed_run_is_free(home):
    """flock(2): the kernel drops the lock of a process however it ends (kill -9 too)."""
    code = (f"from core.lablock import lab_lock; import time\n"
            f"with lab_lock({str(home.artifacts)!r}, 'extract', 'cis490 extract'):\n"
            "    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline() == "held\n"
    with pytest.raises(Exception, match=r"`cis490 extract` \(pid \d+, since"):
        with lab_lock(home.artifacts, "train", "cis490 train"):
            pass
    proc.kill()
    proc.wait()
    with lab_lock(home.artifacts, "train", "cis490 train"):
        assert json.loads(lock_path(home.artifacts).read_text())["command"] == "train"


def test_readers_never_wait_for_a_writer(cli, home):
    with lab_lock(home.artifacts, "extract", "cis490 extract"):
        assert cli("status").exit_code == 0
        assert cli("notebook", "list").exit_code == 0
