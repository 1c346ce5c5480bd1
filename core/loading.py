"""The one loading layer for derived artefacts.

Every stage reads the files an earlier stage wrote through these helpers, so a
missing or damaged file (deleted, truncated, overwritten with garbage, a JSON
document without the keys it must have) becomes one ArtifactError that names
the file and the command that rebuilds it, never a library's exception.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import polars as pl

from core.errors import ArtifactError


def _damaged(path: Path, problem: str, rebuild: str) -> ArtifactError:
    return ArtifactError(f"{path}: {problem}; rebuild it with `{rebuild}`")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def require(path: Path, rebuild: str) -> Path:
    if not Path(path).exists():
        raise ArtifactError(f"{path} not found: run `{rebuild}` first")
    return Path(path)


def read_json(path: Path, rebuild: str, required: Sequence[str] = ()) -> dict:
    """A JSON object with at least the `required` keys."""
    require(path, rebuild)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise _damaged(path, f"cannot be read ({exc.strerror})", rebuild) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"damaged, not valid JSON ({_first_line(exc)})", rebuild) from None
    if not isinstance(doc, dict):
        raise _damaged(path, "damaged, not a JSON object", rebuild)
    missing = [k for k in required if k not in doc]
    if missing:
        raise _damaged(path, f"damaged, it lacks '{missing[0]}'", rebuild)
    return doc


def read_parquet(path: Path, rebuild: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """A parquet table (only `columns` when given), each of which must be there."""
    require(path, rebuild)
    try:
        return pl.read_parquet(path, columns=list(columns) if columns is not None else None)
    except pl.exceptions.ColumnNotFoundError as exc:
        raise _damaged(path, f"damaged, a column is missing ({_first_line(exc)})", rebuild) from None
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise _damaged(path, f"damaged, not a readable parquet file ({_first_line(exc)})", rebuild) from None


def check_npy(path: Path, shape_tail: tuple[int, ...], rows: int, dtype: str, rebuild: str) -> None:
    """A .npy part holds `rows` x `shape_tail` of `dtype`, and the file is long
    enough for it (a truncated part would fail only when memory-mapped)."""
    require(path, rebuild)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, found = read_header(f)
            offset = f.tell()
    except (OSError, ValueError, SyntaxError) as exc:
        raise _damaged(path, f"damaged, not a .npy array ({_first_line(exc)})", rebuild) from None
    if tuple(shape) != (rows, *shape_tail) or found != np.dtype(dtype):
        raise _damaged(path, f"damaged, holds {found} {tuple(shape)} where {dtype} {(rows, *shape_tail)} "
                             "was recorded", rebuild)
    need = offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
    size = Path(path).stat().st_size
    if size < need:
        raise _damaged(path, f"damaged, truncated ({size:,} of {need:,} bytes)", rebuild)
