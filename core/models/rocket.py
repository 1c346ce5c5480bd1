"""minirocket and mrhydra: a fixed random-kernel transform of the channel x
time tensors (core/models/rocket_fronts.py), standardised on train, then a
linear head, all one torch module that exports to ONNX like the other
neural models.

The head is chosen by size and recorded (`training.head`): when train's
features fit the memory budget, ridge regression with its penalty chosen by
efficient leave-one-out cross-validation over a log grid (scikit-learn's
RidgeCV on +-1 class targets: the method of RidgeClassifierCV), class-
weighted as the loop's; probabilities are the softmax of its scores over a
temperature fitted on the leave-one-out scores. Above the budget, a softmax
head trained by the loop on features computed batch by batch from the
memory-mapped store, so no feature matrix of the whole part exists.
"""
from __future__ import annotations

import math
from dataclasses import replace
import time
from pathlib import Path

import numpy as np

from core.metrics import macro_f1
from core.models.base import TrainError, class_weights
from core.models.data import concat_parts
from core.models.loop import train_loop
from core.models.neural import NeuralModel, budget_val
from core.models.rocket_fronts import (MIN_STEPS, N_KERNELS, HydraFront, MiniRocketFront, MultiRocketFront,
                                       fit_dilations, fit_hydra_params, fit_minirocket_params, hydra_channels,
                                       hydra_dilations)
from core.models.settings import MiniRocketSettings, MRHydraSettings

# Train windows the biases and channel choices are drawn from.
BIAS_SAMPLE = 2048
# Train windows the softmax head's feature scaling is estimated on.
SCALE_SAMPLE = 4096
# Comparisons (window x feature x step) one forward holds at most: batches are cut to fit.
FORWARD_ELEMENTS = 1 << 25
# The ridge penalties tried (RidgeClassifierCV's grid in the MiniRocket and Hydra papers).
ALPHAS = np.logspace(-3, 3, 10)


def _blank_minirocket(channels: int, steps: int, n_features: int, max_dilations: int) -> dict:
    """Parameters of the right shapes (values come from the state dict)."""
    dilations, per = fit_dilations(steps, n_features, max_dilations)
    combos = N_KERNELS * len(dilations)
    return {"dilations": dilations, "features_per_dilation": per, "channel_counts": np.ones(combos, np.int64),
            "channel_indices": np.zeros(combos, np.int64), "biases": np.zeros(N_KERNELS * int(per.sum()), np.float32)}


def build_rocket_net(fronts: list, widths: list[int], sparse: list[bool], values: int, k: int):
    """fronts -> per-front scaling -> one linear layer. The input is what every
    tensor model sees (B, 2 x kept, T); only the values (the first `values`
    channels) reach the fronts, never the presence mask."""
    import torch
    from torch import nn

    class Scale(nn.Module):
        """(f - mean) / std; `sparse` (Hydra's counts): on sqrt(max(f, 0)), zeros
        kept at zero (the reference's sparse scaler)."""

        def __init__(self, width: int, is_sparse: bool):
            super().__init__()
            self.sparse = is_sparse
            self.register_buffer("mean", torch.zeros(width))
            self.register_buffer("std", torch.ones(width))

        def prepare(self, f):
            return torch.sqrt(torch.clamp(f, min=0.0)) if self.sparse else f

        def forward(self, f):
            f = self.prepare(f)
            if self.sparse:
                return (f - self.mean) * (f != 0).to(f.dtype) / self.std
            return (f - self.mean) / self.std

    class RocketNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fronts = nn.ModuleList(fronts)
            self.scales = nn.ModuleList([Scale(w, s) for w, s in zip(widths, sparse)])
            self.head = nn.Linear(sum(widths), k)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

        def raw(self, x):
            v = x[:, :values]
            return [f(v) for f in self.fronts]

        def features(self, x):
            return torch.cat([s(f) for s, f in zip(self.scales, self.raw(x))], dim=1)

        def forward(self, x):
            return self.head(self.features(x))

    return RocketNet()


