"""minirocket and mrhydra: the fronts against a well-kept reference (aeon,
in the dev extra only), the two ways of counting, both heads and the switch
between them, and the ridge's penalty chosen as RidgeClassifierCV chooses it."""
import os

import numpy as np
import pytest

from core.models import MODELS
from core.models.data import ArrayStore
from core.models.rocket import ALPHAS, RocketModel, fit_temperature
from core.models.rocket_fronts import (HydraFront, MiniRocketFront, MultiRocketFront, fit_minirocket_params,
                                       row_quantiles)
from core.synth.tiny import CLASSES, tiny_set

# Trains models or runs whole stages: left out of `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")


def _aeon():
    """aeon's convolution transforms: in the dev extra, so CI always has them."""
    try:
        from aeon.transformations.collection import convolution_based
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("aeon (the dev extra's reference implementation) is not installed")
        pytest.skip("aeon is not installed (pip install -e '.[dev]')")
    return convolution_based


def _series(n, channels, steps, seed=0):
    return np.random.default_rng(seed).normal(size=(n, channels, steps)).astype(np.float32).cumsum(axis=2)


def _params(counts, indices, dilations, per_dilation, biases):
    return {"dilations": dilations, "features_per_dilation": per_dilation, "channel_counts": counts,
            "channel_indices": indices, "biases": biases}


def _features(front, x):
    with torch.no_grad():
        return front(torch.from_numpy(x)).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("channels, steps", [(1, 150), (5, 29), (12, 20)])
def test_minirocket_features_equal_aeons_with_its_kernels_dilations_and_biases(channels, steps):
    cb = _aeon()
    x = _series(12, channels, steps)
    ref = cb.MiniRocket(random_state=0).fit(x)
    want = ref.transform(x)
    counts, indices, dilations, per_dilation, biases = ref.parameters
    if channels == 1:          # aeon's univariate path ignores the channel draw
        counts, indices = np.ones(84 * len(dilations), int), np.zeros(84 * len(dilations), int)
    front = MiniRocketFront(_params(counts, indices, dilations, per_dilation, biases), channels, steps)
    got = np.empty_like(want)
    got[:, front.reference_order()] = _features(front, x)
    assert got.shape == want.shape == (12, 9996)
    # The same features, but for a comparison of a convolution output with a
    # bias it equals to float rounding (the two sum the taps in other
    # orders): such a tie moves one feature by one step, 1 / steps.
    diff = np.abs(got - want)
    assert diff.max() <= 1.0 / (steps - 8 * int(dilations.max())) + 1e-6
    assert (diff > 1e-6).mean() < 1e-4


@pytest.mark.slow
def test_hydra_features_equal_aeons_with_its_kernels():
    cb = _aeon()
    for channels, steps in ((1, 60), (6, 29)):
        x = _series(20, channels, steps, seed=channels)
        ref = cb.HydraTransformer(random_state=0, output_type="numpy").fit(x)
        want = ref.transform(x)
        h = ref._hydra
        idx = (np.stack([i.numpy() for i in h.idx]) if channels > 1
               else np.zeros((len(h.dilations), 2, h.h, 1), np.int64))
        front = HydraFront({"dilations": h.dilations.numpy(), "k": 8, "g": 64, "weights": h.W.numpy(),
                            "channels": idx}, channels, steps)
        np.testing.assert_allclose(_features(front, x), want, atol=2e-4, rtol=1e-5)


@pytest.mark.slow
def test_multirocket_series_features_equal_aeons_but_for_mpv():
    """PPV, LSPV and MIPV on the series equal aeon's MultiRocket; MPV follows
    the paper (mean of C - bias), aeon's code sums C + bias."""
    cb = _aeon()
    x = _series(20, 3, 40, seed=4)
    ref = cb.MultiRocket(random_state=0).fit(x)
    want = ref.transform(x)
    counts, indices, dilations, per_dilation, biases = ref.parameter
    base = _params(counts, indices, dilations, per_dilation, biases)
    front = MultiRocketFront(base, base, 3, 40)      # the difference's parameters do not matter here
    got = _features(front.base, x)
    n = want.shape[1] // 8
    mine = np.empty((20, 4 * n), np.float32)
    mine[:, front.base.reference_order()] = got
    for block in (0, 1, 3):                           # ppv, lspv, mipv
        d = np.abs(mine[:, block * n:(block + 1) * n] - want[:, block * n:(block + 1) * n])
        assert (d > 1e-4).mean() < 1e-3, block


def test_binary_search_counts_equal_every_comparison_even_at_ties():
    """torch counts by sorting, the ONNX graph by comparing: the same bits,
    also on quantised series where outputs equal biases exactly."""
    rng = np.random.default_rng(1)
    x = np.round(_series(40, 4, 30) * 2) / 2                 # many repeated values
    params = fit_minirocket_params(x, 2000, 32, rng)
    front = MiniRocketFront(params, 4, 30)
    fast = _features(front, x)
    front.compare_all = True
    slow = _features(front, x)
    np.testing.assert_array_equal(fast, slow)


