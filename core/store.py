"""The receiver store, format v1: the one reader every command uses.

Layout: `<store>/<host_id>/<episode_id>/` (any depth is accepted). An episode
directory holds `manifest.json` (written last by the receiver), `labels.jsonl`
and one JSON-lines file per source, usually gzip-compressed. A leaf directory
without a manifest is an upload in flight: counted, skipped, never an error.
See docs/store-format.md.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path

import polars as pl

from core.errors import ManifestError, StoreError
from core.storescan import MANIFEST, StoreEntry, file_digest, read_capped, scan_store, store_digest  # noqa: F401
from core.registry import Limits, Registry

FORMAT_TAG = "cis490-episode/v1"
LABELS = "labels.jsonl"

# Field -> expected JSON type(s). bool is excluded from int by the checker.
MANIFEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "episode_id": str,
    "host_id": str,
    "profile": str,
    "sample_name": str,
    "sample_sha256": str,
    "started_at_ns": int,
    "ended_at_ns": int,
    "received_at": str,
    "sampling_hz": dict,
    "clocks": dict,
    "files": dict,
}
FILE_ENTRY_FIELDS = {"sha256": str, "bytes": int, "rows": int}
CLOCK_FIELDS = {"native_field": str, "base": str, "offset_ns": int}

NETFLOW_SCHEMA = {
    "t_wall_ns": pl.Int64,
    "duration_ms": pl.Float64,
    "src_ip": pl.Utf8,
    "dst_ip": pl.Utf8,
    "src_port": pl.Int64,
    "dst_port": pl.Int64,
    "proto": pl.Utf8,
    "bytes_out": pl.Int64,
    "bytes_in": pl.Int64,
    "packets_out": pl.Int64,
    "packets_in": pl.Int64,
    "tcp_flags": pl.Int64,
}
LABEL_SCHEMA = {"t_wall_ns": pl.Int64, "phase": pl.Utf8}
TCP_SYN, TCP_ACK = 0x02, 0x10


_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
                  r"(Z|z|[+-]\d{2}(?::?\d{2})?)?")


def parse_received_at(value: object) -> int | None:
    """`received_at` (ISO-8601) as Unix nanoseconds UTC, or None when it is not
    a valid time. An offset is applied; a time without one is taken as UTC (the
    format says the receiver writes UTC). Compared as text, `...10.5Z` would
    sort after `...10Z`; as numbers it sorts where it belongs."""
    if not isinstance(value, str):
        return None
    m = _ISO.fullmatch(value.strip())
    if m is None:
        return None
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    try:
        t = datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), tzinfo=timezone.utc)
    except ValueError:
        return None
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            return None
        try:
            t -= sign * timedelta(hours=hours, minutes=minutes)
        except OverflowError:         # 0001-01-01T00:00:00+23:00: before the first representable time
            return None
    ns = int((frac or "").ljust(9, "0")) if frac else 0
    return int(t.timestamp()) * 1_000_000_000 + ns


def manifest_problems(m: object) -> list[str]:
    """Every way `m` falls short of a v1 manifest, as reason codes."""
    if not isinstance(m, dict):
        return ["manifest_not_object"]
    out: list[str] = []
    for key, typ in MANIFEST_FIELDS.items():
        if key not in m:
            out.append(f"manifest_field_missing:{key}")
        elif not _is(m[key], typ):
            out.append(f"manifest_field_type:{key}")
    if isinstance(m.get("received_at"), str) and parse_received_at(m["received_at"]) is None:
        out.append("manifest_field_value:received_at")
    if isinstance(m.get("format"), str) and m["format"] != FORMAT_TAG:
        out.append(f"manifest_format_unknown:{m['format']}")
    for fname, entry in (m.get("files") or {}).items() if isinstance(m.get("files"), dict) else ():
        if not isinstance(entry, dict):
            out.append(f"manifest_field_type:files.{fname}")
            continue
        for key, typ in FILE_ENTRY_FIELDS.items():
            if not _is(entry.get(key), typ):
                out.append(f"manifest_field_type:files.{fname}.{key}")
    for src, clock in (m.get("clocks") or {}).items() if isinstance(m.get("clocks"), dict) else ():
        for key, typ in CLOCK_FIELDS.items():
            if not isinstance(clock, dict) or not _is(clock.get(key), typ):
                out.append(f"manifest_field_type:clocks.{src}.{key}")
    if not out and m["ended_at_ns"] <= m["started_at_ns"]:
        out.append("manifest_bad_interval")
    return out


def _is(value: object, typ: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) and typ is not bool:
        return False
    return isinstance(value, typ)


class ChangedSinceValidation(StoreError):
    """A file read for windows is not the one its manifest (and so validate) vouched for."""


class Episode:
    """An episode directory with a parsed manifest."""

    def __init__(self, path: Path, manifest: dict, manifest_bytes: bytes, rel: str = ""):
        self.path = Path(path)
        self.manifest = manifest
        self.manifest_bytes = manifest_bytes
        self.rel = rel or self.path.name

    @classmethod
    def open(cls, path: Path, rel: str = "") -> "Episode":
        mpath = Path(path) / MANIFEST
        try:
            blob = read_capped(mpath)
        except OSError as exc:
            raise ManifestError(f"{mpath}: cannot read ({exc.strerror or exc})") from exc
        try:
            manifest = json.loads(blob)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{mpath}: not valid JSON ({exc})") from exc
        return cls(Path(path), manifest, blob, rel)

    @cached_property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    @property
    def episode_id(self) -> str:
        return self.manifest["episode_id"]

    @property
    def files(self) -> dict[str, dict]:
        return self.manifest.get("files", {})

    def source_file(self, source: str) -> str | None:
        """The listed file name holding `source`, or None when not listed."""
        for name in (f"{source}.jsonl.gz", f"{source}.jsonl"):
            if name in self.files:
                return name
        return None

    def native_time_field(self, source: str) -> str | None:
        clock = self.manifest.get("clocks", {}).get(source)
        return clock.get("native_field") if isinstance(clock, dict) else None

    def row_schema(self, source: str, registry: Registry) -> dict[str, pl.DataType]:
        """The polars schema of a source's rows: wall time, native time, fields."""
        if registry.source(source).kind == "flow":
            schema = dict(NETFLOW_SCHEMA)
        else:
            schema = {"t_wall_ns": pl.Int64}
            schema.update({c.row_field: pl.Float64 for c in registry.channels_of(source)})
        native = self.native_time_field(source)
        if native and native not in schema:
            schema[native] = pl.Int64
        return schema

    def read_source(self, source: str, registry: Registry) -> pl.DataFrame:
        name = self.source_file(source)
        if name is None:
            raise StoreError(f"{self.path}: source '{source}' is not listed in the manifest")
        return parse_jsonl(self.read_verified(name, registry.limits), self.row_schema(source, registry))

    def read_verified(self, name: str, limits: Limits = Limits()) -> bytes:
        """A listed file's rows' bytes (decompressed), read once while hashed
        and bounded as validate reads it (core.validate.reading), and only if
        its sha256 is the manifest's: a file changed after validation, even
        with its size and times restored, is never made into windows."""
        from core.validate.reading import Damaged, TooLarge, read_once
        entry = self.files.get(name)
        entry = entry if isinstance(entry, dict) else {}
        try:
            sha, _, data = read_once(self.path / name, limits.expand_cap(entry.get("rows")))
        except (TooLarge, Damaged) as exc:
            raise ChangedSinceValidation(f"{name}: {exc}: re-run `cis490 validate`") from None
        except OSError as exc:
            raise StoreError(f"{self.path / name}: cannot read ({exc.strerror or exc})") from None
        if sha != entry.get("sha256"):
            raise ChangedSinceValidation(f"{name} changed since validation: re-run `cis490 validate`")
        return data

    def read_labels(self) -> pl.DataFrame:
        data = self.read_verified(LABELS)
        # A label file is a few lines: the json module reads it in microseconds
        # where polars' reader costs a millisecond (extract reads one per
        # episode). Anything unusual goes through polars, which says what is wrong.
        try:
            rows = [json.loads(line) for line in data.splitlines() if line.strip()]
            t = [r["t_wall_ns"] for r in rows]
            phase = [r["phase"] for r in rows]
            if all(type(x) is int for x in t) and all(type(p) is str for p in phase):
                return pl.DataFrame({"t_wall_ns": t, "phase": phase}, schema=LABEL_SCHEMA)
        except (ValueError, TypeError, KeyError, OverflowError):
            pass
        return parse_jsonl(data, LABEL_SCHEMA)


PARSE_CHUNK = 8 << 20      # bytes of JSON lines parsed at once


def parse_jsonl(data: bytes, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Parse JSON lines into a frame of exactly `schema` (absent fields ->
    null), PARSE_CHUNK bytes of whole lines at a time: the parser's working
    memory follows the chunk, not the file (a file of long lines took ten
    times its size to parse at once)."""
    if not data.strip():
        return pl.DataFrame(schema=schema)
    if len(data) <= PARSE_CHUNK:
        return pl.read_ndjson(io.BytesIO(data), schema=schema)
    frames, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start + PARSE_CHUNK)
        end = len(data) if end < 0 else end + 1
        piece = data[start:end]
        if piece.strip():
            frames.append(pl.read_ndjson(io.BytesIO(piece), schema=schema))
        start = end
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=schema)
