"""Relative paths on the command line resolve against the shell's directory."""
import json


def test_relative_options_resolve_against_the_shell_not_the_home(cli, lab_home, tmp_path, monkeypatch):
    """Regression: --store resolved against the lab home but --channels against the shell."""
    shell = tmp_path / "shell"
    shell.mkdir()
    monkeypatch.chdir(shell)
    home = str(lab_home.home)
    assert cli("--home", home, "synth", "-n", "4", "--duration", "60", "-j", "1", "--out", "mystore").exit_code == 0
    assert (shell / "mystore").is_dir() and not (lab_home.home / "mystore").exists()
    from core.registry import DEFAULT_REGISTRY
    (shell / "reg.toml").write_text(DEFAULT_REGISTRY.read_text())
    result = cli("--home", home, "--json", "validate", "-j", "1", "--store", "mystore", "--channels", "reg.toml",
                 "--out", "idx.parquet")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["store"] == str(shell / "mystore")
    assert (shell / "idx.parquet").exists() and not (lab_home.home / "idx.parquet").exists()
