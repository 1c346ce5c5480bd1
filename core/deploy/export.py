"""`cis490 export`: a checkpoint becomes a bundle the Pi runs without torch.

The graph (or the kNN arrays) is written into a temporary folder, loaded the
way the Pi loads it, and checked against the native model on the split's
test windows at two batch sizes; only a bundle that agrees (max absolute
probability difference <= PARITY_ATOL, identical labels) replaces the
folder. Needs the `lab` extra (torch, XGBoost, onnx, onnxmltools).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.deploy.bundle import BUNDLE_FORMAT, REGISTRY, BundleModel, bundle_registry, write_header
from core.errors import Cis490Error
from core.lab import HEADER, Lab, Ref

PARITY_ATOL = 1e-4
PARITY_WINDOWS = 1024          # test windows compared, drawn uniformly (all when fewer)
PARITY_BATCHES = (1, 256)      # one window at a time, as live; and a batch


class ExportError(Cis490Error):
    """A checkpoint cannot become a bundle, or its bundle does not agree with it."""


@dataclass
class ExportResult:
    model: str
    mode: str
    directory: Path
    runtime: str
    parity: dict
    bytes: int
    seconds: float


def export_model(processed: Path, artifacts: Path, registry, model: str, mode: str, split: str,
                 check=None) -> ExportResult:
    """Export one checkpoint; `check(bundle_dir_tmp)` runs before parity (tests tamper there)."""
    from core.split import held_out_episodes
    from core.paths import atomic_dir
    from core.store import file_digest
    from core.train import load_split_checkpoint, load_split_data
    from core.paths import require_writable
    require_writable(Lab(processed, artifacts).bundle(Ref(split, model, mode)), "export")
    t0 = time.perf_counter()
    native, split_frame, ck = load_split_checkpoint(processed, artifacts, registry, model, mode, split, ExportError)
    test = load_split_data(processed, split, native.input_kind).parts["test"]
    if len(test) == 0:
        raise ExportError(f"split {split} has no test windows: parity cannot be checked")
    inputs = _parity_inputs(native, test)
    episodes = held_out_episodes(processed, split_frame)
    out = Lab(processed, artifacts).bundle(Ref(split, model, mode))
    with atomic_dir(out) as tmp:
        runtime, extra = native.exportable_as, _write_model(native, tmp)
        # The registry file the lab resolved (checked against its recorded
        # hash); bundle_registry below checks the copy as the Pi will.
        shutil.copyfile(registry.path, tmp / REGISTRY)
        h = native.header
        header = {
            "bundle_format": BUNDLE_FORMAT, "model": model, "mode": mode, "input_kind": native.input_kind,
            "classes": native.classes, "runtime": runtime, **extra,
            "preprocessing": h["preprocessing"], "keep_names": h.get("keep_names", []), "config": h["config"],
            "seed": h.get("seed", 0), "pca": h.get("pca"),
            # Applied after the graph (core.calibrate): a live probability equals eval's.
            **({"calibration": h["calibration"]} if h.get("calibration") else {}),
            "registry_hash": h["registry_hash"], "schema_hash": h["schema_hash"], "schema": h.get("schema"),
            "window": h["window"], "split": h["split"],
            "checkpoint": {"path": f"models/{split}/{ck.name}", "header_sha256": file_digest(ck / HEADER)[0],
                           "weights_sha256": h["weights"]["sha256"], "format_version": h["format_version"],
                           "run_id": h.get("training", {}).get("run_id")},
            "test_episodes": [list(r) for r in episodes],
            "versions": _versions(),
        }
        header["files"] = {p.name: file_digest(p)[0] for p in sorted(tmp.iterdir()) if p.is_file()}
        if check is not None:
            check(tmp)
        bundle_registry(tmp, header)
        bundle = BundleModel(tmp, header)
        parity = _parity(native, bundle, inputs)
        near = _near_thresholds(native, inputs)
        if len(near):
            # Labels must agree at the trees' thresholds too, not only on test windows.
            at = _parity(native, bundle, near)
            parity["threshold_windows"] = at["windows"]
            parity["max_abs_diff"] = max(parity["max_abs_diff"], at["max_abs_diff"])
            parity["labels_differ"] += at["labels_differ"]
        if parity["max_abs_diff"] > PARITY_ATOL or parity["labels_differ"]:
            raise ExportError(
                f"{model} ({mode}): the exported {runtime} model disagrees with the checkpoint on "
                f"{parity['windows']} test windows{_at_thresholds(parity)} (max |p diff| "
                f"{parity['max_abs_diff']:.2e}, limit "
                f"{PARITY_ATOL:.0e}; {parity['labels_differ']} labels differ, batch sizes "
                f"{'/'.join(map(str, PARITY_BATCHES))}): nothing written")
        header["parity"] = parity
        write_header(tmp, header)
        size = sum(p.stat().st_size for p in tmp.iterdir() if p.is_file())
    return ExportResult(model, mode, out, runtime, parity, size, time.perf_counter() - t0)


def _parity_inputs(native, test) -> np.ndarray:
    """Preprocessed inputs of up to PARITY_WINDOWS test windows (what both models see)."""
    rng = np.random.default_rng(0)
    if native.input_kind == "summary":
        x, _ = test.sample(PARITY_WINDOWS, rng, cols=native.pre.keep)
        return native.pre.transform_kept(x)
    vals, masks = test.sample_rows(PARITY_WINDOWS, rng)
    return native.pre.transform_tensor(vals, masks)


def _at_thresholds(parity: dict) -> str:
    n = parity.get("threshold_windows")
    return f" and {n} at tree thresholds" if n else ""


def _near_thresholds(native, x: np.ndarray, splits_compared: int = 200) -> np.ndarray:
    """Windows of `x` with one input set on one of the model's fixed
    thresholds (a tree's split) and 1 and 2 float32 ULP either side: where a
    difference in how the exported model compares (< or <=, a threshold
    rounded to float32) would flip a label that test windows rarely reach."""
    splits = native.split_thresholds()
    if not splits or not len(x):
        return x[:0]
    rng = np.random.default_rng(1)
    rows = []
    for i, s in enumerate(rng.choice(len(splits), size=min(len(splits), splits_compared), replace=False)):
        feature, t = splits[s]
        for v in (np.nextafter(np.nextafter(t, -np.inf), -np.inf), np.nextafter(t, -np.inf), t,
                  np.nextafter(t, np.inf), np.nextafter(np.nextafter(t, np.inf), np.inf)):
            row = x[i % len(x)].copy()
            row[feature] = v
            rows.append(row)
    return np.stack(rows).astype(np.float32)


def _parity(native, bundle: BundleModel, x: np.ndarray) -> dict:
    want = native.predict_prepared(x)
    worst, differ = 0.0, 0
    for size in PARITY_BATCHES:
        got = np.concatenate([bundle.proba_prepared(x[i:i + size]) for i in range(0, len(x), size)])
        worst = max(worst, float(np.abs(got - want).max()))
        differ = max(differ, int((got.argmax(1) != want.argmax(1)).sum()))
    return {"windows": int(len(x)), "batch_sizes": list(PARITY_BATCHES), "max_abs_diff": worst,
            "labels_differ": differ, "atol": PARITY_ATOL}


def _write_model(native, tmp: Path) -> dict:
    """The model writes its own bundle files (core.models: `write_export`)."""
    from core.models.onnx_graphs import GraphError
    try:
        return native.write_export(tmp)
    except GraphError as exc:
        raise ExportError(str(exc)) from None


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("cis490", "torch", "xgboost-cpu", "xgboost", "onnx", "onnxmltools", "onnxruntime", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out
