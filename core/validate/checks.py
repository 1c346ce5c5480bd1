"""Checks of one episode: its status and machine-readable reasons.

Each reason is `code` or `code:detail`; its code alone decides its severity,
so an episode's status is always derivable from its reasons (see `status_of`).
The rules are documented in docs/store-format.md#validation-rules.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from core.registry import Registry
from core.safenames import utf8_text
from core.store import LABEL_SCHEMA, LABELS, MANIFEST, Episode, manifest_problems, parse_jsonl
from core.storescan import FileTooLarge, NotAFile, episode_fingerprint, file_digest, read_capped
from core.validate.plausible import check_plausible, out_of_range, row_bounds
from core.validate.reading import Damaged, TooLarge, read_once, safe_name

# 1.1: received_at must parse as a time; 1.2: only text and integers an index
# can hold, and the first-received copy of a duplicated id kept; 1.3: plausible
# claims (Limits), bounded decompression, files confined to their episode;
# 1.4: values out of range (NaN, infinite, beyond a channel's bounds) named;
# no rows parsed beyond what the duration and rate allow (Limits.max_rows).
VALIDATOR_VERSION = "1.4.0"

ERRORED = ("manifest_unparseable", "read_error", "exception")
DEGRADED = ("optional_source_missing", "rows_out_of_order", "rows_duplicated", "source_gap", "null_values",
            "clock_corrected", "rows_outside_episode", "values_out_of_range")
# Everything else is a rejection: integrity, schema, labels, required data.
SEVERITY_ORDER = ("accepted", "degraded", "unlabelled", "rejected", "errored")
# An episode without labels.jsonl that passes every other check: never trained
# or scored on, but `cis490 predict` reads it (what the lab trains models for).
UNLABELLED = "labels_missing"


@dataclass(frozen=True)
class ValidateConfig:
    row_gate: float = 0.5        # a sample source needs >= this x duration x rate rows
    window_s: float = 10.0       # an episode shorter than one window is useless
    gap_s: float = 10.0          # a gap is longer than this and than 5 sampling intervals
    max_null_frac: float = 0.2   # above: rejected; any null at all: degraded
    edge_tolerance_s: float = 1.0


def code_of(reason: str) -> str:
    return reason.split(":", 1)[0]


def severity(reason: str) -> str:
    code = code_of(reason)
    if code in ERRORED:
        return "errored"
    if code in DEGRADED:
        return "degraded"
    return "rejected"


def status_of(reasons: list[str]) -> str:
    worst = 0
    for r in reasons:
        worst = max(worst, SEVERITY_ORDER.index("unlabelled" if code_of(r) == UNLABELLED else severity(r)))
    return SEVERITY_ORDER[worst]


class _ReadError(Exception):
    """A file could not be read at all: the episode is errored."""

    def __init__(self, fname: str, exc: BaseException | str):
        detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        super().__init__(f"{fname}: {detail}")
        self.reason = f"read_error:{fname}"


def _dup_keys_hook(dups: list[str]):
    def hook(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                dups.append(k)
            seen.add(k)
        return dict(pairs)
    return hook


def validate_episode(path: Path, rel: str, registry: Registry, cfg: ValidateConfig,
                     root: Path | None = None) -> dict:
    """The index row of one episode. Never raises: a failure is `errored`.
    `root`, the store, bounds what links may point at."""
    row: dict = {"rel_path": rel, "reasons": [], "error": None, "bytes": 0}
    for src in registry.source_names():
        row[f"rows_{src}"] = None
    row["rows_labels"] = None
    t0 = time.perf_counter()
    row["stat_fingerprint"] = episode_fingerprint(Path(path))
    try:
        if root is not None and not _inside(Path(path), root):
            row["reasons"].append("episode_outside_store")
        else:
            _check(Path(path), row, registry, cfg, root)
    except _ReadError as exc:
        row["reasons"].append(exc.reason)
        row["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken episode never stops a sweep
        row["reasons"].append(f"exception:{type(exc).__name__}")
        row["error"] = f"{type(exc).__name__}: {exc}"
    _storable(row)
    row["status"] = status_of(row["reasons"])
    row["check_s"] = time.perf_counter() - t0
    return row


INT64 = (-2 ** 63, 2 ** 63 - 1)
def _storable(row: dict) -> None:
    """Make the row one the index can hold, whatever the manifest claimed:
    text UTF-8 cannot encode (a lone surrogate in `sample_name`) is kept
    escaped and an integer beyond int64 (`started_at_ns: 10**30`) dropped,
    each with a reason that rejects the episode. Without this the sweep,
    not the episode, failed while writing the index."""
    bad: set[str] = set()

    def fix(value, key):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                if key == "rel_path":          # a folder name the filesystem holds as bytes, not UTF-8
                    bad.add("path_not_utf8")
                    return utf8_text(value)
                bad.add(f"manifest_not_utf8:{key}")
                return value.encode("utf-8", "backslashreplace").decode("utf-8")
        elif isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
            bad.add(f"manifest_field_value:{key}")
            return None
        return value
    for key, value in list(row.items()):
        row[key] = [fix(v, key) for v in value] if isinstance(value, list) else fix(value, key)
    row["reasons"].extend(sorted(bad))


def _check(path: Path, row: dict, registry: Registry, cfg: ValidateConfig, root: Path | None) -> None:
    reasons: list[str] = row["reasons"]
    read = _read_manifest(path, row, root)
    if read is None:
        return
    m, blob = read
    for key in ("episode_id", "host_id", "profile", "sample_name", "received_at"):
        row[key] = m.get(key) if isinstance(m.get(key), str) else None
    ok_interval = isinstance(m.get("started_at_ns"), int) and isinstance(m.get("ended_at_ns"), int)
    if ok_interval:
        row["started_at_ns"] = m["started_at_ns"]
        row["duration_s"] = (m["ended_at_ns"] - m["started_at_ns"]) / 1e9
        if row["duration_s"] < cfg.window_s:
            reasons.append("shorter_than_window")
    if row.get("profile") is not None and row["profile"] not in registry.profiles:
        reasons.append(f"unknown_profile:{row['profile']}")
    if ok_interval:
        check_plausible(m, row["duration_s"], registry, reasons)
    files = m.get("files") if isinstance(m.get("files"), dict) else {}
    ep = Episode(path, m, blob)
    roles = {ep.source_file(src): src for src in registry.source_names()}
    roles.pop(None, None)
    roles[LABELS] = "labels"

    allowed = row_bounds(m, row["duration_s"], roles, registry) if ok_interval else {}
    intact: set[str] = set()
    frames: dict[str, pl.DataFrame | None] = {}
    for fname, entry in files.items():
        if not safe_name(fname):
            reasons.append(f"file_name_unsafe:{fname}")
            continue
        read = _read_listed(path / fname, fname, entry, roles.get(fname), allowed.get(fname), ep, registry, root,
                            row)
        if read is not None:
            intact.add(fname)
            if read is not _UNPARSED:
                frames[fname] = read

    clocks = m.get("clocks") if isinstance(m.get("clocks"), dict) else {}
    for src in registry.source_names():
        fname = ep.source_file(src)
        if fname is None:
            kind = "required" if registry.source(src).required else "optional"
            reasons.append(f"{kind}_source_missing:{src}")
            continue
        clock = clocks.get(src)
        if isinstance(clock, dict) and clock.get("corrections"):
            reasons.append(f"clock_corrected:{src}")
        if fname not in intact:
            continue  # missing or corrupt: already a reason, its rows cannot be trusted
        df = frames.get(fname)
        if df is None:
            continue
        row[f"rows_{src}"] = df.height
        if isinstance(files[fname].get("rows"), int) and files[fname]["rows"] != df.height:
            reasons.append(f"row_count_mismatch:{fname}")
        if ok_interval:
            _check_rows(df, src, registry, m, cfg, reasons)

    if LABELS not in files:
        reasons.append("labels_missing")
    elif LABELS in intact:
        labels = frames.get(LABELS)
        row["rows_labels"] = labels.height if labels is not None else None
        if ok_interval and labels is not None:
            _check_labels(labels, registry, m, reasons)


def _read_manifest(path: Path, row: dict, root: Path | None) -> tuple[dict, bytes] | None:
    """The manifest, read as a data file is (a regular file inside the store,
    size-capped, opened without blocking), and its problems as reasons; None
    when there is no manifest object to check further."""
    reasons: list[str] = row["reasons"]
    mpath = path / MANIFEST
    if root is not None and not _inside(mpath, root):
        reasons.append(f"file_outside_store:{MANIFEST}")
        return None
    try:
        blob = read_capped(mpath)
    except NotAFile:
        reasons.append(f"file_not_regular:{MANIFEST}")
        return None
    except FileTooLarge as exc:
        reasons.append(f"file_too_large:{MANIFEST}")
        row["error"] = f"{MANIFEST}: {exc}"
        return None
    except OSError as exc:
        raise _ReadError(MANIFEST, exc) from exc
    row["manifest_sha256"] = hashlib.sha256(blob).hexdigest()
    dups: list[str] = []
    try:
        m = json.loads(blob, object_pairs_hook=_dup_keys_hook(dups))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reasons.append("manifest_unparseable")
        row["error"] = f"{MANIFEST}: {exc}"
        return None
    reasons += [f"manifest_duplicate_key:{k}" for k in dups]
    reasons += manifest_problems(m)
    return (m, blob) if isinstance(m, dict) else None


_UNPARSED = object()      # a file intact but not parsed (not a source or labels: hashed only)


def _read_listed(fpath: Path, fname: str, entry, role: str | None, allowed: int | None, ep: Episode,
                 registry: Registry, root: Path | None, row: dict):
    """One listed file, read once: its rows (a frame, or None when a field
    has the wrong type), _UNPARSED for an intact file that is not parsed,
    or None (not intact: the reason is added)."""
    reasons: list[str] = row["reasons"]
    if fpath.is_symlink() and root is not None and not _inside(fpath, root):
        reasons.append(f"file_outside_store:{fname}")
        return None
    if not fpath.is_file():
        reasons.append(f"file_missing:{fname}")
        return None
    if not isinstance(entry, dict):
        return None
    try:
        size = fpath.stat().st_size
    except OSError as exc:
        raise _ReadError(fname, exc) from exc
    row["bytes"] += size
    if size != entry.get("bytes"):
        # Not the file the manifest lists (its digest cannot match), and
        # never read (a 64 GiB sparse file would be hashed for minutes).
        reasons += [f"size_mismatch:{fname}", f"sha256_mismatch:{fname}"]
        return None
    claimed_rows = entry.get("rows")
    if isinstance(claimed_rows, int) and allowed is not None and claimed_rows > allowed:
        reasons.append(f"manifest_implausible:rows.{fname}={claimed_rows}>{allowed}")
        return None
    try:
        # Rows are decoded only as far as its claimed rows can take them (Limits.expand_cap).
        sha, _, data = read_once(fpath, registry.limits.expand_cap(claimed_rows) if role else None)
    except (TooLarge, Damaged) as exc:
        # Whatever else is wrong, a file that is not the manifest's is named so (rejected).
        if _digest(fpath, fname) != entry.get("sha256"):
            reasons.append(f"sha256_mismatch:{fname}")
            return None
        if isinstance(exc, Damaged):
            raise _ReadError(fname, exc) from exc
        reasons.append(f"decompressed_too_large:{fname}")
        row["error"] = row["error"] or f"{fname}: {exc}"
        return None
    except OSError as exc:
        raise _ReadError(fname, exc) from exc
    if entry.get("sha256") != sha:
        reasons.append(f"sha256_mismatch:{fname}")
        return None
    if data is None:
        return _UNPARSED
    lines = data.count(b"\n") + (not data.endswith(b"\n")) if data else 0
    if allowed is not None and lines > allowed:
        reasons.append(f"too_many_rows:{fname}:{lines}>{allowed}")
        return _UNPARSED
    schema = LABEL_SCHEMA if fname == LABELS else ep.row_schema(role, registry)
    return _parse(data, fname, schema, reasons)


def _digest(fpath: Path, fname: str) -> str:
    try:
        return file_digest(fpath)[0]
    except OSError as exc:
        raise _ReadError(fname, exc) from exc


def _inside(fpath: Path, root: Path) -> bool:
    """Whether a link resolves inside the store (realpath: a loop never raises)."""
    return Path(os.path.realpath(fpath)).is_relative_to(os.path.realpath(root))


def _parse(data: bytes, fname: str, schema: dict, reasons: list[str]) -> pl.DataFrame | None:
    """The file's rows, or None when a field has the wrong type (a reason is added)."""
    try:
        return parse_jsonl(data, schema)
    except pl.exceptions.PolarsError as exc:
        try:
            _locate_parse_failure(data, fname, schema, exc)
        except FieldTypeError as bad:
            reasons.append(str(bad))
        return None


