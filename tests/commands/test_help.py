"""Meta-test: every command and group has help text and --help works."""
import typer.main

from cis490cli.app import app


def _walk(cmd, path=()):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _walk(sub, path + (name,))


def test_every_command_has_help(cli):
    root = typer.main.get_command(app)
    seen = 0
    for path, cmd in _walk(root):
        if path:
            assert (cmd.help or "").strip(), f"cis490 {' '.join(path)} has no help text"
        result = cli(*path, "--help")
        assert result.exit_code == 0, path
        assert "Usage:" in result.output
        seen += 1
    assert seen >= 6


def test_no_arguments_shows_help(cli):
    result = cli()
    assert "synth" in result.output and "notebook" in result.output


def test_unknown_option_is_a_usage_error(cli):
    result = cli("synth", "--bogus")
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_the_cli_and_the_dashboard_load_no_heavy_library():
    """`cis490 --help` stays instant and `serve` small on a Pi: no torch,
    scikit-learn, XGBoost, matplotlib, polars or pyarrow until a command needs them."""
    import subprocess
    import sys
    code = ("import sys, cis490cli.app, core.dashboard.app, core.dashboard.server, commands.serve; "
            "print(sorted(m for m in ('torch', 'sklearn', 'xgboost', 'matplotlib', 'polars', 'pyarrow') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_global_options_after_the_subcommand(cli, lab_home, tmp_path):
    from cis490cli.app import hoist_global_options
    assert hoist_global_options(["compare", "gru", "gbt", "--json"]) == ["--json", "compare", "gru", "gbt"]
    assert hoist_global_options(["status", "--home", "/x", "-q"]) == ["--home", "/x", "-q", "status"]
    assert hoist_global_options(["serve", "--", "--json"]) == ["serve", "--", "--json"]
    other = tmp_path / "other"
    result = cli("synth", "-n", "2", "--duration", "60", "-j", "1", "--json", "--home", str(other))
    assert result.exit_code == 0, result.output
    import json
    assert json.loads(result.stdout)["episodes"] == 2 and (other / "data" / "raw" / "store").is_dir()
    lab_home.artifacts.mkdir()
    result = cli("notebook", "list", "--quiet")
    assert result.exit_code == 0 and result.output == ""


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("cis490 0.")
