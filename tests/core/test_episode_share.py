"""One episode never dominates (issue 32): the windows models fit and choose
on hold at most a bounded share of any one episode."""
import numpy as np
import polars as pl
import pytest

from core.split import capped_rows, episode_cap, episode_shares


def _share(groups: np.ndarray) -> float:
    return np.bincount(groups).max() / len(groups)


def test_an_episode_over_the_bound_is_cut_to_it_and_the_rest_stay_whole():
    # Sixty episodes of 11 windows and one of 1,728 (a day at 0.01 Hz): 72% of the part.
    groups = np.concatenate([np.repeat(np.arange(60), 11), np.full(1728, 60)])
    assert _share(groups) > 0.7
    keep, cap = capped_rows(groups, 0.1)
    kept = groups[keep]
    assert _share(kept) <= 0.1 + 1e-9
    assert (np.bincount(kept)[:60] == 11).all()                 # nothing taken from the others
    assert np.bincount(kept)[60] == cap and cap > 11            # as many as the bound allows
    # Evenly spaced over the episode: its start, middle and end stay.
    long_rows = keep[kept == 60]
    assert long_rows[0] == 660 and long_rows[-1] == len(groups) - 1


def test_nothing_is_cut_when_no_episode_is_over_the_bound():
    groups = np.repeat(np.arange(30), 10)
    keep, cap = capped_rows(groups, 0.1)
    assert cap is None and len(keep) == len(groups)


def test_with_fewer_episodes_than_the_bound_allows_each_gets_an_equal_share():
    groups = np.concatenate([np.repeat(0, 5), np.repeat(1, 50), np.repeat(2, 500)])
    keep, cap = capped_rows(groups, 0.1)
    assert cap == 5 and np.bincount(groups[keep]).tolist() == [5, 5, 5]


@pytest.mark.parametrize("sizes", [[1], [3, 3, 3], [1, 1000], list(range(1, 40)), [7] * 9 + [10_000]])
def test_the_cap_is_the_largest_within_the_bound(sizes):
    sizes = np.array(sizes)
    cap = episode_cap(sizes, 0.1)
    target = max(0.1, 1 / len(sizes))
    if cap is None:
        assert sizes.max() / sizes.sum() <= target + 1e-12
    else:
        assert cap / np.minimum(sizes, cap).sum() <= target + 1e-12
        assert (cap + 1) / np.minimum(sizes, cap + 1).sum() > target


def test_split_reports_the_largest_shares_and_the_cap():
    df = pl.DataFrame({"episode_id": [f"e{i}" for i in range(25)], "n_windows": [10] * 24 + [500],
                       "part": ["train"] * 20 + ["val"] * 2 + ["test"] * 2 + ["train"]})
    shares = episode_shares(df, 0.1)
    top = shares["train"]["largest"][0]
    assert top["episode_id"] == "e24" and top["share"] == pytest.approx(500 / 700)
    assert shares["train"]["episodes_capped"] == 1 and shares["train"]["windows_kept"] < 700
    assert shares["test"]["cap"] is None                     # test is scored as it is
