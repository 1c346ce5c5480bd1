"""Training defaults that work from thirty windows up: the step-based schedule,
patience after warm-up, and every neural model learning a tiny set."""
import math

import numpy as np
import pytest

import core.models.loop as loop_mod
from core.models import MODELS
from core.models.data import ArrayStore, SummaryData
from core.models.loop import lr_factor, schedule, train_loop
from core.models.settings import LoopSettings
from core.synth.tiny import CLASSES, tiny_set

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


def test_warmup_is_a_short_capped_share_of_all_steps():
    small = schedule(30, LoopSettings())
    assert small["warmup_steps"] == round(0.05 * small["total_steps"]) < small["steps_per_epoch"] * 2
    big = schedule(8_000_000, LoopSettings())            # the real corpus' train part
    assert big["warmup_steps"] == 300 and big["batch_size"] == 256
    # Ten times the epochs never means ten times the warm-up past the cap.
    long = schedule(30, LoopSettings(epochs=1000))
    assert long["warmup_steps"] == 300 < long["total_steps"] * 0.05


def test_a_thirty_window_set_gets_a_real_number_of_steps():
    plan = schedule(30, LoopSettings())
    assert plan["steps_per_epoch"] >= 8 and plan["batch_size"] == 3
    assert plan["total_steps"] >= 30 * 8
    # Never below two windows per batch (batch norm), even for five windows.
    assert schedule(5, LoopSettings())["batch_size"] == 2


def test_cosine_shape_after_a_linear_warmup():
    warm, total = 10, 110
    f = [lr_factor(s, warm, total) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(f[:10], f[1:10]))
    assert f[10] == pytest.approx(1.0) and f[60] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert lr_factor(total, warm, total) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(5, 0, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.05)))


def test_patience_does_not_count_during_warmup(monkeypatch):
    """Regression: patience 6 ran out while the learning rate was still warming up."""
    import torch
    scores = iter([0.5] + [0.4] * 20)
    monkeypatch.setattr(loop_mod, "evaluate", lambda *a, **k: (next(scores), 1.0))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    # One step per epoch, warm-up 5 steps: the first 5 epochs are warm-up.
    cfg = LoopSettings(epochs=20, patience=3, warmup_frac=0.25, min_steps_per_epoch=1, batch_size=64)
    info = train_loop(torch.nn.Linear(3, 2), lambda r, b: iter([(x, y)]), 64, lambda: iter([]), np.ones(2),
                      cfg, "cpu", 0)
    assert info["schedule"]["warmup_steps"] == 5
    assert info["best_epoch"] == 1 and info["epochs_run"] == 8       # 5 in warm-up, then 3 without progress


def _tiny(kind):
    # Thirty-two training windows, and a validation part just big enough to
    # choose by (core/models/small_validation.py): what is tested here is the
    # defaults' schedule. The three-fold rule for smaller ones has its own
    # tests, and trained every model here four times since it came.
    parts = tiny_set({"train": 8, "val": 13, "test": 25}, seed=0)
    if kind == "summary":
        return {p: SummaryData.from_array(v.summary, v.y) for p, v in parts.items()}
    return {p: ArrayStore.data(v.values, v.masks, v.y) for p, v in parts.items()}


@pytest.mark.parametrize("name", ["mlp", "cnn", "gru", "lstm", "transformer"])
def test_every_neural_model_learns_a_tiny_set_with_defaults(name):
    cls = MODELS[name]
    d = _tiny(cls.input_kind)
    width = d["train"].width if cls.input_kind == "summary" else d["train"].store.shape[0]
    m = cls(list(CLASSES), None, seed=0)
    m.fit(d["train"], d["val"], np.arange(width))
    acc = (m.predict_data(d["test"]).argmax(1) == d["test"].y).mean()
    assert len(d["train"]) == 32 and m.training["schedule"]["steps_per_epoch"] >= 8
    assert m.training.get("small_validation") is None
    assert acc >= 0.45, f"{name}: test accuracy {acc:.2f} (chance 0.25)"


@pytest.mark.parametrize("name", ["gru", "lstm", "transformer"])
def test_long_windows_get_a_convolution_stem_not_wide_raw_tokens(name):
    """A 1,460-step window: at most 16 tokens of 92 steps each. The conv stem
    reads every step with a local convolution and makes each token from its 92
    steps with a strided one, so the sequence net sees `hidden`-wide tokens,
    not 92 x channels raw values laid side by side."""
    import torch
    from dataclasses import replace

    from core.models.neural import build_net
    cfg = MODELS[name](list(CLASSES), None).cfg
    in_dim, steps = 8, 1460
    net = build_net(name, in_dim, steps, 4, cfg)
    assert net.stem is not None and net.stem.stride.stride == (92,) and net.stem.stride.kernel_size == (92,)
    x = torch.randn(3, in_dim, steps, requires_grad=True)
    net.eval()
    net(x).sum().backward()
    assert (x.grad.abs().sum(dim=(0, 1)) > 0).all()            # every step reaches the output
    assert net.stem(x).shape == (3, 16, cfg.hidden)
    patched = build_net(name, in_dim, steps, 4, replace(cfg, stem="patch"))
    assert patched.stem is None
    first = patched.rnn.input_size if name != "transformer" else patched.proj.in_features
    assert first == in_dim * 92
    # Short windows are read step by step: no stem.
    assert build_net(name, in_dim, 16, 4, cfg).stem is None
