"""An extract as chunks: what `cis490 extract` writes, appends and reads.

Layout of `data/processed/extract_v2/`:

    chunk-000007/             one batch of episodes, written whole in a temporary
                              folder and renamed: a chunk never changes after
        features.parquet      its windows' summary features (window index columns first)
        values_00000.npy ...  its tensors, parts of at most part_windows windows
        mask_00000.npy ...
        episodes.parquet      its episodes (the failed ones too): rel_path,
                              manifest_sha256, status, first_row (in the chunk),
                              n_windows, windows_sha256, host, profile, coverage, onsets
        chunk.json            channels, steps, parts, n_windows, the extract key
                              (registry, window spec, extraction code), windows
                              per phase and host, and every file's sha256

The feature schema (core.extract.SCHEMA) lists the chunks the lab uses, in
order: global row r is in the chunk whose range of rows holds it. New runs
land in new chunks (the tensor store grows by appending, never by rewriting);
a chunk some of whose episodes left the index is rewritten without them; a
complete chunk no schema lists yet (an extract interrupted after writing it)
is taken up by the next run. docs/methods.md, "The extract".
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import ArtifactError
from core.loading import check_npy, read_json, read_parquet

CHUNK_META = "chunk.json"
CHUNK_FEATURES = "features.parquet"
CHUNK_EPISODES = "episodes.parquet"
REBUILD = "cis490 extract"
_NAME = re.compile(r"chunk-(\d{6})")


def is_chunk_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def chunk_name(chunk_id: int) -> str:
    return f"chunk-{chunk_id:06d}"


def windows_digest(features: np.ndarray, values: np.ndarray, mask: np.ndarray) -> str:
    """One episode's windows by content (its features, values and mask bytes,
    as written): what a split's identity is made of, so that episodes landing
    beside it never make it stale."""
    h = hashlib.sha256()
    for a in (features, values, mask):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Chunk:
    """The read side of one chunk (complete: its chunk.json is there)."""
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def id(self) -> int:
        return int(_NAME.fullmatch(self.path.name).group(1))

    @cached_property
    def meta(self) -> dict:
        return read_json(self.path / CHUNK_META, REBUILD, ("channels", "steps", "parts", "n_windows", "key", "files"))

    @property
    def n_windows(self) -> int:
        return int(self.meta["n_windows"])

    @property
    def features(self) -> Path:
        return self.path / CHUNK_FEATURES

    def episodes(self) -> pl.DataFrame:
        return read_parquet(self.path / CHUNK_EPISODES, REBUILD)

    def parts(self) -> list[tuple[Path, Path, int]]:
        """(values file, mask file, windows) of each tensor part, in order."""
        return [(self.path / f"values_{k:05d}.npy", self.path / f"mask_{k:05d}.npy", int(n))
                for k, n in enumerate(self.meta["parts"])]

    def check(self) -> None:
        """Every tensor part's header and length (a stat and a few bytes each)."""
        tail = (len(self.meta["channels"]), self.meta["steps"])
        for values, mask, rows in self.parts():
            check_npy(values, tail, rows, "float32", REBUILD)
            check_npy(mask, tail, rows, "uint8", REBUILD)

    def tensor_rows(self, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        return TensorView([self]).rows(np.arange(first, first + n))


def complete_chunks(root: Path) -> list[Chunk]:
    """Every complete chunk under `root`, by id."""
    if not root.is_dir():
        return []
    return [Chunk(p) for p in sorted(root.iterdir())
            if _NAME.fullmatch(p.name) and (p / CHUNK_META).is_file()]


def next_id(root: Path) -> int:
    ids = [int(m.group(1)) for p in (root.iterdir() if root.is_dir() else ()) if (m := _NAME.fullmatch(p.name))]
    return max(ids, default=-1) + 1


class TensorView:
    """The tensors of chunks, in order, as one store: global row r is in the
    part whose range holds it (parts differ in size across chunks),
    memory-mapped, never loaded whole."""

    def __init__(self, chunks: list[Chunk]):
        self.parts = [p for c in chunks for p in c.parts()]
        self.starts = np.concatenate([[0], np.cumsum([n for _, _, n in self.parts])]).astype(np.int64)
        meta = chunks[0].meta if chunks else {"channels": [], "steps": 0}
        self.shape = (len(meta["channels"]), int(meta["steps"]))
        self._mm: dict[tuple[int, int], np.ndarray] = {}

    @property
    def n_windows(self) -> int:
        return int(self.starts[-1])

    def _part(self, which: int, k: int) -> np.ndarray:
        if (which, k) not in self._mm:
            self._mm[(which, k)] = np.load(self.parts[k][which], mmap_mode="r")
        return self._mm[(which, k)]

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values and masks of the given global rows, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        C, T = self.shape
        vals = np.empty((len(rows), C, T), np.float32)
        masks = np.empty((len(rows), C, T), np.uint8)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_windows):
            raise ArtifactError(f"tensor rows out of range (0-{self.n_windows - 1}): re-run `{REBUILD}`")
        part = np.searchsorted(self.starts, rows, side="right") - 1
        off = rows - self.starts[part]
        for k in np.unique(part):
            sel = part == k
            # Sorted offsets read a memory map front to back.
            order = np.argsort(off[sel], kind="stable")
            idx = np.nonzero(sel)[0][order]
            vals[idx] = self._part(0, int(k))[off[idx]]
            masks[idx] = self._part(1, int(k))[off[idx]]
        return vals, masks


def remove_chunk(path: Path) -> None:
    """A chunk no schema lists any more: renamed out of the chunk names first,
    so that a crash half-way never leaves a damaged complete-looking chunk."""
    from core.paths import temp_prefix
    trash = path.with_name(f"{temp_prefix('chunk')}{path.name}-gone")
    try:
        os.replace(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def new_chunk_dir(root: Path, chunk_id: int) -> Path:
    from core.paths import ensure_dir, temp_prefix
    ensure_dir(root)
    # Named as every temporary of a chunk, so that the next run removes it once this process is gone.
    return Path(tempfile.mkdtemp(prefix=f"{temp_prefix('chunk')}{chunk_name(chunk_id)}-", dir=root))


def digest_files(files: dict[str, dict]) -> str:
    """The digest of a set of files from their digests (relative path, tab,
    sha256, per line): the notebook's digest of any directory."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\t{files[name]['sha256']}\n".encode())
    return h.hexdigest()


def write_meta(directory: Path, meta: dict) -> None:
    (directory / CHUNK_META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
