"""An extracted lab: every accepted/degraded episode as windows, summary
features and tensors (docs/store-format.md).

Here: what an extract is (its config and summary) and the readers of one,
which need polars only, as the Pi's base install has. The one cut of an
episode into windows, which live inference shares, is in `episode`; the
`cis490 extract` pipeline that writes a lab is in `pipeline` and needs
pyarrow (the lab extra).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from core.errors import ArtifactError
from core.extract.episode import WindowSpec
from core.loading import read_json, read_parquet
from core.paths import unportable
from core.registry import Registry, resolve_registry

from core.lab import EPISODES, FEATURES, TENSORS  # noqa: F401 (re-exported)
from core.lab import FEATURE_SCHEMA as SCHEMA
SCHEMA_VERSION = 1


class MissingStageError(ArtifactError):
    """An earlier stage's output is missing: say which command to run."""


SCHEMA_KEYS = ("version", "registry_hash", "spec_hash", "window", "steps", "channels", "features", "phases",
               "features_sha256", "tensors_sha256", "episodes_sha256")


@dataclass(frozen=True)
class ExtractConfig:
    spec: WindowSpec = WindowSpec()
    part_windows: int = 16384


@dataclass
class ExtractSummary:
    episodes: int
    extracted: int
    reused: int
    failed: list[tuple[str, str]]
    windows: int
    per_phase_host: dict[str, dict[str, int]]
    coverage: dict[str, float]
    seconds: float
    bytes_on_disk: int
    outputs: dict[str, str] = field(default_factory=dict)
    digests: dict[str, dict] = field(default_factory=dict)   # role -> {sha256, bytes}, taken once

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("digests")
        d["failed"] = [{"rel_path": r, "error": e} for r, e in self.failed]
        return d


def load_feature_schema(processed: Path) -> dict:
    """The feature schema, which vouches for the features, episodes and tensors
    beside it: a missing or damaged one names `cis490 extract`."""
    return read_json(processed / SCHEMA, "cis490 extract", SCHEMA_KEYS)


def features_registry(processed: Path, channels: str | Path | None = None) -> Registry:
    """The registry the features were extracted with (`--channels` may repeat
    it, never replace it): what split, train, eval and compare use."""
    schema = load_feature_schema(processed)
    path = schema.get("registry_path")
    path = str(unportable(path, processed)) if isinstance(path, str) else None
    return resolve_registry(channels, {"path": path, "hash": schema["registry_hash"]},
                            f"the features in {processed}", "cis490 validate --channels FILE && cis490 extract")


def read_features(processed: Path, columns: list[str] | None = None) -> pl.DataFrame:
    return read_parquet(processed / FEATURES, "cis490 extract", columns)


def read_extracted_episodes(processed: Path) -> pl.DataFrame:
    return read_parquet(processed / EPISODES, "cis490 extract")


def read_tensor_index(processed: Path) -> pl.DataFrame:
    return read_parquet(processed / TENSORS / "index.parquet", "cis490 extract")


