"""The out-of-core tensor store: fixed-size .npy parts, memory-mapped to read.

Layout of `tensors_v1/`:
    meta.json            channels, steps, dtype, part_windows, n_windows, parts,
                         and the sha256 and size of every part (taken as it was
                         written, so nothing re-reads gigabytes to hash them)
    index.parquet        window_id, episode_id, label_id, row (aligned with the
                         features parquet row for row)
    values_00000.npy     (<= part_windows, C, T) float32, NaN where missing
    mask_00000.npy       (<= part_windows, C, T) uint8, 1 where present
Global row r lives in part r // part_windows at offset r % part_windows, so a
reader needs no per-window lookup, and every part but the last is full.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ArtifactError
from core.loading import check_npy, read_json

META = "meta.json"
REBUILD = "cis490 extract"


class _HashingFile:
    """A write-only file that hashes what passes through it."""

    def __init__(self, path: Path):
        self._f = open(path, "wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.size += view.nbytes
        return self._f.write(view)

    def close(self) -> None:
        self._f.close()


def save_hashed(path: Path, array: np.ndarray) -> dict:
    """np.save, returning the file's sha256 and size computed while writing."""
    f = _HashingFile(path)
    try:
        np.save(f, array, allow_pickle=False)
    finally:
        f.close()
    return {"sha256": f.sha.hexdigest(), "bytes": f.size}


class TensorPartWriter:
    """Buffers windows and writes a part each time `part_windows` are in hand."""

    def __init__(self, root: Path, part_windows: int):
        self.root = root
        self.part_windows = part_windows
        self._vals: list[np.ndarray] = []
        self._masks: list[np.ndarray] = []
        self._buffered = 0
        self.parts: list[int] = []
        self.files: dict[str, dict] = {}
        root.mkdir(parents=True, exist_ok=True)

    @property
    def n_windows(self) -> int:
        return sum(self.parts) + self._buffered

    def append(self, values: np.ndarray, mask: np.ndarray) -> None:
        i = 0
        while i < len(values):
            take = min(self.part_windows - self._buffered, len(values) - i)
            self._vals.append(values[i:i + take])
            self._masks.append(mask[i:i + take])
            self._buffered += take
            i += take
            if self._buffered == self.part_windows:
                self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        k = len(self.parts)
        for name, arrays, dtype in ((f"values_{k:05d}.npy", self._vals, np.float32),
                                    (f"mask_{k:05d}.npy", self._masks, np.uint8)):
            self.files[name] = save_hashed(self.root / name, np.concatenate(arrays).astype(dtype, copy=False))
        self.parts.append(self._buffered)
        self._vals, self._masks, self._buffered = [], [], 0

    def close(self, meta: dict) -> None:
        self._flush()
        meta = {**meta, "part_windows": self.part_windows, "n_windows": sum(self.parts), "parts": self.parts,
                "dtype": "float32", "mask_dtype": "uint8", "files": self.files}
        (self.root / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


@dataclass
class TensorStore:
    """Read side: rows by global row number, memory-mapped (never loaded whole)."""
    root: Path
    meta: dict

    @classmethod
    def open(cls, root: Path) -> "TensorStore":
        """Checks every part's header and length up front (a stat and a few
        bytes each): a truncated part fails here, naming itself, not mid-training."""
        root = Path(root)
        if not root.is_dir():
            raise ArtifactError(f"{root} not found: run `{REBUILD}` first")
        meta = read_json(root / META, REBUILD, ("channels", "steps", "part_windows", "n_windows", "parts"))
        tail = (len(meta["channels"]), meta["steps"])
        for k, rows in enumerate(meta["parts"]):
            check_npy(root / f"values_{k:05d}.npy", tail, rows, "float32", REBUILD)
            check_npy(root / f"mask_{k:05d}.npy", tail, rows, "uint8", REBUILD)
        return cls(root, meta)

    @property
    def n_windows(self) -> int:
        return self.meta["n_windows"]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.meta["channels"]), self.meta["steps"]

    def _part(self, kind: str, k: int) -> np.ndarray:
        cache = self.__dict__.setdefault("_mm", {})
        key = (kind, k)
        if key not in cache:
            cache[key] = np.load(self.root / f"{kind}_{k:05d}.npy", mmap_mode="r")
        return cache[key]

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values and masks of the given global rows, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        C, T = self.shape
        vals = np.empty((len(rows), C, T), np.float32)
        masks = np.empty((len(rows), C, T), np.uint8)
        P = self.meta["part_windows"]
        part, off = rows // P, rows % P
        for k in np.unique(part):
            sel = part == k
            # Sorted offsets read a memory map front to back.
            order = np.argsort(off[sel], kind="stable")
            idx = np.nonzero(sel)[0][order]
            vals[idx] = self._part("values", int(k))[off[idx]]
            masks[idx] = self._part("mask", int(k))[off[idx]]
        return vals, masks
