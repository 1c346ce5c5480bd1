import json

import pytest

from core.errors import NotebookError
from core.notebook import get_record, inputs_changed, last_ok_run, read_notebook, record_run


def test_ok_run_is_recorded_with_inputs_and_outputs(lab_home, tiny_store):
    out = lab_home.home / "result.txt"
    with record_run(lab_home, "test", {"a": 1}, argv=["cis490", "test"]) as run:
        run.add_input(tiny_store, "store")
        out.write_text("hello")
        run.add_output(out, "result")
        run.metrics["answer"] = 42
    rec = get_record(lab_home, run.run_id)
    assert rec["status"] == "ok" and rec["error"] is None
    assert rec["config"] == {"a": 1} and len(rec["config_hash"]) == 64
    assert rec["inputs"][0]["kind"] == "store" and rec["inputs"][0]["episodes"] > 0
    assert rec["outputs"][0]["bytes"] == 5
    assert rec["metrics"] == {"answer": 42}
    assert rec["libraries"]["numpy"]
    assert "python" in rec["platform"]
    assert {"git_commit", "git_dirty", "started_at", "ended_at", "argv", "timings"} <= set(rec)
    assert json.loads((lab_home.runs / run.run_id / "record.json").read_text()) == rec


def test_failing_run_is_recorded_as_failed(lab_home):
    with pytest.raises(ValueError):
        with record_run(lab_home, "test", {}) as run:
            raise ValueError("boom")
    rec = get_record(lab_home, run.run_id)
    assert rec["status"] == "failed"
    assert rec["error"] == "ValueError: boom"
    assert last_ok_run(lab_home, "test") is None


def test_nested_runs_link_to_their_parent(lab_home):
    with record_run(lab_home, "outer", {}) as outer:
        with record_run(lab_home, "inner", {}) as inner:
            pass
    assert get_record(lab_home, inner.run_id)["parent_run"] == outer.run_id
    assert get_record(lab_home, outer.run_id)["parent_run"] is None


def test_appends_keep_every_record_and_skip_bad_lines(lab_home):
    for i in range(3):
        with record_run(lab_home, "test", {"i": i}):
            pass
    with open(lab_home.notebook, "a") as f:
        f.write("{torn line\n")
    listing = read_notebook(lab_home)
    assert [r["config"]["i"] for r in listing.records] == [0, 1, 2]
    assert listing.skipped_lines == [4]


def test_inputs_changed(lab_home, tmp_path):
    f = tmp_path / "x"
    f.write_text("1")
    with record_run(lab_home, "stage", {}) as run:
        run.add_input(f)
    prev = last_ok_run(lab_home, "stage")
    from core.notebook import describe_path
    assert inputs_changed(prev, [describe_path(f)]) == []
    f.write_text("2")
    assert inputs_changed(prev, [describe_path(f)]) == [str(f)]


def test_unknown_run_id(lab_home):
    with pytest.raises(NotebookError, match="no runs yet"):
        get_record(lab_home, "abc")
    with record_run(lab_home, "t", {}):
        pass
    with pytest.raises(NotebookError, match="no run 'zzz'"):
        get_record(lab_home, "zzz")


def test_a_line_cut_short_never_swallows_the_next_record(lab_home):
    """Regression: a crash or a full disk left a line without its newline, and
    the next run's record was glued onto it and lost."""
    with record_run(lab_home, "test", {"i": 0}):
        pass
    with open(lab_home.notebook, "a") as f:
        f.write('{"run_id": "cut sho')                       # no newline: what a crash leaves
    with record_run(lab_home, "test", {"i": 1}):
        pass
    listing = read_notebook(lab_home)
    assert [r["config"]["i"] for r in listing.records] == [0, 1] and listing.skipped_lines == [2]


