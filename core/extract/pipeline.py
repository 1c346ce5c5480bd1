"""`cis490 extract`: every accepted/degraded episode -> windows, features, tensors.

Incremental and resumable, in chunks (core.extract.chunks): the chunks a
previous run wrote are kept while every episode in them is still in the
acceptance index, unchanged (its manifest and files as validated) and made
by the same registry, window spec and extraction code; a chunk some of whose
episodes left is rewritten without them; the episodes no kept chunk holds
are extracted in parallel (the same `extract_episode` live inference uses)
into new chunks of `chunk_episodes`, each renamed into place as soon as it is
whole, so an interrupted run (Ctrl-C, kill -9, a full disk) loses at most the
chunk it was writing. The feature schema, written last, lists the chunks the
lab uses. `--full` extracts everything again. Memory is bounded by one batch
of features and one tensor part, whatever the corpus.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import Cis490Error
from core.extract import (CHUNKS, EPISODES, SCHEMA, SCHEMA_VERSION, ExtractConfig, ExtractSummary,
                          MissingStageError)
from core.extract.chunks import (CHUNK_EPISODES, CHUNK_FEATURES, CHUNK_META, Chunk, complete_chunks, digest_files, new_chunk_dir,
                                 next_id, remove_chunk, windows_digest, write_meta, chunk_name)
from core.extract.episode import EXTRACT_VERSION, STATS, ExtractError, WindowSpec, extract_episode, feature_names, window_id
from core.extract.tensors import TensorPartWriter
from core.lab import EXTRACTED_STATUSES, extractable_digest
from core.loading import read_parquet, require
from core.parallel import pool_map, process_pool
from core.paths import disk_full, is_disk_full, remove_dead_temps, size_of
from core.registry import Registry, registry_ref
from core.store import Episode, file_digest
from core.storescan import episode_fingerprint, light_fingerprint
from core.validate import validated_fingerprints

FEATURE_BATCH = 4096
# Files of the extract before chunks (schema version 1): removed once a chunked one replaces them.
OLD_OUTPUTS = ("features_window_v1.parquet", "tensors_v1")


def _features_arrow_schema(registry: Registry) -> pa.Schema:
    cols = [("window_id", pa.string()), ("episode_id", pa.string()), ("host_id", pa.string()),
            ("profile", pa.string()), ("sample_name", pa.string()), ("t_center_s", pa.float64()),
            ("label", pa.string()), ("label_id", pa.int8())]
    return pa.schema(cols + [(f, pa.float32()) for f in feature_names(registry)])


def extract_key(registry: Registry, spec: WindowSpec) -> dict:
    """What a chunk's rows were made by: rows made by another registry, window
    spec or version of the extraction code may hold what a fix since
    corrected, and are recomputed, never reused."""
    return {"registry_hash": registry.schema_hash, "spec_hash": spec.hash(), "extract_version": EXTRACT_VERSION}


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


@dataclass
class _Plan:
    """What a run keeps, rewrites and extracts."""
    kept: list[Chunk] = field(default_factory=list)                      # used as they are
    rewrite: list[tuple[Chunk, pl.DataFrame]] = field(default_factory=list)   # (chunk, its episodes to keep)
    todo: list[dict] = field(default_factory=list)                       # index rows to extract
    dropped: list[Chunk] = field(default_factory=list)                   # no episode of them is wanted


def _plan(index: pl.DataFrame, chunks: list[Chunk], key: dict, store: Path, fingerprints: dict[str, str]) -> _Plan:
    """Which episodes the chunks there can give as they are: each chunk of the
    same key whose every episode is wanted (in the index with the manifest it
    was extracted from, and its files unchanged in size and time since
    validation) is kept; one with some is rewritten with those; the rest are
    extracted. An episode two chunks hold (a run interrupted after writing one)
    is taken from the first."""
    rows = {r["rel_path"]: r for r in index.iter_rows(named=True)}

    def changed(rel: str) -> bool:
        was = light_fingerprint(fingerprints.get(rel))
        return was is None or light_fingerprint(episode_fingerprint(store / rel)) != was
    plan, covered = _Plan(), set()
    for chunk in chunks:
        try:
            eps = chunk.episodes()
            same = chunk.meta["key"] == key
        except Cis490Error:
            plan.dropped.append(chunk)           # damaged: what it held is extracted again
            continue
        good = [same and r["rel_path"] in rows and r["rel_path"] not in covered
                and r["manifest_sha256"] == rows[r["rel_path"]]["manifest_sha256"] and not changed(r["rel_path"])
                for r in eps.select("rel_path", "manifest_sha256").iter_rows(named=True)]
        keep = eps.filter(pl.Series(good, dtype=pl.Boolean)) if eps.height else eps
        covered.update(keep["rel_path"].to_list())
        if keep.height == eps.height and eps.height:
            plan.kept.append(chunk)
        elif keep.height:
            plan.rewrite.append((chunk, keep))
        else:
            plan.dropped.append(chunk)
    plan.todo = [r for rel, r in rows.items() if rel not in covered]
    return plan


def run_extract(processed: Path, index_path: Path, store: Path, registry: Registry,
                cfg: ExtractConfig = ExtractConfig(), *, workers: int = 1,
                progress: Callable[..., None] | None = None, full: bool = False) -> ExtractSummary:
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
    root = processed / CHUNKS
    remove_dead_temps(root, "chunk") if root.is_dir() else None
    key = extract_key(registry, cfg.spec)
    listed = _listed_chunks(processed, root)
    # Listed chunks first (the lab's order), then complete ones no schema lists (an interrupted run's).
    chunks = [] if full else listed + [c for c in complete_chunks(root) if c.name not in {x.name for x in listed}]
    plan = _plan(index, chunks, key, Path(store), validated_fingerprints(index_path))
    writer = _Writer(root, registry, cfg, key)
    try:
        made = writer.rewrite(plan.rewrite)
        made += writer.extract(plan.todo, Path(store), workers, index.height, progress, t0,
                               done=sum(c.episodes().height for c in plan.kept) + sum(k.height for _, k in plan.rewrite))
        final = plan.kept + made
        summary = _commit(processed, root, final, registry, cfg, index_path, index.height)
    except Exception as exc:
        # pyarrow's writers say "[Errno 28] Error writing bytes to file" and
        # name no file: the folder being written, and its filesystem's room.
        if is_disk_full(exc):
            raise disk_full(root, writer.written()) from None
        raise
    finally:
        writer.abort()
    gone = {c.name for c in final}
    for chunk in complete_chunks(root):
        if chunk.name not in gone:
            remove_chunk(chunk.path)             # dropped, rewritten, or left by an older full run
    for old in OLD_OUTPUTS:
        p = processed / old
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    summary.extracted = writer.extracted
    summary.chunks, summary.new_chunks = len(final), len(made)
    summary.reused = index.height - len(plan.todo)
    summary.seconds = time.perf_counter() - t0
    return summary


def _listed_chunks(processed: Path, root: Path) -> list[Chunk]:
    """The chunks the current schema lists, in its order (none for an older schema)."""
    try:
        schema = json.loads((processed / SCHEMA).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(schema, dict) or schema.get("version") != SCHEMA_VERSION:
        return []
    out = []
    for c in schema.get("chunks", []):
        path = root / str(c.get("dir", ""))
        if (path / "chunk.json").is_file():
            out.append(Chunk(path))
    return out


class _Writer:
    """New chunks: rewritten from old ones, or extracted from the store."""

    def __init__(self, root: Path, registry: Registry, cfg: ExtractConfig, key: dict):
        self.root, self.registry, self.cfg, self.key = root, registry, cfg, key
        self.schema = _features_arrow_schema(registry)
        self.phase_id = {p: i for i, p in enumerate(registry.phases)}
        self.open: _ChunkWriter | None = None
        self.extracted = 0
        self.made: list[Path] = []

    def _start(self) -> "_ChunkWriter":
        if self.open is None:
            self.open = _ChunkWriter(self.root, next_id(self.root), self)
        return self.open

    def _finish(self) -> list[Chunk]:
        if self.open is None:
            return []
        chunk = self.open.close()
        self.open = None
        return [chunk]

    def rewrite(self, todo: list[tuple[Chunk, pl.DataFrame]]) -> list[Chunk]:
        """A chunk's episodes that are still wanted, copied into a new chunk
        (its rows as they are: no episode is extracted again)."""
        out = []
        for chunk, keep in todo:
            w = self._start()
            # One chunk's features at a time (~100 MB at 512 real episodes): read once, not once per episode.
            features = pq.read_table(chunk.features)
            for rec in keep.iter_rows(named=True):
                w.add_copy(chunk, features, rec)
            out += self._finish()
        return out

    def extract(self, todo: list[dict], store: Path, workers: int, total: int, progress, t0: float,
                done: int) -> list[Chunk]:
        out = []
        results = _results(todo, store, self.registry, self.cfg.spec, workers)
        try:
            for r, result in zip(todo, results):
                w = self._start()
                w.add_result(r, result)
                self.extracted += "windows" in result
                done += 1
                if len(w.episodes) >= self.cfg.chunk_episodes:
                    out += self._finish()
                if progress:
                    rate = (w.rows + sum(c.n_windows for c in out)) / max(time.perf_counter() - t0, 1e-9)
                    progress(done, total, rate=f"{rate:,.0f} windows/s")
        finally:
            # The pool's shutdown runs now, not when the generator is collected: an
            # interrupt or an error must stop the workers before it is reported.
            results.close()
        if progress and not todo:
            progress(done, total)
        return out + self._finish()

    def written(self) -> int:
        return size_of(self.open.tmp) if self.open is not None and self.open.tmp.exists() else 0

    def abort(self) -> None:
        if self.open is not None:
            shutil.rmtree(self.open.tmp, ignore_errors=True)
            self.open = None


def _results(todo: list[dict], store: Path, registry: Registry, spec: WindowSpec, workers: int) -> Iterator[dict]:
    jobs = [(str(store / r["rel_path"]), r["rel_path"], r["manifest_sha256"]) for r in todo]
    if workers <= 1 or len(jobs) < 8:
        _init(registry, spec)
        yield from map(_job, jobs)
        return
    with process_pool(workers, _init, (registry, spec)) as pool:
        yield from pool_map(pool, _job, jobs, chunksize=4)


class _ChunkWriter:
    """One chunk being written in a temporary folder, renamed when whole."""

    def __init__(self, root: Path, chunk_id: int, owner: _Writer):
        self.owner, self.id = owner, chunk_id
        self.final = root / chunk_name(chunk_id)
        self.tmp = new_chunk_dir(root, chunk_id)
        self.fw = pq.ParquetWriter(self.tmp / CHUNK_FEATURES, owner.schema)
        self.tw = TensorPartWriter(self.tmp, owner.cfg.part_windows)
        self.batch = _FeatureBatch(owner.schema, owner.phase_id)
        self.episodes: list[dict] = []
        self.rows = 0
        self.per: Counter = Counter()

    def _rec(self, r: dict) -> dict:
        return {"episode_id": r["episode_id"], "rel_path": r["rel_path"], "received_at": r["received_at"],
                "manifest_sha256": r["manifest_sha256"], "first_row": self.rows, "status": "ok", "error": None}

    def add_result(self, r: dict, result: dict) -> None:
        rec = self._rec(r)
        if "error" in result:
            rec.update(status="failed", error=result["error"], n_windows=0, windows_sha256=None)
            self.episodes.append(rec)
            return
        w = result["windows"]
        rec.update(host_id=w.host_id, profile=w.profile, sample_name=w.sample_name,
                   onset_s=list(w.onsets.t_s), onset_phase=list(w.onsets.phases),
                   windows_sha256=windows_digest(w.features, w.values, w.mask),
                   **{f"coverage_{s}": w.coverage.get(s, 0.0) for s in self.owner.registry.source_names()})
        if w.n:
            self.batch.add_windows(w)
            self.tw.append(w.values, w.mask)
        self._count(rec, w.n, w.labels)

    def add_copy(self, chunk: Chunk, features: pa.Table, old: dict) -> None:
        rec = {**old, "first_row": self.rows}
        n = int(old["n_windows"] or 0)
        labels = []
        if n:
            table = features.slice(int(old["first_row"]), n)
            self.batch.add_table(table)
            labels = table.column("label").to_pylist()
            self.tw.append(*chunk.tensor_rows(int(old["first_row"]), n))
        if old["status"] != "ok":
            self.episodes.append(rec)
            return
        self._count(rec, n, labels)

    def _count(self, rec: dict, n: int, labels: list[str]) -> None:
        rec["n_windows"] = n
        self.episodes.append(rec)
        for lab, k in Counter(labels).items():
            self.per[(lab, rec["host_id"])] += k
        self.rows += n
        if self.batch.n >= FEATURE_BATCH:
            _write_batch(self.fw, self.batch.take())

    def close(self) -> Chunk:
        _write_batch(self.fw, self.batch.take())
        self.fw.close()
        reg = self.owner.registry
        tensors = self.tw.close()
        sources = reg.source_names()
        ep_schema = {"first_row": pl.Int64, "n_windows": pl.Int64, "error": pl.Utf8, "status": pl.Utf8,
                     "windows_sha256": pl.Utf8, "host_id": pl.Utf8, "profile": pl.Utf8, "sample_name": pl.Utf8,
                     "onset_s": pl.List(pl.Float64), "onset_phase": pl.List(pl.Utf8),
                     **{f"coverage_{s}": pl.Float64 for s in sources}}
        pl.DataFrame(self.episodes, schema_overrides=ep_schema, infer_schema_length=None).write_parquet(
            self.tmp / CHUNK_EPISODES)
        files = dict(tensors["files"])
        for name in (CHUNK_FEATURES, CHUNK_EPISODES):
            sha, size = file_digest(self.tmp / name)
            files[name] = {"sha256": sha, "bytes": size}
        write_meta(self.tmp, {"channels": reg.channel_names, "steps": self.owner.cfg.spec.steps,
                              "parts": tensors["parts"], "part_windows": tensors["part_windows"],
                              "n_windows": self.rows, "key": self.owner.key, "files": files,
                              "per_phase_host": [[p, h, n] for (p, h), n in sorted(self.per.items())]})
        os.replace(self.tmp, self.final)
        self.owner.made.append(self.final)
        return Chunk(self.final)


def _commit(processed: Path, root: Path, chunks: list[Chunk], registry: Registry, cfg: ExtractConfig,
            index_path: Path, n_episodes: int) -> ExtractSummary:
    """The lab's episodes table and, last, the schema that lists the chunks
    and vouches for the rest: a run interrupted before it leaves the last
    extract as the lab's. Every file was hashed once, as it was written."""
    frames, offset, per, failed = [], 0, Counter(), []
    sources = registry.source_names()
    for c in chunks:
        eps = c.episodes().with_columns((pl.col("first_row") + offset).alias("first_row"), pl.lit(c.name).alias("chunk"))
        frames.append(eps)
        offset += c.n_windows
        for p, h, n in c.meta.get("per_phase_host", []):
            per[(p, h)] += n
    episodes = pl.concat(frames, how="diagonal_relaxed").sort("rel_path") if frames else pl.DataFrame()
    ok = episodes.filter(pl.col("status") == "ok") if episodes.height else episodes
    failed = [(r, e) for r, e in episodes.filter(pl.col("status") != "ok").select("rel_path", "error").iter_rows()] \
        if episodes.height else []
    if offset == 0:
        raise Cis490Error("no windows extracted: " + (failed[0][1] if failed else "episodes are too short"))
    from core.paths import atomic_path
    with atomic_path(processed / EPISODES, ".parquet") as tmp:
        episodes.write_parquet(tmp)
    features_sha = digest_files({c.name: c.meta["files"][CHUNK_FEATURES] for c in chunks})
    tensor_files = {f"{c.name}/{n}": d for c in chunks for n, d in c.meta["files"].items()
                    if n.startswith(("values_", "mask_"))}
    tensors_sha = digest_files(tensor_files)
    episodes_sha, ebytes = file_digest(processed / EPISODES)
    fbytes = sum(c.meta["files"][CHUNK_FEATURES]["bytes"] for c in chunks)
    tbytes = sum(d["bytes"] for d in tensor_files.values())
    schema = {
        "version": SCHEMA_VERSION, "extract_version": EXTRACT_VERSION, "registry_hash": registry.schema_hash,
        "registry_path": registry_ref(registry, processed)["path"], "spec_hash": cfg.spec.hash(),
        "window": asdict(cfg.spec), "steps": cfg.spec.steps, "stats": list(STATS),
        "channels": registry.channel_names, "features": feature_names(registry), "phases": list(registry.phases),
        "n_windows": offset, "index_sha256": file_digest(index_path)[0],
        # What status compares: the rows extract read, by content (core.lab.extractable_digest).
        "extractable_sha256": extractable_digest(index_path),
        "features_sha256": features_sha, "tensors_sha256": tensors_sha, "episodes_sha256": episodes_sha,
        "chunks": [{"dir": c.name, "n_windows": c.n_windows} for c in chunks],
        "tensors": {"dir": CHUNKS, "part_windows": cfg.part_windows, "dtype": "float32", "mask_dtype": "uint8"},
    }
    from core.paths import atomic_write_text
    atomic_write_text(processed / SCHEMA, json.dumps(schema, indent=2) + "\n")
    order = {p: i for i, p in enumerate(registry.phases)}
    per_phase_host: dict[str, dict[str, int]] = {}
    # Phases in the registry's order (the life-cycle's), hosts by name: an
    # alphabetical table put `act` first and `idle` fourth.
    for (lab, host), n in sorted(per.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0])):
        per_phase_host.setdefault(lab, {})[host] = n
    coverage = {s: float((ok[f"coverage_{s}"].fill_null(0) * ok["n_windows"]).sum() / offset)
                if f"coverage_{s}" in ok.columns else 0.0 for s in sources}
    summary = ExtractSummary(n_episodes, 0, 0, failed, offset, per_phase_host, coverage, 0.0, fbytes + tbytes)
    summary.outputs = {"schema": str(processed / SCHEMA), "episodes": str(processed / EPISODES),
                       "chunks": str(root)}
    # The notebook's digest of the chunks' folder, from digests taken as each file was written
    # (a chunk.json is a few hundred bytes: hashed here): what describe_path would find.
    every = {f"{c.name}/{n}": d for c in chunks for n, d in c.meta["files"].items()}
    for c in chunks:
        sha, size = file_digest(c.path / CHUNK_META)
        every[f"{c.name}/{CHUNK_META}"] = {"sha256": sha, "bytes": size}
    summary.digests = {"episodes": {"sha256": episodes_sha, "bytes": ebytes},
                       "chunks": {"sha256": digest_files(every), "bytes": sum(d["bytes"] for d in every.values())}}
    return summary


class _FeatureBatch:
    """Feature rows gathered over episodes and turned into one Arrow table per
    batch: building 276 columns per episode would cost more than extracting it."""

    def __init__(self, schema: pa.Schema, phase_id: dict):
        self.schema, self.phase_id = schema, phase_id
        self.meta: dict[str, list] = {k: [] for k in ("window_id", "episode_id", "host_id", "profile",
                                                      "sample_name", "t_center_s", "label")}
        self.feats: list[np.ndarray] = []
        self.tables: list[pa.Table] = []   # rows copied from a previous chunk
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


def _write_batch(fw: pq.ParquetWriter, table: pa.Table | None) -> None:
    if table is not None:
        fw.write_table(table)
