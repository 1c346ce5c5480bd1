"""`cis490 validate`: a full sweep of a store into the acceptance index.

Episodes are checked in parallel; their rows stream to a parquet writer in
batches, so memory stays flat however large the store. Duplicate episode ids
are a property of the whole store, settled in a final streaming pass.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import StoreError
from core.parallel import pool_map, process_pool
from core.paths import atomic_path, ensure_dir, lab_home_of, portable
from core.registry import Registry, registry_ref
from core.safenames import utf8_text
from core.store import MANIFEST, StoreEntry, scan_store, store_digest
from core.storescan import episode_fingerprint, manifest_sha256
from core.validate import (DUPLICATE, STATUSES, ValidationSummary, config_hash, sidecar_path, stat_path,
                           validated_fingerprints)
from core.validate.checks import VALIDATOR_VERSION, ValidateConfig, status_of, validate_episode

BATCH = 1000

def index_schema(registry: Registry) -> pa.Schema:
    cols = [("episode_id", pa.string()), ("host_id", pa.string()), ("profile", pa.string()),
            ("sample_name", pa.string()), ("received_at", pa.string()), ("started_at_ns", pa.int64()),
            ("duration_s", pa.float64()), ("status", pa.string()), ("reasons", pa.list_(pa.string()))]
    cols += [(f"rows_{s}", pa.int64()) for s in registry.source_names()]
    cols += [("rows_labels", pa.int64()), ("bytes", pa.int64()), ("rel_path", pa.string()),
             ("manifest_sha256", pa.string()), ("validator_version", pa.string()), ("validated_at", pa.string()),
             ("error", pa.string()), ("registry_hash", pa.string()), ("config_hash", pa.string())]
    return pa.schema(cols)


_WORKER: dict = {}


def _init_worker(registry: Registry, cfg: ValidateConfig, root: Path) -> None:
    _WORKER["registry"], _WORKER["cfg"], _WORKER["root"] = registry, cfg, root


def _job(args: tuple[str, str, str | None, str | None]) -> dict | None:
    """Validate one episode; None when --since-last can reuse its old row:
    the same manifest, and its files of the same sizes and times as then."""
    path, rel, prev_sha, prev_fingerprint = args
    if prev_sha is not None and prev_fingerprint is not None:
        if manifest_sha256(Path(path)) == prev_sha and episode_fingerprint(Path(path)) == prev_fingerprint:
            return None
    return validate_episode(Path(path), rel, _WORKER["registry"], _WORKER["cfg"], _WORKER["root"])


def _previous_rows(out: Path, chash: str) -> dict[str, dict]:
    if not out.exists():
        return {}
    try:
        prev = pl.read_parquet(out)
    except Exception as exc:  # noqa: BLE001 - a broken old index just means no reuse
        raise StoreError(f"{out}: previous index is unreadable ({exc}); run without --since-last") from exc
    if "config_hash" not in prev.columns:
        return {}
    prev = prev.filter(pl.col("config_hash") == chash)
    fingerprints = validated_fingerprints(out)
    return {r["rel_path"]: {**r, "stat_fingerprint": fingerprints.get(r["rel_path"])}
            for r in prev.iter_rows(named=True)}


def run_validation(store: Path, out: Path, registry: Registry, cfg: ValidateConfig = ValidateConfig(), *,
                   workers: int = 1, since_last: bool = False,
                   progress: Callable[..., None] | None = None) -> ValidationSummary:
    t0 = time.perf_counter()
    store = Path(store)
    entries = list(scan_store(store))
    episodes = [e for e in entries if not e.in_flight]
    in_flight = [utf8_text(e.rel) for e in entries if e.in_flight]
    if not episodes:
        # An empty index would replace a good one and let later stages run on nothing.
        flight = f" ({len(in_flight)} upload(s) in flight, without a manifest yet)" if in_flight else ""
        raise StoreError(f"{store}: no episode found{flight}; an episode is a directory "
                         f"<host>/<episode>/ holding {MANIFEST} (is --store the receiver's store?)")
    chash = config_hash(cfg, registry)
    prev = _previous_rows(out, chash) if since_last else {}
    ensure_dir(out.parent)
    # What an interrupted sweep of this store checked already (its journal):
    # taken as --since-last takes the last index's rows, each only while its
    # manifest and files are as they were.
    journal = Journal(out, store, chash)
    prev.update(journal.rows())
    schema = index_schema(registry)
    ids: Counter[str] = Counter()
    fingerprints: dict[str, str] = {}
    reused = total_bytes = 0
    journal_fps: list[str | None] = []
    # The index, its stat file and its sidecar are written to temporaries and
    # replaced together once all three are whole, or none is: a failure
    # half-way never leaves an index the others do not describe. (The index
    # is entered last, so a full disk while writing it names it.)
    with ExitStack() as together:
        side_part = together.enter_context(atomic_path(sidecar_path(out)))
        stat_part = together.enter_context(atomic_path(stat_path(out), ".part.parquet"))
        part = together.enter_context(atomic_path(out, ".part.parquet"))
        writer = pq.ParquetWriter(part, schema)
        rows = _rows(episodes, prev, registry, cfg, workers, store)
        try:
            batch: list[dict] = []
            for done, (entry, row) in enumerate(rows, 1):
                if row is None:
                    row = dict(prev[entry.rel])
                    row["reasons"] = [r for r in row["reasons"] if r != DUPLICATE]
                    row["status"] = status_of(row["reasons"])
                    reused += 1
                else:
                    row.update(validator_version=VALIDATOR_VERSION, registry_hash=registry.schema_hash,
                               config_hash=chash, validated_at=_now())
                fingerprints[row["rel_path"]] = row.pop("stat_fingerprint", None)
                journal_fps.append(fingerprints[row["rel_path"]])
                total_bytes += row.get("bytes") or 0
                if row.get("episode_id"):
                    ids[row["episode_id"]] += 1
                batch.append(row)
                if len(batch) >= BATCH:
                    table = _arrow(batch, schema)
                    writer.write_table(table)
                    journal.add(table, journal_fps)
                    batch.clear()
                    journal_fps = []
                if progress:
                    dt = max(time.perf_counter() - t0, 1e-9)
                    progress(done, len(episodes), rate=f"{total_bytes / dt / 1e6:.1f} MB/s")
            writer.write_table(_arrow(batch, schema))
        finally:
            # The pool stops now (not when the generator is collected), then the writer closes.
            rows.close()
            writer.close()
        dup_ids = sorted(i for i, n in ids.items() if n > 1)
        if dup_ids:
            _mark_duplicates(part, dup_ids, _kept_before(out, dup_ids))
        if _same_rows(out, part):
            # Nothing changed but the time of the checks: the index keeps its
            # bytes, so nothing made from it (features, splits, models) goes stale.
            shutil.copyfile(out, part)
        pl.DataFrame({"rel_path": list(fingerprints), "stat_fingerprint": list(fingerprints.values())},
                     schema={"rel_path": pl.Utf8, "stat_fingerprint": pl.Utf8}).write_parquet(stat_part)
        summary = _summarise(part, out, store, in_flight, dup_ids, reused, total_bytes,
                             time.perf_counter() - t0, workers)
        summary.config = {**asdict(cfg), "validator_version": VALIDATOR_VERSION,
                          "registry_hash": registry.schema_hash}
        # Later stages read the store this index describes from here, so that
        # `validate --store /srv/receiver` followed by a bare `extract` just works.
        # The registry is part of the lab's identity, like the store: later stages
        # default to it and refuse another (core.registry.resolve_registry).
        # The store's manifest digest lets `cis490 status` tell that the store
        # changed since (a manifests-only pass: seconds, next to the sweep).
        sha, eps, flight = store_digest(store)
        summary.store_digest = {"kind": "store", "sha256": sha, "episodes": eps, "in_flight": flight}
        home = lab_home_of(out.parent)
        ref = registry_ref(registry, out.parent)
        side_part.write_text(json.dumps({**summary.to_json(), "store": portable(store, out.parent, home),
                                         "registry": ref, "store_sha256": sha, "store_episodes": eps},
                                        indent=1) + "\n")
    journal.remove()                     # the index is whole: nothing is left to resume
    return summary


class Journal:
    """The rows a sweep has checked so far, a part per batch written as the
    batch is (renamed into place whole), beside the index: an interrupted
    sweep (Ctrl-C, kill -9, a full disk) is resumed from them by the next
    one, of the same store with the same registry and settings. Removed once
    the index is whole."""

    def __init__(self, out: Path, store: Path, chash: str):
        self.dir = out.parent / f".{out.stem}.journal"
        self.key = {"store": str(Path(store).resolve()), "config_hash": chash}
        self.count = 0

    def rows(self) -> dict[str, dict]:
        """rel_path -> row (with its stat fingerprint) of a journal of this
        sweep; an unreadable part or another sweep's journal gives nothing."""
        try:
            key = json.loads((self.dir / "journal.json").read_text())
        except (OSError, ValueError):
            key = None
        if key != self.key:
            shutil.rmtree(self.dir, ignore_errors=True)      # another store's, or settings': not resumable
            return {}
        out: dict[str, dict] = {}
        for part in sorted(self.dir.glob("part-*.parquet")):
            try:
                frame = pl.read_parquet(part)
            except Exception:  # noqa: BLE001 - a damaged part is checked again, not trusted
                continue
            out.update({r["rel_path"]: r for r in frame.iter_rows(named=True)})
        self.count = len(list(self.dir.glob("part-*.parquet")))
        return out

    def add(self, table: pa.Table, fingerprints: list[str | None]) -> None:
        if self.count == 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            (self.dir / "journal.json").write_text(json.dumps(self.key) + "\n")
        frame = pl.from_arrow(table).with_columns(pl.Series("stat_fingerprint", fingerprints, dtype=pl.Utf8))
        with atomic_path(self.dir / f"part-{self.count:06d}.parquet", ".parquet") as tmp:
            frame.write_parquet(tmp)
        self.count += 1

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


