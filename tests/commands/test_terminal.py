"""The one output module: the progress line keeps what matters at 80 columns."""
import io
import re

from rich.console import Console

from cis490cli.terminal import Terminal


def _render(monkeypatch, updates, unit="epoch", total=30):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    monkeypatch.setattr(Terminal, "err", property(lambda self: console))
    with Terminal().progress("transformer oracle", total=total, unit=unit) as bar:
        for args, fields in updates:
            bar(*args, **fields)
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", x) for x in re.split(r"[\r\n]", buf.getvalue())]
    return [x for x in lines if x.strip()][-1]


def test_epoch_and_eta_stay_at_80_columns(monkeypatch):
    line = _render(monkeypatch, [((3, 30), {"loss": "0.123", "f1": "0.91", "best": "0.93@2",
                                            "note": "a long note " * 10})])
    assert len(line) <= 80 and "epoch 3/30" in line and "eta" in line and "transformer oracle" in line


def test_a_finished_bar_says_why_it_stopped(monkeypatch):
    line = _render(monkeypatch, [((9, 30), {}), ((9, 9), {"note": "stopped early at epoch 9 (best 4)"})])
    assert "epoch 9/9" in line and "stopped early at epoch 9 (best 4)" in line


def test_rates_read_as_figures(monkeypatch):
    line = _render(monkeypatch, [((120, 2000), {"rate": "2.5 MB/s"})], unit="episodes", total=2000)
    assert "episodes 120/2,000" in line and "2.5 MB/s" in line and "rate" not in line
