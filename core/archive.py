"""Public time-series classification sets (the UCR/UEA archive's `.ts`
files) as a cis490 lab: each case becomes one receiver-store episode holding
one window that covers it, so the whole pipeline (validate, extract, split,
train, eval) runs on real series a researcher can compare with published
figures. `bench/archive.py` uses it.

The mapping: a source `series` with one gauge channel per dimension (all
deployable), sampled every 0.5 s; one phase and one profile per class (so a
split's validation part is stratified by class); host `train` or `test` as
the archive splits the cases, so `split --recipe host --train-hosts train`
keeps the archive's own split. A case shorter than the longest one (unequal
lengths) ends early: its last steps are missing, as a store shows a sensor
that stopped, and a missing value ('?' or NaN) is a null.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.errors import Cis490Error
from core.store import FORMAT_TAG, LABELS, MANIFEST

STEP_S = 0.5
SOURCE = "series"
START_NS = 1_700_000_000 * 10**9


class ArchiveError(Cis490Error):
    """A .ts file cannot be read as a classification set."""


@dataclass
class TsSet:
    name: str
    cases: list[np.ndarray]        # each (channels, length) float64, NaN where missing
    labels: list[str]
    classes: list[str]             # as the header lists them (else sorted)

    @property
    def channels(self) -> int:
        return self.cases[0].shape[0]

    @property
    def max_length(self) -> int:
        return max(c.shape[1] for c in self.cases)


def read_ts(text: str, name: str = "set") -> TsSet:
    """A `.ts` file's cases: header lines start with '@' (`@classLabel true
    a b c` lists the classes), comments with '#', then one case per line
    after `@data`: dimensions separated by ':', values by ',', the label last."""
    classes: list[str] = []
    cases, labels = [], []
    in_data = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            low = line.lower()
            if low.startswith("@classlabel"):
                parts = line.split()
                if len(parts) > 2 and parts[1].lower() == "true":
                    classes = parts[2:]
            elif low.startswith("@data"):
                in_data = True
            continue
        fields = line.split(":")
        if len(fields) < 2:
            raise ArchiveError(f"{name}: line {n}: a case needs its values and a label, separated by ':'")
        try:
            dims = [np.array([np.nan if v.strip() in ("?", "NaN", "nan", "") else float(v)
                              for v in d.split(",")]) for d in fields[:-1]]
        except ValueError as exc:
            raise ArchiveError(f"{name}: line {n}: not a number ({exc})") from None
        length = max(len(d) for d in dims)
        case = np.full((len(dims), length), np.nan)
        for c, d in enumerate(dims):
            case[c, :len(d)] = d
        if cases and case.shape[0] != cases[0].shape[0]:
            raise ArchiveError(f"{name}: line {n}: {case.shape[0]} dimensions, the first case has {cases[0].shape[0]}")
        cases.append(case)
        labels.append(fields[-1].strip())
    if not cases:
        raise ArchiveError(f"{name}: no case after @data")
    if not classes:
        classes = sorted(set(labels))
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ArchiveError(f"{name}: label '{unknown[0]}' is not among the header's classes {classes}")
    return TsSet(name, cases, labels, classes)


def class_name(label: str) -> str:
    """A registry-safe phase/profile name for a class label."""
    return "class-" + re.sub(r"[^A-Za-z0-9_.-]", "_", label)


def registry_toml(channels: int, classes: list[str]) -> str:
    names = [class_name(c) for c in classes]
    lines = ["# A registry for a UCR/UEA archive set (core/archive.py).", "format = 1",
             f"phases = {json.dumps(names)}", f"profiles = {json.dumps(names)}", "",
             f"[sources.{SOURCE}]", 'kind = "sample"', "required = true", f"default_hz = {1 / STEP_S}", ""]
    for c in range(channels):
        lines += ["[[channel]]", f'name = "{SOURCE}.d{c}"', f'source = "{SOURCE}"', 'kind = "gauge"', 'unit = "1"',
                  "deployable = true", f'description = "dimension {c} of the series"', ""]
    return "\n".join(lines)


def write_lab(parts: dict[str, TsSet], store: Path, registry_path: Path) -> dict:
    """Write every part's cases as episodes under `store` (host = part name)
    and the registry; returns the window (seconds, steps) covering the longest case."""
    first = next(iter(parts.values()))
    classes = list(first.classes)
    for p in parts.values():
        if p.channels != first.channels:
            raise ArchiveError(f"{p.name}: {p.channels} dimensions, {first.name} has {first.channels}")
        classes += [c for c in p.classes if c not in classes]
    steps = max(p.max_length for p in parts.values())
    registry_path.parent.mkdir(parents=True, exist_ok=True)
    registry_path.write_text(registry_toml(first.channels, classes))
    step_ns = int(STEP_S * 1e9)
    duration_ns = steps * step_ns
    i = 0
    for part, ts in parts.items():
        for k, (case, label) in enumerate(zip(ts.cases, ts.labels)):
            episode = f"{ts.name}-{part}-{k:05d}"
            start = START_NS + i * (duration_ns + 10**9)
            i += 1
            rows = []
            for t in range(case.shape[1]):
                vals = case[:, t]
                if np.isnan(vals).all():
                    continue                      # a missing step: no row
                row = {"t_wall_ns": start + t * step_ns, "t_ns": start + t * step_ns}
                row.update({f"d{c}": (None if np.isnan(v) else float(v)) for c, v in enumerate(vals)})
                rows.append(json.dumps(row))
            blobs = {f"{SOURCE}.jsonl.gz": gzip.compress(("\n".join(rows) + "\n").encode(), mtime=0),
                     LABELS: (json.dumps({"t_wall_ns": start, "phase": class_name(label)}) + "\n").encode()}
            manifest = {
                "format": FORMAT_TAG, "episode_id": episode, "host_id": part, "profile": class_name(label),
                "sample_name": episode, "sample_sha256": hashlib.sha256(episode.encode()).hexdigest(),
                "started_at_ns": start, "ended_at_ns": start + duration_ns,
                "received_at": datetime.fromtimestamp((start + duration_ns) / 1e9, timezone.utc)
                .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "sampling_hz": {SOURCE: 1 / STEP_S},
                "clocks": {SOURCE: {"native_field": "t_ns", "base": "wall", "unit_ns": 1, "offset_ns": 0}},
                "files": {name: {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b),
                                 "rows": b.count(b"\n") if name == LABELS else len(rows)}
                          for name, b in blobs.items()},
            }
            d = store / part / episode
            d.mkdir(parents=True, exist_ok=True)
            for name, b in blobs.items():
                (d / name).write_bytes(b)
            (d / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return {"window_s": steps * STEP_S, "steps": steps, "classes": classes, "channels": first.channels}


@dataclass
class ArchiveLab:
    home: Path
    processed: Path
    artifacts: Path
    registry: object          # core.registry.Registry
    window_s: float
    steps: int
    episodes: dict            # validation status -> count


def archive_lab(parts: dict[str, TsSet], home: Path, workers: int = 1) -> ArchiveLab:
    """A lab under `home` holding `parts` (e.g. {"train": ..., "test": ...}),
    validated, extracted (one window per case) and split by host with the
    first part as train, so `train_one` and `evaluate_model` run on it as on
    any lab. Validation keeps every case: the row gate is off (a case is as
    long as it is) and nulls are allowed (the archive's missing values)."""
    from core.extract import ExtractConfig
    from core.extract.pipeline import run_extract
    from core.extract.episode import WindowSpec
    from core.registry import load_registry
    from core.split import SplitConfig, make_split
    from core.validate.pipeline import run_validation
    from core.validate.checks import ValidateConfig
    home = Path(home)
    store, processed, registry_path = home / "data" / "store", home / "data" / "processed", home / "channels.toml"
    shape = write_lab(parts, store, registry_path)
    registry = load_registry(registry_path)
    index = processed / "index.parquet"
    summary = run_validation(store, index, registry,
                             ValidateConfig(row_gate=0.0, window_s=shape["window_s"], max_null_frac=1.0),
                             workers=workers)
    run_extract(processed, index, store, registry,
                ExtractConfig(spec=WindowSpec(STEP_S, shape["window_s"], shape["window_s"])), workers=workers)
    make_split(processed, SplitConfig("host", (next(iter(parts)),)), registry)
    return ArchiveLab(home, processed, home / "artifacts", registry, shape["window_s"], shape["steps"],
                      dict(summary.counts))
