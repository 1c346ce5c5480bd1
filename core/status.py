"""`cis490 status`: every artefact of the lab, fresh, stale (and why) or
missing, with the one command that brings it up to date.

Each artefact records what it was made from (digests, hashes, ids); status
compares those records with what is on disk now, never re-hashing gigabytes:
the store by its manifests' digest, the index by its sha256 (a small file),
features by the digest extract recorded, splits by membership hashes,
checkpoints and reports by their headers. A row is stale for its own reason
(an input changed since it was made) or because something it was made from
is stale itself; downstream of a stale row, every row says which.
See docs/notebook.md#status.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from core.models.base import FORMAT_VERSION as CHECKPOINT_FORMAT
from core.paths import INDEX_NAME, LabPaths, eval_settings, eval_settings_options, unportable

FRESH, STALE, MISSING = "fresh", "stale", "missing"


@dataclass
class Row:
    artifact: str
    state: str
    reason: str
    command: str

    def to_json(self) -> dict:
        return asdict(self)


def _json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _sha(path: Path) -> str | None:
    """The file's sha256 (core.storescan.file_digest), None when it cannot be read."""
    from core.storescan import file_digest
    try:
        return file_digest(path)[0]
    except OSError:
        return None


class _Lab:
    def __init__(self, paths: LabPaths):
        self.paths = paths
        self.rows: list[Row] = []
        self.stale: set[str] = set()

    def rel(self, p: Path) -> str:
        try:
            return Path(p).resolve().relative_to(self.paths.home).as_posix()
        except ValueError:
            return str(p)

    def add(self, artifact: str, reasons: list[str], command: str, upstream: list[str] = ()) -> None:
        stale_up = [u for u in upstream if u in self.stale]
        if reasons or stale_up:
            reason = "; ".join(reasons) if reasons else f"made from {stale_up[0]}, which is stale"
            self.rows.append(Row(artifact, STALE, reason, command))
            self.stale.add(artifact)
        else:
            self.rows.append(Row(artifact, FRESH, "", ""))

    def missing(self, artifact: str, reason: str, command: str) -> None:
        self.rows.append(Row(artifact, MISSING, reason, command))
        self.stale.add(artifact)


