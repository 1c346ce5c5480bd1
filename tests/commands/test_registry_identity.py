"""The channel registry is part of a lab's identity: validate records it, later
stages default to it and refuse another one in one line."""
import json
import shutil

import polars as pl
import pytest

from core.registry import DEFAULT_REGISTRY


@pytest.fixture(scope="module")
def own_lab(extracted_lab, tmp_path_factory):
    """A store with a profile of the lab's own ('standing') and the registry that knows it."""
    paths, _ = extracted_lab
    root = tmp_path_factory.mktemp("ownreg")
    store = root / "store"
    shutil.copytree(paths.default_store, store)
    eps = pl.read_parquet(paths.processed / "extract_episodes_v1.parquet").filter(
        (pl.col("host_id") == "lab-thinkpad") & (pl.col("n_windows") > 0))
    mpath = store / eps["rel_path"][0] / "manifest.json"
    m = json.loads(mpath.read_text())
    m["profile"] = "standing"
    mpath.write_text(json.dumps(m))
    text = DEFAULT_REGISTRY.read_text()
    assert '"dropper"]' in text
    (root / "lab.toml").write_text(text.replace('"dropper"]', '"dropper", "standing"]'))
    shutil.copy(DEFAULT_REGISTRY, root / "shipped.toml")
    return root


@pytest.fixture
def home(own_lab, lab_home):
    for name in ("lab.toml", "shipped.toml"):
        shutil.copy(own_lab / name, lab_home.home / name)
    shutil.copytree(own_lab / "store", lab_home.default_store)
    return lab_home


def test_later_stages_default_to_the_validated_registry_and_refuse_another(cli, home):
    assert cli("validate", "-j", "2", "--channels", "lab.toml").exit_code == 0
    side = json.loads((home.processed / "validation_v1.json").read_text())
    assert side["registry"]["path"] == "../../lab.toml"          # inside the lab: moves with it
    # Regression: a forgotten --channels gave `unexpected KeyError: 'standing'`.
    result = cli("extract", "-j", "2", "--channels", "shipped.toml")
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert err.count("\n") == 0 and err.startswith(f"Error: {home.home / 'shipped.toml'}: channel registry ")
    assert f"is not the one the acceptance index {home.processed / 'validation_v1.parquet'} was made with" in err
    assert "re-run `cis490 validate --channels FILE` with it" in err
    result = cli("extract", "-j", "2")
    assert result.exit_code == 0, result.output
    # split gets --channels too, and the lab's own profile can be listed as untested.
    result = cli("split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-nuc,lab-desktop",
                 "--channels", "shipped.toml")
    assert result.exit_code == 1 and "is not the one the features in" in result.stderr
    result = cli("--json", "split", "--recipe", "host", "--train-hosts", "lab-thinkpad,lab-nuc,lab-desktop")
    assert result.exit_code == 0, result.output
    assert "standing" in json.loads(result.stdout)["untested_profiles"]
    # Regression: compare gave `unexpected InvalidOperationError ... replace_strict`.
    for args in (("train", "knn", "--channels", "shipped.toml"), ("eval", "knn", "--channels", "shipped.toml"),
                 ("compare", "knn", "gbt", "--channels", "shipped.toml")):
        result = cli(*args)
        assert result.exit_code == 1, args
        assert "is not the one the features in" in result.stderr and "unexpected" not in result.stderr
    assert cli("train", "knn", "--mode", "realistic").exit_code == 0
    assert cli("eval", "knn", "--resamples", "20", "--channels", "lab.toml").exit_code == 0


def test_an_edited_registry_is_refused(cli, home):
    assert cli("validate", "-j", "2", "--channels", "lab.toml").exit_code == 0
    lab = home.home / "lab.toml"
    lab.write_text(lab.read_text().replace('"standing"]', '"standing", "idling"]'))
    result = cli("extract", "-j", "2")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"Error: {lab}: channel registry changed since the acceptance index")
