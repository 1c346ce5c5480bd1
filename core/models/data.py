"""What models fit on: rows of the summary-feature table, or rows of the
memory-mapped tensor store. Neither is ever loaded whole.

Summary rows are read from the features parquet one row group at a time and
only in the columns asked for (a model asks for the ones its mode keeps), so
memory follows the batch, not the corpus: 14 million windows of 276 float32
features would be 15 GB. Models always name inputs by their index in the full
feature or channel list, so a checkpoint can score any window of the schema.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:     # the tensor store's package reads parquet: not needed to name the type
    from core.extract.chunks import TensorView

# Windows a shuffled pass holds at once: row groups are visited in random order
# and their windows shuffled within this buffer (all of a small part at once).
SHUFFLE_BUFFER = 65536
# A part whose kept columns take at most this much as float32 (about 80,000
# windows of 200 features) is read once and held while a model fits; a larger
# one streams from the parquet on every pass.
IN_MEMORY_MB = 64


def slog(x: np.ndarray) -> np.ndarray:
    """Signed log1p: rates span ~1e-3..1e9, so models see orders of magnitude."""
    return np.sign(x) * np.log1p(np.abs(x))


def slog32(x: np.ndarray) -> np.ndarray:
    """slog as float32, the same bits on every CPU: computed in float64 and
    rounded once. numpy's float32 log1p is a SIMD approximation whose last
    bits depend on the CPU (up to 2 ULP apart between x86-64 and aarch64, on
    about 6% of values), and a tree threshold turns one ULP into another
    label; float64 results agree to within an ULP of float64, so rounding
    them once to float32 gives the same float32 but for values within 2^-29
    of a float32 rounding boundary."""
    return slog_inplace(np.array(x, dtype=np.float64)).astype(np.float32)


def slog_inplace(x: np.ndarray) -> np.ndarray:
    """slog on a float array the caller owns, without whole-array temporaries
    beyond the sign."""
    sign = np.sign(x)
    np.abs(x, out=x)
    np.log1p(x, out=x)
    x *= sign
    return x


class ArrayTable:
    """An in-memory feature table (tests, benches, a small part read once): the
    same reading interface as the parquet table, in fixed-size groups.
    `columns`: which inputs of the full list X holds (all when None)."""

    def __init__(self, X: np.ndarray, group_rows: int = 4096, columns: np.ndarray | None = None,
                 width: int | None = None):
        self.X = np.asarray(X, dtype=np.float32)
        n = len(self.X)
        self.bounds = np.append(np.arange(0, n, group_rows), n).astype(np.int64) if n else np.zeros(1, np.int64)
        self.width = width if width is not None else self.X.shape[1]
        self._local = None
        if columns is not None:
            self._local = np.full(self.width, -1, np.int64)
            self._local[np.asarray(columns, np.int64)] = np.arange(len(columns))

    def read_group(self, g: int, cols: np.ndarray) -> np.ndarray:
        if self._local is not None:
            cols = self._local[cols]
            if (cols < 0).any():
                raise KeyError("a column this in-memory part was not read with")
        return self.X[self.bounds[g]:self.bounds[g + 1]][:, cols]


class ParquetTable:
    """The features parquet files of a lab's chunks, in order, as one table:
    read one row group and only the asked columns at a time."""

    def __init__(self, paths: list[Path] | Path, names: list[str]):
        import pyarrow.parquet as pq
        self.paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
        self.names = list(names)
        self.files = [pq.ParquetFile(p) for p in self.paths]
        # Row group g of the table is group where[g] of file which[g].
        self.which, self.where, sizes = [], [], []
        for k, f in enumerate(self.files):
            for i in range(f.metadata.num_row_groups):
                self.which.append(k)
                self.where.append(i)
                sizes.append(f.metadata.row_group(i).num_rows)
        self.bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.width = len(self.names)

    def read_group(self, g: int, cols: np.ndarray) -> np.ndarray:
        g = int(g)
        table = self.files[self.which[g]].read_row_group(self.where[g], columns=[self.names[c] for c in cols])
        if not len(cols):
            return np.zeros((table.num_rows, 0), np.float32)
        return np.stack([c.to_numpy() for c in table.columns], axis=1).astype(np.float32, copy=False)


@dataclass
class SummaryData:
    table: ArrayTable | ParquetTable
    positions: np.ndarray  # (n,) ascending rows of the table that belong to this part
    y: np.ndarray          # (n,) label ids
    # (n,) the episode of each window (an integer code), when known: folds of
    # a cross-validation keep an episode's correlated windows together.
    groups: np.ndarray | None = None

    kind = "summary"

    @classmethod
    def from_array(cls, X: np.ndarray, y: np.ndarray, group_rows: int = 4096,
                   groups: np.ndarray | None = None) -> "SummaryData":
        return cls(ArrayTable(X, group_rows), np.arange(len(y), dtype=np.int64), np.asarray(y, np.int64), groups)

    @property
    def width(self) -> int:
        return self.table.width

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> "SummaryData":
        idx = np.sort(np.asarray(idx, np.int64))
        return SummaryData(self.table, self.positions[idx], self.y[idx], _take(self.groups, idx))

    def _groups(self, idx: np.ndarray | None = None) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(row group, offsets of the wanted rows inside it, their indices in this part)."""
        idx = np.arange(len(self)) if idx is None else idx
        pos = self.positions[idx]
        g = np.searchsorted(self.table.bounds, pos, side="right") - 1
        cuts = np.flatnonzero(np.diff(g)) + 1
        return [(int(g[s[0]]), pos[s] - self.table.bounds[g[s[0]]], idx[s])
                for s in np.split(np.arange(len(pos)), cuts) if len(s)]

    def _cols(self, cols) -> np.ndarray:
        return np.arange(self.width) if cols is None else np.asarray(cols, np.int64)

    def blocks(self, cols=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(X, indices into this part) per row group, in table order: one pass
        that can both accumulate and pick out rows."""
        cols = self._cols(cols)
        for g, off, idx in self._groups():
            yield self.table.read_group(g, cols)[off], idx

    def batches(self, size: int, rng: np.random.Generator | None = None, cols=None
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(X, y) batches of the columns `cols` (all when None): in table order,
        or, with `rng`, row groups in random order shuffled within a buffer."""
        cols = self._cols(cols)
        groups = self._groups()
        if rng is None:
            buf_x, buf_y, held = [], [], 0
            for g, off, idx in groups:
                buf_x.append(self.table.read_group(g, cols)[off])
                buf_y.append(self.y[idx])
                held += len(idx)
                while held >= size:
                    x, y = np.concatenate(buf_x), np.concatenate(buf_y)
                    yield x[:size], y[:size]
                    buf_x, buf_y, held = [x[size:]], [y[size:]], held - size
            if held:
                yield np.concatenate(buf_x), np.concatenate(buf_y)
            return
        order = rng.permutation(len(groups))
        i = 0
        while i < len(order):
            buf_x, buf_y, held = [], [], 0
            while i < len(order) and (held == 0 or held + len(groups[order[i]][1]) <= max(size, SHUFFLE_BUFFER)):
                g, off, idx = groups[order[i]]
                buf_x.append(self.table.read_group(g, cols)[off])
                buf_y.append(self.y[idx])
                held += len(idx)
                i += 1
            x, y = np.concatenate(buf_x), np.concatenate(buf_y)
            perm = rng.permutation(len(y))
            for s in range(0, len(perm), size):
                sel = perm[s:s + size]
                yield x[sel], y[sel]

    def gather(self, idx: np.ndarray, cols=None) -> np.ndarray:
        """Rows `idx` (indices into this part, ascending) of the columns `cols`."""
        cols = self._cols(cols)
        idx = np.asarray(idx, np.int64)
        if len(idx) == 0:
            return np.zeros((0, len(cols)), np.float32)
        return np.concatenate([self.table.read_group(g, cols)[off] for g, off, _ in self._groups(idx)])

    def sample(self, k: int, rng: np.random.Generator, cols=None) -> tuple[np.ndarray, np.ndarray]:
        """At most k rows drawn uniformly without replacement (all when fewer)."""
        idx = np.sort(rng.choice(len(self), size=min(k, len(self)), replace=False))
        return self.gather(idx, cols), self.y[idx]


def in_memory(parts: list[SummaryData], cols, budget_mb: float | None = None) -> list[SummaryData]:
    """The parts with the columns `cols` read into memory, in one pass over
    their table, when together they fit in `budget_mb` (a pass over memory is
    far cheaper than over parquet); as they were, streamed, when they do not."""
    cols = np.asarray(cols, np.int64)
    budget = IN_MEMORY_MB if budget_mb is None else budget_mb
    tables = {id(p.table) for p in parts}
    if (len(tables) != 1 or isinstance(parts[0].table, ArrayTable)
            or sum(len(p) for p in parts) * len(cols) * 4 / 1e6 > budget):
        return parts
    union = np.unique(np.concatenate([p.positions for p in parts]))
    everything = SummaryData(parts[0].table, union, np.zeros(len(union), np.int64))
    X = np.concatenate([x for x, _ in everything.blocks(cols)]) if len(union) else np.zeros((0, len(cols)), np.float32)
    out = []
    for p in parts:
        rows = np.searchsorted(union, p.positions)
        out.append(SummaryData(ArrayTable(X[rows], columns=cols, width=p.width), np.arange(len(p), dtype=np.int64),
                               p.y, p.groups))
    return out


def _take(groups: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if groups is None else groups[idx]


def _joined_groups(a, b) -> np.ndarray | None:
    if a.groups is None or b.groups is None:
        return None
    return np.concatenate([a.groups, b.groups])


def concat_parts(a, b):
    """Two parts of one split as one (train + val, when validation is too
    small to choose by): the same rows, labels and episodes, nothing copied
    but for in-memory summary parts."""
    if a.kind == "tensor":
        if a.store is not b.store:
            # Parts of two stores (in-memory parts in tests and benches; a lab's
            # parts share one memory-mapped store): their windows, in memory.
            (va, ma), (vb, mb) = a.store.rows(a.rows), b.store.rows(b.rows)
            return ArrayStore.data(np.concatenate([va, vb]), np.concatenate([ma, mb]),
                                   np.concatenate([a.y, b.y]), _joined_groups(a, b))
        return TensorData(a.store, np.concatenate([a.rows, b.rows]), np.concatenate([a.y, b.y]), _joined_groups(a, b))
    if a.table is b.table:
        pos = np.concatenate([a.positions, b.positions])
        order = np.argsort(pos, kind="stable")
        groups = _joined_groups(a, b)
        return SummaryData(a.table, pos[order], np.concatenate([a.y, b.y])[order],
                           None if groups is None else groups[order])
    cols = None if a.table._local is None else np.flatnonzero(a.table._local >= 0)
    X = np.concatenate([a.table.X[a.positions], b.table.X[b.positions]])
    table = ArrayTable(X, columns=cols, width=a.width)
    return SummaryData(table, np.arange(len(X), dtype=np.int64), np.concatenate([a.y, b.y]), _joined_groups(a, b))


@dataclass
class TensorData:
    store: TensorView
    rows: np.ndarray       # (n,) global rows of the tensor store
    y: np.ndarray
    groups: np.ndarray | None = None     # (n,) episode codes, as SummaryData's

    kind = "tensor"

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> "TensorData":
        return TensorData(self.store, self.rows[idx], self.y[idx], _take(self.groups, idx))

    def batches(self, size: int, rng: np.random.Generator | None = None, cols=None
                ) -> Iterator[tuple[tuple[np.ndarray, np.ndarray], np.ndarray]]:
        """((values, masks), y) batches streamed from the memory-mapped parts
        (every channel: a model's keep mask applies to both)."""
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        for i in range(0, len(order), size):
            sel = order[i:i + size]
            yield self.store.rows(self.rows[sel]), self.y[sel]

    def sample_rows(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        sel = np.sort(rng.choice(len(self), size=min(k, len(self)), replace=False))
        return self.store.rows(self.rows[sel])


class ArrayStore:
    """An in-memory tensor store (tests, benches): values and masks (n, C, T)."""

    def __init__(self, values: np.ndarray, masks: np.ndarray):
        self.values, self.masks = np.asarray(values, np.float32), np.asarray(masks, np.uint8)
        self.shape = (self.values.shape[1], self.values.shape[2])

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.values[rows], self.masks[rows]

    @classmethod
    def data(cls, values: np.ndarray, masks: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> TensorData:
        return TensorData(cls(values, masks), np.arange(len(y)), np.asarray(y, np.int64), groups)
