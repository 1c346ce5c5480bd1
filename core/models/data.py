"""What models fit on: summary matrices, or rows of the memory-mapped tensor store.

Models always receive full raw inputs (all features, or all channels) and apply
their own keep mask, so a checkpoint can score any window of the same schema.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:     # the tensor store's package reads parquet: not needed to name the type
    from core.extract.tensors import TensorStore


def slog(x: np.ndarray) -> np.ndarray:
    """Signed log1p: rates span ~1e-3..1e9, so models see orders of magnitude."""
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass
class SummaryData:
    X: np.ndarray          # (n, F) raw summary features, float32, NaN where missing
    y: np.ndarray          # (n,) label ids
    episode_ids: np.ndarray | None = None

    kind = "summary"

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> "SummaryData":
        return SummaryData(self.X[idx], self.y[idx], None if self.episode_ids is None else self.episode_ids[idx])

    def batches(self, size: int, rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        for i in range(0, len(order), size):
            sel = order[i:i + size]
            yield self.X[sel], self.y[sel]


@dataclass
class TensorData:
    store: TensorStore
    rows: np.ndarray       # (n,) global rows of the tensor store
    y: np.ndarray
    episode_ids: np.ndarray | None = None

    kind = "tensor"

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> "TensorData":
        return TensorData(self.store, self.rows[idx], self.y[idx],
                          None if self.episode_ids is None else self.episode_ids[idx])

    def batches(self, size: int, rng: np.random.Generator | None = None
                ) -> Iterator[tuple[tuple[np.ndarray, np.ndarray], np.ndarray]]:
        """((values, masks), y) batches streamed from the memory-mapped parts."""
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        for i in range(0, len(order), size):
            sel = order[i:i + size]
            yield self.store.rows(self.rows[sel]), self.y[sel]

    def sample_rows(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        sel = np.sort(rng.choice(len(self), size=min(k, len(self)), replace=False))
        return self.store.rows(self.rows[sel])
