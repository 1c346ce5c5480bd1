"""The model interface, input preprocessing, and schema-hashed checkpoints.

Public `fit` does the shared work (checks, keep mask, standardisation fitted
on train only, PCA for the dashboard) and calls the model's private `_fit`.
Checkpoints are a JSON header plus a weights sidecar (.npz arrays or XGBoost
JSON): no pickle anywhere.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import Cis490Error
from core.models.data import SummaryData, TensorData, slog
from core.paths import atomic_dir, atomic_path, atomic_write_text

FORMAT_VERSION = 1
HEADER = "header.json"
PCA_SAMPLE = 4000
STATS_SAMPLE = 2048


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

    @classmethod
    def fit(cls, data: SummaryData | TensorData, keep: np.ndarray, seed: int) -> "Preprocessor":
        rng = np.random.default_rng(seed)
        if data.kind == "summary":
            x = slog(data.X[:, keep].astype(np.float64))
            median = np.nanmedian(x, axis=0)
            mean = np.nanmean(x, axis=0)
            std = np.nanstd(x, axis=0)
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
        return cls(data.kind, np.asarray(keep, np.int64), median, mean, std)

    def transform_summary(self, X: np.ndarray) -> np.ndarray:
        x = slog(X[:, self.keep].astype(np.float32))
        x = np.where(np.isnan(x), self.median.astype(np.float32), x)
        return ((x - self.mean) / self.std).astype(np.float32)

    def transform_tensor(self, vals: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(B, C, T) raw -> (B, 2*Ck, T): standardised values, then the mask."""
        m = masks[:, self.keep].astype(np.float32)
        x = slog(vals[:, self.keep].astype(np.float32))
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
    default_config: dict = {}
    progress_unit = "step"        # what its progress bar counts

    @classmethod
    def progress_total(cls, config: dict) -> int:
        return 1

    def __init__(self, classes: list[str], config: dict | None = None, seed: int = 0, device: str = "cpu"):
        self.classes = list(classes)
        self.config = {**self.default_config, **(config or {})}
        self.seed = seed
        self.device = device
        self.pre: Preprocessor | None = None
        self.training: dict = {}
        self.pca: dict | None = None

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
        self.pre = Preprocessor.fit(train, keep, self.seed)
        self.pca = self._fit_pca(train)
        info = self._fit(train, val, progress) or {}
        self.training.update(info)
        return info

    def predict_proba(self, inputs) -> np.ndarray:
        """Class probabilities for raw inputs: X (n, F) or (values, masks) (n, C, T).

        Never NaN: a model whose probabilities are not finite is a bug to
        fix, not a prediction to report (argmax of NaN reads as the first phase)."""
        if self.pre is None:
            raise CheckpointError(f"{self.name}: model is not fitted")
        proba = self._predict_proba(self._prepare(inputs))
        bad = ~np.isfinite(proba).all(axis=1)
        if bad.any():
            raise ModelError(f"{self.name}: {int(bad.sum())} of {len(proba)} windows got non-finite probabilities")
        return proba

    def predict(self, inputs) -> np.ndarray:
        return self.predict_proba(inputs).argmax(axis=1)

    def predict_data(self, data: SummaryData | TensorData, batch: int = 4096) -> np.ndarray:
        return np.concatenate([self.predict_proba(x) for x, _ in data.batches(batch)]) if len(data) else \
            np.zeros((0, len(self.classes)))

    def _prepare(self, inputs):
        if self.input_kind == "summary":
            return self.pre.transform_summary(np.asarray(inputs))
        vals, masks = inputs
        return self.pre.transform_tensor(vals, masks)

    def _fit_pca(self, train) -> dict:
        from sklearn.decomposition import PCA
        rng = np.random.default_rng(self.seed)
        if train.kind == "summary":
            idx = np.sort(rng.choice(len(train), size=min(PCA_SAMPLE, len(train)), replace=False))
            z = self.pre.transform_summary(train.X[idx])
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


def save_checkpoint(model: BaseModel, directory: Path, header_extra: dict) -> Path:
    """Write weights, then the header (it vouches for the weights), into a new
    directory that replaces the old checkpoint whole only once both are written:
    a failure leaves the previous checkpoint exactly as it was."""
    from core.store import file_digest
    with atomic_dir(directory) as tmp:
        wname = model._save_weights(tmp)
        header = {
            "format_version": FORMAT_VERSION, "model": model.name, "input_kind": model.input_kind,
            "classes": model.classes, "config": model.config, "seed": model.seed,
            "preprocessing": model.pre.to_json(), "pca": model.pca, "training": model.training,
            "weights": {"file": wname, "sha256": file_digest(tmp / wname)[0]}, **header_extra,
        }
        atomic_write_text(tmp / HEADER, json.dumps(header, indent=1, default=_json_default) + "\n")
    return directory / HEADER


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path, ".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
