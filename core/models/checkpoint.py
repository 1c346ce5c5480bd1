"""A checkpoint (docs/models.md#checkpoints): written and read here only.

A directory holding the weights and `header.json`, which vouches for them
(sha256) and records the model's full settings, its preprocessing, the
split it was trained on and the inputs' schema. Reading one refuses another
format, registry, schema or weights with the command that retrains it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from core.calibrate import temperature_of
from core.lab import HEADER, Ref, train_command
from core.loading import read_json
from core.models import MODELS, model_class
from core.models.base import FORMAT_VERSION, BaseModel, CheckpointError, Preprocessor, schema_hash
from core.paths import atomic_dir, atomic_write_text
from core.registry import Registry
from core.store import file_digest


def schema_record(schema: dict, input_kind: str) -> dict:
    """The parts of the feature schema a checkpoint's schema hash covers, kept
    so that a mismatch can say which part changed."""
    names = schema["features"] if input_kind == "summary" else schema["channels"]
    return {"registry_hash": schema["registry_hash"], "spec_hash": schema["spec_hash"], "window": schema["window"],
            "extract_version": schema.get("extract_version"), "inputs": len(names),
            "inputs_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest()}


def save_checkpoint(model: BaseModel, directory: Path, header_extra: dict) -> dict:
    """Write weights, then the header (it vouches for the weights), into a new
    directory that replaces the old checkpoint whole only once both are written:
    a failure leaves the previous checkpoint exactly as it was. The header as
    it reads back."""
    with atomic_dir(directory) as tmp:
        wname = model._save_weights(tmp)
        header = {
            "format_version": FORMAT_VERSION, "model": model.name, "input_kind": model.input_kind,
            "classes": model.classes, "config": model.config, "seed": model.seed,
            "preprocessing": model.pre.to_json(), "pca": model.pca, "training": model.training,
            "weights": dict(zip(("sha256", "bytes"), file_digest(tmp / wname)), file=wname),
            **({"calibration": model.calibration} if model.calibration else {}), **header_extra,
        }
        text = json.dumps(header, indent=1, default=_json_default)
        atomic_write_text(tmp / HEADER, text + "\n")
    return json.loads(text)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


HEADER_KEYS = ("format_version", "model", "mode", "input_kind", "classes", "config", "preprocessing", "weights",
               "registry_hash", "schema_hash", "split")


def read_header(directory: Path) -> dict:
    """A checkpoint's header through the loading layer: a truncated or key-less
    one is one line naming the command that retrains it."""
    directory = Path(directory)
    remake = train_command(Ref.of_dir(directory))
    hpath = directory / HEADER
    if not hpath.exists():
        raise CheckpointError(f"{directory}: no checkpoint here (train it with `{remake}`)")
    return read_json(hpath, remake, HEADER_KEYS)


def _schema_difference(header: dict, schema: dict) -> str:
    """What differs between the schema a checkpoint was trained on and the current extract."""
    old = header.get("schema") or {}
    new = schema_record(schema, header["input_kind"])
    if old.get("registry_hash") != new["registry_hash"]:
        return (f"channel registry {str(old.get('registry_hash'))[:12]} then, "
                f"{new['registry_hash'][:12]} in the current extract")
    if old.get("window") != new["window"]:
        return f"window spec {old.get('window')} then, {new['window']} now"
    if old.get("extract_version") != new["extract_version"]:
        return f"extraction code version {old.get('extract_version')} then, {new['extract_version']} now"
    if old.get("inputs_sha256") != new["inputs_sha256"]:
        return f"{old.get('inputs')} inputs then, {new['inputs']} inputs now (another feature/channel list)"
    return f"schema hash {header['schema_hash'][:12]} then, {schema_hash(schema, header['input_kind'])[:12]} now"


def load_checkpoint(directory: Path, processed: Path, registry: Registry, schema: dict | None = None) -> BaseModel:
    """A fitted model; refuses another format, schema or registry with what to do."""
    directory = Path(directory)
    header = read_header(directory)
    hpath = directory / HEADER
    name, mode = header["model"], header["mode"]
    retrain = f"retrain with `{train_command(Ref(directory.parent.name, name, mode))}`"
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{hpath}: checkpoint format {header.get('format_version')}, this cis490 reads "
                              f"{FORMAT_VERSION}: {retrain}")
    if name not in MODELS:
        raise CheckpointError(f"{hpath}: unknown model '{name}': {retrain}")
    if schema is None:
        from core.extract import load_feature_schema
        schema = load_feature_schema(processed)
    if header["registry_hash"] != registry.schema_hash:
        raise CheckpointError(f"{hpath}: trained with channel registry {header['registry_hash'][:12]}, the current "
                              f"one is {registry.schema_hash[:12]}: {retrain}, or pass --channels with the registry "
                              "it was trained on")
    if header["schema_hash"] != schema_hash(schema, header["input_kind"]):
        raise CheckpointError(f"{hpath}: trained on other inputs than the current extract "
                              f"({_schema_difference(header, schema)}): {retrain}, or re-extract as it was")
    wpath = directory / header["weights"]["file"]
    if not wpath.exists() or file_digest(wpath)[0] != header["weights"]["sha256"]:
        raise CheckpointError(f"{wpath}: weights missing or not the ones the header vouches for: {retrain}")
    m = model_class(name)(header["classes"], header["config"], seed=header.get("seed", 0))
    m.pre = Preprocessor.from_json(header["preprocessing"])
    m.pca, m.training = header.get("pca"), header.get("training", {})
    m.calibration = header.get("calibration")
    m.temperature = temperature_of(header)
    m.mode = mode
    m.header = header
    try:
        m._load_weights(wpath)
    except (RuntimeError, ValueError, KeyError) as exc:
        # The weights the header vouches for, but not of the structure its
        # config describes (a header edited by hand, or code changed under it).
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{wpath}: the weights do not fit the model the header describes ({first}): "
                              f"{retrain}") from None
    return m