def test_json_that_is_not_a_run_record_is_skipped_not_fatal(lab_home):
    """Regression: `[1,2]` or `{"run_id": 5}` on a line made every notebook command fail (TypeError)."""
    with record_run(lab_home, "test", {"i": 0}):
        pass
    with open(lab_home.notebook, "a") as f:
        f.write('[1, 2]\n{"run_id": 5}\n"text"\n')
    with record_run(lab_home, "test", {"i": 1}):
        pass
    listing = read_notebook(lab_home)
    assert [r["config"]["i"] for r in listing.records] == [0, 1] and listing.skipped_lines == [2, 3, 4]
    assert get_record(lab_home, "last")["config"]["i"] == 1
    assert last_ok_run(lab_home, "test")["config"]["i"] == 1


@pytest.mark.parametrize("how", ["fails", "short"])
def test_a_full_disk_leaves_the_notebook_as_it_was(lab_home, monkeypatch, how):
    """An append that cannot write its whole line is cut back off, and says so in one line."""
    import errno
    import os

    from core.notebook import append_record
    with record_run(lab_home, "test", {"i": 0}):
        pass
    before = lab_home.notebook.read_bytes()
    real = os.write

    def full(fd, data):
        if how == "fails":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data[:7])                              # the disk took 7 bytes
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(NotebookError, match=r"notebook.jsonl: could not append the run's record \(No space left "
                                            r"on device.*\); the notebook is as it was"):
        append_record(lab_home, {"run_id": "r2", "command": "test"})
    monkeypatch.setattr(os, "write", real)
    assert lab_home.notebook.read_bytes() == before


def test_a_token_is_never_recorded(lab_home):
    """Regression: `--token` values were stored in plain text in notebook.jsonl and runs/*/record.json."""
    argv = ["cis490", "publish", "metrics", "--to", "http://pi:8447", "--token", "s3cret-1", "--token=s3cret-2"]
    with record_run(lab_home, "publish", {}, argv=argv) as run:
        pass
    record = get_record(lab_home, run.run_id)
    assert record["argv"] == ["cis490", "publish", "metrics", "--to", "http://pi:8447", "--token", "***",
                              "--token=***"]
    for path in (lab_home.notebook, lab_home.runs / run.run_id / "record.json"):
        assert "s3cret" not in path.read_text()


def test_library_versions_are_of_what_is_installed(monkeypatch):
    """Regression (issue 22): the notebook recorded `xgboost: null` (the lab
    installs xgboost-cpu) and no onnxruntime at all."""
    import importlib.metadata as md

    from core.notebook import library_versions
    real = md.version

    def version(dist):
        if dist == "xgboost":
            raise md.PackageNotFoundError(dist)
        return {"xgboost-cpu": "3.2.0", "onnxruntime": "1.27.1"}.get(dist) or real(dist)
    monkeypatch.setattr(md, "version", version)
    got = library_versions()
    assert got["xgboost"] == "3.2.0 (xgboost-cpu)" and got["onnxruntime"] == "1.27.1"
    assert got["numpy"] == real("numpy")


def test_a_listing_names_a_split_by_its_name_and_a_rotation_by_its_folds():
    """Regression (issue 35): `notebook list` showed a named split as `split
    host` and a rotation as `split host` with an empty result."""
    from core.notebook import run_headline, run_subject
    named = {"command": "split", "config": {"recipe": "host", "name": "host-nuc"},
             "metrics": {"totals": {p: {"episodes": n} for p, n in (("train", 30), ("val", 8), ("test", 20))}}}
    rotation = {"command": "split", "config": {"recipe": "host", "rotate": True},
                "metrics": {"folds": ["host-out-a", "host-out-b", "host-out-c"]}}
    assert (run_subject(named), run_headline(named)) == ("host-nuc", "30/8/20 episodes")
    assert (run_subject(rotation), run_headline(rotation)) == ("host-rotation", "3 folds")
    val = {"command": "eval", "config": {"model": "minirocket", "mode": "realistic", "split": "host", "part": "val"}}
    assert run_subject(val) == "minirocket @host/val"
    loo = {"command": "train", "metrics": {"val_macro_f1": 0.99, "score_on": "loo"}}
    assert run_headline(loo) == "LOO 0.990"
