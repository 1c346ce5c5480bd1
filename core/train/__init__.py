"""`cis490 train`: assemble a split's data, fit a model in one mode, checkpoint it."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import Cis490Error, ConfigError
from core.extract import FEATURES, TENSORS, load_feature_schema
from core.extract.tensors import TensorStore
from core.models import MODELS
from core.models.base import (FORMAT_VERSION, HEADER, BaseModel, CheckpointError, TrainError, save_checkpoint,
                              schema_hash)
from core.models.data import SummaryData, TensorData
from core.registry import Registry
from core.split import load_split
from core.store import file_digest

MODES = ("realistic", "oracle")


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got '{device}'")
    if device == "cpu":
        return "cpu"
    import torch
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device (use --device cpu or auto)")
    return "cpu"


def model_class(name: str) -> type[BaseModel]:
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}' (models: {', '.join(MODELS)})")
    return MODELS[name]


def keep_mask(registry: Registry, schema: dict, input_kind: str, mode: str) -> np.ndarray:
    """Indices of the inputs a mode may see: `realistic` keeps deployable channels
    only (from the registry's flags, never a hand list); `oracle` keeps all."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode '{mode}' (modes: {', '.join(MODES)})")
    deployable = {c.name: c.deployable for c in registry.channels}
    names = schema["features"] if input_kind == "summary" else schema["channels"]
    channel_of = [n.split(":", 1)[0] for n in names]
    return np.array([i for i, ch in enumerate(channel_of) if mode == "oracle" or deployable[ch]], np.int64)


def check_registry(registry: Registry, schema: dict) -> None:
    if schema["registry_hash"] != registry.schema_hash:
        raise TrainError(f"the features were extracted with another channel registry "
                         f"({schema['registry_hash'][:12]} vs {registry.schema_hash[:12]}): re-run `cis490 extract`, "
                         "or pass --channels with the registry they were made with")


@dataclass
class SplitData:
    recipe: str
    meta: dict
    parts: dict[str, SummaryData | TensorData]


def load_split_data(processed: Path, recipe: str, input_kind: str) -> SplitData:
    """Windows of each part, as summary matrices or tensor-store rows."""
    split, meta = load_split(processed, recipe)
    if input_kind == "summary":
        schema = load_feature_schema(processed)
        frame = pl.read_parquet(processed / FEATURES, columns=["episode_id", "label_id", *schema["features"]])
    else:
        frame = pl.read_parquet(processed / TENSORS / "index.parquet")
        store = TensorStore.open(processed / TENSORS)
    frame = frame.join(split, on="episode_id", how="inner", maintain_order="left")
    parts = {}
    for part in ("train", "val", "test"):
        sub = frame.filter(pl.col("part") == part)
        y = sub["label_id"].to_numpy().astype(np.int64)
        eps = sub["episode_id"].to_numpy()
        if input_kind == "summary":
            X = sub.drop("episode_id", "label_id", "part").to_numpy().astype(np.float32)
            parts[part] = SummaryData(X, y, eps)
        else:
            parts[part] = TensorData(store, sub["row"].to_numpy(), y, eps)
    return SplitData(recipe, meta, parts)


@dataclass
class TrainResult:
    model: str
    mode: str
    checkpoint: Path
    header: dict
    seconds: float


def checkpoint_dir(artifacts: Path, model: str, mode: str) -> Path:
    return artifacts / "models" / f"{model}_{mode}"


def train_one(processed: Path, artifacts: Path, registry: Registry, model: str, mode: str, recipe: str = "host",
              overrides: dict | None = None, seed: int = 0, device: str = "cpu", run_id: str | None = None,
              progress=None, data: SplitData | None = None) -> TrainResult:
    t0 = time.perf_counter()
    cls = model_class(model)
    schema = load_feature_schema(processed)
    check_registry(registry, schema)
    keep = keep_mask(registry, schema, cls.input_kind, mode)
    data = data or load_split_data(processed, recipe, cls.input_kind)
    m = cls(list(registry.phases), overrides, seed=seed, device=device)
    if getattr(cls, "needs_unlabeled", False):
        part = m.config["unlabeled_part"]
        m.unlabeled = data.parts[part]
        m.unlabeled_source = f"{recipe} split, part '{part}' (inputs only; labels never read)"
    m.fit(data.parts["train"], data.parts["val"], keep, progress)
    seconds = time.perf_counter() - t0
    names = schema["features"] if cls.input_kind == "summary" else schema["channels"]
    m.training.update({
        "split": recipe, "split_index_sha256": data.meta["index_sha256"], "seed": seed, "run_id": run_id,
        "device": device, "windows": {p: len(d) for p, d in data.parts.items()}, "seconds": round(seconds, 3),
        "train_windows_per_s": round(len(data.parts["train"]) * m.training.get("epochs_run", 1) / seconds, 1)})
    out = checkpoint_dir(artifacts, model, mode)
    save_checkpoint(m, out, {"mode": mode, "schema_hash": schema_hash(schema, cls.input_kind),
                             "registry_hash": registry.schema_hash, "window": schema["window"],
                             "keep_names": [names[i] for i in keep]})
    header = json.loads((out / HEADER).read_text())
    return TrainResult(model, mode, out, header, seconds)


def load_checkpoint(directory: Path, processed: Path, registry: Registry) -> BaseModel:
    """A fitted model; refuses another format, schema or registry with what to do."""
    hpath = Path(directory) / HEADER
    if not hpath.exists():
        raise CheckpointError(f"{directory}: no checkpoint here (train it with `cis490 train`)")
    header = json.loads(hpath.read_text())
    name = header.get("model", "?")
    retrain = f"retrain with `cis490 train {name} --mode {header.get('mode', 'realistic')}`"
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{hpath}: checkpoint format {header.get('format_version')}, this cis490 reads "
                              f"{FORMAT_VERSION}: {retrain}")
    schema = load_feature_schema(processed)
    if header["registry_hash"] != registry.schema_hash:
        raise CheckpointError(f"{hpath}: trained with channel registry {header['registry_hash'][:12]}, the current "
                              f"one is {registry.schema_hash[:12]}: {retrain}, or pass --channels with the registry "
                              "it was trained on")
    if header["schema_hash"] != schema_hash(schema, header["input_kind"]):
        what = "window spec" if header.get("window") != schema["window"] else "feature/channel list"
        raise CheckpointError(f"{hpath}: trained on another {what} than the current extract "
                              f"({header.get('window')} vs {schema['window']}): {retrain}, or re-extract as it was")
    wpath = Path(directory) / header["weights"]["file"]
    if not wpath.exists() or file_digest(wpath)[0] != header["weights"]["sha256"]:
        raise CheckpointError(f"{wpath}: weights missing or not the ones the header vouches for: {retrain}")
    from core.models.base import Preprocessor
    m = model_class(name)(header["classes"], header["config"], seed=header.get("seed", 0))
    m.pre = Preprocessor.from_json(header["preprocessing"])
    m.pca, m.training = header.get("pca"), header.get("training", {})
    m.mode = header["mode"]
    m._load_weights(wpath)
    return m
