"""The model interface, input preprocessing, and schema-hashed checkpoints.

Public `fit` does the shared work (checks, keep mask, standardisation fitted
on train only, PCA for the dashboard) and calls the model's private `_fit`.
Checkpoints are a JSON header plus a weights sidecar (.npz arrays or XGBoost
JSON): no pickle anywhere.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import Cis490Error
from core.models.data import (ArrayTable, SummaryData, TensorData, concat_parts, in_memory, slog, slog32,
                              slog_inplace)
from core.selection import SCORES, selection_score  # noqa: F401 (re-exported)
from core.models.settings import defaults, make
from core.models.small_validation import choose_small, too_small
from core.paths import atomic_path

FORMAT_VERSION = 3
PCA_SAMPLE = 4000
STATS_SAMPLE = 2048
MEDIAN_SAMPLE = 65536
# Windows per batch when summary features are streamed (stats, gbt, prediction).
STREAM_BATCH = 16384


class CheckpointError(Cis490Error):
    """A checkpoint is missing, of another format, or of another schema."""


class TrainError(Cis490Error):
    """Training cannot start with these inputs, or learned nothing."""


class ModelError(Cis490Error):
    """A model produced output it must never produce."""


@dataclass
class Preprocessor:
    """Keep mask + signed log + median imputation + standardisation, fitted on train.

    summary: over kept features. tensor: per kept channel, over windows and
    steps; the network then sees the standardised values and the mask.
    """
    kind: str
    keep: np.ndarray          # indices into the full feature / channel list
    median: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    # Raw kept rows of a uniform train sample, read while fitting (summary
    # inputs): the PCA uses them instead of reading train again. Not saved.
    sample: np.ndarray | None = None

    @classmethod
    def fit(cls, data: SummaryData | TensorData, keep: np.ndarray, seed: int) -> "Preprocessor":
        rng = np.random.default_rng(seed)
        keep = np.asarray(keep, np.int64)
        sample = None
        if data.kind == "summary":
            median, mean, std, sample = _summary_stats(data, keep, rng)
        else:
            vals, masks = data.sample_rows(STATS_SAMPLE, rng)
            x = slog(vals[:, keep].astype(np.float64))            # (n, Ck, T)
            x = np.where(masks[:, keep] > 0, x, np.nan).transpose(1, 0, 2).reshape(len(keep), -1)
            median = np.nanmedian(x, axis=1)
            mean = np.nanmean(x, axis=1)
            std = np.nanstd(x, axis=1)
        # A feature never present in train is imputed with 0 and left unscaled.
        median, mean = np.nan_to_num(median), np.nan_to_num(mean)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        pre = cls(data.kind, keep, median, mean, std)
        pre.sample = sample
        return pre

    def transform(self, inputs) -> np.ndarray:
        """Raw inputs, X (n, F) or (values, masks) (n, C, T), -> what the model sees."""
        if self.kind == "summary":
            return self.transform_summary(np.asarray(inputs))
        return self.transform_tensor(*inputs)

    def transform_summary(self, X: np.ndarray) -> np.ndarray:
        """Full-width raw features (n, F) -> standardised kept features (n, Fk)."""
        return self.transform_kept(np.asarray(X)[:, self.keep])

    def transform_kept(self, x: np.ndarray) -> np.ndarray:
        """Raw kept features (n, Fk) -> standardised, float32 (the signed log
        in float64, rounded once: `slog32`)."""
        x = slog32(x)
        np.copyto(x, self.median.astype(np.float32), where=np.isnan(x))
        x -= self.mean.astype(np.float32)
        x /= self.std.astype(np.float32)
        return x

    def transform_tensor(self, vals: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(B, C, T) raw -> (B, 2*Ck, T): standardised values, then the mask."""
        m = masks[:, self.keep].astype(np.float32)
        x = slog32(vals[:, self.keep])
        med = self.median.astype(np.float32)[None, :, None]
        x = np.where(m > 0, x, med)
        x = np.nan_to_num(x, nan=0.0)
        x = (x - self.mean.astype(np.float32)[None, :, None]) / self.std.astype(np.float32)[None, :, None]
        return np.concatenate([x, m], axis=1).astype(np.float32)

    def to_json(self) -> dict:
        return {"kind": self.kind, "keep": self.keep.tolist(), "median": self.median.tolist(),
                "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "Preprocessor":
        return cls(d["kind"], np.array(d["keep"], np.int64), np.array(d["median"]), np.array(d["mean"]),
                   np.array(d["std"]))


def _summary_stats(data: SummaryData, keep: np.ndarray, rng: np.random.Generator):
    """Per kept feature, over the signed log of train, NaN skipped, in one pass:
    mean and std exactly (Chan's pairwise merge of per-block moments, float64),
    and the median of a uniform sample of MEDIAN_SAMPLE windows (exact below
    that), whose raw rows are returned too (the PCA reuses them)."""
    count = np.zeros(len(keep))
    mean = np.zeros(len(keep))
    m2 = np.zeros(len(keep))
    picked = np.sort(rng.choice(len(data), size=min(MEDIAN_SAMPLE, len(data)), replace=False))
    sample = []
    for xb, idx in data.blocks(cols=keep):
        sample.append(xb[np.isin(idx, picked, assume_unique=True)])
        x = slog_inplace(xb.astype(np.float64))
        c = (~np.isnan(x)).sum(axis=0)
        if not c.any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            mb = np.where(c > 0, np.nansum(x, axis=0) / np.maximum(c, 1), 0.0)
            mb2 = np.nansum((x - mb) ** 2, axis=0)
            total = count + c
            delta = mb - mean
            mean = np.where(total > 0, mean + delta * c / np.maximum(total, 1), 0.0)
            m2 = m2 + mb2 + delta ** 2 * count * c / np.maximum(total, 1)
        count = total
    mean = np.where(count > 0, mean, np.nan)
    std = np.where(count > 0, np.sqrt(m2 / np.maximum(count, 1)), np.nan)
    raw = np.concatenate(sample) if sample else np.zeros((0, len(keep)), np.float32)
    x = slog_inplace(raw.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # an all-NaN feature: imputed with 0 below
        median = np.nanmedian(x, axis=0) if len(x) else np.full(len(keep), np.nan)
    return median, mean, std, raw


def class_weights(y: np.ndarray, k: int) -> np.ndarray:
    """Inverse-frequency weights (n / (classes * count)); absent classes get 0."""
    counts = np.bincount(y, minlength=k).astype(float)
    present = counts > 0
    w = np.zeros(k)
    w[present] = len(y) / (present.sum() * counts[present])
    return w


class BaseModel:
    name = ""
    input_kind = "summary"
    # What `cis490 export` makes of it: an ONNX graph, or the kNN arrays numpy reads.
    exportable_as = "onnxruntime"
    settings: type | None = None  # the model's frozen settings dataclass (core.models.settings)
    default_config: dict = {}
    # `cis490 train` options -> the setting each sets in this model (absent: not taken)
    option_keys: dict[str, str] = {}
    progress_unit = "step"        # what its progress bar counts
    # Where a neural fit keeps its state after each epoch (core.models.resume), set by train_one.
    resume = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.settings is not None:
            cls.default_config = defaults(cls.settings)

    @classmethod
    def progress_total(cls, cfg) -> int:
        return 1

    def __init__(self, classes: list[str], settings=None, seed: int = 0, device: str = "cpu"):
        """`settings`: an instance of the model's settings class, made (and so
        validated) by `core.models.settings.make`, used as it is; or a dict
        of them (a checkpoint's header, a test), made here."""
        self.classes = list(classes)
        self.cfg = (settings if type(settings) is self.settings
                    else make(self.settings, self.name, settings, allow_derived=True))
        self.seed = seed
        self.device = device
        self.pre: Preprocessor | None = None
        self.training: dict = {}
        self.pca: dict | None = None
        # Choices made by cross-validation instead of on val (core.models.small_validation).
        self.fixed: dict = {}
        # Temperature scaling (core.calibrate): 1 until `calibrate` fits it on val.
        self.temperature = 1.0
        self.calibration: dict | None = None

    @property
    def config(self) -> dict:
        """Every setting, chosen or default or derived: what the header records."""
        return asdict(self.cfg)

    # -- the shared part ---------------------------------------------------------
    def fit(self, train: SummaryData | TensorData, val: SummaryData | TensorData, keep: np.ndarray,
            progress=None) -> dict:
        if train.kind != self.input_kind or val.kind != self.input_kind:
            raise TrainError(f"{self.name} takes {self.input_kind} inputs, got {train.kind}")
        if len(train) == 0 or len(val) == 0:
            raise TrainError("the split has no train or no validation windows")
        missing = [self.classes[c] for c in range(len(self.classes)) if not (train.y == c).any()]
        if missing:
            raise TrainError(f"train part has no windows of phase '{missing[0]}'; a model cannot learn it "
                             "(use more episodes or another split)")
        if len(keep) == 0:
            raise TrainError("the keep mask keeps no input (check the registry's deployable flags)")
        if train.kind == "summary":
            # Fitting passes over train and val several times (statistics, the
            # model's own passes); small parts are read once.
            train, val = in_memory([train, val], keep)
            self.training["inputs"] = {p: "in memory (read once)" if isinstance(d.table, ArrayTable) else "streamed"
                                       for p, d in (("train", train), ("val", val))}
        small = too_small(train, val, self.classes)
        # Too few validation windows to choose by: train + val is the fit part.
        fit_part = concat_parts(train, val) if small else train
        self.pre = Preprocessor.fit(fit_part, keep, self.seed)
        self.pca = self._fit_pca(fit_part)
        self.pre.sample = None
        info = (self._fit_small_validation(train, val, fit_part, small, progress) if small
                else self._fit(train, val, progress)) or {}
        info.setdefault("choice_rule", "cross-validation on train + val (val too small)" if small
                        else f"the validation part ({len(val)} windows)")
        # What the selection score (`val_macro_f1`) was measured on: held out, or not (core.models.base.SCORES).
        info.setdefault("score_on", "cv" if str(info.get("choice_rule", "")).startswith("cross-validation") else "val")
        info.setdefault("fit_windows", len(train) + (len(val) if info["score_on"] != "val" else 0))
        self.training.update(info)
        return info

    def predict_proba(self, inputs) -> np.ndarray:
        """Class probabilities for raw inputs: X (n, F) or (values, masks) (n, C, T).

        Never NaN: a model whose probabilities are not finite is a bug to
        fix, not a prediction to report (argmax of NaN reads as the first phase)."""
        if self.pre is None:
            raise CheckpointError(f"{self.name}: model is not fitted")
        from core.calibrate import scale
        return scale(self._checked(self._predict_proba(self.pre.transform(inputs))), self.temperature)

    def predict_prepared(self, x) -> np.ndarray:
        """Probabilities for inputs already preprocessed, before temperature
        scaling: what an exported bundle's graph computes, so what `cis490
        export` checks it against."""
        return self._checked(self._predict_proba(x))

    def write_export(self, directory: Path) -> dict:
        """Write what a bundle runs (`exportable_as`) into `directory`; the
        header fields it needs besides the checkpoint's."""
        raise NotImplementedError(f"{self.name} cannot be exported")

    def split_thresholds(self) -> list[tuple[int, np.float32]]:
        """(input, threshold) of every comparison the model makes with a
        fixed value (a tree's splits): export checks labels there too."""
        return []

    def _checked(self, proba: np.ndarray) -> np.ndarray:
        bad = ~np.isfinite(proba).all(axis=1)
        if bad.any():
            raise ModelError(f"{self.name}: {int(bad.sum())} of {len(proba)} windows got non-finite probabilities")
        return proba

    def predict(self, inputs) -> np.ndarray:
        return self.predict_proba(inputs).argmax(axis=1)

    def predict_data(self, data: SummaryData | TensorData, batch: int = 4096, calibrated: bool = True) -> np.ndarray:
        """Probabilities for every window of `data`, streamed batch by batch
        (temperature-scaled unless `calibrated` is False)."""
        if self.pre is None:
            raise CheckpointError(f"{self.name}: model is not fitted")
        from core.calibrate import scale
        out = [self._checked(self._predict_proba(x)) for x, _ in self.prepared_batches(data, batch)]
        proba = np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)
        return scale(proba, self.temperature) if calibrated else proba

    def calibrate(self, val: SummaryData | TensorData) -> dict:
        """Fit the temperature on the validation part (core.calibrate). When
        val was fitted on (too small to choose by), a temperature fitted there
        would be fitted on what the model learned: it stays 1, and says why;
        so it does when val cannot identify one (core.calibrate.fit_checked)."""
        from core.calibrate import METHOD, fit_checked, nll, scale
        on = self.training.get("score_on", "val")
        if on == "loo":
            # The ridge head's temperature is in its weights already: fitted on
            # the leave-one-out scores of train + val. Val was fitted on: no
            # held-out part is left to fit another on.
            self.calibration = {"temperature": 1.0, "method": METHOD,
                                "fitted_on": "none: val was fitted on (the ridge head learns from train + val); the "
                                             "head's own temperature, from the leave-one-out scores of train + val, "
                                             "is in its weights"}
        elif on != "val":
            self.calibration = {"temperature": 1.0, "method": METHOD,
                                "fitted_on": "none: val was too small and was trained on"}
        else:
            raw = self.predict_data(val, calibrated=False)
            t, why_not = fit_checked(raw, val.y)
            self.calibration = {"temperature": t, "method": METHOD,
                                "fitted_on": "val" if why_not is None else f"none: {why_not}", "windows": len(val),
                                "val_nll_before": nll(raw, val.y), "val_nll_after": nll(scale(raw, t), val.y)}
        self.temperature = float(self.calibration["temperature"])
        return self.calibration

    def prepared_batches(self, data: SummaryData | TensorData, size: int, rng: np.random.Generator | None = None):
        """(model input, y) batches: only the kept columns are read from summary data."""
        if data.kind == "summary":
            return ((self.pre.transform_kept(x), y) for x, y in data.batches(size, rng, cols=self.pre.keep))
        return ((self.pre.transform_tensor(*x), y) for x, y in data.batches(size, rng))

    def _fit_pca(self, train) -> dict:
        from sklearn.decomposition import PCA
        rng = np.random.default_rng(self.seed)
        if train.kind == "summary":
            sample = self.pre.sample
            if sample is None:
                sample = train.sample(PCA_SAMPLE, rng, cols=self.pre.keep)[0]
            z = self.pre.transform_kept(sample[np.sort(rng.choice(len(sample), min(PCA_SAMPLE, len(sample)),
                                                                  replace=False))])
        else:
            vals, masks = train.sample_rows(PCA_SAMPLE, rng)
            z = self.pre.transform_tensor(vals, masks).mean(axis=2)
        pca = PCA(n_components=2, random_state=self.seed).fit(z)
        return {"input": "standardised summary features" if train.kind == "summary"
                else "per-channel time means of the standardised tensor (values, then masks)",
                "mean": pca.mean_.tolist(), "components": pca.components_.tolist(),
                "explained_variance_ratio": pca.explained_variance_ratio_.tolist()}

    # -- what each model provides ----------------------------------------------
    def _fit(self, train, val, progress) -> dict:
        """Fit on train, choosing on val; val None: with the choices in `self.fixed`."""
        raise NotImplementedError

    def _fit_small_validation(self, train, val, pool, reason: str, progress) -> dict:
        """Fit on train + val (`pool`) when val is too small to choose by
        (core.models.small_validation says how the choices are made)."""
        return choose_small(self, train, val, pool, reason, progress)

    def _cv_summary(self, info: dict) -> dict:
        """What one fold chose, from its `_fit` info (with its held-out 'score')."""
        raise NotImplementedError

    def _cv_fix(self, summaries: list[dict]) -> dict:
        """The folds' choices -> `self.fixed` for the final fit."""
        raise NotImplementedError

    def _predict_proba(self, x) -> np.ndarray:
        raise NotImplementedError

    def _save_weights(self, directory: Path) -> str:
        """Write the weights sidecar; return its file name."""
        raise NotImplementedError

    def _load_weights(self, path: Path) -> None:
        raise NotImplementedError


def schema_hash(feature_schema: dict, input_kind: str) -> str:
    """What a checkpoint's inputs mean: registry, window spec, and the input names."""
    names = feature_schema["features"] if input_kind == "summary" else feature_schema["channels"]
    blob = json.dumps({"registry": feature_schema["registry_hash"], "spec": feature_schema["spec_hash"],
                       "inputs": names}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path, ".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
