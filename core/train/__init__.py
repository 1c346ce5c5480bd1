"""`cis490 train`: assemble a split's data, fit a model in one mode, checkpoint it."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import Cis490Error, ConfigError
from core.extract import extract_chunks, load_feature_schema, open_tensors, read_features, read_tensor_index
from core.models import MODELS
from core.models.base import BaseModel, CheckpointError, TrainError, schema_hash
from core.models.checkpoint import load_checkpoint, save_checkpoint, schema_record  # noqa: F401 (re-exported)
from core.models.data import ParquetTable, SummaryData, TensorData
from core.models.settings import make, parse_pairs, parse_value, settable
from core.registry import Registry, registry_ref
from core.split import (CAPPED_PARTS, MAX_EPISODE_SHARE, capped_rows, describe_params, earlier_versions, load_split,
                        split_identity)

from core.lab import HEADER, MODES, Lab, Ref, train_command  # noqa: E402 (MODES re-exported)


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


from core.models import model_class  # noqa: E402,F401 (re-exported)


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


OPTIONS = ("epochs", "batch_size", "lr", "weight_decay", "patience")


def model_settings(names: list[str], options: dict, pairs: list[str]) -> dict[str, object]:
    """Each model's settings (an instance of its settings class, validated
    once here, before any data is read, and used as it is from here to the
    loop) from train's options and `--set key=value` pairs: an option goes to
    every chosen model that takes it, a `--set` key to every chosen model that
    has it; one that no chosen model takes is an error naming the valid keys,
    as is a value out of range."""
    classes = {n: model_class(n) for n in names}
    given = {k: v for k, v in options.items() if v is not None}
    for opt in given:
        takers = [n for n, c in classes.items() if opt in c.option_keys]
        if not takers:
            flag = "--" + opt.replace("_", "-")
            allowed = ", ".join(n for n, c in MODELS.items() if opt in c.option_keys)
            raise ConfigError(f"{flag} does not apply to {', '.join(names)} (it applies to {allowed})")
    raw = parse_pairs(pairs)
    for key in raw:
        if not any(key in settable(c.settings) for c in classes.values()):
            valid = "; ".join(f"{n}: {', '.join(settable(c.settings))}" for n, c in classes.items())
            who = names[0] if len(names) == 1 else "any chosen model"
            raise ConfigError(f"--set {key}: not a setting of {who} ({valid})")
    out = {}
    for n, c in classes.items():
        values = {c.option_keys[k]: v for k, v in given.items() if k in c.option_keys}
        values.update({k: parse_value(c.settings, n, k, v) for k, v in raw.items() if k in settable(c.settings)})
        out[n] = make(c.settings, n, values)
    return out


@dataclass
class SplitData:
    recipe: str
    meta: dict
    parts: dict[str, SummaryData | TensorData]
    # Per part models fit or choose on, the windows it left out of episodes
    # over the split's max_episode_share, and the cap (core.split.capped_rows).
    capped: dict[str, dict] = field(default_factory=dict)


def load_split_data(processed: Path, recipe: str, input_kind: str, view: tuple | None = None,
                    schema: dict | None = None, capped: bool = True) -> SplitData:
    """Windows of each part: rows of the features parquet (read later, in
    batches and only the columns a model keeps) or of the tensor store.
    `view` (the split's frame and metadata) and `schema`: when read already.
    `capped`: train and val hold at most the split's max_episode_share of
    any one episode (what models fit and choose on); eval scores every window."""
    split, meta = view or load_split(processed, recipe)
    schema = schema or load_feature_schema(processed)
    if input_kind == "summary":
        # Only the index is read here: the feature values stay on disk.
        frame = read_features(processed, ["episode_id", "label_id"], schema).with_row_index("row")
        table = ParquetTable([c.features for c in extract_chunks(processed, schema)], schema["features"])
    else:
        frame = read_tensor_index(processed, schema)
        store = open_tensors(processed, schema)
    frame = frame.join(split, on="episode_id", how="inner", maintain_order="left")
    # Episodes as integer codes: cross-validation folds keep an episode whole.
    episodes = np.unique(frame["episode_id"].to_numpy(), return_inverse=True)[1].astype(np.int64)
    parts, left_out = {}, {}
    share = meta["params"].get("max_episode_share", MAX_EPISODE_SHARE)
    for part in ("train", "val", "test"):
        sel = frame["part"] == part
        sub = frame.filter(sel)
        y = sub["label_id"].to_numpy().astype(np.int64)
        rows = sub["row"].to_numpy().astype(np.int64)
        groups = episodes[sel.to_numpy()]
        if capped and part in CAPPED_PARTS:
            keep, cap = capped_rows(groups, share)
            if cap is not None:
                left_out[part] = {"cap": cap, "share": share, "windows_left_out": len(rows) - len(keep)}
                y, rows, groups = y[keep], rows[keep], groups[keep]
        parts[part] = (SummaryData(table, rows, y, groups) if input_kind == "summary"
                       else TensorData(store, rows, y, groups))
    return SplitData(recipe, meta, parts, left_out)


@dataclass
class TrainResult:
    model: str
    mode: str
    checkpoint: Path
    header: dict
    seconds: float


def train_one(processed: Path, artifacts: Path, registry: Registry, model: str, mode: str, recipe: str = "host",
              overrides=None, seed: int = 0, device: str = "cpu", run_id: str | None = None,
              progress=None, data: SplitData | None = None, resume: bool = False) -> TrainResult:
    """Fit `model` in `mode` on split `recipe` and write its checkpoint.
    A neural fit keeps its state after every epoch (core.models.resume);
    `resume` continues from the one an interrupted fit left."""
    t0 = time.perf_counter()
    cls = model_class(model)
    schema = load_feature_schema(processed)
    check_registry(registry, schema)
    keep = keep_mask(registry, schema, cls.input_kind, mode)
    data = data or load_split_data(processed, recipe, cls.input_kind)
    m = cls(list(registry.phases), overrides, seed=seed, device=device)
    m.scratch = processed        # external-memory pages, if any, go beside the features
    m.resume = resume_state(artifacts, Ref(recipe, model, mode), m, data, keep, seed, resume)
    if getattr(cls, "needs_unlabeled", False):
        part = m.cfg.unlabeled_part
        m.unlabeled = data.parts[part]
        m.unlabeled_source = f"{recipe} split, part '{part}' (inputs only; labels never read)"
    try:
        m.fit(data.parts["train"], data.parts["val"], keep, progress)
    except Cis490Error:
        m.resume.clear()         # a fit that failed on its data would fail again: nothing to resume
        raise
    if resume and "resumed" not in m.training:
        m.training["resumed"] = ("nothing to resume: no saved state for this fit (a neural fit, or a ROCKET "
                                 "softmax head, keeps one after every epoch)")
    m.calibrate(data.parts["val"])
    seconds = time.perf_counter() - t0
    names = schema["features"] if cls.input_kind == "summary" else schema["channels"]
    m.training.update({
        "split": recipe, "seed": seed, "run_id": run_id,
        "device": device, "windows": {p: len(d) for p, d in data.parts.items()}, "seconds": round(seconds, 3),
        "episode_share_cap": data.capped,
        "train_windows_per_s": round(len(data.parts["train"]) * m.training.get("epochs_run", 1) / seconds, 1)})
    # One checkpoint per split, model and mode (core.lab): training on another
    # split never replaces the one a report of this split was made with.
    out = Lab(processed, artifacts).checkpoint(Ref(recipe, model, mode))
    header = save_checkpoint(m, out, {"mode": mode, "schema_hash": schema_hash(schema, cls.input_kind),
                             "registry_hash": registry.schema_hash, "registry": registry_ref(registry),
                             "window": schema["window"], "schema": schema_record(schema, cls.input_kind),
                             # Its split's windows by content: runs extracted since leave it fresh.
                             "split": split_identity(data.meta), "features_sha256": data.meta["features_sha256"],
                             "keep_names": [names[i] for i in keep]})
    m.resume.clear()             # the fit is whole: nothing is left to resume
    return TrainResult(model, mode, out, header, seconds)


def resume_state(artifacts: Path, ref: Ref, m, data: SplitData, keep, seed: int, use: bool):
    """Where this fit's state is kept between epochs, and what it must match
    to be resumed from: the model, its settings (the budget aside), the seed,
    the kept inputs and the split's windows."""
    from dataclasses import asdict

    from core.models.resume import ResumeState
    settings = {k: v for k, v in asdict(m.cfg).items() if k != "budget_s"}
    key = {"model": ref.model, "mode": ref.mode, "split": data.meta["membership_sha256"],
           "windows": data.meta["features_sha256"], "settings": json.dumps(settings, sort_keys=True, default=str),
           "seed": seed, "keep": [int(k) for k in keep], "train_windows": len(data.parts["train"])}
    path = Lab(Path(), artifacts).checkpoint(ref).parent / ".resume" / f"{ref.dirname}.pt"
    return ResumeState(path, key, use)


def trained_names(artifacts: Path, split: str) -> list[str]:
    return [ref.dirname for ref in Lab(Path(), artifacts).checkpoints(split)]


def require_checkpoint(artifacts: Path, split: str, model: str, mode: str,
                       error: type[Exception] = CheckpointError) -> Path:
    """The checkpoint's folder; its absence is `error` (the caller's class),
    naming what is trained on the split and the command that trains it."""
    ref = Ref(split, model, mode)
    d = Lab(Path(), artifacts).checkpoint(ref)
    if not (d / HEADER).exists():
        have = trained_names(artifacts, split)
        raise error(f"no checkpoint for {model} in {mode} mode on split {split} ({d}); trained on {split}: "
                    f"{', '.join(have) if have else 'none yet'} (run `{train_command(ref)}`)")
    return d


def load_split_checkpoint(processed: Path, artifacts: Path, registry: Registry, model: str, mode: str, split: str,
                          error: type[Exception] = CheckpointError, view: tuple | None = None,
                          schema: dict | None = None) -> tuple[BaseModel, pl.DataFrame, Path]:
    """The checkpoint of `model` trained on `split`, refused unless the split
    on disk is the one it was trained on; with the split's frame and the
    checkpoint's folder. `error`: the class its absence is reported as.
    `view` (the split's frame and metadata) and `schema`: when read already,
    so that one evaluation reads each once."""
    ck = require_checkpoint(artifacts, split, model, mode, error)
    m = load_checkpoint(ck, processed, registry, schema)
    split_frame, meta = view or load_split(processed, split, schema)
    check_split_identity(m.header, ck, meta, Lab(processed, artifacts).split_parquet(split))
    return m, split_frame, ck


def check_split_identity(header: dict, directory: Path, split_meta: dict, split_path: Path) -> None:
    """Refuses to score a checkpoint on a split that is not the one it was
    trained on: its test part could hold episodes the model learned from."""
    rec = header["split"]
    name, mode = header["model"], header["mode"]
    retrain = train_command(Ref(directory.parent.name, name, mode))
    # The split's own name too: a bare `--recipe host` would remake (and replace) the `host` split.
    fix = (f"retrain with `{retrain}`, or re-make the split it was trained "
           f"on with `cis490 split {describe_params(rec['params'], rec.get('name'))}`")
    earlier = earlier_versions(split_meta).get(rec["membership_sha256"])
    if earlier is not None and earlier.get("features_sha256") == rec["features_sha256"]:
        # Trained on an earlier version of this split (`split --extend`): every
        # episode it learned from keeps its part, and none added since was seen.
        return
    if rec["membership_sha256"] != split_meta["membership_sha256"]:
        raise CheckpointError(
            f"{name}_{mode} was trained on split {rec['name']} with membership {rec['membership_sha256'][:12]} "
            f"({describe_params(rec['params'])}; {directory / HEADER}), but {split_path} now holds membership "
            f"{split_meta['membership_sha256'][:12]} ({describe_params(split_meta['params'])}): {fix}")
    if rec["features_sha256"] != split_meta["features_sha256"]:
        raise CheckpointError(
            f"{name}_{mode} was trained on features {rec['features_sha256'][:12]} ({directory / HEADER}), but "
            f"{split_path} was made on features {split_meta['features_sha256'][:12]} (the current extract): "
            f"retrain with `{retrain}`")
