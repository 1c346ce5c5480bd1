"""The one error boundary and the global output options."""
import core.synth


def _boom(*a, **k):
    raise RuntimeError("disk on fire")


def test_unexpected_error_is_one_line_with_a_hint(cli, lab_home, monkeypatch):
    monkeypatch.setattr(core.synth, "generate_store", _boom)
    result = cli("synth", "-n", "2")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: unexpected RuntimeError: disk on fire "
                                     "(run with --verbose for the traceback)")
    assert "Traceback" not in result.output


def test_verbose_shows_the_traceback(cli, lab_home, monkeypatch):
    monkeypatch.setattr(core.synth, "generate_store", _boom)
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
    taken = lab_home.home / "taken"
    (taken / "x").mkdir(parents=True)
    result = cli("--quiet", "synth", "-n", "2", "--out", str(taken))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {taken}: already exists and is not empty (pass --force to replace it)"


def test_ranges_are_usage_errors_and_help_shows_them(cli, lab_home):
    """Regression (issue 22): `extract --window 0` exited 1 with a dict dump,
    `train --lr 0` exited 1 while its help said x>=0.0, and `synth --duration`
    showed no minimum in its help."""
    import commands.synth
    import core.synth
    assert commands.synth.MIN_DURATION_S == core.synth.MIN_DURATION_S
    assert commands.synth.MAX_DRIFT == core.synth.MAX_DRIFT
    for args in (("synth", "--drift", "3.5"), ("extract", "--window", "0"), ("extract", "--hop", "-5"), ("extract", "--step", "0"),
                 ("train", "gbt", "--lr", "0"), ("synth", "--duration", "0"), ("synth", "--hosts", "65")):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Invalid value" in result.output and "step_s" not in result.output, args
    helps = {cmd: " ".join(cli(cmd, "--help").output.split()) for cmd in ("extract", "train", "synth")}
    assert "x>=40" in helps["synth"] and "(x>0, a whole number of steps)" in helps["extract"]
    assert "Peak learning rate (x>0)" in helps["train"] and "x>=0.0" not in helps["train"].split("--lr")[1][:80]
    assert not lab_home.notebook.exists()


def test_out_of_range_options_are_usage_errors(cli, lab_home):
    for args in (("synth", "-n", "0"), ("synth", "-j", "-1"), ("synth", "--fault-rate", "1.5"),
                 ("train", "gbt", "--batch-size", "0"), ("train", "gbt", "--batch-size", "-5"),
                 ("train", "gbt", "--batch-size", "1"), ("train", "gbt", "--epochs", "0"),
                 ("notebook", "list", "--last", "-1"), ("split", "--recipe", "sample", "--val-frac", "1.5"),
                 ("eval", "gbt", "--resamples", "5"), ("eval", "gbt", "--unit", "host"),
                 ("eval", "gbt", "--part", "train"), ("eval", "gbt", "--mode", "both"),
                 ("split", "--recipe", "sample", "--train-hosts", "lab-x"),
                 ("split", "--recipe", "host", "--train-hosts", "lab-x", "--test-frac", "0.3")):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and "unexpected" not in result.output, args
    assert not lab_home.notebook.exists()


def test_serve_and_publish_name_an_unknown_model_as_train_does(cli, lab_home, monkeypatch):
    """Regression (issue 22): `--model gbtt` suggested `cis490 train gbtt`; on
    the base install, `--engine checkpoint` suggested `cis490 extract`."""
    from core.models import MODELS
    for cmd in (("publish", "replay", "all", "--to", "http://127.0.0.1:9"), ("serve", "--dashboard", "--replay", "all")):
        result = cli(*cmd, "--model", "gbtt")
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == f"Error: unknown model 'gbtt' (models: {', '.join(MODELS)})"
    assert cli("train", "gbtt").stderr.strip() == f"Error: unknown model 'gbtt' (models: {', '.join(MODELS)})"
    lab_home.artifacts.mkdir()             # a lab (a Pi's, say) with no bundle for gbt
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    result = cli("publish", "replay", "all", "--to", "http://127.0.0.1:9", "--model", "gbt", "--engine", "checkpoint")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith("Error: a checkpoint needs the lab extra (pip install 'cis490[lab]')")
    assert "cis490 export gbt --split host --mode realistic" in line and "cis490 extract" not in line