def lab_status(paths: LabPaths) -> list[Row]:
    from core.registry import DEFAULT_REGISTRY, load_registry
    from core.storescan import store_digest
    from core.errors import Cis490Error

    lab = _Lab(paths)
    processed = paths.processed
    index = processed / INDEX_NAME
    side = _json(index.with_suffix(".json")) or {}

    # The store: the source of everything.
    store = unportable(side["store"], processed) if isinstance(side.get("store"), str) else paths.default_store
    store_name = f"store {lab.rel(store)}"
    try:
        store_sha, n_eps, _ = store_digest(store)
        lab.add(store_name, [], "")
        lab.rows[-1].reason = f"{n_eps:,} episodes"
    except Cis490Error:
        store_sha = n_eps = None
        lab.missing(store_name, "no receiver store here", "cis490 synth   (or: cis490 validate --store DIR)")

    # The acceptance index.
    index_name = "acceptance index"
    if not index.exists():
        lab.missing(index_name, "never validated", "cis490 validate")
    else:
        reasons = []
        if store_sha is not None and side.get("store_sha256") not in (None, store_sha):
            before = side.get("store_episodes")
            delta = n_eps - before if isinstance(before, int) else 0
            reasons.append(f"store: {delta:,} episode(s) added since validate" if delta > 0 else
                           f"store: {-delta:,} episode(s) removed since validate" if delta < 0 else
                           "store: manifests or files changed since validate")
        ref = side.get("registry") or {}
        if ref.get("hash"):
            path = unportable(ref["path"], processed) if ref.get("path") else DEFAULT_REGISTRY
            try:
                now = load_registry(path).schema_hash
            except Cis490Error:
                now = None
            if now != ref["hash"]:
                reasons.append(f"registry {'gone' if now is None else 'changed'} since validate ({lab.rel(Path(path))})")
        validate_cmd = "cis490 validate" + (f" --channels {unportable(ref['path'], processed)}"
                                            if ref.get("path") else "")
        lab.add(index_name, reasons, validate_cmd, [store_name])
    index_sha = _sha(index)

    # Features and tensors.
    schema = _json(processed / "feature_schema_v1.json")
    features_name = "features and tensors"
    if schema is None or not index.exists():
        lab.missing(features_name, "never extracted" if schema is None else "no acceptance index", "cis490 extract")
    else:
        reasons = []
        if schema.get("index_sha256") != index_sha:
            reasons.append("acceptance index re-made since extract")
        if ref.get("hash") and schema.get("registry_hash") != ref.get("hash"):
            reasons.append("extracted with another registry than the index's")
        lab.add(features_name, reasons, "cis490 extract", [index_name])
    features_sha = (schema or {}).get("features_sha256")

    # Splits.
    splits: dict[str, dict] = {}
    for meta_path in sorted((processed / "splits").glob("*.json")):
        meta = _json(meta_path)
        name = meta_path.stem
        if meta is None or "params" not in meta:
            lab.missing(f"split {name}", "its metadata is damaged", f"cis490 split --recipe {name}")
            continue
        splits[name] = meta
        from core.splitparams import describe_params
        reasons = [] if meta.get("features_sha256") == features_sha else ["features re-extracted since split"]
        lab.add(f"split {name}", reasons, f"cis490 split {describe_params(meta['params'])}", [features_name])

    # Checkpoints.
    headers: dict[tuple[str, str], str] = {}
    for hpath in sorted((paths.artifacts / "models").glob("*/*/header.json")):
        split, name = hpath.parent.parent.name, hpath.parent.name
        model, _, mode = name.rpartition("_")
        artifact = f"checkpoint {split}/{name}"
        command = f"cis490 train {model} --split {split} --mode {mode}"
        header = _json(hpath)
        if header is None or "split" not in header:
            lab.missing(artifact, "its header is damaged", command)
            continue
        headers[(split, name)] = _sha(hpath)
        meta = splits.get(split)
        rec = header["split"]
        reasons = []
        if header.get("format_version") != CHECKPOINT_FORMAT:
            reasons.append(f"checkpoint format {header.get('format_version')} (this cis490 reads {CHECKPOINT_FORMAT})")
        if meta is None:
            reasons.append(f"split {split} is gone")
        elif rec.get("membership_sha256") != meta.get("membership_sha256"):
            reasons.append(f"split {split} re-made with other train hosts" if rec.get("params", {}).get("train_hosts")
                           != meta["params"].get("train_hosts") else f"split {split} re-made with other parameters"
                           if rec.get("params") != meta["params"] else f"split {split} re-made (other episodes)")
        if header.get("features_sha256") != features_sha:
            reasons.append("features re-extracted since training")
        lab.add(artifact, reasons, command, [f"split {split}"])

    # Deployable bundles (cis490 export): on a Pi they stand without their checkpoint.
    for bpath in sorted((paths.artifacts / "deploy").glob("*/*/bundle.json")):
        split, name = bpath.parent.parent.name, bpath.parent.name
        model, _, mode = name.rpartition("_")
        artifact = f"bundle {split}/{name}"
        command = f"cis490 export {model} --split {split} --mode {mode}"
        bundle = _json(bpath)
        if bundle is None or "checkpoint" not in bundle:
            lab.missing(artifact, "its bundle.json is damaged", command)
            continue
        # Every file the bundle vouches for (a few MB: hashed each time), so a
        # deleted, truncated or bit-flipped model.onnx is never called fresh.
        files = bundle.get("files") if isinstance(bundle.get("files"), dict) else {}
        gone = [f for f in files if not (bpath.parent / f).is_file()]
        if gone:
            lab.missing(artifact, f"its {gone[0]} is gone", command)
            continue
        changed = [f"its {f} changed since the export" for f, sha in files.items()
                   if _sha(bpath.parent / f) != sha][:1]
        ck = headers.get((split, name))
        if ck is None:
            lab.add(artifact, changed, command)
            if not changed:
                lab.rows[-1].reason = "no checkpoint here: as exported"
            continue
        reasons = [] if bundle["checkpoint"].get("header_sha256") == ck else ["checkpoint retrained after this export"]
        lab.add(artifact, reasons + changed, command, [f"checkpoint {split}/{name}"])

    # Evaluation reports.
    evals: dict[str, dict] = {}
    for rpath in sorted((paths.artifacts / "eval").glob("*/*/*/report.json")):
        split, name, leaf = rpath.parent.parent.parent.name, rpath.parent.parent.name, rpath.parent.name
        artifact = f"eval {split}/{name}/{leaf}"
        rep = _json(rpath)
        model, _, mode = name.rpartition("_")
        command = f"cis490 eval {model} --mode {mode} --split {split} {eval_settings_options(leaf)}"
        if rep is None or "checkpoint" not in rep:
            lab.missing(artifact, "the report is damaged", command)
            continue
        predictions = rpath.parent / "predictions.parquet"
        if not predictions.is_file():
            lab.missing(artifact, "its predictions.parquet is gone", command)
            continue
        evals[f"{split}/{name}/{leaf}"] = rep
        reasons = []
        # Its size is recorded at write time (a hash of 14 million windows' predictions would not be cheap).
        if rep.get("predictions_bytes") is not None and predictions.stat().st_size != rep["predictions_bytes"]:
            reasons.append("its predictions.parquet changed since this eval")
        ck = headers.get((split, name))
        if ck is None:
            reasons.append("its checkpoint is gone")
        elif rep["checkpoint"].get("header_sha256") != ck:
            reasons.append("checkpoint retrained after this eval")
        if rep.get("features_sha256") != features_sha:
            reasons.append("features re-extracted since this eval")
        meta = splits.get(split)
        if meta is not None and rep.get("split_membership_sha256") != meta.get("membership_sha256"):
            reasons.append(f"split {split} re-made since this eval")
        lab.add(artifact, reasons, command, [f"checkpoint {split}/{name}"])

    # Comparisons.
    for cpath in sorted((paths.artifacts / "compare").glob("*/*.json")):
        split = cpath.parent.name
        artifact = f"compare {split}/{cpath.stem}"
        rep = _json(cpath)
        if rep is None or "models" not in rep:
            lab.missing(artifact, "the report is damaged", "cis490 compare ...")
            continue
        leaf = eval_settings(rep["part"], rep["unit"], rep["resamples"], rep["seed"])
        names = [m if "_" in m and m.rsplit("_", 1)[1] in ("realistic", "oracle") else f"{m}_realistic"
                 for m in rep["models"]]
        reasons, upstream = [], []
        for shown, name, run_id in zip(rep["models"], names, rep.get("eval_runs", [])):
            key = f"{split}/{name}/{leaf}"
            upstream.append(f"eval {key}")
            current = evals.get(key)
            if current is None:
                reasons.append(f"eval of {shown} is gone")
            elif current.get("eval_run_id") != run_id:
                reasons.append(f"eval of {shown} re-run since this comparison")
        command = f"cis490 compare {' '.join(rep['models'])} --split {split} {eval_settings_options(leaf)}"
        lab.add(artifact, reasons, command, upstream)
    return lab.rows
