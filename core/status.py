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

from core.extract import SCHEMA_VERSION, split_windows_digest
from core.split import earlier_versions
from core.lab import (BUNDLE, EXTRACTED_STATUSES, EXTRACT_COMMAND, extractable_digest, Inputs, Lab, Ref, checkpoint_problems, compare_command,
                      comparison_problems, settings_of, eval_command, predict_command, eval_problems, export_command, split_command, train_command,
                      validate_command)
from core.models.base import FORMAT_VERSION as CHECKPOINT_FORMAT
from core.deploy.bundle import header_problem
from core.paths import LabPaths, unportable

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


def _new_since(meta: dict, earlier: dict | None, waiting: int, since: str) -> str:
    """What a fresh checkpoint or eval has not seen: the episodes the split
    gained since it (`split --extend`), and the ones not in the split yet."""
    said = []
    if earlier is not None:
        gained = sum(meta["totals"][p]["episodes"] for p in meta["totals"]) - \
            sum(earlier["totals"][p]["episodes"] for p in earlier["totals"])
        said.append(f"split extended since {since} (+{gained:,} episodes, version {meta.get('version')}): "
                    "retrain to learn from them")
    if waiting:
        said.append(f"{waiting:,} new episode{'s' * (waiting != 1)} since, not in its split")
    return "; ".join(said)


def _read_or_none(path: Path, columns: list[str]):
    import polars as pl
    try:
        return pl.read_parquet(path, columns=columns)
    except (OSError, ValueError, pl.exceptions.PolarsError):
        return None


def _extract_delta(index: Path, extracted: Path) -> tuple[int, int] | None:
    """(episodes the index has for extract that the extract lacks, extracted
    episodes the index no longer has as they were); None when unreadable."""
    import polars as pl
    idx = _read_or_none(index, ["rel_path", "manifest_sha256", "status"])
    ext = _read_or_none(extracted, ["rel_path", "manifest_sha256"])
    if idx is None or ext is None:
        return None
    now = dict(idx.filter(pl.col("status").is_in(list(EXTRACTED_STATUSES))).select("rel_path", "manifest_sha256").rows())
    was = dict(ext.rows())
    return sum(r not in was for r in now), sum(now.get(r) != m for r, m in was.items())


