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
from typing import TYPE_CHECKING

import polars as pl

from core.errors import ArtifactError
from core.extract.episode import WindowSpec
from core.loading import read_json, read_parquet
from core.paths import unportable
from core.registry import Registry, resolve_registry

if TYPE_CHECKING:
    from core.extract.chunks import Chunk, TensorView

from core.lab import CHUNKS, EPISODES  # noqa: F401 (re-exported)
from core.lab import FEATURE_SCHEMA as SCHEMA
# 2: the extract in chunks (core.extract.chunks); 1 had one features parquet and one tensor folder.
SCHEMA_VERSION = 2
REBUILD = "cis490 extract"


class MissingStageError(ArtifactError):
    """An earlier stage's output is missing: say which command to run."""


SCHEMA_KEYS = ("version", "registry_hash", "spec_hash", "window", "steps", "channels", "features", "phases",
               "features_sha256", "tensors_sha256", "episodes_sha256", "chunks")


@dataclass(frozen=True)
class ExtractConfig:
    spec: WindowSpec = WindowSpec()
    part_windows: int = 16384
    # Episodes per chunk: what an interrupted run loses at most, and the unit
    # a chunk is rewritten in when some of its episodes leave the index.
    chunk_episodes: int = 512


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
    chunks: int = 0            # the chunks the lab uses now
    new_chunks: int = 0        # ... of which this run wrote
    digests: dict[str, dict] = field(default_factory=dict)   # role -> {sha256, bytes}, taken once

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("digests")
        d["failed"] = [{"rel_path": r, "error": e} for r, e in self.failed]
        return d


def load_feature_schema(processed: Path) -> dict:
    """The feature schema, which lists the extract's chunks and vouches for
    them and the episodes beside it: a missing, damaged or older one names
    `cis490 extract`."""
    path = Path(processed) / SCHEMA
    schema = read_json(path, REBUILD, SCHEMA_KEYS)
    if schema.get("version") != SCHEMA_VERSION or not isinstance(schema["chunks"], list):
        raise ArtifactError(f"{path}: made by an older cis490 (extract format {schema.get('version')}, this one "
                            f"reads {SCHEMA_VERSION}): re-run `{REBUILD}`")
    return schema


def extract_chunks(processed: Path, schema: dict | None = None) -> list["Chunk"]:
    """The chunks the schema lists, in the lab's row order. A listed name
    that is not a chunk's (an edited schema naming `../x`) is refused."""
    from core.extract.chunks import Chunk, is_chunk_name
    schema = schema or load_feature_schema(processed)
    out = []
    for c in schema["chunks"]:
        name = c.get("dir") if isinstance(c, dict) else None
        if not isinstance(name, str) or not is_chunk_name(name):
            raise ArtifactError(f"{Path(processed) / SCHEMA}: damaged, it lists '{name}' as a chunk: "
                                f"re-run `{REBUILD}`")
        out.append(Chunk(Path(processed) / CHUNKS / name))
    return out


def features_registry(processed: Path, channels: str | Path | None = None) -> Registry:
    """The registry the features were extracted with (`--channels` may repeat
    it, never replace it): what split, train, eval and compare use."""
    schema = load_feature_schema(processed)
    path = schema.get("registry_path")
    path = str(unportable(path, processed)) if isinstance(path, str) else None
    return resolve_registry(channels, {"path": path, "hash": schema["registry_hash"]},
                            f"the features in {processed}", "cis490 validate --channels FILE && cis490 extract")


def read_features(processed: Path, columns: list[str] | None = None, schema: dict | None = None) -> pl.DataFrame:
    """The lab's windows' features (only `columns` when given), chunk after
    chunk: row r is the tensor store's row r."""
    frames = []
    for chunk in extract_chunks(processed, schema):
        frame = read_parquet(chunk.features, REBUILD, columns)
        if frame.height != chunk.n_windows:
            raise ArtifactError(f"{chunk.features}: damaged, {frame.height:,} rows where {chunk.n_windows:,} "
                                f"were recorded: re-run `{REBUILD}`")
        frames.append(frame)
    if not frames:
        raise ArtifactError(f"{Path(processed) / SCHEMA}: damaged, it lists no chunk: re-run `{REBUILD}`")
    return pl.concat(frames, how="vertical")


def read_extracted_episodes(processed: Path) -> pl.DataFrame:
    return read_parquet(processed / EPISODES, REBUILD)


def read_tensor_index(processed: Path, schema: dict | None = None) -> pl.DataFrame:
    """window_id, episode_id, label_id and the row of each window."""
    return read_features(processed, ["window_id", "episode_id", "label_id"], schema).with_row_index("row")


def open_tensors(processed: Path, schema: dict | None = None) -> "TensorView":
    """The lab's tensors as one store, every part's header and length checked
    up front (a stat and a few bytes each): a truncated part fails here,
    naming itself, not mid-training."""
    from core.extract.chunks import TensorView
    chunks = extract_chunks(processed, schema)
    for chunk in chunks:
        chunk.check()
    return TensorView(chunks)


def split_windows_digest(episodes: pl.DataFrame, episode_ids, schema: dict) -> str:
    """A split's features, by content: its episodes' windows (features,
    values and masks, each episode's digest taken as it was extracted) and
    what made them. Runs extracted beside it leave it as it is; an episode of
    it re-extracted to other windows, or gone, changes it."""
    import hashlib
    have = dict(episodes.select("episode_id", "windows_sha256").iter_rows()) if episodes.height else {}
    h = hashlib.sha256(f"{schema['registry_hash']}\t{schema['spec_hash']}\t{schema.get('extract_version')}\t"
                       f"{len(schema['features'])}\n".encode())
    for eid in sorted(set(episode_ids)):
        h.update(f"{eid}\t{have.get(eid) or 'missing'}\n".encode())
    return h.hexdigest()
