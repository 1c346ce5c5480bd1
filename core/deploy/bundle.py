"""Deployable bundles: what `cis490 export` writes and the Pi runs, without torch.

A bundle is a folder `artifacts/deploy/<split>/<model>_<mode>/` holding
`bundle.json` (the checkpoint's identity, the preprocessing, the test
episodes of its split, the parity figures, a sha256 for every file), the
channel registry it was trained with, and the model: an ONNX graph run by
ONNX Runtime (the neural models and gbt) or the kNN reference arrays run by
numpy (knn, knn_semi). Nothing here imports torch, scikit-learn or XGBoost.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.errors import ArtifactError
from core.lab import BUNDLE, GRAPH, REFERENCE, Ref, export_command  # noqa: F401 (re-exported)
from core.loading import read_json

# 2: bundle.sha256 vouches for bundle.json (which vouches for every other file).
BUNDLE_FORMAT = 2
REGISTRY = "channels.toml"
# `sha256sum -c bundle.sha256` in the folder checks it too.
HEADER_DIGEST = "bundle.sha256"
KNN_CHUNK = 256     # windows per kNN search: bounds its (windows x reference) working arrays
KNN_SPARE = 16      # candidates beyond k re-ranked exactly
BUNDLE_KEYS = ("bundle_format", "model", "mode", "input_kind", "classes", "runtime", "files", "preprocessing",
               "registry_hash", "schema_hash", "split", "window", "checkpoint", "test_episodes")


def _remake(header: dict) -> str:
    return export_command(Ref(header["split"]["name"], header["model"], header["mode"]))


def knn_proba(x: np.ndarray, reference: np.ndarray, distributions: np.ndarray, k: int,
              norms: np.ndarray | None = None) -> np.ndarray:
    """Distance-weighted vote of the k nearest reference windows' label
    distributions (the native knn's rule, core.models.tabular._vote).

    Candidates come from one float32 matrix product (`norms`: the reference
    rows' squared norms, computed once by the caller); their distances are
    then recomputed exactly in float64, as a tree search reports them."""
    x = np.asarray(x, np.float32)
    k = max(1, min(int(k), len(reference)))
    if norms is None:
        norms = np.einsum("ij,ij->i", reference, reference)
    if len(x) > KNN_CHUNK:
        return np.concatenate([knn_proba(x[i:i + KNN_CHUNK], reference, distributions, k, norms)
                               for i in range(0, len(x), KNN_CHUNK)])
    d2 = np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * (x @ reference.T) + norms[None, :]
    # Extra candidates: float32 rounding may swap near-equal distances; the exact pass orders them.
    c = min(len(reference), k + KNN_SPARE)
    cand = (np.argpartition(d2, c - 1, axis=1)[:, :c] if c < len(reference)
            else np.broadcast_to(np.arange(len(reference)), d2.shape))
    diff = x[:, None, :].astype(np.float64) - reference[cand].astype(np.float64)
    exact = np.sqrt((diff * diff).sum(axis=2))
    order = np.argsort(exact, axis=1, kind="stable")[:, :k]
    idx = np.take_along_axis(cand, order, axis=1)
    dist = np.take_along_axis(exact, order, axis=1)
    w = 1.0 / np.maximum(dist, 1e-6)
    p = (distributions[idx] * w[:, :, None]).sum(axis=1)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


class BundleModel:
    """An exported model: the same `predict_proba` on raw inputs as a
    checkpoint (core.models.base.BaseModel), run by ONNX Runtime or numpy."""

    def __init__(self, directory: Path, header: dict):
        from core.models.base import Preprocessor
        self.directory = directory
        self.header = header
        self.name, self.mode = header["model"], header["mode"]
        self.input_kind = header["input_kind"]
        self.classes = list(header["classes"])
        self.runtime = header["runtime"]
        self.pre = Preprocessor.from_json(header["preprocessing"])
        from core.calibrate import temperature_of
        self.temperature = temperature_of(header)
        if self.runtime == "onnxruntime":
            self._session = _session(directory / GRAPH)
            self._input = self._session.get_inputs()[0].name
        else:
            with np.load(directory / REFERENCE, allow_pickle=False) as z:
                self.reference, self.distributions = z["reference"], z["distributions"]
            self.norms = np.einsum("ij,ij->i", self.reference, self.reference)
            self.k = int(header["k"])

    def predict_proba(self, inputs) -> np.ndarray:
        from core.calibrate import scale
        return scale(self.proba_prepared(self.pre.transform(inputs)), self.temperature)

    def proba_prepared(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for inputs already preprocessed (what the model itself
        sees), before temperature scaling: what export's parity compares."""
        if self.runtime == "onnxruntime":
            proba = self._session.run(None, {self._input: np.ascontiguousarray(x, np.float32)})[-1]
        else:
            proba = knn_proba(x, self.reference, self.distributions, self.k, self.norms)
        proba = np.asarray(proba, np.float32)
        if not np.isfinite(proba).all():
            raise ArtifactError(f"{self.directory}: the exported model gave non-finite probabilities: re-export it "
                                f"with `{_remake(self.header)}`")
        return proba


def _session(path: Path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    # One window at a time on a small CPU: one thread each, no spinning.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own untyped failures
        raise ArtifactError(f"{path}: ONNX Runtime cannot load this graph ({str(exc).splitlines()[0][:200]})") from None


def read_bundle_header(directory: Path) -> dict:
    """bundle.json, once its digest in bundle.sha256 vouches for it: an
    edited header (classes swapped, another temperature) is refused here,
    before anything reads it."""
    directory = Path(directory)
    remake = export_command(Ref.of_dir(directory))
    if not (directory / BUNDLE).exists():
        raise ArtifactError(f"{directory}: no exported bundle here (export it with `{remake}`)")
    problem = header_problem(directory)
    if problem:
        raise ArtifactError(f"{directory / BUNDLE}: {problem}: re-export with `{remake}` (copy the whole folder)")
    return read_json(directory / BUNDLE, remake, BUNDLE_KEYS)


def header_digest_line(header_bytes: bytes) -> str:
    import hashlib
    return f"{hashlib.sha256(header_bytes).hexdigest()}  {BUNDLE}\n"


def header_problem(directory: Path) -> str | None:
    """Why bundle.json is not the one the export wrote, or None."""
    try:
        vouched = (Path(directory) / HEADER_DIGEST).read_text()
    except (OSError, UnicodeDecodeError):
        return f"no {HEADER_DIGEST} vouches for it (exported by an earlier cis490, or copied in part)"
    try:
        actual = header_digest_line((Path(directory) / BUNDLE).read_bytes())
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if vouched.split()[:1] != actual.split()[:1]:
        return f"changed since the export (its sha256 is not the one {HEADER_DIGEST} holds)"
    return None


def load_bundle(directory: Path) -> BundleModel:
    """A bundle whose files are exactly those its header vouches for, of a
    format this cis490 reads; anything else is one line naming `cis490 export`."""
    from core.store import file_digest
    directory = Path(directory)
    header = read_bundle_header(directory)
    remake = _remake(header)
    if header["bundle_format"] != BUNDLE_FORMAT:
        raise ArtifactError(f"{directory / BUNDLE}: bundle format {header['bundle_format']}, this cis490 reads "
                            f"{BUNDLE_FORMAT}: re-export with `{remake}`")
    for name, digest in header["files"].items():
        path = directory / name
        if not path.exists() or file_digest(path)[0] != digest:
            raise ArtifactError(f"{path}: missing or not the file the bundle's header vouches for: re-export with "
                                f"`{remake}` (copy the whole folder)")
    return BundleModel(directory, header)


def bundle_registry(directory: Path, header: dict):
    """The channel registry shipped in the bundle (the one it was trained with)."""
    from core.registry import load_registry
    reg = load_registry(Path(directory) / REGISTRY)
    if reg.schema_hash != header["registry_hash"]:
        raise ArtifactError(f"{Path(directory) / REGISTRY}: not the channel registry the model was trained with: "
                            f"re-export with `{_remake(header)}`")
    return reg


def write_header(directory: Path, header: dict) -> None:
    from core.paths import atomic_write_text
    text = json.dumps(header, indent=1) + "\n"
    atomic_write_text(Path(directory) / BUNDLE, text)
    atomic_write_text(Path(directory) / HEADER_DIGEST, header_digest_line(text.encode()))


def chosen_bundle(lab, ref, engine: str, error: type[Exception], named: str) -> Path | None:
    """What runs a model for replay, watch and predict: its exported bundle
    (engine `bundle`, or `auto` when there is one; its folder), else its
    checkpoint (None), which only an install with torch (the lab extra) runs."""
    import importlib.util
    bundle = lab.bundle(ref)
    if engine == "bundle" and not (bundle / BUNDLE).exists():
        raise error(f"no exported bundle for {named} on split {ref.split} ({bundle}): run `{export_command(ref)}`")
    if engine != "checkpoint" and (bundle / BUNDLE).exists():
        return bundle
    if importlib.util.find_spec("torch") is None:
        # The base install (the Pi's) runs bundles only: `cis490 extract` is no help there.
        raise error(f"a checkpoint needs the lab extra (pip install 'cis490[lab]'); this install runs exported "
                    f"bundles: export one on the lab machine with `{export_command(ref)}` and copy artifacts/deploy/ "
                    "here")
    return None


def load_current_bundle(directory: Path, artifacts: Path, split: str, mode: str, error: type[Exception],
                        instead: str) -> BundleModel:
    """The bundle, unless a checkpoint retrained since its export stands beside
    it (it would run an older model than the lab's): refused, with `instead`."""
    from core.lab import Lab
    from core.store import file_digest
    m = load_bundle(directory)
    ref = Ref(split, m.name, mode)
    ck = Lab(Path(), artifacts).header(ref)
    if ck.exists() and file_digest(ck)[0] != m.header["checkpoint"]["header_sha256"]:
        raise error(f"{directory}: exported from an earlier checkpoint than {ck.parent} (retrained since): "
                    f"re-export with `{export_command(ref)}` (or {instead})")
    return m
