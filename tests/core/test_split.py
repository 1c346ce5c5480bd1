import polars as pl
import pytest

from core.errors import ConfigError
from core.paths import LabPaths
from core.registry import load_registry
from core.split import SplitConfig, SplitError, assign_parts, check_split, load_split, make_split

REG = load_registry()


@pytest.fixture
def paths(extracted_lab, tmp_path):
    """The shared lab's extract, copied: the splits a test makes stay its own
    (a `time` split left in the shared lab made another module's 'no such
    split' test pass or fail by the order tests ran in)."""
    import shutil
    mine = LabPaths(tmp_path / "lab")
    shutil.copytree(extracted_lab[0].processed, mine.processed)
    return mine


def _parts(paths, recipe):
    df, meta = load_split(paths.processed, recipe)
    eps = pl.read_parquet(paths.processed / "extract_episodes_v1.parquet")
    return df.join(eps, on="episode_id"), meta


def test_host_split_holds_out_hosts_and_names_untested_profiles(paths):
    train = ("lab-thinkpad", "lab-nuc", "lab-desktop")
    r = make_split(paths.processed, SplitConfig("host", train, seed=1), REG)
    df, meta = _parts(paths, "host")
    assert set(df.filter(pl.col("part") == "test")["host_id"]) == {"lab-pi5"}
    assert set(df.filter(pl.col("part") != "test")["host_id"]) <= set(train)
    # lab-pi5 never runs scan-and-dial: it cannot be tested, and the split says so.
    assert meta["untested_profiles"] == ["scan-and-dial"]
    assert r.meta["totals"]["test"]["episodes"] == df.filter(pl.col("part") == "test").height
    assert df["episode_id"].n_unique() == df.height


def test_host_split_is_deterministic_by_seed(paths):
    cfg = SplitConfig("host", ("lab-thinkpad", "lab-desktop"), seed=4)
    a = make_split(paths.processed, cfg, REG).parquet.read_bytes()
    b = make_split(paths.processed, cfg, REG).parquet.read_bytes()
    c = make_split(paths.processed, SplitConfig("host", ("lab-thinkpad", "lab-desktop"), seed=5), REG)
    assert a == b
    assert c.parquet.read_bytes() != a  # another seed draws another validation set


def test_sample_split_keeps_samples_disjoint(paths):
    make_split(paths.processed, SplitConfig("sample", seed=2), REG)
    df, meta = _parts(paths, "sample")
    assert df.group_by("sample_name").agg(pl.col("part").n_unique())["part"].max() == 1
    for profile in df["profile"].unique():
        parts = set(df.filter(pl.col("profile") == profile)["part"])
        assert parts == {"train", "val", "test"}, profile


def test_time_split_tests_on_the_latest_episodes(paths):
    make_split(paths.processed, SplitConfig("time", seed=3), REG)
    df, _ = _parts(paths, "time")
    assert df.filter(pl.col("part") != "test")["received_at"].max() <= \
        df.filter(pl.col("part") == "test")["received_at"].min()
    assert set(df.filter(pl.col("part") == "train")["profile"]) == set(REG.profiles)


def test_unknown_train_host_says_which_hosts_exist(paths):
    with pytest.raises(SplitError) as err:
        make_split(paths.processed, SplitConfig("host", ("lab-mars",)), REG)
    assert str(err.value) == ("train host 'lab-mars' has no extracted episodes "
                              "(hosts: lab-desktop, lab-nuc, lab-pi5, lab-thinkpad)")
    with pytest.raises(SplitError, match="no test host left"):
        make_split(paths.processed, SplitConfig("host", ("lab-thinkpad", "lab-nuc", "lab-desktop", "lab-pi5")), REG)


def _episodes(rows):
    return pl.DataFrame(rows, schema=["episode_id", "host_id", "profile", "sample_name", "received_at", "n_windows"],
                        orient="row")


def test_sample_recipe_refuses_a_profile_with_two_samples():
    rows = [(f"e{i}", "h", "miner", f"miner.s{i % 2}", f"2026-01-{i + 1:02d}", 5) for i in range(8)]
    with pytest.raises(SplitError) as err:
        assign_parts(_episodes(rows), SplitConfig("sample"), REG)
    assert str(err.value) == ("profile 'miner' has 2 sample(s); the sample recipe needs at least 3 per profile "
                              "(one each for train, val and test)")


def test_checks_catch_a_profile_missing_from_train():
    df = _episodes([("a", "h1", "miner", "m1", "1", 3), ("b", "h1", "rat", "r1", "2", 3),
                    ("c", "h2", "rat", "r1", "3", 3)]).with_columns(pl.Series("part", ["val", "train", "test"]))
    with pytest.raises(SplitError, match="profile 'miner' has no episode in train"):
        check_split(df, SplitConfig("host", ("h1",)), REG)


