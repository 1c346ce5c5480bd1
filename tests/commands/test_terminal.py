"""The one output module: the progress line keeps what matters at 80 columns."""
import io
import re

from rich.console import Console

from cis490cli.terminal import Terminal


def _render(monkeypatch, updates, unit="epoch", total=30, everything=False, description="transformer oracle"):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    monkeypatch.setattr(Terminal, "err", property(lambda self: console))
    with Terminal().progress(description, total=total, unit=unit) as bar:
        for args, fields in updates:
            bar(*args, **fields)
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", x) for x in re.split(r"[\r\n]", buf.getvalue())]
    lines = [x for x in lines if x.strip()]
    return lines if everything else lines[-1]


def test_epoch_and_eta_stay_at_80_columns(monkeypatch):
    lines = _render(monkeypatch, [((3, 30), {"loss": "0.123", "f1": "0.91", "best": "0.93@2",
                                             "note": "a long note " * 10})], everything=True)
    assert all(len(x) <= 80 for x in lines)
    bar = [x for x in lines if "epoch 3/30" in x][-1]
    assert "eta" in bar and "transformer oracle" in bar


def test_a_note_that_does_not_fit_beside_the_bar_gets_its_own_line_whole(monkeypatch):
    """Regression (issue 22): at 80 columns train's last line read
    "stopped early at round 236 (best 211" - the note was cut."""
    note = "stopped early at round 236 (best 211)"
    lines = _render(monkeypatch, [((100, 400), {"val_loss": "0.027"}), ((236, 236), {"note": note})],
                    unit="round", total=400, everything=True, description="minirocket realistic")
    assert all(len(x) <= 80 for x in lines)
    assert any("round 236/236" in x for x in lines) and lines[-1].strip() == note


def test_a_finished_bar_says_why_it_stopped(monkeypatch):
    line = _render(monkeypatch, [((9, 30), {}), ((9, 9), {"note": "stopped early at epoch 9 (best 4)"})])
    assert "epoch 9/9" in line and "stopped early at epoch 9 (best 4)" in line


def test_rates_read_as_figures(monkeypatch):
    line = _render(monkeypatch, [((120, 2000), {"rate": "2.5 MB/s"})], unit="episodes", total=2000)
    assert "episodes 120/2,000" in line and "2.5 MB/s" in line and "rate" not in line


def test_prose_wraps_at_spaces_and_commands_stay_whole(monkeypatch, capsys):
    """Regression (issue 22): long lines were left to the terminal, which broke
    them mid-word at 80 columns ("more --resampl" / "es would")."""
    monkeypatch.setenv("COLUMNS", "80")
    words = ("every pair's p is the smallest 1000 resamples allow (2/(B+1) = 0.002): no resample reached a gap "
             "of 0, so they cannot be told apart by p; more --resamples would.")
    term = Terminal()
    term.print(words)
    out = capsys.readouterr().out
    assert all(len(x) <= 80 for x in out.splitlines()) and len(out.splitlines()) == 3
    assert " ".join(out.split()) == words                     # every word whole, in order
    command = "Serve one: cis490 serve --dashboard --replay all --model minirocket --split sample " + "x" * 20
    term.print(command, wrap=False)
    assert capsys.readouterr().out.strip() == command