def _weighted_mse(estimator, predictions, y, sample_weight=None):
    """RidgeCV's scorer: minus the class-weighted mean squared error of the
    leave-one-out predictions (RidgeClassifierCV's criterion); passing one
    makes RidgeCV keep those predictions, which fit the temperature."""
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight)
    return -float((w[:, None] * (np.asarray(y) - predictions) ** 2).mean())


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The T minimising the negative log-likelihood of softmax(scores / T)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    def nll(log_t):
        return -log_softmax(scores / math.exp(log_t), axis=1)[np.arange(len(y)), y].mean()
    return float(math.exp(minimize_scalar(nll, bounds=(-7.0, 5.0), method="bounded").x))


class RocketModel(NeuralModel):
    """The shared part of minirocket and mrhydra; subclasses build the fronts."""
    input_kind = "tensor"
    progress_unit = "batch"

    @classmethod
    def progress_total(cls, cfg) -> int | None:
        return None            # batches: known once the data is

    def _fronts(self, channels: int, steps: int, sample: np.ndarray | None, rng) -> tuple[list, list, list]:
        raise NotImplementedError

    def _structure(self, sample=None, rng=None):
        values, steps = len(self.pre.keep), self.cfg.steps
        fronts, widths, sparse = self._fronts(values, steps, sample, rng)
        return build_rocket_net(fronts, widths, sparse, values, len(self.classes))

    def _rows_per_batch(self) -> int:
        """Windows per forward pass: FORWARD_ELEMENTS floats of a front's
        intermediates (per step) and the features (per window)."""
        width = sum(s.mean.numel() for s in self.net.scales)
        per_window = max(f.working_elements() for f in self.net.fronts) * self.cfg.steps + width
        return max(2, FORWARD_ELEMENTS // per_window)

    # -- fit -------------------------------------------------------------------
    def _fit(self, train, val, progress) -> dict:
        import torch
        # The budget counts from here: the transform is most of a ROCKET fit.
        self._deadline = time.monotonic() + self.cfg.budget_s if self.cfg.budget_s > 0 else None
        steps = int(train.store.shape[1])
        if steps < MIN_STEPS:
            raise TrainError(f"{self.name} needs windows of at least {MIN_STEPS} steps (its kernels are 9 long); "
                             f"these have {steps}: extract with a longer --window")
        self.cfg = replace(self.cfg, steps=steps)
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        vals, masks = train.sample_rows(BIAS_SAMPLE, rng)
        sample = self.pre.transform_tensor(vals, masks)[:, :len(self.pre.keep)]
        with torch.no_grad():
            self.net = self._structure(sample, rng)
        width = sum(s.mean.numel() for s in self.net.scales)
        ridge_mb = self.ridge_mb(len(train) + (len(val) if val is not None else 0), width)
        head = self.cfg.head
        if head == "auto":
            head = "ridge" if ridge_mb <= self.cfg.memory_budget_mb else "softmax"
        budget = self.cfg.memory_budget_mb
        why = (f"{head} head, as asked (--set head={head})" if self.cfg.head != "auto"
               else f"ridge head: {ridge_mb:,.0f} MB, within memory_budget_mb {budget:,}" if head == "ridge"
               else f"softmax head: the ridge head would need {ridge_mb:,.0f} MB, over memory_budget_mb {budget:,}")
        if progress:
            progress(0, None, rate=why)           # which head, and why, from the start of a long fit
        info = {"head": head, "head_choice": why, "features": int(width), "ridge_memory_mb": round(ridge_mb, 1),
                "memory_budget_mb": budget, "fronts": self._describe()}
        t0 = time.perf_counter()
        if head == "ridge":
            # The ridge chooses its penalty by leave-one-out and needs no
            # validation windows: it learns from train + val.
            fit = concat_parts(train, val) if val is not None else train
            info["fit_part"] = "train + val (penalty by leave-one-out)" if val is not None else "train"
            info.update(self._fit_ridge(fit, progress))
            if val is not None:
                # Its score is leave-one-out on what it was fitted on, never a held-out val score.
                info["score_on"] = "loo"
                info["choice_rule"] = "the ridge penalty by leave-one-out on train + val (val is fitted on)"
        else:
            info["fit_part"] = "train (val for early stopping)" if val is not None else "train"
            info.update(self._fit_softmax(train, val, progress))
        info["head_s"] = round(time.perf_counter() - t0, 3)
        return info

    def _fit_small_validation(self, train, val, pool, reason: str, progress) -> dict:
        # The ridge head chooses its penalty by leave-one-out, without val: it
        # simply learns from train + val; a softmax head runs its configured epochs.
        info = self._fit(pool, None, progress)
        info["fit_part"] = "train + val"
        rule = ("fitted on train + val, the ridge penalty by leave-one-out" if info["head"] == "ridge"
                else f"fitted on train + val for the configured {self.cfg.epochs} epochs")
        info["small_validation"] = {"reason": reason, "rule": rule}
        info["choice_rule"] = rule
        info["score_on"] = "loo" if info["head"] == "ridge" else "train+val"
        return info

    @staticmethod
    def ridge_mb(n: int, width: int) -> float:
        """What fitting the ridge head takes at its peak, measured
        (bench/rocket_budget.py), not counted by hand: the float32 features
        twice (the fronts' parts and their concatenation), and inside
        scikit-learn's RidgeCV their float64 copy, centred copy and weighted
        copy and the n x p factor of the decomposition (36 bytes per feature
        value all told), and the min(n, p)^2 Gram matrix and its factors
        (26 bytes per entry). Counting only the first two copies made the
        estimate 2.5x short of the peak (3,861 MB recorded, 9.6 GB measured).
        Plus 128 MB for the fronts and the preprocessing, whatever the size."""
        return (n * width * 36 + 26 * min(n, width) ** 2) / 1e6 + 128

    def _raw_features(self, data, size: int, progress=None, total: int | None = None,
                      until: float | None = None) -> list[np.ndarray]:
        """Each front's unscaled features of every window of `data`, batch by
        batch; `until` (time.monotonic()): the windows transformed by then."""
        import torch
        parts = []
        self.net.eval()
        with torch.no_grad():
            for b, (x, _) in enumerate(self.prepared_batches(data, size)):
                parts.append([f.numpy() for f in self.net.raw(torch.from_numpy(x))])
                if progress:
                    progress(b + 1, total)
                if until is not None and time.monotonic() >= until:
                    break
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self.net.fronts))]

    def _fit_scales(self, raws: list[np.ndarray]) -> None:
        import torch
        for scale, f in zip(self.net.scales, raws):
            f = scale.prepare(torch.from_numpy(f)).double()
            mean, std = f.mean(0), f.std(0)
            if scale.sparse:
                # The reference's sparse scaler: a feature that is mostly zero gets a larger floor.
                std = std + (f == 0).double().mean(0) ** 4 + 1e-8
            else:
                std = f.std(0, correction=0)
                std = torch.where(std > 1e-8, std, torch.ones_like(std))
            scale.mean.copy_(mean.float())
            scale.std.copy_(std.float())

    def _fit_ridge(self, fit, progress) -> dict:
        """The validation score is the leave-one-out macro-F1 of the fit part (train + val)."""
        import torch
        from sklearn.linear_model import RidgeCV
        size = self._rows_per_batch()
        batches = math.ceil(len(fit) / size) + 1
        budget = {}
        until = None
        if self._deadline is not None:
            # Under a budget, windows in a seeded random order, transformed until
            # 80% of it is spent (the ridge's solve takes the rest): a subset
            # drawn evenly from the fit part, never its first rows only.
            fit = fit.take(np.random.default_rng(self.seed + 3).permutation(len(fit)))
            until = self._deadline - 0.2 * self.cfg.budget_s
        raws = self._raw_features(fit, size, progress, batches, until)
        if len(raws[0]) < len(fit):
            budget = {"budget": {"budget_s": self.cfg.budget_s, "stopped_by_budget": True,
                                 "windows_transformed": int(len(raws[0])), "windows": int(len(fit))}}
            fit = fit.take(np.arange(len(raws[0])))
        elif self._deadline is not None:
            budget = {"budget": {"budget_s": self.cfg.budget_s, "stopped_by_budget": False}}
        self._fit_scales(raws)
        with torch.no_grad():
            X = torch.cat([s(torch.from_numpy(r)) for s, r in zip(self.net.scales, raws)], dim=1).numpy()
        del raws
        k = len(self.classes)
        Y = np.where(np.eye(k, dtype=np.float64)[fit.y] > 0, 1.0, -1.0)
        sw = class_weights(fit.y, k)[fit.y]
        ridge = RidgeCV(alphas=ALPHAS, scoring=_weighted_mse, store_cv_results=True).fit(X, Y, sample_weight=sw)
        best = int(np.argmin(np.abs(ALPHAS - ridge.alpha_)))
        loo = np.asarray(ridge.cv_results_)[:, :, best]
        temperature = fit_temperature(loo, fit.y)
        with torch.no_grad():
            self.net.head.weight.copy_(torch.from_numpy(np.asarray(ridge.coef_, np.float32) / temperature))
            self.net.head.bias.copy_(torch.from_numpy(np.asarray(ridge.intercept_, np.float32) / temperature))
        loo_f1 = macro_f1(fit.y, loo.argmax(1), k)
        if progress:
            progress(batches, batches, alpha=f"{ridge.alpha_:.3g}", loo_f1=f"{loo_f1:.3f}")
        del X
        return {"best_epoch": 1, "val_macro_f1": float(loo_f1), "loo_macro_f1": float(loo_f1),
                "alpha": float(ridge.alpha_), "alphas": [float(a) for a in ALPHAS],
                "alpha_choice": "leave-one-out squared error of the class-weighted ridge (RidgeCV, +-1 targets)",
                "temperature": temperature, "probabilities": "softmax(ridge scores / temperature), the temperature "
                                                               "fitted on the leave-one-out scores of the fit part",
                "fit_windows": int(len(fit)), **budget}

    def _fit_softmax(self, fit, val, progress) -> dict:
        rng = np.random.default_rng(self.seed + 1)
        self._fit_scales(self._raw_features(fit.take(np.sort(rng.choice(len(fit), min(SCALE_SAMPLE, len(fit)),
                                                                          replace=False))), 256))
        cap = self._rows_per_batch()
        loop = replace(self.cfg, batch_size=max(2, min(self.cfg.batch_size, cap)))
        if self._deadline is not None:
            # What is left of the budget once the transform's parameters and scales are fitted.
            loop = replace(loop, budget_s=max(1.0, self._deadline - time.monotonic()))
        val, val_note = budget_val(val, loop, self.seed)
        steps = math.ceil(len(fit) / loop.batch_size)

        def bar(epoch, epochs, **fields):
            if progress:
                progress(epoch * steps, epochs * steps, **fields)

        def step_bar(step):
            # Every batch, not every epoch: an epoch of transforms takes minutes, and its ETA shows from the first.
            if progress:
                progress(step, loop.epochs * steps)

        info = train_loop(self.net, lambda r, size: self.prepared_batches(fit, size, r), len(fit),
                          (lambda: self.prepared_batches(val, cap)) if val is not None else None,
                          class_weights(fit.y, len(self.classes)), loop, self.device, self.seed, bar,
                          on_step=step_bar, resume=None if self.fixed else self.resume)
        self.net.to("cpu")
        self.device = "cpu"
        if val is None:
            info["val_macro_f1"] = float("nan")
        return {**info, **val_note, "batch_size": loop.batch_size}

    # -- predict, save, load --------------------------------------------------------
    def _predict_proba(self, x) -> np.ndarray:
        import torch
        self.net.eval()
        size = self._rows_per_batch()
        with torch.no_grad():
            out = [torch.softmax(self.net(torch.from_numpy(np.ascontiguousarray(x[i:i + size]))), dim=1).numpy()
                   for i in range(0, len(x), size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def export_net(self):
        """A copy whose fronts count by comparing every step with every bias
        (ONNX has no binary search); the counts, so the outputs, are the same."""
        import copy
        net = copy.deepcopy(self.net)
        for m in net.modules():
            if hasattr(m, "compare_all"):
                m.compare_all = True
        return net.eval()

    def _load_weights(self, path: Path) -> None:
        import torch
        with torch.no_grad():
            self.net = self._structure()
        with np.load(path, allow_pickle=False) as z:
            self.net.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
        self.net.eval()


class MiniRocketModel(RocketModel):
    """MiniRocket (multivariate): 84 kernels x dilations, PPV pooling, ~10,000 features."""
    name, settings = "minirocket", MiniRocketSettings

    def _fronts(self, channels, steps, sample, rng):
        cfg = self.cfg
        params = (fit_minirocket_params(sample, cfg.n_features, cfg.max_dilations, rng) if sample is not None
                  else _blank_minirocket(channels, steps, cfg.n_features, cfg.max_dilations))
        front = MiniRocketFront(params, channels, steps)
        return [front], [N_KERNELS * int(np.sum(params["features_per_dilation"]))], [False]

    def _describe(self) -> dict:
        f = self.net.fronts[0]
        return {"minirocket": {"dilations": f.dilations, "features_per_dilation": f.per_dilation}}


class MRHydraModel(RocketModel):
    """MultiRocket (four poolings on the series and its difference) beside
    Hydra (competing kernels' counts, sparse-scaled), one ridge or softmax head."""
    name, settings = "mrhydra", MRHydraSettings

    def _fronts(self, channels, steps, sample, rng):
        cfg = self.cfg
        n, dmax = cfg.n_kernels, cfg.max_dilations
        if sample is not None:
            hydra = fit_hydra_params(channels, steps, cfg.hydra_kernels, cfg.hydra_groups,
                                     cfg.hydra_channels, rng)
            base = fit_minirocket_params(sample, n, dmax, rng)
            diff = fit_minirocket_params(np.diff(sample, axis=2), n, dmax, rng)
        else:
            dil = hydra_dilations(steps)
            g, k = cfg.hydra_groups, cfg.hydra_kernels
            hydra = {"dilations": dil, "k": k, "g": g,
                     "weights": np.zeros((len(dil), 2, k * g // 2, 1, 9), np.float32),
                     "channels": np.zeros((len(dil), 2, g // 2, hydra_channels(channels, cfg.hydra_channels)),
                                          np.int64)}
            base = _blank_minirocket(channels, steps, n, dmax)
            diff = _blank_minirocket(channels, steps - 1, n, dmax)
        width_mr = 4 * N_KERNELS * (int(np.sum(base["features_per_dilation"])) +
                                    int(np.sum(diff["features_per_dilation"])))
        width_h = len(hydra["dilations"]) * 2 * hydra["g"] * hydra["k"]
        return ([HydraFront(hydra, channels, steps), MultiRocketFront(base, diff, channels, steps)],
                [width_h, width_mr], [True, False])

    def _describe(self) -> dict:
        h, m = self.net.fronts
        return {"hydra": {"dilations": h.dilations, "groups": h.h * h.divisor, "kernels_per_group": h.k},
                "multirocket": {"dilations": m.base.dilations, "features_per_dilation": m.base.per_dilation,
                                "difference_dilations": m.diff.dilations}}
