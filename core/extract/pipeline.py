"""`cis490 extract`: every accepted/degraded episode -> windows, features, tensors.

Episodes are extracted in parallel (the same `extract_episode` that live
inference uses) and streamed in index order into a features parquet and
fixed-size tensor parts, so memory is bounded by one part and one batch.
Incremental: an episode whose manifest, the registry, the window spec and the
version of the extraction code are unchanged since the last extract is copied
from the previous outputs.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import Cis490Error
from core.extract import (EPISODES, FEATURES, SCHEMA, SCHEMA_VERSION, TENSORS, ExtractConfig, ExtractSummary,
                          MissingStageError)
from core.extract.episode import EXTRACT_VERSION, STATS, ExtractError, WindowSpec, extract_episode, feature_names, window_id
from core.extract.tensors import META, TensorPartWriter, TensorStore
from core.lab import EXTRACTED_STATUSES, extractable_digest
from core.loading import read_parquet, require
from core.parallel import pool_map, process_pool
from core.paths import disk_full, is_disk_full, remove_dead_temps, size_of, temp_prefix
from core.registry import Registry, registry_ref
from core.store import Episode, file_digest
from core.storescan import episode_fingerprint, light_fingerprint
from core.validate import validated_fingerprints

FEATURE_BATCH = 4096


def _features_arrow_schema(registry: Registry) -> pa.Schema:
    cols = [("window_id", pa.string()), ("episode_id", pa.string()), ("host_id", pa.string()),
            ("profile", pa.string()), ("sample_name", pa.string()), ("t_center_s", pa.float64()),
            ("label", pa.string()), ("label_id", pa.int8())]
    return pa.schema(cols + [(f, pa.float32()) for f in feature_names(registry)])


_W: dict = {}


def _init(registry: Registry, spec: WindowSpec) -> None:
    _W["registry"], _W["spec"] = registry, spec


def _job(args: tuple[str, str, str]) -> dict:
    path, rel, expected_sha = args
    try:
        ep = Episode.open(Path(path), rel)
        if ep.manifest_sha256 != expected_sha:
            return {"error": "manifest changed since validation: re-run `cis490 validate`"}
        # Every file it reads is checked against the manifest's sha256 as it is read (Episode.read_verified).
        return {"windows": extract_episode(ep, _W["registry"], _W["spec"])}
    except ExtractError as exc:
        return {"error": str(exc).split(": ", 1)[-1]}
    except Cis490Error as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one bad episode is reported, never fatal
        return {"error": f"{type(exc).__name__}: {exc}"}


class _Previous:
    """The last extract's outputs, for copying unchanged episodes."""

    def __init__(self, processed: Path, registry: Registry, spec: WindowSpec):
        self.by_rel: dict[str, dict] = {}
        try:
            schema = json.loads((processed / SCHEMA).read_text())
        except (OSError, json.JSONDecodeError):
            return
        # Rows made by another version of the extraction code may hold what a fix
        # since corrected: they are recomputed, never reused.
        if (schema.get("version") != SCHEMA_VERSION or schema.get("registry_hash") != registry.schema_hash
                or schema.get("spec_hash") != spec.hash() or schema.get("extract_version") != EXTRACT_VERSION):
            return
        try:
            eps = pl.read_parquet(processed / EPISODES)
            self.features = pq.ParquetFile(processed / FEATURES)
            self.tensors = TensorStore.open(processed / TENSORS)
        except Exception:  # noqa: BLE001 - unusable previous outputs just mean no reuse
            return
        self.by_rel = {r["rel_path"]: r for r in eps.filter(pl.col("status") == "ok").iter_rows(named=True)}
        sizes = [self.features.metadata.row_group(i).num_rows for i in range(self.features.num_row_groups)]
        self._rg_start = np.concatenate([[0], np.cumsum(sizes)])
        self._cache: tuple[int, pa.Table] | None = None

    def reusable(self, rel: str, manifest_sha: str) -> dict | None:
        old = self.by_rel.get(rel)
        return old if old and old["manifest_sha256"] == manifest_sha else None

    def feature_rows(self, first: int, n: int) -> pa.Table:
        pieces = []
        r = first
        while r < first + n:
            g = int(np.searchsorted(self._rg_start, r, side="right") - 1)
            if self._cache is None or self._cache[0] != g:
                self._cache = (g, self.features.read_row_group(g))
            table = self._cache[1]
            lo = r - int(self._rg_start[g])
            take = min(first + n - r, table.num_rows - lo)
            pieces.append(table.slice(lo, take))
            r += take
        return pa.concat_tables(pieces) if pieces else None


