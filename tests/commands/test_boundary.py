"""The one error boundary and the global output options."""
import commands.synth


def _boom(*a, **k):
    raise RuntimeError("disk on fire")


def test_unexpected_error_is_one_line_with_a_hint(cli, lab_home, monkeypatch):
    monkeypatch.setattr(commands.synth, "generate_store", _boom)
    result = cli("synth", "-n", "2")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: unexpected RuntimeError: disk on fire "
                                     "(run with --verbose for the traceback)")
    assert "Traceback" not in result.output


def test_verbose_shows_the_traceback(cli, lab_home, monkeypatch):
    monkeypatch.setattr(commands.synth, "generate_store", _boom)
    result = cli("--verbose", "synth", "-n", "2")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "_boom" in result.stderr
    assert result.stderr.strip().endswith("Error: unexpected RuntimeError: disk on fire")


def test_quiet_prints_nothing_but_still_records(cli, lab_home):
    result = cli("--quiet", "synth", "-n", "2", "--duration", "60", "-j", "1")
    assert result.exit_code == 0
    assert result.output == ""
    assert lab_home.notebook.exists()


def test_quiet_still_shows_errors(cli, lab_home):
    result = cli("--quiet", "synth", "-n", "0")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: --episodes must be at least 1, got 0"
