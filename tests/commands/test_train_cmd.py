import json
import shutil

import pytest

from core.registry import load_registry
from core.split import SplitConfig, make_split


@pytest.fixture
def ready_home(lab_home, extracted_lab):
    paths, _ = extracted_lab
    shutil.copytree(paths.processed, lab_home.processed)
    make_split(lab_home.processed, SplitConfig("host", ("lab-thinkpad", "lab-nuc", "lab-desktop")), load_registry())
    return lab_home


def test_train_two_models_both_modes(cli, ready_home):
    result = cli("--json", "train", "gbt", "mlp", "--epochs", "2")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["model"], r["mode"]) for r in rows] == [("gbt", "realistic"), ("gbt", "oracle"),
                                                       ("mlp", "realistic"), ("mlp", "oracle")]
    for r in rows:
        assert (ready_home.artifacts / "models" / "host" / f"{r['model']}_{r['mode']}" / "header.json").exists()
    records = [json.loads(x) for x in ready_home.notebook.read_text().splitlines()]
    assert [r["command"] for r in records] == ["train"] * 4
    assert all(r["metrics"]["val_macro_f1"] > 0 for r in records)


def test_unknown_model_lists_the_valid_ones(cli, ready_home):
    result = cli("train", "rnn")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: unknown model 'rnn' (models: gbt, mlp, knn, knn_semi, cnn, gru, "
                                     "lstm, transformer)")


def test_missing_split_says_what_to_run(cli, ready_home):
    result = cli("train", "gbt", "--split", "time")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {ready_home.processed / 'splits' / 'time.parquet'} not found: "
                                     "run `cis490 split --recipe time` first")


def test_stale_split_is_refused(cli, ready_home):
    meta_path = ready_home.processed / "splits" / "host.json"
    meta = json.loads(meta_path.read_text())
    meta["features_sha256"] = "f" * 64
    meta_path.write_text(json.dumps(meta))
    result = cli("train", "gbt")
    assert result.exit_code == 1
    assert "is stale: it was made on other features than the current extract" in result.stderr


def test_cuda_without_cuda(cli, ready_home):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = cli("train", "gbt", "--device", "cuda")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: --device cuda was asked for, but torch sees no CUDA device "
                                     "(use --device cpu or auto)")


def test_train_before_extract(cli, lab_home):
    result = cli("train", "gbt")
    assert result.exit_code == 1
    assert "run `cis490 split --recipe host` first" in result.stderr or "run `cis490 extract` first" in result.stderr