def run_extract(processed: Path, index_path: Path, store: Path, registry: Registry,
                cfg: ExtractConfig = ExtractConfig(), *, workers: int = 1,
                progress: Callable[..., None] | None = None) -> ExtractSummary:
    t0 = time.perf_counter()
    cfg.spec.check()
    require(index_path, "cis490 validate")
    if not Path(store).is_dir():
        raise MissingStageError(f"{store}: store directory not found (pass --store)")
    index = (read_parquet(index_path, "cis490 validate", ["rel_path", "manifest_sha256", "received_at",
                                                           "episode_id", "status"])
             .filter(pl.col("status").is_in(list(EXTRACTED_STATUSES)))
             .sort("rel_path"))
    if index.height == 0:
        raise Cis490Error(f"{index_path}: no accepted or degraded episodes to extract")
    prev = _Previous(processed, registry, cfg.spec)
    for what in ("extract", TENSORS):        # what a run killed with -9 left
        remove_dead_temps(processed, what)
    tmp = processed / temp_prefix("extract")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        summary = _write_outputs(tmp, index, Path(store), registry, cfg, prev, workers, progress, t0, index_path)
        _commit(tmp, processed, registry, cfg, index_path, summary)
    except Exception as exc:
        # pyarrow's writers say "[Errno 28] Error writing bytes to file" and
        # name no file: the folder being written, and its filesystem's room.
        if is_disk_full(exc):
            raise disk_full(processed / FEATURES, size_of(tmp)) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary.seconds = time.perf_counter() - t0
    return summary


def _results(index: pl.DataFrame, store: Path, registry: Registry, cfg: ExtractConfig, prev: _Previous,
             workers: int, fingerprints: dict[str, str]) -> Iterator[tuple[dict, str, object]]:
    """(index row, 'reuse'|'new', payload) in index order."""
    rows = index.select("rel_path", "manifest_sha256", "received_at", "episode_id").to_dicts()
    # An episode whose files changed size or time (the light half of
    # core.storescan.episode_fingerprint) since validation is extracted again,
    # never copied from the last extract; every file an extraction reads is
    # verified against the manifest's sha256 as it is read. With no
    # fingerprints recorded (an index older than them), every episode is.
    for r in rows:
        was = light_fingerprint(fingerprints.get(r["rel_path"]))
        r["verify"] = was is None or light_fingerprint(episode_fingerprint(store / r["rel_path"])) != was
    todo = [r for r in rows if r["verify"] or prev.reusable(r["rel_path"], r["manifest_sha256"]) is None]
    jobs = [(str(store / r["rel_path"]), r["rel_path"], r["manifest_sha256"]) for r in todo]
    if workers <= 1 or len(jobs) < 8:
        _init(registry, cfg.spec)
        fresh = map(_job, jobs)
        yield from _merge(rows, prev, fresh)
        return
    with process_pool(workers, _init, (registry, cfg.spec)) as pool:
        yield from _merge(rows, prev, pool_map(pool, _job, jobs, chunksize=4))


def _merge(rows, prev, fresh) -> Iterator[tuple[dict, str, object]]:
    for r in rows:
        old = None if r["verify"] else prev.reusable(r["rel_path"], r["manifest_sha256"])
        yield (r, "reuse", old) if old is not None else (r, "new", next(fresh))


