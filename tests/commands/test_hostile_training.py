"""No value and no episode poisons a lab (issue 32), through the commands:
values beyond float32 and an episode at the plausibility limits in the train
part, then split, train and eval as a researcher runs them."""
import json
import shutil

import numpy as np
import polars as pl
import pytest

from core.extract import read_features
from core.train import load_split_data
from tests.core.test_hostile_values import poison
from tests.hostile import limit_episode
from tests.labs import HOST_TRAIN

pytestmark = pytest.mark.slow


@pytest.fixture
def poisoned(cli, lab_home, extracted_lab):
    paths, _ = extracted_lab
    shutil.copytree(paths.default_store, lab_home.default_store)
    index = pl.read_parquet(paths.processed / "validation_v1.parquet")
    train = index.filter((pl.col("status") == "accepted") & pl.col("host_id").is_in(list(HOST_TRAIN)))
    values, limit = train["rel_path"][0], train["rel_path"][1]
    poison(lab_home.default_store / values)
    limit_episode(lab_home.default_store / limit)
    assert cli("validate").exit_code == 0
    rows = {r["rel_path"]: r for r in pl.read_parquet(lab_home.processed / "validation_v1.parquet").to_dicts()}
    assert rows[values]["status"] == "degraded" and any(r.startswith("values_out_of_range")
                                                        for r in rows[values]["reasons"])
    assert rows[limit]["status"] == "degraded"
    assert cli("extract").exit_code == 0
    return lab_home, rows[values]["episode_id"], rows[limit]["episode_id"]


def test_a_lab_with_values_beyond_float32_and_a_limit_episode_trains_every_kind_of_model(cli, poisoned):
    """Regression: gbt, mlp and minirocket failed with "unexpected ValueError
    ... infinity"; the limit episode held 31.5% of a lab's windows."""
    home, _, limit_id = poisoned
    features = read_features(home.processed)
    assert not np.isinf(features.select(pl.selectors.by_dtype(pl.Float32)).to_numpy()).any()
    per_episode = features.group_by("episode_id").len()
    biggest = per_episode.sort("len", descending=True).row(0)
    assert biggest[0] == limit_id and biggest[1] > 1000            # it does make a window wherever its rows are

    result = cli("split", "--recipe", "host", "--train-hosts", ",".join(HOST_TRAIN))
    assert result.exit_code == 0, result.output
    assert f"train: largest episode {limit_id} holds" in result.output
    assert "over the 10% bound (--max-episode-share)" in result.stderr
    meta = json.loads((home.processed / "splits" / "host.json").read_text())
    assert meta["episode_shares"]["train"]["largest"][0]["share"] > 0.3
    data = load_split_data(home.processed, "host", "summary")
    train = data.parts["train"]
    assert np.bincount(train.groups).max() / len(train) <= 0.1 + 1e-9
    assert data.capped["train"]["windows_left_out"] > 1000

    for model, settings in (("gbt", ["--set", "n_estimators=20"]), ("mlp", ["--epochs", "2"]),
                            ("minirocket", ["--set", "n_features=1000"])):
        result = cli("train", model, "--mode", "realistic", *settings)
        assert result.exit_code == 0, result.output
        header = json.loads((home.artifacts / "models" / "host" / f"{model}_realistic" / "header.json").read_text())
        assert header["training"]["episode_share_cap"]["train"]["share"] == 0.1
    result = cli("eval", "gbt", "--resamples", "20")
    assert result.exit_code == 0, result.output


def test_a_stricter_share_is_an_option_and_recorded(cli, poisoned):
    home, _, _ = poisoned
    result = cli("split", "--recipe", "host", "--train-hosts", ",".join(HOST_TRAIN), "--max-episode-share", "0.02")
    assert result.exit_code == 0, result.output
    meta = json.loads((home.processed / "splits" / "host.json").read_text())
    assert meta["params"]["max_episode_share"] == 0.02
    train = load_split_data(home.processed, "host", "summary").parts["train"]
    assert np.bincount(train.groups).max() / len(train) <= max(0.02, 1 / len(np.unique(train.groups))) + 1e-9
    assert cli("split", "--recipe", "host", "--train-hosts", "x", "--max-episode-share", "0").exit_code == 2
