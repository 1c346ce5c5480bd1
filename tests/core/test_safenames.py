"""Names from a store made safe where they land (issue 32): a file or split
name, a CSV cell, a line of text."""
import itertools

import polars as pl
import pytest

from core.rotation import fold_name
from core.safenames import MAX_COMPONENT, csv_cell, csv_safe, file_component, shown
from core.splitparams import SPLIT_NAME

HOSTILE = ["..", ".", "", "_", "../../evil", "/etc/passwd", "a\0b", "x" * 4000, "x" * 4001, "é", "\ud800",
           "_2E", ".hidden", "a/b", "a_2Fb", "C:\\x", "=cmd|' /C calc'!A0", "-", "~", "x" * 77 + "_h0"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_component_is_one_plain_file_name(name):
    got = file_component(name)
    assert got and "/" not in got and "\\" not in got and "\0" not in got
    assert got not in (".", "..") and not got.startswith(".")
    assert len(got) <= MAX_COMPONENT
    assert all(c.isascii() and (c.isalnum() or c in "-._") for c in got)


def test_distinct_names_give_distinct_components():
    names = HOSTILE + [a + b for a, b in itertools.product(["a", "_", ".", "%", "/"], repeat=2)]
    got = [file_component(n) for n in names]
    assert len(set(got)) == len(set(names))


def test_a_long_name_is_cut_and_ends_in_its_digest():
    a, b = "h" * 4000, "h" * 3999 + "i"
    assert file_component(a) != file_component(b)
    assert file_component(a).startswith("h" * 50) and "_h" in file_component(a)


@pytest.mark.parametrize("host", ["../../evil", "x" * 4000, "a\0b", "lab-pi5", "_"])
def test_a_rotation_fold_is_a_valid_split_name_whatever_the_host(host):
    name = fold_name(host)
    assert SPLIT_NAME.fullmatch(name), name
    assert fold_name("lab-pi5") == "host-out-lab-pi5"        # a plain host keeps its name


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised():
    frame = pl.DataFrame({"episode_id": ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "ok", None],
                          "n": list(range(8))})
    got = csv_safe(frame)
    assert got["episode_id"].to_list() == ["'=HYPERLINK(\"x\")", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "ok",
                                           None]
    assert got["n"].to_list() == frame["n"].to_list()
    assert [csv_cell(v) for v in frame["episode_id"]] == got["episode_id"].to_list()


def test_a_name_shown_is_one_bounded_line():
    assert shown("a\nb\0c") == "a\\nb\\x00c"
    assert len(shown("x" * 4000)) == 80 and shown("x" * 4000).endswith("…")


def test_predict_with_no_window_says_why_it_drew_no_figure(tmp_path):
    """Regression (issue 32): predict with 0 windows blamed a missing matplotlib."""
    from core.predict import _figures
    figures, note = _figures(pl.DataFrame(), pl.DataFrame(), None, None, tmp_path)
    assert figures == [] and note == "no window with data to draw"
