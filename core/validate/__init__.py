"""The acceptance index: each episode's status (docs/store-format.md) and
what `cis490 validate` recorded beside it; the readers of one, which need
polars only, as the Pi's base install has. The sweep that writes an index is
in `pipeline` and needs pyarrow (the lab extra); the checks of one episode,
which the watch shares, are in `checks`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from core.errors import Cis490Error
from core.paths import unportable
from core.registry import Registry
from core.validate.checks import VALIDATOR_VERSION, ValidateConfig

STATUSES = ("accepted", "degraded", "unlabelled", "rejected", "errored")
# Episodes whose data can be read as they claim: what predict and the watch read.
READABLE = STATUSES[:3]
DUPLICATE = "duplicate_episode_id"
class GateFailed(Cis490Error):
    """--fail-on found episodes at or above the given status."""


@dataclass
class ValidationSummary:
    store: Path
    index: Path
    episodes: int
    in_flight: list[str]
    counts: dict[str, int]
    per_host: dict[str, dict[str, int]]
    top_reasons: list[tuple[str, int]]
    duplicates: list[str]
    reused: int
    bytes: int
    seconds: float
    workers: int
    refused: list[dict] = field(default_factory=list)    # every rejected or errored episode, by path
    config: dict = field(default_factory=dict)
    store_digest: dict = field(default_factory=dict)    # the store's manifest digest, episodes, in flight

    def to_json(self) -> dict:
        d = asdict(self)
        d["store"], d["index"] = str(self.store), str(self.index)
        d["top_reasons"] = [{"reason": r, "episodes": n} for r, n in self.top_reasons]
        return d


def config_hash(cfg: ValidateConfig, registry: Registry) -> str:
    blob = json.dumps({"cfg": asdict(cfg), "version": VALIDATOR_VERSION, "registry": registry.schema_hash,
                       "limits": asdict(registry.limits)}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def stat_path(index: Path) -> Path:
    """Beside the index, each episode's file fingerprint at validation
    (core.storescan.episode_fingerprint). Kept out of the index so that a file
    merely touched, and found unchanged, changes nothing made from the index."""
    return index.with_name(index.name.replace(".parquet", ".stat.parquet"))


def validated_fingerprints(index: Path) -> dict[str, str]:
    """rel_path -> fingerprint at validation (empty when never recorded)."""
    try:
        table = pl.read_parquet(stat_path(index))
    except Exception:  # noqa: BLE001 - none recorded: every episode counts as changed
        return {}
    if table.columns != ["rel_path", "stat_fingerprint"]:
        return {}
    return dict(table.iter_rows())


def sidecar_path(index: Path) -> Path:
    return index.with_suffix(".json")


def _sidecar(index: Path) -> dict:
    try:
        doc = json.loads(sidecar_path(index).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def index_sidecar(index: Path) -> dict:
    """The acceptance index's sidecar (empty when missing or unreadable)."""
    return _sidecar(index)


def indexed_store(index: Path) -> Path | None:
    """The store an acceptance index was made from, if its sidecar says."""
    store = _sidecar(index).get("store")
    return unportable(store, index.parent) if isinstance(store, str) else None


def indexed_registry(index: Path) -> dict | None:
    """The registry (`registry_ref`) an acceptance index was validated with."""
    ref = _sidecar(index).get("registry")
    if not isinstance(ref, dict):
        return None
    if isinstance(ref.get("path"), str):
        ref = {**ref, "path": str(unportable(ref["path"], index.parent))}
    return ref


def gate(summary: ValidationSummary, fail_on: str | None) -> None:
    """Raise GateFailed when episodes reach --fail-on (rejected also counts errored)."""
    if fail_on is None:
        return
    order = list(STATUSES)
    # Unlabelled episodes are sound, kept on purpose for `cis490 predict`: no gate fails on them.
    worst = [s for s in order[order.index(fail_on):] if summary.counts.get(s) and s != "unlabelled"]
    if worst:
        found = ", ".join(f"{summary.counts[s]} {s}" for s in worst)
        raise GateFailed(f"validation gate failed: {found} episode(s) (--fail-on {fail_on})")
