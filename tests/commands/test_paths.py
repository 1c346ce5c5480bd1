

def test_a_mistyped_home_is_named_not_created(cli, lab_home, tmp_path):
    """Regression (issue 22): `--home lba` said "feature_schema_v1.json not
    found: run `cis490 extract` first" and created an empty folder."""
    typo = tmp_path / "lba"
    for args in (("extract",), ("split", "--recipe", "time"), ("train", "gbt"), ("eval", "gbt"), ("status",),
                 ("notebook", "list"), ("export", "gbt")):
        result = cli("--home", str(typo), *args)
        assert result.exit_code == 1, args
        assert result.stderr.strip() == (f"Error: no lab at {typo} (no data/ or artifacts/): check --home, or make "
                                         "one with `cis490 synth` or `cis490 validate --store DIR`"), args
    assert not typo.exists()
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    result = cli("--home", str(afile), "status")
    assert result.exit_code == 1 and result.stderr.strip() == f"Error: lab home {afile} is a file, not a directory"
    # Commands that make a lab still make its home.
    assert cli("--home", str(typo), "synth", "-n", "2", "--duration", "60", "-j", "1").exit_code == 0
    assert (typo / "data" / "raw" / "store").is_dir()
