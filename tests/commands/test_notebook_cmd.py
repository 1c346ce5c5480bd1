import json


def test_notebook_list_and_show(cli, lab_home):
    assert cli("synth", "-n", "2", "--duration", "60", "-j", "1").exit_code == 0
    listing = cli("notebook", "list")
    assert listing.exit_code == 0 and "synth" in listing.output
    runs = json.loads(cli("--json", "notebook", "list").stdout)
    assert len(runs) == 1 and runs[0]["status"] == "ok"
    shown = cli("notebook", "show", runs[0]["run_id"][:12])
    assert shown.exit_code == 0 and runs[0]["run_id"] in shown.output
    rec = json.loads(cli("--json", "notebook", "show", "last").stdout)
    assert rec["metrics"]["episodes"] == 2


def test_notebook_show_unknown_run(cli, lab_home):
    cli("synth", "-n", "2", "--duration", "60", "-j", "1")
    result = cli("notebook", "show", "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: no run 'nope' in {lab_home.notebook} (see `cis490 notebook list`)"


def test_notebook_list_empty(cli, lab_home):
    result = cli("notebook", "list")
    assert result.exit_code == 0
    assert "No runs recorded" in result.output