def test_checks_catch_unstratified_val():
    rows = [(f"e{i}", "h1", "miner", "m", str(i), 3) for i in range(10)] + [("t", "h2", "miner", "m", "99", 3)]
    parts = ["val"] * 6 + ["train"] * 4 + ["test"]
    df = _episodes(rows).with_columns(pl.Series("part", parts))
    with pytest.raises(SplitError, match="val is not stratified: profile 'miner' has 60% of its episodes in val"):
        check_split(df, SplitConfig("host", ("h1",), val_frac=0.2), REG)


def test_stale_split_is_refused(extracted_lab, tmp_path):
    import shutil
    paths, _ = extracted_lab
    processed = tmp_path / "p"
    shutil.copytree(paths.processed, processed)
    make_split(processed, SplitConfig("host", ("lab-thinkpad", "lab-nuc")), REG)
    # One of its episodes extracted again to other windows (its digest is what the extract recorded).
    split = pl.read_parquet(processed / "splits" / "host.parquet")
    eps = pl.read_parquet(processed / "extract_episodes_v1.parquet")
    eps.with_columns(pl.when(pl.col("episode_id") == split["episode_id"][0]).then(pl.lit("0" * 64))
                     .otherwise(pl.col("windows_sha256")).alias("windows_sha256")).write_parquet(
        processed / "extract_episodes_v1.parquet")
    with pytest.raises(SplitError, match="is stale"):
        load_split(processed, "host")


@pytest.mark.parametrize("cfg,msg", [
    (SplitConfig("host"), "the host recipe needs --train-hosts"),
    (SplitConfig("sample", val_frac=0.6, test_frac=0.5), "--val-frac and --test-frac must be in (0, 1)"),
    (SplitConfig("space"), "unknown recipe 'space'"),
])
def test_bad_split_config(cfg, msg):
    with pytest.raises(ConfigError) as err:
        cfg.check()
    assert str(err.value).startswith(msg)


def test_time_split_orders_by_parsed_time_not_text():
    """Regression: '...:10.5Z' sorts after '...:10Z' as text but is earlier than '...:10.7Z'."""
    from core.split import received_ns
    stamps = ["2026-03-01T10:00:10.7Z", "2026-03-01T10:00:10Z", "2026-03-01T10:00:10.5Z", "2026-03-01T11:00:09+01:00",
              "2026-03-01T10:00:09Z"]
    rows = [(f"e{i}", "h", "miner", f"m{i}", s, 3) for i, s in enumerate(stamps)]
    df = assign_parts(received_ns(_episodes(rows)), SplitConfig("time", test_frac=0.2, val_frac=0.2), REG)
    # The latest (by time, not by text: ...10Z sorts last as text) is the only test episode.
    assert df.filter(pl.col("part") == "test")["episode_id"].to_list() == ["e0"]
    parts = dict(df.select("episode_id", "part").iter_rows())
    assert parts["e1"] != "test" and parts["e2"] != "test"
    check_split(df, SplitConfig("time", test_frac=0.2, val_frac=0.2), REG)
    # The leak check compares times too: a fit episode received after a test one is caught.
    leaked = df.with_columns(pl.when(pl.col("episode_id") == "e1").then(pl.lit("test"))
                             .when(pl.col("episode_id") == "e0").then(pl.lit("train"))
                             .otherwise(pl.col("part")).alias("part"))
    with pytest.raises(SplitError, match="received after a test episode"):
        check_split(leaked, SplitConfig("time", test_frac=0.2, val_frac=0.2), REG)


def test_split_records_its_membership_and_refuses_a_tampered_parquet(extracted_lab, tmp_path):
    import shutil
    from core.split import membership_hash
    paths, _ = extracted_lab
    processed = tmp_path / "processed"
    shutil.copytree(paths.processed, processed)
    r = make_split(processed, SplitConfig("host", ("lab-thinkpad", "lab-nuc")), REG)
    df, meta = load_split(processed, "host")
    assert meta["membership_sha256"] == membership_hash(df)
    df.with_columns(pl.when(pl.col("part") == "val").then(pl.lit("train")).otherwise(pl.col("part"))
                    .alias("part")).write_parquet(r.parquet)
    with pytest.raises(SplitError, match="its episodes are not the ones host.json records"):
        load_split(processed, "host")


def test_a_realised_fraction_far_from_the_asked_one_is_said_with_why():
    """Regression (issue 35): `split --recipe sample` gave val 38% of the
    episodes for --val-frac 0.2 without a word."""
    from core.split import realised_fractions
    df = pl.DataFrame({"episode_id": [f"e{i}" for i in range(10)],
                       "part": ["train"] * 4 + ["val"] * 4 + ["test"] * 2})
    got = realised_fractions(df, SplitConfig("sample", val_frac=0.2, test_frac=0.2))
    assert got["fractions"] == {"val": 0.4, "test": 0.2}
    assert got["note"].startswith("val holds 40% of the episodes, not the 20% asked: whole samples are dealt")
    even = pl.DataFrame({"episode_id": [f"e{i}" for i in range(10)], "part": ["train"] * 6 + ["val"] * 2 + ["test"] * 2})
    assert realised_fractions(even, SplitConfig("sample", val_frac=0.2, test_frac=0.2))["note"] is None
