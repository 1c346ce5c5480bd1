"""core/archive.py: a UCR/UEA `.ts` set becomes a lab the whole pipeline runs on."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from core.archive import ArchiveError, archive_lab, class_name, read_ts

TS = """# a comment
@problemName Tiny
@univariate false
@classLabel true a b
@data
1,2,3,4,5,6,7,8,9,10,11,12:0,0,0,0,0,0,0,0,0,0,0,0:a
3,2,?,4,5,6,7,8,9,10:1,1,1,1,1,1,1,1,1,1:b
"""


def test_read_ts_reads_dimensions_labels_and_missing_values():
    ts = read_ts(TS, "Tiny_TRAIN")
    assert ts.classes == ["a", "b"] and ts.labels == ["a", "b"]
    assert ts.channels == 2 and ts.max_length == 12
    assert ts.cases[1].shape == (2, 10) and np.isnan(ts.cases[1][0, 2])


@pytest.mark.parametrize("text,message", [
    ("@data\n1,2,3\n", "line 2: a case needs its values and a label"),
    ("@data\n1,x,3:a\n", "line 2: not a number"),
    ("@data\n1,2:3,4:a\n1,2:b\n", "line 3: 1 dimensions, the first case has 2"),
    ("@classLabel true a\n@data\n1,2:b\n", "label 'b' is not among the header's classes"),
    ("@data\n", "no case after @data"),
])
def test_read_ts_names_the_problem(text, message):
    with pytest.raises(ArchiveError, match=message):
        read_ts(text, "Bad_TRAIN")


def _cases(n, length, rng, shift):
    t = np.arange(length)
    return [np.stack([np.sin(t / 3 + rng.uniform(0, 6)) + shift, rng.normal(0, 1, length)])
            for _ in range(n)]


def test_archive_lab_runs_validate_extract_and_split_with_the_archive_split(tmp_path):
    from core.archive import TsSet
    rng = np.random.default_rng(0)
    train = TsSet("Toy", _cases(6, 20, rng, 0) + _cases(6, 20, rng, 2), ["x"] * 6 + ["y"] * 6, ["x", "y"])
    short = [c[:, :14] for c in _cases(3, 20, rng, 0)]     # unequal lengths: the tail is missing
    test = TsSet("Toy", short + _cases(3, 20, rng, 2), ["x"] * 3 + ["y"] * 3, ["x", "y"])
    lab = archive_lab({"train": train, "test": test}, tmp_path)
    assert lab.steps == 20 and lab.registry.phases == (class_name("x"), class_name("y"))
    windows = pl.read_parquet(lab.processed / "splits" / "host.parquet")
    assert windows.group_by("part").len().sort("part").to_dicts() == [
        {"part": "test", "len": 6}, {"part": "train", "len": 10}, {"part": "val", "len": 2}]
    from core.train import load_split_data
    data = load_split_data(lab.processed, "host", "tensor")
    test_part = data.parts["test"]
    values, masks = test_part.store.rows(np.sort(test_part.rows))
    assert values.shape[1:] == (2, 20)
    # Each case is one window holding its values; a short case's tail is missing, not zero-filled data.
    # (extract carries a gauge's last value one step, as for any sensor that stops)
    present = sorted((masks.sum(axis=(1, 2)) // 2).tolist())
    assert present == [15, 15, 15, 20, 20, 20]
    first = np.sort(test_part.rows)[0]
    assert np.allclose(test_part.store.rows(np.array([first]))[0][0, 0, :14], short[0][0], atol=1e-5)


def test_archive_lab_refuses_parts_with_different_dimensions(tmp_path):
    from core.archive import TsSet
    one = TsSet("A", [np.zeros((1, 12))], ["a"], ["a"])
    two = TsSet("A", [np.zeros((2, 12))], ["a"], ["a"])
    with pytest.raises(ArchiveError, match="2 dimensions, A has 1"):
        archive_lab({"train": one, "test": two}, tmp_path)