def _write_outputs(tmp: Path, index: pl.DataFrame, store: Path, registry: Registry, cfg: ExtractConfig,
                   prev: _Previous, workers: int, progress, t0: float, index_path: Path) -> ExtractSummary:
    schema = _features_arrow_schema(registry)
    phase_id = {p: i for i, p in enumerate(registry.phases)}
    fw = pq.ParquetWriter(tmp / FEATURES, schema)
    tw = TensorPartWriter(tmp / TENSORS, cfg.part_windows)
    ep_rows: list[dict] = []
    tindex: list[pa.Table] = []
    batch = _FeatureBatch(schema, phase_id)
    per: Counter = Counter()
    cov_sum: Counter = Counter()
    failed: list[tuple[str, str]] = []
    reused = extracted = row = 0
    sources = registry.source_names()
    try:
        for done, (r, kind, payload) in enumerate(_results(index, store, registry, cfg, prev, workers,
                                                                  validated_fingerprints(index_path)), 1):
            rec = {"episode_id": r["episode_id"], "rel_path": r["rel_path"], "received_at": r["received_at"],
                   "manifest_sha256": r["manifest_sha256"], "first_row": row, "status": "ok", "error": None}
            if kind == "reuse":
                n = payload["n_windows"]
                labels = []
                if n:
                    table = prev.feature_rows(payload["first_row"], n)
                    batch.add_table(table)
                    labels = table.column("label").to_pylist()
                vals, masks = prev.tensors.rows(np.arange(payload["first_row"], payload["first_row"] + n))
                rec.update({k: payload[k] for k in ("host_id", "profile", "sample_name", "onset_s", "onset_phase")})
                rec.update({f"coverage_{s}": payload[f"coverage_{s}"] for s in sources})
                reused += 1
            elif "error" in payload:
                failed.append((r["rel_path"], payload["error"]))
                rec.update(status="failed", error=payload["error"], n_windows=0)
                ep_rows.append(rec)
                continue
            else:
                w = payload["windows"]
                n = w.n
                if n:
                    batch.add_windows(w)
                vals, masks, labels = w.values, w.mask, w.labels
                rec.update(host_id=w.host_id, profile=w.profile, sample_name=w.sample_name,
                           onset_s=list(w.onsets.t_s), onset_phase=list(w.onsets.phases))
                rec.update({f"coverage_{s}": w.coverage.get(s, 0.0) for s in sources})
                extracted += 1
            rec["n_windows"] = n
            ep_rows.append(rec)
            if n:
                tw.append(vals, masks)
                for lab, k in Counter(labels).items():
                    per[(lab, rec["host_id"])] += k
                for s in sources:
                    cov_sum[s] += rec[f"coverage_{s}"] * n
                row += n
            if batch.n >= FEATURE_BATCH:
                _write_batch(fw, batch.take(), tindex)
            if progress:
                progress(done, index.height, rate=f"{row / max(time.perf_counter() - t0, 1e-9):,.0f} windows/s")
        _write_batch(fw, batch.take(), tindex)
    finally:
        fw.close()
    if row == 0:
        raise Cis490Error("no windows extracted: " + (failed[0][1] if failed else "episodes are too short"))
    tw.close({"channels": registry.channel_names, "steps": cfg.spec.steps, "registry_hash": registry.schema_hash})
    ti = pl.from_arrow(pa.concat_tables(tindex)).with_row_index("row").select("window_id", "episode_id",
                                                                              "label_id", pl.col("row").cast(pl.Int64))
    pq.write_table(ti.to_arrow().cast(pa.schema([("window_id", pa.string()), ("episode_id", pa.string()),
                                                  ("label_id", pa.int8()), ("row", pa.int64())])),
                   tmp / TENSORS / "index.parquet")
    ep_schema = {"first_row": pl.Int64, "n_windows": pl.Int64, "error": pl.Utf8,
                 "onset_s": pl.List(pl.Float64), "onset_phase": pl.List(pl.Utf8),
                 **{f"coverage_{s}": pl.Float64 for s in sources}}
    pl.DataFrame(ep_rows, schema_overrides=ep_schema, infer_schema_length=None).write_parquet(tmp / EPISODES)
    # Phases in the registry's order (the life-cycle's), hosts by name: an
    # alphabetical table put `act` first and `idle` fourth.
    order = {p: i for i, p in enumerate(registry.phases)}
    per_phase_host: dict[str, dict[str, int]] = {}
    for (lab, host), n in sorted(per.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0])):
        per_phase_host.setdefault(lab, {})[host] = n
    return ExtractSummary(index.height, extracted, reused, failed, row, per_phase_host,
                          {s: cov_sum[s] / row for s in sources}, 0.0, 0)


class _FeatureBatch:
    """Feature rows gathered over episodes and turned into one Arrow table per
    batch: building 276 columns per episode would cost more than extracting it."""

    def __init__(self, schema: pa.Schema, phase_id: dict):
        self.schema, self.phase_id = schema, phase_id
        self.meta: dict[str, list] = {k: [] for k in ("window_id", "episode_id", "host_id", "profile",
                                                      "sample_name", "t_center_s", "label")}
        self.feats: list[np.ndarray] = []
        self.tables: list[pa.Table] = []   # rows copied from a previous extract
        self.n = 0

    def add_windows(self, w) -> None:
        n = w.n
        self.meta["window_id"] += [window_id(w.episode_id, t) for t in w.t_center_s]
        for key, val in (("episode_id", w.episode_id), ("host_id", w.host_id), ("profile", w.profile),
                         ("sample_name", w.sample_name)):
            self.meta[key] += [val] * n
        self.meta["t_center_s"] += w.t_center_s.tolist()
        self.meta["label"] += w.labels
        self.feats.append(w.features)
        self.n += n

    def add_table(self, table: pa.Table) -> None:
        # Keep row order: computed rows gathered before a copied table become a table first.
        if self.feats:
            self.tables.append(self._build())
        self.tables.append(table)
        self.n += table.num_rows

    def _build(self) -> pa.Table:
        # Built by polars and handed to Arrow: pyarrow's own array builders
        # import pandas, a fifth of a second of a small extract.
        feats = np.concatenate(self.feats)
        label_id = np.array([self.phase_id[x] for x in self.meta["label"]], dtype=np.int8)
        meta = pl.DataFrame({**{k: self.meta[k] for k in ("window_id", "episode_id", "host_id", "profile",
                                                          "sample_name")},
                             "t_center_s": np.asarray(self.meta["t_center_s"], dtype=np.float64),
                             "label": self.meta["label"], "label_id": label_id},
                            schema_overrides={k: pl.Utf8 for k in ("window_id", "episode_id", "host_id", "profile",
                                                                   "sample_name", "label")})
        names = self.schema.names[meta.width:]
        frame = pl.concat([meta, pl.from_numpy(feats, schema=names, orient="row")], how="horizontal")
        table = frame.to_arrow().cast(self.schema)
        self.meta = {k: [] for k in self.meta}
        self.feats = []
        return table

    def take(self) -> pa.Table | None:
        if self.feats:
            self.tables.append(self._build())
        if not self.tables:
            return None
        out = pa.concat_tables(self.tables)
        self.tables, self.n = [], 0
        return out


