"""What the figures say, read from their SVG text (issue 35: a clipped forest
title, p-values in mixed precision on the zero line, no transductive mark;
per-host labels past the axes, per-profile bars without their values; a
reliability diagram without its bins' counts; val drawn as if held out)."""
import re

import pytest

from core.evaluate.figures import forest_figure, per_host_figure, per_profile_figure
from core.evaluate.figures_sections import calibration_figure


@pytest.fixture(autouse=True)
def svg(monkeypatch):
    monkeypatch.setenv("CIS490_FIGURE_FORMATS", "svg")


def _text(path) -> str:
    """The figure's text, as SVG keeps it (svg.fonttype none: one <text> per string)."""
    import html
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", t))
                    for t in re.findall(r"<text[^>]*>.*?</text>", path.read_text(), re.S))


REPORT = {"model": "gbt", "mode": "realistic", "split": "host", "part": "test", "unit": "episode", "resamples": 200,
          "split_identity": {"recipe": "host", "params": {"train_hosts": ["lab-thinkpad", "lab-desktop"]}},
          "per_host": [{"host": "lab-nuc", "macro_f1": 0.955, "macro_f1_ci": [0.894, 0.99], "episodes": 24}],
          "per_profile": [{"profile": "rat", "macro_f1": 0.877, "macro_f1_ci": [0.683, 0.993], "episodes": 7}],
          "untested_profiles": ["dropper"]}


def test_bars_carry_their_figures_and_untested_profiles_say_so(tmp_path):
    (path,) = per_profile_figure(REPORT, tmp_path / "per_profile")
    text = _text(path)
    assert "0.877 [0.683, 0.993], 7 episodes" in text and "untested: not in any average" in text
    (path,) = per_host_figure(REPORT, tmp_path / "per_host")
    assert "0.955 [0.894, 0.990], 24 episodes" in _text(path)


def test_a_part_that_is_not_held_out_says_so_in_the_title(tmp_path):
    val = {**REPORT, "part": "val", "part_note": "in-sample: the model was fitted on these windows"}
    (path,) = per_host_figure(val, tmp_path / "per_host")
    assert "host/val" in _text(path) and "(in-sample)" in _text(path)


def test_the_forest_plot_marks_transductive_models_and_writes_p_one_way(tmp_path):
    rep = {"pairs": [{"a": "gbt", "b": "knn_semi", "gap": 0.03, "gap_ci": [-0.01, 0.07], "winner": "n.s.",
                      "p_value": 0.1234, "p_holm": 0.2468},
                     {"a": "gbt", "b": "minirocket", "gap": -0.12, "gap_ci": [-0.18, -0.06], "winner": "minirocket",
                      "p_value": 0.0004, "p_holm": 0.0008}],
           "unit": "episode", "paired": True, "resamples": 1000, "split": "host", "part": "test", "windows": 1563,
           "episodes": 44, "alpha": 0.05, "transductive": ["knn_semi"],
           "split_identity": {"params": {"train_hosts": ["lab-thinkpad", "lab-desktop", "lab-nuc"]}}}
    (path,) = forest_figure(rep, tmp_path / "forest")
    text = _text(path)
    assert "gbt - knn_semi*" in text and "* transductive" in text
    assert "p Holm 0.247" in text and "p Holm < 0.001" in text and "0.0008" not in text
    assert "lab-nuc]" in text                 # the title wraps at spaces, never inside a host's name


def test_the_reliability_diagram_counts_each_bin(tmp_path):
    bins = [{"lo": 0.4, "hi": 0.5, "windows": 2, "confidence": 0.45, "accuracy": 1.0},
            {"lo": 0.9, "hi": 1.0, "windows": 1200, "confidence": 0.97, "accuracy": 0.96}]
    cal = {"temperature": 0.87, "temperature_source": "fitted on val when trained, applied live",
           "before": {"ece": 0.03, "bins": 15, "reliability": bins}, "after": {"ece": 0.02, "bins": 15, "reliability": bins},
           "abstention": {"by_confidence": {"aurc": 0.01, "curve": [[0.5, 1.0], [1.0, 0.96]]},
                          "by_trust": {"aurc": 0.02, "curve": [[0.5, 0.99], [1.0, 0.96]]}},
           "conformal": {"alpha": 0.1, "coverage": 0.91, "mean_set_size": 1.0}}
    (path,) = calibration_figure({**REPORT, "calibration": cal}, tmp_path / "calibration")
    text = _text(path)
    assert "point area: windows in the bin" in text and "windows" in text and "1,000" in text
    assert "mathdefault" not in text
