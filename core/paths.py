"""Where a lab's files live: the home, its data/ and artifacts/."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from core.errors import HomeError

HOME_ENV = "CIS490_HOME"


@dataclass(frozen=True)
class LabPaths:
    home: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def raw(self) -> Path:
        return self.data / "raw"

    @property
    def default_store(self) -> Path:
        return self.raw / "store"

    @property
    def processed(self) -> Path:
        return self.data / "processed"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    @property
    def notebook(self) -> Path:
        return self.artifacts / "notebook.jsonl"

    @property
    def runs(self) -> Path:
        return self.artifacts / "runs"


def resolve_home(home: str | os.PathLike | None = None) -> LabPaths:
    """--home wins, then $CIS490_HOME, then the current directory.

    The home must exist and be writable: every command that does work records a
    run in artifacts/, so a read-only home fails at the start, not at the end.
    """
    raw = home if home not in (None, "") else os.environ.get(HOME_ENV) or os.getcwd()
    path = Path(raw).expanduser()
    if not path.exists():
        raise HomeError(f"lab home {path} does not exist (create it or pass --home)")
    if not path.is_dir():
        raise HomeError(f"lab home {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise HomeError(f"lab home {path} is not writable")
    return LabPaths(path.resolve())


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HomeError(f"{path}: cannot create directory ({exc.strerror})") from exc
    return path


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it over `target` on success.

    A crash or an exception leaves no half-written file under the final name.
    """
    ensure_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))
