"""Faults the synthetic lab injects, each with the status and reason it must get.

A fault acts at one stage of writing an episode: on the raw JSON lines, on
the manifest fields, on the gzip blobs before hashing, after hashing (so the
manifest disagrees with the file), or on the manifest's bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Draft:
    """An episode on its way to disk."""
    raw: dict[str, bytes]                 # uncompressed name -> JSON lines
    manifest: dict
    blobs: dict[str, bytes] = field(default_factory=dict)   # on-disk name -> bytes
    manifest_bytes: bytes = b""
    delete_after_listing: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Fault:
    name: str
    status: str
    reason: str
    stage: str          # raw | fields | gzip | hashed | manifest | special
    apply: Callable[[Draft, np.random.Generator], None] | None = None


def _lines(b: bytes) -> list[bytes]:
    return b.splitlines(keepends=True)


def _drop_source(src: str):
    def f(d: Draft, rng) -> None:
        d.raw.pop(f"{src}.jsonl", None)
    return f


def _too_few(d: Draft, rng) -> None:
    lines = _lines(d.raw["proc.jsonl"])
    d.raw["proc.jsonl"] = b"".join(lines[: max(1, len(lines) // 5)])


def _out_of_order(d: Draft, rng) -> None:
    lines = _lines(d.raw["qmp.jsonl"])
    a = len(lines) // 3
    lines[a:a + 10] = lines[a:a + 10][::-1]
    d.raw["qmp.jsonl"] = b"".join(lines)


def _duplicated(d: Draft, rng) -> None:
    out = []
    for i, line in enumerate(_lines(d.raw["proc.jsonl"])):
        out.append(line)
        if i % 20 == 7:
            out.append(line)
    d.raw["proc.jsonl"] = b"".join(out)


def _gap(d: Draft, rng) -> None:
    m = d.manifest
    dur = (m["ended_at_ns"] - m["started_at_ns"]) / 1e9
    gap = max(15.0, min(30.0, 0.3 * dur))
    t0 = m["started_at_ns"] + int((dur - gap) / 2 * 1e9)
    t1 = t0 + int(gap * 1e9)
    keep = [ln for ln in _lines(d.raw["guest.jsonl"]) if not t0 <= json.loads(ln)["t_wall_ns"] < t1]
    d.raw["guest.jsonl"] = b"".join(keep)


def _nulls(d: Draft, rng) -> None:
    out = []
    for i, line in enumerate(_lines(d.raw["guest.jsonl"])):
        if i % 40 == 11:
            row = json.loads(line)
            row["cpu_pct"] = None
            line = (json.dumps(row, separators=(",", ":")) + "\n").encode()
        out.append(line)
    d.raw["guest.jsonl"] = b"".join(out)


def _labels(edit: Callable[[list[dict], dict], None]):
    def f(d: Draft, rng) -> None:
        labels = [json.loads(ln) for ln in _lines(d.raw["labels.jsonl"])]
        edit(labels, d.manifest)
        d.raw["labels.jsonl"] = "".join(json.dumps(x) + "\n" for x in labels).encode()
    return f


def _unknown_phase(labels, m) -> None:
    labels[min(2, len(labels) - 1)]["phase"] = "exfiltrate"


def _not_monotonic(labels, m) -> None:
    labels[1]["t_wall_ns"], labels[2]["t_wall_ns"] = labels[2]["t_wall_ns"], labels[1]["t_wall_ns"]


def _outside(labels, m) -> None:
    labels[-1]["t_wall_ns"] = m["ended_at_ns"] + 5_000_000_000


def _field(fn: Callable[[dict], None]):
    def f(d: Draft, rng) -> None:
        fn(d.manifest)
    return f


def _clock_correction(m: dict) -> None:
    m["clocks"]["guest"]["corrections"] = [
        {"at_wall_ns": m["started_at_ns"] + 40_000_000_000, "step_ns": 1_500_000_000}]


def _truncate_gzip(d: Draft, rng) -> None:
    blob = d.blobs["proc.jsonl.gz"]
    d.blobs["proc.jsonl.gz"] = blob[: int(len(blob) * 0.6)]


def _sha_mismatch(d: Draft, rng) -> None:
    import gzip
    lines = _lines(d.raw["proc.jsonl"])
    row = json.loads(lines[len(lines) // 2])
    row["rss_bytes"] = row["rss_bytes"] + 4096
    lines[len(lines) // 2] = (json.dumps(row, separators=(",", ":")) + "\n").encode()
    d.blobs["proc.jsonl.gz"] = gzip.compress(b"".join(lines), compresslevel=6, mtime=0)


def _file_missing(d: Draft, rng) -> None:
    d.delete_after_listing.add("qmp.jsonl.gz")


def _manifest_unparseable(d: Draft, rng) -> None:
    d.manifest_bytes = d.manifest_bytes[: len(d.manifest_bytes) // 2]


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("sha256_mismatch", "rejected", "sha256_mismatch:proc.jsonl.gz", "hashed", _sha_mismatch),
    Fault("file_missing", "rejected", "file_missing:qmp.jsonl.gz", "hashed", _file_missing),
    Fault("truncated_gzip", "errored", "read_error:proc.jsonl.gz", "gzip", _truncate_gzip),
    Fault("manifest_unparseable", "errored", "manifest_unparseable", "manifest", _manifest_unparseable),
    Fault("manifest_field_missing", "rejected", "manifest_field_missing:sample_sha256", "fields",
          _field(lambda m: m.pop("sample_sha256"))),
    Fault("unknown_profile", "rejected", "unknown_profile:wiper", "fields", _field(lambda m: m.update(profile="wiper"))),
    Fault("unknown_phase", "rejected", "unknown_phase:exfiltrate", "raw", _labels(_unknown_phase)),
    Fault("labels_not_monotonic", "rejected", "labels_not_monotonic", "raw", _labels(_not_monotonic)),
    Fault("label_outside_episode", "rejected", "label_outside_episode", "raw", _labels(_outside)),
    Fault("too_few_rows", "rejected", "too_few_rows:proc", "raw", _too_few),
    Fault("missing_proc", "rejected", "required_source_missing:proc", "raw", _drop_source("proc")),
    Fault("too_short", "rejected", "shorter_than_window", "special"),
    Fault("duplicate_episode_id", "rejected", "duplicate_episode_id", "special"),
    Fault("missing_guest", "degraded", "optional_source_missing:guest", "raw", _drop_source("guest")),
    Fault("missing_netflow", "degraded", "optional_source_missing:netflow", "raw", _drop_source("netflow")),
    Fault("rows_out_of_order", "degraded", "rows_out_of_order:qmp", "raw", _out_of_order),
    Fault("rows_duplicated", "degraded", "rows_duplicated:proc", "raw", _duplicated),
    Fault("source_gap", "degraded", "source_gap:guest", "raw", _gap),
    Fault("null_values", "degraded", "null_values:guest", "raw", _nulls),
    Fault("clock_corrected", "degraded", "clock_corrected:guest", "fields", _field(_clock_correction)),
)}
IN_FLIGHT = "in_flight"