def _write_batch(fw: pq.ParquetWriter, table: pa.Table | None, tindex: list[pa.Table]) -> None:
    if table is not None:
        fw.write_table(table)
        tindex.append(table.select(["window_id", "episode_id", "label_id"]))


def tensor_dir_digest(files: dict[str, dict]) -> str:
    """The digest of a directory from its files' digests: the same as the
    notebook's digest of any directory (relative path, tab, sha256, per line)."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\t{files[name]['sha256']}\n".encode())
    return h.hexdigest()


def _commit(tmp: Path, processed: Path, registry: Registry, cfg: ExtractConfig, index_path: Path,
            summary: ExtractSummary) -> None:
    """Move the outputs into place; the schema file goes last and vouches for the rest.

    Every file is hashed once: the tensor parts as they were written (their
    digests are in meta.json), the small files here. The digests go to the
    schema and the summary, so the notebook never re-reads the tensor store."""
    features_sha, fbytes = file_digest(tmp / FEATURES)
    meta = json.loads((tmp / TENSORS / META).read_text())
    files = dict(meta["files"])
    for name in ("index.parquet", META):
        sha, size = file_digest(tmp / TENSORS / name)
        files[name] = {"sha256": sha, "bytes": size}
    tensors_sha = tensor_dir_digest(files)
    tbytes = sum(f["bytes"] for f in files.values())
    episodes_sha, ebytes = file_digest(tmp / EPISODES)
    schema = {
        "version": SCHEMA_VERSION, "extract_version": EXTRACT_VERSION, "registry_hash": registry.schema_hash,
        "registry_path": registry_ref(registry, processed)["path"], "spec_hash": cfg.spec.hash(),
        "window": asdict(cfg.spec), "steps": cfg.spec.steps, "stats": list(STATS),
        "channels": registry.channel_names, "features": feature_names(registry), "phases": list(registry.phases),
        "n_windows": summary.windows, "index_sha256": file_digest(index_path)[0],
        # What status compares: the rows extract read, by content (core.lab.extractable_digest).
        "extractable_sha256": extractable_digest(index_path),
        "features_sha256": features_sha, "tensors_sha256": tensors_sha, "episodes_sha256": episodes_sha,
        "tensors": {"dir": TENSORS, "parts": meta["parts"], "part_windows": meta["part_windows"],
                    "dtype": "float32", "mask_dtype": "uint8"},
    }
    (processed / SCHEMA).unlink(missing_ok=True)
    os.replace(tmp / FEATURES, processed / FEATURES)
    os.replace(tmp / EPISODES, processed / EPISODES)
    old = processed / TENSORS
    if old.exists():
        trash = processed / f"{temp_prefix(TENSORS)}old"
        os.replace(old, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(tmp / TENSORS, old)
    (tmp / SCHEMA).write_text(json.dumps(schema, indent=2) + "\n")
    os.replace(tmp / SCHEMA, processed / SCHEMA)
    summary.bytes_on_disk = fbytes + tbytes
    summary.outputs = {"features": str(processed / FEATURES), "schema": str(processed / SCHEMA),
                       "tensors": str(processed / TENSORS), "episodes": str(processed / EPISODES)}
    summary.digests = {"features": {"sha256": features_sha, "bytes": fbytes},
                       "tensors": {"sha256": tensors_sha, "bytes": tbytes},
                       "episodes": {"sha256": episodes_sha, "bytes": ebytes}}
