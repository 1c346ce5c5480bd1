import json
import shutil

import pytest

from core.registry import load_registry
from core.split import SplitConfig, make_split

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


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
                                     "lstm, transformer, minirocket, mrhydra)")


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
    assert "is stale: some of its episodes were extracted again to other windows, or are gone" in result.stderr


def test_cuda_without_cuda(cli, ready_home):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = cli("train", "gbt", "--device", "cuda")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("Error: --device cuda was asked for, but torch sees no CUDA device "
                                     "(use --device cpu or auto)")


def test_train_before_extract(cli, lab_home):
    lab_home.data.mkdir()                  # a lab, never extracted
    result = cli("train", "gbt")
    assert result.exit_code == 1
    assert "run `cis490 split --recipe host` first" in result.stderr or "run `cis490 extract` first" in result.stderr


def test_settings_are_applied_and_recorded(cli, ready_home):
    result = cli("--json", "train", "knn", "mlp", "--mode", "realistic", "--set", "k=3", "--set", "hidden=32",
                 "--lr", "0.005", "--epochs", "2")
    assert result.exit_code == 0, result.output
    header = {m: json.loads((ready_home.artifacts / "models" / "host" / f"{m}_realistic" / "header.json").read_text())
              for m in ("knn", "mlp")}
    assert header["knn"]["config"]["k"] == 3 and header["knn"]["training"]["k"] == 3
    assert header["knn"]["training"]["k_choice"] == "set"
    assert header["mlp"]["config"]["hidden"] == 32 and header["mlp"]["config"]["lr"] == 0.005
    assert header["mlp"]["config"]["epochs"] == 2
    records = {r["config"]["model"]: r for r in map(json.loads, ready_home.notebook.read_text().splitlines())}
    assert records["knn"]["config"]["overrides"] == {"k": 3}
    assert records["mlp"]["config"]["overrides"] == {"epochs": 2, "lr": 0.005, "hidden": 32}
    assert records["mlp"]["config"]["settings"]["hidden"] == 32
    assert records["knn"]["metrics"]["k"] == 3
    assert records["mlp"]["metrics"]["schedule"]["batch_size"] >= 2


def test_knn_chooses_k_on_validation_by_default(cli, ready_home):
    result = cli("train", "knn", "--mode", "oracle")
    assert result.exit_code == 0, result.output
    t = json.loads((ready_home.artifacts / "models" / "host" / "knn_oracle" / "header.json").read_text())["training"]
    scores = {int(k): v for k, v in t["k_scores"].items()}
    assert sorted(scores) == [1, 3, 5, 9, 15, 25]
    assert t["k"] == max(scores, key=lambda k: (scores[k], k))
    assert t["reference"]["windows"] == t["windows"]["train"] and t["reference"]["sample"] == "all train windows"


