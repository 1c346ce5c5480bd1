import json


def test_notebook_list_and_show(cli, lab_home):
    assert cli("synth", "-n", "2", "--duration", "60", "-j", "1").exit_code == 0
    listing = cli("notebook", "list")
    assert listing.exit_code == 0 and "synth" in listing.output
    runs = json.loads(cli("--json", "notebook", "list").stdout)
    assert len(runs) == 1 and runs[0]["status"] == "ok"
    shown = cli("notebook", "show", runs[0]["run_id"][4:15])          # any unique part of the id
    assert shown.exit_code == 0 and runs[0]["run_id"] in shown.output
    rec = json.loads(cli("--json", "notebook", "show", "last").stdout)
    assert rec["metrics"]["episodes"] == 2


def test_notebook_show_unknown_run(cli, lab_home):
    cli("synth", "-n", "2", "--duration", "60", "-j", "1")
    result = cli("notebook", "show", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: no run 'nope' in {lab_home.notebook} (see `cis490 notebook list`)"


def test_notebook_list_empty(cli, lab_home):
    lab_home.artifacts.mkdir()             # a lab with no run yet
    result = cli("notebook", "list")
    assert result.exit_code == 0
    assert "No runs recorded" in result.output


def test_a_filter_that_matches_nothing_says_so(cli, lab_home):
    """Regression: `-c trian` said 'No runs recorded ... yet' on a notebook of runs."""
    assert cli("synth", "-n", "2", "--duration", "60", "-j", "1").exit_code == 0
    result = cli("notebook", "list", "-c", "trian")
    assert result.exit_code == 0 and result.stdout.strip() == "No runs match --command trian."


def test_listing_works_on_a_read_only_home(cli, lab_home, monkeypatch):
    import os
    assert cli("synth", "-n", "2", "--duration", "60", "-j", "1").exit_code == 0
    real_access = os.access
    # A read-only lab (a copy on a read-only share); simulated, since root may write anywhere.
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode))
    assert cli("synth", "-n", "2").exit_code == 1                     # work still needs a writable home
    result = cli("notebook", "list")
    assert result.exit_code == 0 and "synth" in result.stdout
    assert cli("notebook", "show", "last").exit_code == 0 and cli("status").exit_code == 0


def test_notebook_diff_shows_only_what_differs(cli, lab_home, tmp_path):
    assert cli("synth", "-n", "24", "--duration", "60", "-j", "1", "--seed", "1").exit_code == 0
    assert cli("synth", "-n", "24", "--duration", "90", "-j", "1", "--seed", "1", "--force").exit_code == 0
    runs = json.loads(cli("--json", "notebook", "list").stdout)
    a, b = runs[0]["run_id"], runs[1]["run_id"]
    diff = json.loads(cli("--json", "notebook", "diff", a, b).stdout)
    keys = {d["key"] for d in diff["differences"]}
    assert "config.duration_s" in keys
    assert {d["key"]: (d["a"], d["b"]) for d in diff["differences"]}["config.duration_s"] == (60.0, 90.0)
    assert not any(k.startswith(("config.seed", "config.episodes", "libraries", "git_commit")) for k in keys)
    everything = json.loads(cli("--json", "notebook", "diff", a, b, "--all").stdout)["differences"]
    assert len(everything) > len(diff["differences"]) and any(d["key"] == "config.seed" for d in everything)
    table = cli("notebook", "diff", a, b).stdout
    assert "config.duration_s" in table and "config.seed" not in table


def test_a_moved_lab_keeps_a_notebook_that_resolves(cli, lab_home, tmp_path):
    import shutil
    assert cli("synth", "-n", "8", "--duration", "60", "-j", "1").exit_code == 0
    assert cli("validate", "-j", "1").exit_code == 0
    rec = json.loads(lab_home.notebook.read_text().splitlines()[-1])
    assert rec["inputs"][0]["path"] == "data/raw/store" and "home" not in rec
    assert rec["outputs"][0]["path"] == "data/processed/validation_v1.parquet"
    assert rec["config"]["store"] == "data/raw/store"
    moved = tmp_path / "moved"
    shutil.copytree(lab_home.home, moved)
    shutil.rmtree(lab_home.data)                      # the old place is gone
    shown = json.loads(cli("--home", str(moved), "--json", "notebook", "show", "last").stdout)
    assert shown["inputs"][0]["path"] == "data/raw/store" and (moved / shown["inputs"][0]["path"]).is_dir()
    rows = {r["artifact"]: r for r in json.loads(cli("--home", str(moved), "--json", "status").stdout)}
    assert rows["store data/raw/store"]["state"] == "fresh" and rows["acceptance index"]["state"] == "fresh"