_POLARS = {"string": pl.Utf8, "int64": pl.Int64, "double": pl.Float64, "list<item: string>": pl.List(pl.Utf8)}


def _arrow(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Index rows as an Arrow table of `schema`, built by polars: pyarrow's
    own builders import pandas (a quarter of a second of a small sweep)."""
    frame = pl.DataFrame(rows, schema={f.name: _POLARS[str(f.type)] for f in schema})
    return frame.to_arrow().cast(schema)


def _rows(episodes: list[StoreEntry], prev: dict[str, dict], registry: Registry, cfg: ValidateConfig,
          workers: int, root: Path) -> Iterator[tuple[StoreEntry, dict | None]]:
    jobs = [(str(e.path), e.rel, (prev.get(e.rel) or {}).get("manifest_sha256"),
             (prev.get(e.rel) or {}).get("stat_fingerprint")) for e in episodes]
    if workers <= 1 or len(jobs) < 8:
        _init_worker(registry, cfg, root)
        yield from zip(episodes, map(_job, jobs))
        return
    with process_pool(workers, _init_worker, (registry, cfg, root)) as pool:
        yield from zip(episodes, pool_map(pool, _job, jobs, chunksize=8))


def _same_rows(old: Path, new: Path) -> bool:
    """Whether two indexes hold the same rows but for `validated_at`."""
    if not old.exists():
        return False
    try:
        a, b = pl.read_parquet(old), pl.read_parquet(new)
    except Exception:  # noqa: BLE001 - an old index that cannot be read is simply replaced
        return False
    return a.columns == b.columns and a.drop("validated_at").equals(b.drop("validated_at"))


def _kept_before(index: Path, dup_ids: list[str]) -> dict[str, str]:
    """Of the duplicated ids, which copy (rel_path) the previous index kept."""
    try:
        prev = (pl.scan_parquet(index).filter(pl.col("episode_id").is_in(dup_ids))
                .select("episode_id", "rel_path", "reasons").collect())
    except Exception:  # noqa: BLE001 - no previous index (or an unreadable one): no history to follow
        return {}
    return {eid: rel for eid, rel, reasons in prev.iter_rows() if DUPLICATE not in (reasons or [])}


def _mark_duplicates(part: Path, dup_ids: list[str], kept_before: dict[str, str]) -> None:
    """Of the copies of a duplicated id, one keeps its own status and every
    other is rejected (`duplicate_episode_id`), by a rule no copy's own
    fields decide alone (docs/store-format.md, "Duplicate episode ids"):
    the copy the previous index kept, when it is still there; else the one
    received first by its `received_at` among those whose receipt time is
    plausible (validate rejects an implausible one, `received_at_implausible`,
    so a copy claiming 1970 cannot win); a tie goes by path. The part file
    is rewritten, streaming."""
    from core.store import parse_received_at
    copies = (pl.scan_parquet(part).filter(pl.col("episode_id").is_in(dup_ids))
              .select("episode_id", "rel_path", "received_at", "reasons").collect())
    first: dict[str, tuple] = {}
    for eid, rel, received, reasons in copies.iter_rows():
        t = parse_received_at(received)
        implausible = any(r.startswith("received_at_implausible") for r in reasons or [])
        key = (kept_before.get(eid) != rel, t is None or implausible, t or 0, rel)
        if eid not in first or key < first[eid]:
            first[eid] = key
    kept = [k[3] for k in first.values()]
    is_dup = pl.col("episode_id").is_in(dup_ids) & ~pl.col("rel_path").is_in(kept)
    fixed = part.with_name(part.name + ".dup")
    (pl.scan_parquet(part)
     .with_columns(
         pl.when(is_dup).then(pl.col("reasons").list.concat(pl.lit([DUPLICATE]))).otherwise(pl.col("reasons"))
         .alias("reasons"),
         pl.when(is_dup & pl.col("status").is_in(["accepted", "degraded", "unlabelled"])).then(pl.lit("rejected"))
         .otherwise(pl.col("status")).alias("status"))
     .sink_parquet(fixed))
    os.replace(fixed, part)


def _summarise(part: Path, out: Path, store: Path, in_flight: list[str], dups: list[str], reused: int, nbytes: int,
               seconds: float, workers: int) -> ValidationSummary:
    """What validate says of the index written to `part` (to be `out`)."""
    idx = pl.read_parquet(part, columns=["host_id", "status", "reasons"])
    counts = {s: 0 for s in STATUSES}
    counts.update(dict(idx.group_by("status").len().iter_rows()))
    per_host: dict[str, dict[str, int]] = {}
    for host, status, n in idx.group_by("host_id", "status").len().iter_rows():
        per_host.setdefault(host or "(unknown)", {s: 0 for s in STATUSES})[status] = n
    codes = (idx.select(pl.col("reasons").list.eval(pl.element().str.split(":").list.first()).list.unique())
             .explode("reasons").drop_nulls().group_by("reasons").len().sort(["len", "reasons"],
                                                                            descending=[True, False]))
    top = [(r, n) for r, n in codes.head(10).iter_rows()]
    refused = (pl.scan_parquet(part).filter(pl.col("status").is_in(["rejected", "errored"]))
               .select("rel_path", "status", "reasons").sort("rel_path").collect().to_dicts())
    return ValidationSummary(store, out, idx.height, in_flight, counts, dict(sorted(per_host.items())), top, dups,
                             reused, nbytes, seconds, workers, refused)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


