import json

from core.store import MANIFEST


def test_synth_writes_store_and_truth(cli, lab_home):
    result = cli("--json", "synth", "-n", "6", "--duration", "60", "--seed", "1", "-j", "1", "--fault-rate", "0")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["episodes"] == 6
    store = lab_home.default_store
    assert len(list(store.glob(f"*/*/{MANIFEST}"))) == 6
    assert (store.parent / "store.truth.jsonl").exists()


def test_synth_zero_episodes_is_a_usage_error(cli, lab_home):
    result = cli("synth", "--episodes", "0")
    assert result.exit_code == 2
    assert "Invalid value for '--episodes' / '-n': Input should be greater than or equal to 1" in result.stderr
    assert not lab_home.default_store.exists()


def test_synth_refuses_existing_store_without_force(cli, lab_home):
    assert cli("synth", "-n", "2", "--duration", "60", "-j", "1").exit_code == 0
    result = cli("synth", "-n", "2", "--duration", "60", "-j", "1")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {lab_home.default_store}: already exists and is not empty "
                                     "(pass --force to replace it)")
    assert cli("synth", "-n", "3", "--duration", "60", "-j", "1", "--force").exit_code == 0
    assert len(list(lab_home.default_store.glob(f"*/*/{MANIFEST}"))) == 3


def test_missing_home_is_created(cli, tmp_path):
    missing = tmp_path / "nope" / "lab"
    result = cli("--home", str(missing), "synth", "-n", "2", "--duration", "60", "-j", "1")
    assert result.exit_code == 0, result.output
    assert (missing / "data" / "raw" / "store").is_dir() and (missing / "artifacts" / "notebook.jsonl").exists()


def test_home_that_cannot_be_created_is_one_line(cli, tmp_path):
    (tmp_path / "file").write_text("x")
    result = cli("--home", str(tmp_path / "file" / "lab"), "synth", "-n", "2")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: lab home {tmp_path / 'file' / 'lab'} does not exist and cannot be "
                                     "created (Not a directory)")


def test_unwritable_home_is_a_clear_error(cli, tmp_path, monkeypatch):
    # Tests may run as root, who can write anywhere: make the access check say no.
    import core.paths
    monkeypatch.setattr(core.paths.os, "access", lambda p, mode: False)
    ro = tmp_path / "ro"
    ro.mkdir()
    result = cli("--home", str(ro), "synth", "-n", "2")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: lab home {ro} is not writable"
    assert not (ro / "data").exists()


def test_failed_run_is_recorded(cli, lab_home):
    cli("synth", "-n", "2", "--duration", "60", "-j", "1")
    cli("synth", "-n", "2", "--duration", "60", "-j", "1")  # refused: exists
    lines = [json.loads(x) for x in lab_home.notebook.read_text().splitlines()]
    assert [r["status"] for r in lines] == ["ok", "failed"]
    assert "already exists" in lines[1]["error"]


def test_synth_help_says_a_fault_may_add_a_re_sent_copy(cli):
    """Regression (issue 35): `synth -n 200` wrote 201 episode folders without a word why."""
    out = " ".join(cli("synth", "--help").output.split())
    assert "copy of one (so -n 200 can write 201)" in out
