import hashlib
import json
import shutil

import pytest

from core.synth import DEMO_MARKER

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


def _snapshot(root, skip):
    """Every file under root (but `skip`) with its bytes' digest and mode."""
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file() and skip not in p.parents}


@pytest.mark.slow
def test_demo_runs_in_its_own_lab_leaves_the_home_byte_identical_and_speaks_json(cli, lab_home, extracted_lab):
    # An existing lab: a store, an index, a notebook of its own.
    ep = lab_home.default_store / "lab-x" / "ep1"
    ep.mkdir(parents=True)
    (ep / "manifest.json").write_text("{}")
    lab_home.processed.mkdir(parents=True)
    (lab_home.processed / "validation_v1.parquet").write_bytes(b"the lab's own index")
    lab_home.artifacts.mkdir()
    (lab_home.artifacts / "notebook.jsonl").write_text('{"run_id": "x"}\n')
    demo_dir = lab_home.home / "demo"
    before = _snapshot(lab_home.home, demo_dir)
    # An earlier demo's lab, with another store, index and features (a whole
    # second demo run cost as much as the rest of the test): the demo replaces
    # its own lab.
    paths, _ = extracted_lab
    shutil.copytree(paths.data, demo_dir / "data")
    (demo_dir / DEMO_MARKER).write_text("made by an earlier demo\n")
    (demo_dir / "artifacts").mkdir()
    (demo_dir / "artifacts" / "notebook.jsonl").write_text('{"run_id": "an earlier demo", "command": "demo"}\n')
    earlier = {p.parent.name for p in (demo_dir / "data" / "raw" / "store").rglob("manifest.json")}

    result = cli("--json", "demo", "--episodes", "60", "--duration", "60", "-j", "2")
    assert result.exit_code == 0, result.output
    assert _snapshot(lab_home.home, demo_dir) == before
    assert (demo_dir / "data" / "raw" / "store").is_dir()
    episodes = {p.parent.name for p in (demo_dir / "data" / "raw" / "store").rglob("manifest.json")}
    assert len(earlier) >= 100 and len(episodes) >= 60 and not episodes & earlier
    runs = [json.loads(x) for x in (demo_dir / "artifacts" / "notebook.jsonl").read_text().splitlines()]
    demo = next(r for r in runs if r["command"] == "demo" and r["run_id"] != "an earlier demo")
    assert all(r["parent_run"] == demo["run_id"] for r in runs if r["command"] != "demo")
    # With --json its output is one document.
    payload = json.loads(result.stdout)
    assert set(payload["test_macro_f1"]) == {"minirocket", "minirocket_oracle", "gbt", "gbt_oracle", "cnn",
                                             "cnn_oracle"}
    assert payload["compare"]["a"] == "minirocket" and payload["compare"]["b"] == "gbt"


def test_demo_refuses_a_directory_it_did_not_make(cli, lab_home, tmp_path):
    other = tmp_path / "somelab"
    (other / "data").mkdir(parents=True)
    result = cli("demo", "--episodes", "12", "--dir", str(other))
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {other}: holds files the demo did not make; the demo never touches a "
                                     "lab it did not make: pass --dir with a new directory for the demo lab")
    assert [p.name for p in other.iterdir()] == ["data"]

