"""`cis490 export`: a checkpoint becomes a bundle the Pi runs without torch.

The graph (or the kNN arrays) is written into a temporary folder, loaded the
way the Pi loads it, and checked against the native model on the split's
test windows at two batch sizes; only a bundle that agrees (max absolute
probability difference <= PARITY_ATOL, identical labels) replaces the
folder. Needs the `lab` extra (torch, XGBoost, onnx, onnxmltools).
"""
from __future__ import annotations

import contextlib
import io
import logging
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.lab import HEADER
from core.deploy.bundle import (BUNDLE_FORMAT, GRAPH, REFERENCE, REGISTRY, BundleModel, bundle_dir, bundle_registry,
                                write_header)
from core.errors import Cis490Error

PARITY_ATOL = 1e-4
PARITY_WINDOWS = 1024          # test windows compared, drawn uniformly (all when fewer)
PARITY_BATCHES = (1, 256)      # one window at a time, as live; and a batch
ONNX_OPSET = 18
GBT_OPSET = 15                 # onnxmltools' highest for XGBoost trees


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
    from core.live.producers import held_out_episodes
    from core.paths import atomic_dir
    from core.store import file_digest
    from core.train import load_split_checkpoint, load_split_data
    t0 = time.perf_counter()
    native, split_frame, ck = load_split_checkpoint(processed, artifacts, registry, model, mode, split, ExportError)
    test = load_split_data(processed, split, native.input_kind).parts["test"]
    if len(test) == 0:
        raise ExportError(f"split {split} has no test windows: parity cannot be checked")
    inputs = _parity_inputs(native, test)
    episodes = held_out_episodes(processed, split_frame)
    out = bundle_dir(artifacts, split, model, mode)
    with atomic_dir(out) as tmp:
        runtime, extra = _write_model(native, tmp)
        # The registry file the lab resolved (checked against its recorded
        # hash); bundle_registry below checks the copy as the Pi will.
        shutil.copyfile(registry.path, tmp / REGISTRY)
        h = native.header
        header = {
            "bundle_format": BUNDLE_FORMAT, "model": model, "mode": mode, "input_kind": native.input_kind,
            "classes": native.classes, "runtime": runtime, **extra,
            "preprocessing": h["preprocessing"], "keep_names": h.get("keep_names", []), "config": h["config"],
            "seed": h.get("seed", 0), "pca": h.get("pca"),
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
        if native.name == "gbt":
            # Labels must agree at the trees' thresholds too, not only on test windows.
            near = _near_thresholds(native, inputs)
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
    """Windows of `x` with one feature set on a split threshold of the booster
    and 1 and 2 float32 ULP either side: where a difference in how the
    exported trees compare (< or <=, a threshold rounded to float32) would
    flip a label that ordinary test windows rarely reach."""
    import json
    splits = []

    def walk(node):
        if "split" in node:
            splits.append((int(str(node["split"]).lstrip("f")), np.float32(node["split_condition"])))
            for child in node.get("children", []):
                walk(child)
    for tree in native.booster[: native.best_iteration + 1].get_dump(dump_format="json"):
        walk(json.loads(tree))
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
    want = native._checked(native._predict_proba(x))
    worst, differ = 0.0, 0
    for size in PARITY_BATCHES:
        got = np.concatenate([bundle.proba_prepared(x[i:i + size]) for i in range(0, len(x), size)])
        worst = max(worst, float(np.abs(got - want).max()))
        differ = max(differ, int((got.argmax(1) != want.argmax(1)).sum()))
    return {"windows": int(len(x)), "batch_sizes": list(PARITY_BATCHES), "max_abs_diff": worst,
            "labels_differ": differ, "atol": PARITY_ATOL}


def _write_model(native, tmp: Path) -> tuple[str, dict]:
    if native.name in ("knn", "knn_semi"):
        from core.models.base import save_npz
        save_npz(tmp / REFERENCE, {"reference": native.X_fit.astype(np.float32),
                                   "distributions": native.dist_fit.astype(np.float32)})
        return "numpy-knn", {"k": int(native.k)}
    if native.name == "gbt":
        _gbt_graph(native, tmp / GRAPH)
    else:
        _neural_graph(native, tmp / GRAPH)
    return "onnxruntime", {}


@contextlib.contextmanager
def _quiet():
    """The exporters narrate (progress lines, warnings, log records): none of it is the user's."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript",
                                              "torch._export", "torch.fx", "skl2onnx", "onnxmltools")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _neural_graph(native, path: Path) -> None:
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.softmax(self.net(x), dim=1)

    wrapped = Probabilities(native.export_net()).eval()
    in_dim, steps = native._dims()
    # A batch of 2 keeps the batch dimension symbolic (a batch of 1 is specialised away).
    example = torch.zeros((2, in_dim) if native.input_kind == "summary" else (2, in_dim, steps))
    try:
        with _quiet():
            torch.onnx.export(wrapped, (example,), str(path), input_names=["x"], output_names=["probabilities"],
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), dynamo=True,
                              opset_version=ONNX_OPSET, external_data=False, verbose=False)
    except Exception as exc:  # noqa: BLE001 - the exporter's failures are many and untyped
        raise ExportError(f"{native.name}: torch.onnx.export failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]})") from None


def _gbt_graph(native, path: Path) -> None:
    try:
        from onnxmltools.convert import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(exc.msg, name="onnxmltools") from None
    booster = native.booster[: native.best_iteration + 1]     # the rounds the checkpoint predicts with
    try:
        with _quiet():
            onx = convert_xgboost(booster, initial_types=[("x", FloatTensorType([None, len(native.pre.keep)]))],
                                  target_opset=GBT_OPSET)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"gbt: onnxmltools could not convert the booster ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]})") from None
    path.write_bytes(onx.SerializeToString())


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("cis490", "torch", "xgboost-cpu", "xgboost", "onnx", "onnxmltools", "onnxruntime", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def export_all(processed: Path, artifacts: Path, registry, pairs: list[tuple[str, str]], split: str,
               progress=None) -> list[ExportResult]:
    out = []
    for i, (model, mode) in enumerate(pairs):
        out.append(export_model(processed, artifacts, registry, model, mode, split))
        if progress:
            progress(i + 1, len(pairs))
    return out

