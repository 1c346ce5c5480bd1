"""The write side of a chunk's tensors: fixed-size .npy parts.

    values_00000.npy     (<= part_windows, C, T) float32, NaN where missing
    mask_00000.npy       (<= part_windows, C, T) uint8, 1 where present

Every part but a chunk's last is full. The sha256 and size of every part are
taken as it is written, so nothing re-reads gigabytes to hash them. The read
side, over every chunk of a lab, is core.extract.chunks.TensorView.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


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

    def close(self) -> dict:
        """The parts written: their windows and every file's digest."""
        self._flush()
        return {"part_windows": self.part_windows, "n_windows": sum(self.parts), "parts": self.parts,
                "files": self.files}