def test_row_quantiles_equal_numpys():
    rng = np.random.default_rng(2)
    c = rng.normal(size=(84, 37)).astype(np.float32)
    c[:, :5] = 1.25                                           # ties
    q = rng.random((84, 11)).astype(np.float32)
    want = np.stack([np.quantile(c[k].astype(np.float64), q[k].astype(np.float64)) for k in range(84)])
    np.testing.assert_allclose(row_quantiles(c, q), want.astype(np.float32), rtol=1e-6, atol=1e-7)


def _tiny_tensors(per_class=None, seed=0, steps=200):
    parts = tiny_set(per_class, steps=steps, seed=seed)
    return {p: ArrayStore.data(v.values, v.masks, v.y) for p, v in parts.items()}


def _fit(name, data, config=None):
    m = MODELS[name](list(CLASSES), config, seed=0)
    m.fit(data["train"], data["val"], np.arange(data["train"].store.shape[0]))
    return m, float((m.predict_data(data["test"]).argmax(1) == data["test"].y).mean())


@pytest.mark.parametrize("name", ["minirocket", "mrhydra"])
def test_both_heads_learn_and_the_budget_chooses_between_them(name):
    small = {"n_features": 1000} if name == "minirocket" else {"n_kernels": 168, "hydra_groups": 8}
    data = _tiny_tensors({"train": 20, "val": 15, "test": 20})
    ridge, acc_ridge = _fit(name, data, small)
    t = ridge.training
    assert t["head"] == "ridge" and t["alpha"] in ALPHAS and t["temperature"] > 0
    assert "small_validation" not in t and t["ridge_memory_mb"] <= t["memory_budget_mb"]
    assert acc_ridge >= 0.7, acc_ridge
    # A budget the ridge's matrices exceed: the softmax head, trained by the loop.
    soft, acc_soft = _fit(name, data, {**small, "memory_budget_mb": 0, "epochs": 8})
    t = soft.training
    assert t["head"] == "softmax" and t["ridge_memory_mb"] > 0 and t["epochs_run"] >= 1
    assert t["batch_size"] <= soft._rows_per_batch()
    assert acc_soft >= 0.6, acc_soft
    # Both are one module with the same outputs as the model's own prediction.
    for m in (ridge, soft):
        x = m.pre.transform_tensor(*data["test"].store.rows(np.arange(8)))
        with torch.no_grad():
            p = torch.softmax(m.export_net()(torch.from_numpy(x)), dim=1).numpy()
        np.testing.assert_allclose(p, m._predict_proba(x), atol=1e-6)


def test_rocket_fronts_never_see_the_presence_mask():
    data = _tiny_tensors({"train": 12, "val": 13, "test": 4}, steps=40)
    m, _ = _fit("minirocket", data, {"n_features": 500})
    vals, masks = data["test"].store.rows(np.arange(4))
    x = m.pre.transform_tensor(vals, masks)
    flipped = x.copy()
    flipped[:, vals.shape[1]:] = 1 - flipped[:, vals.shape[1]:]          # every mask bit inverted
    np.testing.assert_array_equal(m._predict_proba(x), m._predict_proba(flipped))


def test_the_ridge_chooses_its_penalty_as_ridgeclassifiercv_does():
    from sklearn.linear_model import RidgeClassifierCV, RidgeCV
    from core.models.base import class_weights
    from core.models.rocket import _weighted_mse
    rng = np.random.default_rng(3)
    for n, p in ((40, 300), (300, 40)):
        y = rng.integers(0, 4, n)
        X = rng.normal(size=(n, p)) + y[:, None] * rng.normal(size=p) * rng.uniform(0.05, 0.5)
        sw = class_weights(y, 4)[y]
        want = RidgeClassifierCV(alphas=ALPHAS).fit(X, y, sample_weight=sw)
        Y = np.where(np.eye(4)[y] > 0, 1.0, -1.0)
        got = RidgeCV(alphas=ALPHAS, scoring=_weighted_mse, store_cv_results=True).fit(X, Y, sample_weight=sw)
        assert got.alpha_ == want.alpha_
        np.testing.assert_allclose(got.coef_, want.coef_, rtol=1e-6, atol=1e-8)


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 3, size=(20000, 5))
    p = np.exp(logits / 2.5)
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(5, p=row) for row in p])
    assert abs(fit_temperature(logits, y) - 2.5) < 0.1


def test_a_window_shorter_than_a_kernel_is_refused_in_one_line():
    from core.models.base import TrainError
    data = _tiny_tensors({"train": 3, "val": 2, "test": 1}, steps=8)
    with pytest.raises(TrainError, match="minirocket needs windows of at least 9 steps"):
        _fit("minirocket", data)


def test_rocket_models_are_registered_with_their_capabilities():
    for name in ("minirocket", "mrhydra"):
        cls = MODELS[name]
        assert issubclass(cls, RocketModel) and cls.input_kind == "tensor"
        assert cls.default_config["head"] == "auto"