def test_list_says_how_many_lines_it_skipped(cli, lab_home):
    assert cli("synth", "-n", "2", "--duration", "60", "-j", "1").exit_code == 0
    with open(lab_home.notebook, "a") as f:
        f.write('[1, 2]\n{"run_id": 5}\n{"cut')
    result = cli("notebook", "list")
    assert result.exit_code == 0 and "synth" in result.stdout
    assert "skipped 3 line(s) that are not run records (line 2, 3, 4)" in " ".join(result.stderr.split())


def test_list_rows_keep_to_one_line_at_80_columns(cli, lab_home):
    """Regression (issue 22): at 80 columns `notebook list` rows took 2-5 lines."""
    lab_home.artifacts.mkdir(parents=True)
    records = [
        {"run_id": "20261202-164252-d4ea", "command": "train", "status": "ok",
         "config": {"model": "minirocket", "mode": "realistic", "split": "host"},
         "metrics": {"val_macro_f1": 0.9961}, "timings": {"total_s": 117.2}},
        {"run_id": "20261202-164310-e240", "command": "eval", "status": "ok", "parent_run": "20261202-164252-d4ea",
         "config": {"model": "cnn", "mode": "oracle", "split": "sample"},
         "metrics": {"macro_f1": 0.905, "macro_f1_ci": [0.854, 0.947]}, "timings": {"total_s": 4.25}},
        {"run_id": "20261202-164320-ee78", "command": "validate", "status": "ok", "config": {},
         "metrics": {"episodes": 76660, "status_counts": {"rejected": 12, "errored": 3}}, "timings": {"total_s": 930}},
    ]
    lab_home.notebook.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = cli("notebook", "list")
    assert result.exit_code == 0, result.output
    lines = [x for x in result.stdout.splitlines() if x.strip()]
    assert lines[0].startswith("Lab notebook: 3 of 3 runs")
    rows = lines[2:]
    assert len(rows) == 3 and all(len(x) <= 80 for x in lines), lines
    assert "0.905 [0.854, 0.947]" in rows[1] and "e240" in rows[1] and rows[1].rstrip().endswith("d4ea")
    assert "val 0.996" in rows[0] and " 117" in rows[0] and "minirocket @host" in rows[0]
    shown = cli("notebook", "show", "d4ea").stdout
    assert "117.2" in shown and "117.200" not in shown                 # seconds read as seconds
    assert "cnn_oracle @sample" in rows[1] and "76,660 (15 unusable)" in rows[2] and " 930" in rows[2]


def test_records_missing_fields_of_other_types_or_nested_beyond_reading_never_stop_the_notebook(cli, lab_home):
    """Regression (issue 32): `notebook list/show` died with "unexpected
    KeyError/AttributeError/RecursionError" on such records."""
    import json as _json
    recs = [{"run_id": "20261208-000000-aaaa", "command": "train"},
            {"run_id": "20261208-000001-bbbb", "command": "eval", "status": 5, "metrics": "x", "timings": [],
             "config": None, "inputs": "q", "outputs": [1, {"path": "a"}], "started_at": 7, "argv": "cis490"},
            {"run_id": "20261208-000002-cccc", "command": "split", "config": {"recipe": ["x"]},
             "metrics": {"totals": "z"}, "status": "ok"},
            {"run_id": "20261208-000003-dddd", "command": "compare", "config": {"models": [1, None]}}]
    lines = [_json.dumps(r) for r in recs]
    lines.append('{"run_id": "20261208-000004-eeee", "command": "x", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}")
    lab_home.artifacts.mkdir(parents=True, exist_ok=True)
    lab_home.notebook.write_text("\n".join(lines) + "\n")
    result = cli("notebook", "list")
    assert result.exit_code == 0, result.output
    assert "skipped 1 line(s)" in result.stderr and "(line 5)" in result.stderr
    for run in ("aaaa", "bbbb", "cccc", "dddd"):
        shown = cli("notebook", "show", f"20261208-00000{'abcd'.index(run[0])}-{run}")
        assert shown.exit_code == 0, shown.output
    for a, b in (("aaaa", "bbbb"), ("bbbb", "cccc"), ("cccc", "dddd")):
        diff = cli("notebook", "diff", f"20261208-00000{'abcd'.index(a[0])}-{a}", f"20261208-00000{'abcd'.index(b[0])}-{b}")
        assert diff.exit_code == 0, diff.output
    assert "unexpected" not in result.output