_PY_TYPES = {pl.Int64: (int,), pl.Float64: (int, float), pl.Utf8: (str,)}


class FieldTypeError(Exception):
    pass


def _locate_parse_failure(data: bytes, fname: str, schema: dict, exc: Exception) -> None:
    """polars refused the file: find the first bad line and say what is wrong.

    A line that is not a JSON object makes the file unreadable (errored); a
    field of the wrong type is a schema violation (rejected)."""
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _ReadError(fname, f"line {n} is not valid JSON") from exc
        if not isinstance(obj, dict):
            raise _ReadError(fname, f"line {n} is not a JSON object") from exc
        for key, dtype in schema.items():
            v = obj.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, _PY_TYPES[dtype])):
                raise FieldTypeError(f"field_type:{fname}.{key}:line={n}")
    raise _ReadError(fname, exc)


def _check_rows(df: pl.DataFrame, src: str, registry: Registry, m: dict, cfg: ValidateConfig,
                reasons: list[str]) -> None:
    t = df["t_wall_ns"]
    if t.null_count():
        reasons.append(f"t_wall_missing:{src}")
        t = t.drop_nulls()
    is_flow = registry.source(src).kind == "flow"
    fields = [c for c in df.columns if c != "t_wall_ns"] if is_flow else \
        [c.row_field for c in registry.channels_of(src)]
    if df.height:
        counts = [df[f].null_count() for f in fields]      # kept with each column: no pass over the rows
        for f, n in zip(fields, counts):
            if n == df.height:
                reasons.append(f"field_missing:{src}.{f}")
        # A value out of range is missing in every window (core.extract): it
        # counts with the nulls towards too_many_nulls.
        beyond = out_of_range(df, src, registry)
        for f, n in beyond.items():
            reasons.append(f"values_out_of_range:{src}.{f}:{n}")
        nulls = sum(counts)
        frac = (nulls + sum(beyond.values())) / (df.height * len(fields))
        if frac > cfg.max_null_frac:
            reasons.append(f"too_many_nulls:{src}:{frac:.3f}")
        elif nulls:
            reasons.append(f"null_values:{src}:{frac:.4f}")
    arr = t.to_numpy()
    if len(arr) > 1:
        d = np.diff(arr)
        if (d < 0).any():
            reasons.append(f"rows_out_of_order:{src}")
        key_dup = df.is_duplicated().any() if is_flow else bool((np.diff(np.sort(arr)) == 0).any())
        if key_dup:
            reasons.append(f"rows_duplicated:{src}")
    start, end = m["started_at_ns"], m["ended_at_ns"]
    tol = int(cfg.edge_tolerance_s * 1e9)
    if len(arr) and (arr.min() < start - tol or arr.max() > end + tol):
        reasons.append(f"rows_outside_episode:{src}")
    if is_flow:
        return
    hz = m.get("sampling_hz", {}).get(src) if isinstance(m.get("sampling_hz"), dict) else None
    hz = hz if isinstance(hz, (int, float)) and not isinstance(hz, bool) and hz > 0 else registry.source(src).default_hz
    duration = (end - start) / 1e9
    distinct = len(np.unique(arr))
    if distinct < cfg.row_gate * duration * hz:
        reasons.append(f"too_few_rows:{src}:{distinct}<{cfg.row_gate * duration * hz:.0f}")
        return
    edges = np.concatenate([[start], np.sort(arr), [end]])
    gap = np.diff(edges).max() / 1e9
    if gap > max(cfg.gap_s, 5 / hz):
        reasons.append(f"source_gap:{src}:{gap:.1f}s")


def _check_labels(labels: pl.DataFrame, registry: Registry, m: dict, reasons: list[str]) -> None:
    if labels.height == 0:
        reasons.append("labels_empty")
        return
    if labels["t_wall_ns"].null_count() or labels["phase"].null_count():
        reasons.append("labels_field_missing")
        return
    for phase in labels["phase"].unique(maintain_order=True).to_list():
        if phase not in registry.phases:
            reasons.append(f"unknown_phase:{phase}")
    t = labels["t_wall_ns"].to_numpy()
    bad = np.nonzero(np.diff(t) <= 0)[0]
    if len(bad):
        reasons.append(f"labels_not_monotonic:t={t[bad[0] + 1]}")
    outside = t[(t < m["started_at_ns"]) | (t >= m["ended_at_ns"])]
    if len(outside):
        reasons.append(f"label_outside_episode:t={outside[0]}")