@pytest.mark.parametrize("args, message", [
    (["knn", "--set", "kk=5"], "Error: --set kk: not a setting of knn (knn: k, max_train)"),
    (["knn", "--set", "k=five"], "Error: knn: --set k=five: k takes an integer or auto"),
    (["knn", "--set", "k=0"], "Error: knn: setting k=0 is out of range (k must be >= 1, or auto)"),
    (["knn", "--set", "k"], "Error: --set k: expected key=value, e.g. --set k=5 or --set hidden=128"),
    (["knn", "--lr", "0.1"], "Error: --lr does not apply to knn (it applies to gbt, mlp, cnn, gru, lstm, transformer, minirocket, mrhydra)"),
    (["cnn", "--set", "max_tokens=4"], "Error: --set max_tokens: not a setting of cnn (cnn: epochs, batch_size, lr, "
                                       "weight_decay, warmup_frac, warmup_max_steps, min_steps_per_epoch, patience, "
                                       "clip, budget_s, hidden, dropout)"),
    (["gru", "--set", "steps=4"], "Error: --set steps: not a setting of gru"),
    # (`--lr 0` is a usage error now, exit 2: tests/commands/test_boundary.py)
    (["mlp", "--set", "lr=0.0"], "Error: mlp: setting lr=0.0 is out of range (lr must be > 0)"),
])
def test_bad_settings_are_one_line_and_train_nothing(cli, ready_home, args, message):
    result = cli("train", *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (ready_home.artifacts / "models").exists()


def test_a_setting_goes_to_every_model_that_has_it(cli, ready_home):
    result = cli("--json", "train", "gbt", "knn", "--mode", "realistic", "--set", "max_depth=3", "--lr", "0.3")
    assert result.exit_code == 0, result.output
    gbt = json.loads((ready_home.artifacts / "models" / "host" / "gbt_realistic" / "header.json").read_text())
    assert gbt["config"]["max_depth"] == 3 and gbt["config"]["learning_rate"] == 0.3


def test_minirocket_heads_through_the_command(cli, ready_home):
    """Both heads of a ROCKET model train through `cis490 train`, the head
    recorded; regression: the softmax head's epochs against a bar of unknown
    length raised a TypeError."""
    for head in ("ridge", "softmax"):
        result = cli("--json", "train", "minirocket", "--mode", "realistic", "--set", f"head={head}",
                     "--epochs", "2")
        assert result.exit_code == 0, result.output
        header = json.loads((ready_home.artifacts / "models" / "host" / "minirocket_realistic" / "header.json")
                            .read_text())
        assert header["training"]["head"] == head and header["config"]["head"] == head


def test_a_setting_is_checked_once_and_reaches_the_loop_as_the_model_s_own_settings(cli, ready_home, monkeypatch):
    """Regression (issue 23): --batch-size changed form three times (an option,
    a dict, the model's settings, the loop's settings) and was validated twice
    on its way to the loop."""
    import core.models.neural as neural
    from core.models.settings import MLPSettings
    checks, seen = [], []
    check = MLPSettings._validate

    def counted(self, model):
        checks.append(model)
        check(self, model)
    real_loop = neural.train_loop

    def spy(net, batches, n, val, weights, cfg, *a, **k):
        seen.append(cfg)
        return real_loop(net, batches, n, val, weights, cfg, *a, **k)
    monkeypatch.setattr(MLPSettings, "_validate", counted)
    monkeypatch.setattr(neural, "train_loop", spy)
    result = cli("train", "mlp", "--mode", "realistic", "--batch-size", "64", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert checks == ["mlp"]
    (cfg,) = seen
    assert type(cfg) is MLPSettings and cfg.batch_size == 64 and cfg.epochs == 1


def test_a_ridge_head_fitted_on_val_never_shows_a_val_score(cli, ready_home):
    """Regression (issue 35): minirocket showed "val macro-F1 0.990" though its
    head was fitted on train + val (penalty by leave-one-out), its header said
    `choice_rule: the validation part`, and temperature scaling said "not
    fitted: every validation window is right"."""
    result = cli("train", "minirocket", "--mode", "realistic", "--set", "head=ridge", "--set", "n_features=1000")
    assert result.exit_code == 0, result.output
    assert "(LOO)" in result.output and "(val)" not in result.output
    assert "(LOO): leave-one-out on train + val, which the model was fitted on" in " ".join(result.output.split())
    assert "minirocket (realistic): ridge head, as asked (--set head=ridge)" in result.output
    t = json.loads((ready_home.artifacts / "models" / "host" / "minirocket_realistic" / "header.json").read_text())
    tr = t["training"]
    assert tr["score_on"] == "loo" and "val is fitted on" in tr["choice_rule"]
    assert tr["fit_windows"] == tr["windows"]["train"] + tr["windows"]["val"]
    assert t["calibration"]["fitted_on"].startswith("none: val was fitted on")
    rec = json.loads(ready_home.notebook.read_text().splitlines()[-1])
    assert rec["metrics"]["score_on"] == "loo"
    listing = cli("notebook", "list").output
    assert "LOO 0." in listing and "val 0." not in listing
    # eval of val says what val is for this model, on the terminal and in the listing.
    result = cli("eval", "minirocket", "--part", "val", "--resamples", "20")
    assert result.exit_code == 0, result.output
    assert "val is in-sample: the model was fitted on these windows" in " ".join(result.output.split())
    assert "minirocket @host/val" in cli("notebook", "list").output


def test_piped_output_says_each_model_as_it_finishes_and_all_expands_beside_names(cli, ready_home, monkeypatch):
    """Regression (issue 35): `train ... > file` wrote nothing until the end
    (0 bytes in 40 minutes); `train all gbt` said unknown model 'all'."""
    import core.stages
    import core.train
    real = core.train.train_one
    trained = []

    def counted(*a, **k):
        trained.append(a[3])
        if len(trained) == 3:
            raise KeyboardInterrupt            # Ctrl-C during the third
        return real(*a, **k)
    monkeypatch.setattr(core.train, "train_one", counted)
    result = cli("train", "gbt", "knn", "mlp", "--mode", "realistic", "--epochs", "1")
    assert result.exit_code == 130
    out = result.stdout
    assert out.index("trained gbt (realistic) on split host: val macro-F1") < out.index("Finished before the interrupt")
    assert "trained knn (realistic) on split host" in out and "mlp" not in out.split("Finished before")[1]
    assert result.stderr.strip() == "Error: interrupted"
    monkeypatch.setattr(core.train, "train_one", lambda *a, **k: trained.append(a[3]) or real(*a, **k))
    trained.clear()
    from core.models import MODELS
    monkeypatch.setattr(core.stages, "train_stage", lambda state, reg, names, *a, **k: trained.extend(names) or [])
    assert cli("train", "all", "gbt", "--mode", "realistic").exit_code == 0
    assert trained == list(MODELS)


def test_an_unknown_device_is_a_usage_error(cli, ready_home):
    result = cli("train", "gbt", "--device", "gpu")
    assert result.exit_code == 2 and "'gpu' is not one of" in result.stderr


def test_a_budget_is_recorded_with_how_the_fit_ended_and_applies_only_where_it_can(cli, ready_home):
    result = cli("--json", "train", "cnn", "gbt", "knn", "--mode", "realistic", "--budget", "10m", "--epochs", "2")
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in json.loads(result.stdout)}
    assert rows["cnn"]["budget"]["budget_s"] == 600 and rows["cnn"]["budget"]["stopped_by_budget"] is False
    assert rows["gbt"]["budget"] == {"budget_s": 600, "stopped_by_budget": False}
    assert rows["knn"]["budget"] is None                       # nothing to bound: it takes no budget
    header = json.loads((ready_home.artifacts / "models" / "host" / "cnn_realistic" / "header.json").read_text())
    assert header["config"]["budget_s"] == 600
    only_knn = cli("train", "knn", "--budget", "5m")
    assert only_knn.exit_code == 1 and "--budget does not apply to knn" in only_knn.stderr
    assert cli("train", "cnn", "--budget", "soon").exit_code == 2


def test_an_interrupted_fit_resumes_from_its_last_epoch_to_the_same_checkpoint(cli, ready_home):
    import numpy as np

    from core.train import train_one
    reg, p, a = load_registry(), ready_home.processed, ready_home.artifacts
    settings = {"epochs": 4, "patience": 10}
    whole = train_one(p, a, reg, "cnn", "realistic", "host", settings, seed=3)
    weights = dict(np.load(whole.checkpoint / "weights.npz"))
    shutil.rmtree(whole.checkpoint)

    def stop_at_two(epoch, epochs=None, **_):
        if epoch == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_one(p, a, reg, "cnn", "realistic", "host", settings, seed=3, progress=stop_at_two)
    state = a / "models" / "host" / ".resume" / "cnn_realistic.pt"
    assert state.exists() and not (a / "models" / "host" / "cnn_realistic").exists()
    result = cli("--json", "train", "cnn", "--mode", "realistic", "--epochs", "4", "--patience", "10", "--seed", "3",
                 "--resume")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["resumed"]["from_epoch"] == 2
    assert not state.exists()                                  # the fit is whole: nothing left to resume
    again = dict(np.load(ready_home.artifacts / "models" / "host" / "cnn_realistic" / "weights.npz"))
    assert weights.keys() == again.keys() and all(np.array_equal(weights[k], again[k]) for k in weights)
    # Asked to resume with nothing saved: trained afresh, and the record says so.
    fresh = cli("--json", "train", "gbt", "--mode", "realistic", "--resume")
    assert json.loads(fresh.stdout)[0]["resumed"].startswith("nothing to resume")