def lab_status(paths: LabPaths) -> list[Row]:
    from core.registry import DEFAULT_REGISTRY, load_registry
    from core.storescan import store_digest
    from core.errors import Cis490Error

    lab = _Lab(paths)
    cat = Lab.of(paths)
    processed = paths.processed
    index = cat.index
    side = _json(cat.index_sidecar) or {}

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
    ref = side.get("registry") or {}
    if not index.exists():
        lab.missing(index_name, "never validated", validate_command())
    else:
        reasons = []
        if store_sha is not None and side.get("store_sha256") not in (None, store_sha):
            before = side.get("store_episodes")
            delta = n_eps - before if isinstance(before, int) else 0
            reasons.append((f"store: {delta:,} episode(s) added since validate" if delta > 0 else
                            f"store: {-delta:,} episode(s) removed since validate" if delta < 0 else
                            "store: manifests or files changed since validate")
                           + "; re-validate first (what was made from the index goes stale only if that "
                             "changes what it holds)")
        if ref.get("hash"):
            path = unportable(ref["path"], processed) if ref.get("path") else DEFAULT_REGISTRY
            try:
                now = load_registry(path).schema_hash
            except Cis490Error:
                now = None
            if now != ref["hash"]:
                reasons.append(f"registry {'gone' if now is None else 'changed'} since validate ({lab.rel(Path(path))})")
        elsewhere = store if store != paths.default_store else None
        lab.add(index_name, reasons, validate_command(unportable(ref["path"], processed) if ref.get("path") else None,
                                                      elsewhere), [store_name])
        counts = side.get("counts") or {}
        if counts.get("unlabelled") and lab.rows[-1].state == FRESH:
            # Kept on purpose: never trained or scored on; `cis490 predict --unlabelled` reads them.
            lab.rows[-1].reason = f"{counts['unlabelled']:,} unlabelled (for `cis490 predict --unlabelled`)"
    index_sha = _sha(index)

    # Features and tensors.
    schema = _json(cat.feature_schema)
    features_name = "features and tensors"
    additions_only = True           # the features are stale only by runs to add (or fresh)
    split_features: dict[str, str | None] = {}
    if schema is None or not index.exists():
        lab.missing(features_name, "never extracted" if schema is None else "no acceptance index", EXTRACT_COMMAND)
    else:
        reasons = []
        # By content: the rows extract read (an index re-made with only unlabelled or refused
        # episodes added leaves the features as they were); an older extract recorded the file.
        same = (schema.get("extractable_sha256") == extractable_digest(index) if schema.get("extractable_sha256")
                else schema.get("index_sha256") == index_sha)
        if not same:
            delta = _extract_delta(index, cat.extracted_episodes)
            if delta is None:
                reasons.append("acceptance index re-made since extract")
            else:
                new, other = delta
                reasons.append(", ".join(filter(None, (
                    f"{new:,} new episode{'s' * (new != 1)} to extract" if new else "",
                    f"{other:,} extracted episode{'s' * (other != 1)} changed or gone" if other else "")))
                    or "acceptance index re-made since extract")
                additions_only = not other
        if ref.get("hash") and schema.get("registry_hash") != ref.get("hash"):
            reasons.append("extracted with another registry than the index's")
            additions_only = False
        if schema.get("version") != SCHEMA_VERSION:
            reasons.append(f"made by an older cis490 (extract format {schema.get('version')})")
            additions_only = False
        # By content, not through the index's own state: a store that changed
        # since validate makes the index stale, and what was made from it
        # goes stale only if re-validating changes what extract reads.
        lab.add(features_name, reasons, EXTRACT_COMMAND)
    extracted = _read_or_none(cat.extracted_episodes, ["episode_id", "windows_sha256"])

    extracted_ok = (_read_or_none(cat.extracted_episodes, ["episode_id", "status", "n_windows"]))
    if extracted_ok is not None:
        import polars as pl
        extracted_ok = extracted_ok.filter((pl.col("status") == "ok") & (pl.col("n_windows") > 0))["episode_id"]
    waiting: dict[str, int] = {}

    # Splits: each by its own episodes' windows (core.extract.split_windows_digest),
    # so that runs to extract, or extracted since, leave it and what was made on it fresh.
    splits: dict[str, dict] = {}
    for name in cat.split_names():
        meta = _json(cat.split_meta(name))
        if meta is None or "params" not in meta:
            lab.missing(f"split {name}", "its metadata is damaged", f"cis490 split --recipe {name}")
            continue
        splits[name] = meta
        members = _read_or_none(cat.split_parquet(name), ["episode_id"])
        now = (split_windows_digest(extracted, members["episode_id"], schema)
               if schema is not None and extracted is not None and members is not None else None)
        reasons = [] if meta.get("features_sha256") == now else \
            ["some of its episodes were re-extracted to other windows, or are gone, since split"]
        split_features[name] = meta.get("features_sha256") if not reasons else None
        lab.add(f"split {name}", reasons, split_command(meta["params"], name),
                [] if additions_only else [features_name])
        if extracted_ok is not None and members is not None and lab.rows[-1].state == FRESH:
            waiting[name] = int((~extracted_ok.is_in(members["episode_id"].implode())).sum())
            if waiting[name]:
                # Usable as it is (what was made on it too), and never silently: says what it lacks.
                lab.rows[-1].reason = (f"{waiting[name]:,} new episode{'s' * (waiting[name] != 1)} since, not in it "
                                       f"(`cis490 split --extend {name}` adds them)")

    # Checkpoints.
    headers: dict[Ref, str] = {}
    for ck in cat.checkpoints():
        artifact = f"checkpoint {ck.key}"
        command = train_command(ck)
        header = _json(cat.header(ck))
        if header is None or "split" not in header:
            lab.missing(artifact, "its header is damaged", command)
            continue
        gone, reasons = checkpoint_problems(header, cat.checkpoint(ck))
        if gone:
            lab.missing(artifact, reasons[0], command)
            continue
        headers[ck] = _sha(cat.header(ck))
        meta = splits.get(ck.split)
        rec = header["split"]
        # Trained on an earlier version of the split (`split --extend`): usable, and said.
        earlier = earlier_versions(meta or {}).get(rec.get("membership_sha256"))
        if earlier is not None and earlier.get("features_sha256") != header.get("features_sha256"):
            earlier = None
        if header.get("format_version") != CHECKPOINT_FORMAT:
            reasons.append(f"checkpoint format {header.get('format_version')} (this cis490 reads {CHECKPOINT_FORMAT})")
        if meta is None:
            reasons.append(f"split {ck.split} is gone")
        elif rec.get("membership_sha256") != meta.get("membership_sha256") and earlier is None:
            reasons.append(f"split {ck.split} re-made with other train hosts" if rec.get("params", {}).get("train_hosts")
                           != meta["params"].get("train_hosts") else f"split {ck.split} re-made with other parameters"
                           if rec.get("params") != meta["params"] else f"split {ck.split} re-made (other episodes)")
        if meta is not None and earlier is None and header.get("features_sha256") != split_features.get(ck.split):
            reasons.append(f"split {ck.split}'s episodes re-extracted since training")
        lab.add(artifact, reasons, command, [f"split {ck.split}"])
        if lab.rows[-1].state == FRESH and (earlier is not None or waiting.get(ck.split)):
            lab.rows[-1].reason = _new_since(meta, earlier, waiting.get(ck.split, 0), "training")

    # Deployable bundles (cis490 export): on a Pi they stand without their checkpoint.
    for b in cat.bundles():
        artifact = f"bundle {b.key}"
        command = export_command(b)
        bundle = _json(cat.bundle(b) / BUNDLE)
        if bundle is None or "checkpoint" not in bundle:
            lab.missing(artifact, f"its {BUNDLE} is damaged", command)
            continue
        edited = header_problem(cat.bundle(b))
        if edited:
            lab.add(artifact, [f"its {BUNDLE} {edited}"], command)
            continue
        # Every file the bundle vouches for (a few MB: hashed each time), so a
        # deleted, truncated or bit-flipped model.onnx is never called fresh.
        files = bundle.get("files") if isinstance(bundle.get("files"), dict) else {}
        gone = [f for f in files if not (cat.bundle(b) / f).is_file()]
        if gone:
            lab.missing(artifact, f"its {gone[0]} is gone", command)
            continue
        changed = [f"its {f} changed since the export" for f, sha in files.items()
                   if _sha(cat.bundle(b) / f) != sha][:1]
        ck = headers.get(b)
        if ck is None:
            lab.add(artifact, changed, command)
            if not changed:
                lab.rows[-1].reason = "no checkpoint here: as exported"
            continue
        reasons = [] if bundle["checkpoint"].get("header_sha256") == ck else ["checkpoint retrained after this export"]
        lab.add(artifact, reasons + changed, command, [f"checkpoint {b.key}"])

    # Evaluation reports: the rule compare's reuse applies too (core.lab.eval_problems).
    evals: dict[str, dict] = {}
    for ref_, settings, rpath in cat.reports():
        artifact = f"eval {ref_.key}/{settings}"
        rep = _json(rpath)
        command = eval_command(ref_, settings)
        if rep is None or "checkpoint" not in rep:
            lab.missing(artifact, "the report is damaged", command)
            continue
        meta = splits.get(ref_.split)
        now = Inputs(headers.get(ref_), split_features.get(ref_.split), meta.get("membership_sha256") if meta else None,
                     tuple(earlier_versions(meta or {})))
        gone, reasons = eval_problems(rep, cat.predictions(ref_, settings), now)
        if gone:
            lab.missing(artifact, reasons[0], command)
            continue
        evals[f"{ref_.key}/{settings}"] = rep
        lab.add(artifact, reasons, command, [f"checkpoint {ref_.key}"])
        if lab.rows[-1].state == FRESH and waiting.get(ref_.split):
            lab.rows[-1].reason = _new_since(meta, None, waiting[ref_.split], "this eval")

    # Predictions of `cis490 predict`: stale once the model they came from changed (by digest).
    for ref_, run_name, mpath in cat.prediction_runs():
        artifact = f"predict {ref_.key}/{run_name}"
        rec = _json(mpath)
        if rec is None or "model_sha256" not in rec:
            lab.missing(artifact, f"its {mpath.name} is damaged", predict_command(ref_, "..."))
            continue
        command = predict_command(ref_, rec.get("asked") or "--all") + f" --engine {rec.get('engine', 'auto')}"
        gone = [f for f in ("windows.csv", "segments.parquet", *rec.get("figures", []),
                            *(f"windows/part-{i:05d}.parquet" for i in range(rec.get("window_parts", 0))))
                if not (mpath.parent / f).is_file()]
        source = cat.bundle(ref_) / BUNDLE if rec.get("engine") == "bundle" else cat.header(ref_)
        now = _sha(source)
        if gone:
            lab.missing(artifact, f"its {gone[0]} is gone", command)
        elif now is None:
            lab.add(artifact, [f"its {rec.get('engine', 'model')} is gone"], command)
        else:
            lab.add(artifact, [] if now == rec["model_sha256"] else
                    [f"{'re-exported' if rec.get('engine') == 'bundle' else 'retrained'} since these predictions"],
                    command, [f"{'bundle' if rec.get('engine') == 'bundle' else 'checkpoint'} {ref_.key}"])

    # Comparisons: fresh while their evaluations' predictions are the same (by content).
    for cpath in cat.comparisons():
        split = cpath.parent.name
        artifact = f"compare {split}/{cpath.stem}"
        rep = _json(cpath)
        if rep is None or "models" not in rep:
            lab.missing(artifact, "the report is damaged", "cis490 compare ...")
            continue
        settings = settings_of(rep)
        keys = {shown: f"{Ref.of_shown(split, shown).key}/{settings}" for shown in rep["models"]}
        reasons = comparison_problems(rep, {shown: evals.get(key) for shown, key in keys.items()})
        lab.add(artifact, reasons, compare_command(split, rep["models"], settings),
                [f"eval {key}" for key in keys.values()])

    # Across a rotation's folds (core.rotation): fresh while every fold's eval is the same, by content.
    across = [(f"eval {r.key}/rotation-{settings}", "report", eval_command(r, settings), settings, path)
              for r, settings, path in cat.rotation_reports()]
    across += [(f"compare {rotation}/rotation/{path.stem}", "comparison", compare_command(rotation, shown, settings),
                settings, path) for rotation, shown, settings, path in cat.rotation_comparisons()]
    for artifact, what, command, settings, path in across:
        rep = _json(path)
        if rep is None:
            lab.missing(artifact, "the report is damaged", command)
            continue
        if not isinstance(rep.get("evals"), list):
            lab.add(artifact, ["made before its folds' evals were recorded in it"], command)
            continue
        names = [rec.get("name") for rec in rep["evals"]]
        reasons = comparison_problems(rep, {n: evals.get(f"{n}/{settings}") for n in names}, what)
        lab.add(artifact, reasons, command, [f"eval {n}/{settings}" for n in names])
    return lab.rows
