

def test_a_mistyped_home_is_named_not_created(cli, lab_home, tmp_path):
    """Regression (issue 22): `--home lba` said "feature_schema_v1.json not
    found: run `cis490 extract` first" and created an empty folder."""
    typo = tmp_path / "lba"
    for args in (("extract",), ("split", "--recipe", "time"), ("train", "gbt"), ("eval", "gbt"), ("status",),
                 ("notebook", "list"), ("export", "gbt")):
        result = cli("--home", str(typo), *args)
        assert result.exit_code == 1, args
        assert result.stderr.strip() == (f"Error: no lab at {typo} (no data/ or artifacts/): check --home, or make "
                                         f"one with `cis490 --home {typo} synth` or `cis490 --home {typo} validate "
                                         "--store DIR`"), args
    assert not typo.exists()
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    result = cli("--home", str(afile), "status")
    assert result.exit_code == 1 and result.stderr.strip() == f"Error: lab home {afile} is a file, not a directory"
    # Commands that make a lab still make its home.
    assert cli("--home", str(typo), "synth", "-n", "2", "--duration", "60", "-j", "1").exit_code == 0
    assert (typo / "data" / "raw" / "store").is_dir()


def test_hints_name_the_home_the_command_ran_with_and_argv_pastes_back(cli, lab_home, tmp_path):
    """Regression (issue 22): printed hints said `cis490 extract` for a lab
    given with --home (run elsewhere, it acts on another lab), and the
    notebook recorded `--home .`."""
    import json

    from cis490cli.terminal import with_home
    assert with_home("run `cis490 extract` first", "/l") == "run `cis490 --home /l extract` first"
    assert with_home("pip install 'cis490[lab]'; cis490 --home /m status", "/l") == \
        "pip install 'cis490[lab]'; cis490 --home /m status"
    assert with_home("run `cis490 extract` first", None) == "run `cis490 extract` first"
    other = tmp_path / "other lab"
    (other / "data").mkdir(parents=True)
    result = cli("--home", str(other), "extract")
    assert result.exit_code == 1
    assert f"run `cis490 --home '{other}' validate` first" in result.stderr
    rows = json.loads(cli("--json", "--home", str(other), "status").stdout)
    assert {r["command"] for r in rows if r["command"]} >= {f"cis490 --home '{other}' validate"}
    # Run from the lab itself, hints stay short; a recorded argv is absolute.
    lab_home.data.mkdir()
    assert "run `cis490 validate` first" in cli("--home", ".", "extract").stderr
    from cis490cli.state import pasteable_argv
    assert pasteable_argv(["cis490", "--home", ".", "status"], lab_home.home) == \
        ["cis490", "--home", str(lab_home.home), "status"]
    assert pasteable_argv(["cis490", "status", "--home=."], lab_home.home) == \
        ["cis490", "status", f"--home={lab_home.home}"]
