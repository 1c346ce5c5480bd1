"""Names a store gives never decide a path, run as a formula or break the
terminal (issue 32): predict's files and CSVs, split --rotate's folds, the
tables and lines that show them."""
import json
import shutil

import polars as pl
import pytest

from core.paths import LabPaths
from core.predict import read_windows
from core.safenames import file_component
from core.synth import SynthConfig, generate_store
from tests.labs import install_lab, trained_lab
from tests.text import lines_to_fit

pytestmark = pytest.mark.slow

# `a/` makes the figure's folder, and each `..` climbs out of the run from there.
ESCAPING_ID = "=a/../../../../../escaped"
LONG_ID = "x\0" + "y" * 4000
EVIL_HOST = "../../evil"
MARKUP_HOST = "[/x] [bold]host"


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    return trained_lab(extracted_lab, tmp_path_factory, "hostile_names", [("gbt", "realistic")])


def _relabel(ep, **fields) -> None:
    m = json.loads((ep / "manifest.json").read_text())
    m.update(fields)
    (ep / "manifest.json").write_text(json.dumps(m))


def _unlabelled_copy(home, rel: str, episode_id: str, folder: str) -> None:
    new = home.default_store / rel.split("/")[0] / folder
    shutil.copytree(home.default_store / rel, new)
    m = json.loads((new / "manifest.json").read_text())
    del m["files"]["labels.jsonl"]
    (new / "labels.jsonl").unlink()
    (new / "manifest.json").write_text(json.dumps({**m, "episode_id": episode_id}))


def test_unlabelled_episodes_with_hostile_ids_write_only_inside_their_run(cli, trained, lab_home, extracted_lab,
                                                                          figures, tmp_path):
    """Regression: an episode_id with ../ put its timeline figure wherever it
    pointed, a leading = reached the CSV as a formula, and a 4,000-character
    id was a file name no filesystem takes."""
    install_lab(trained, lab_home, store_of=extracted_lab[0])
    index = pl.read_parquet(lab_home.processed / "validation_v1.parquet")
    rel = index.filter(pl.col("status") == "accepted")["rel_path"][0]
    _unlabelled_copy(lab_home, rel, ESCAPING_ID, "hostile-1")
    _unlabelled_copy(lab_home, rel, LONG_ID, "hostile-2")
    assert cli("validate").exit_code == 0
    before = set(tmp_path.rglob("*"))
    result = cli("predict", "gbt", "--unlabelled")
    assert result.exit_code == 0, result.output
    (run,) = sorted((lab_home.artifacts / "predict" / "host" / "gbt_realistic").iterdir())
    allowed = (run, lab_home.runs, lab_home.notebook)       # the run, and its notebook record
    outside = [p for p in set(tmp_path.rglob("*")) - before
               if not any(p.is_relative_to(a) or a.is_relative_to(p) for a in allowed)]
    assert not outside, outside[:3]
    assert sorted(p.name for p in run.glob("timeline-*.svg")) == sorted(
        f"timeline-{file_component(i)}.svg" for i in (ESCAPING_ID, LONG_ID))
    cells = pl.read_csv(run / "windows.csv")["episode_id"].unique().to_list()
    assert sorted(cells) == sorted(["'" + ESCAPING_ID, LONG_ID])
    assert "'" + ESCAPING_ID in pl.read_csv(run / "segments.csv")["episode_id"].to_list()
    assert set(read_windows(run)["episode_id"]) == {ESCAPING_ID, LONG_ID}      # parquet keeps them as given
    assert max(len(line) for line in lines_to_fit(result.output)) <= 80


def test_a_rotation_over_hostile_host_names_is_made_and_shown(cli, lab_home, tmp_path):
    """Regression: one host_id of ../../evil blocked split --rotate for the
    whole lab; a host named like Rich markup stopped the tables."""
    store = lab_home.default_store
    generate_store(SynthConfig(episodes=30, hosts=3, duration_s=40.0, seed=2, fault_rate=0.0, in_flight=0), store,
                   workers=1)
    hosts = sorted(p.name for p in store.iterdir() if p.is_dir())
    for host, name in zip(hosts, [EVIL_HOST, MARKUP_HOST]):
        for ep in (store / host).iterdir():
            _relabel(ep, host_id=name)
    result = cli("validate")
    assert result.exit_code == 0, result.output
    assert MARKUP_HOST in result.output and EVIL_HOST in result.output
    assert cli("extract").exit_code == 0
    result = cli("split", "--recipe", "host", "--rotate")
    assert result.exit_code == 0, result.output
    assert MARKUP_HOST in result.output
    splits = LabPaths(lab_home.home).processed / "splits"
    made = sorted(p.name for p in splits.glob("host-out-*.parquet"))
    assert len(made) == 3 and f"host-out-{file_component(EVIL_HOST)}.parquet" in made
    assert not (splits.parent.parent / "evil").exists() and not (lab_home.home.parent / "evil").exists()
    rotation = json.loads((splits / "rotations" / "host-rotation.json").read_text())
    assert {f["host"] for f in rotation["folds"]} >= {EVIL_HOST, MARKUP_HOST}
