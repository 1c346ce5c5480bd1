"""Where a lab's files live: the home, its data/ and artifacts/."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from core.errors import HomeError

HOME_ENV = "CIS490_HOME"
INDEX_NAME = "validation_v1.parquet"   # the acceptance index, in data/processed/


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


def resolve_home(home: str | os.PathLike | None = None, writable: bool = True) -> LabPaths:
    """--home wins, then $CIS490_HOME, then the current directory.

    A lab home is where results go, so one that does not exist yet is created.
    It must be writable: every command that does work records a run in
    artifacts/, so a read-only home fails at the start, not at the end.
    """
    raw = home if home not in (None, "") else os.environ.get(HOME_ENV) or os.getcwd()
    path = Path(raw).expanduser()
    if not writable:
        # Reading a lab (status, the notebook) works on a read-only copy, and never creates one.
        if not path.is_dir():
            raise HomeError(f"lab home {path} does not exist")
        return LabPaths(path.resolve())
    if not path.exists():
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise HomeError(f"lab home {path} does not exist and cannot be created ({exc.strerror})") from None
    if not path.is_dir():
        raise HomeError(f"lab home {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise HomeError(f"lab home {path} is not writable")
    paths = LabPaths(path.resolve())
    # Where every command that does work writes (its run record, and the lab's
    # derived data): checked before anything is replaced, so a read-only
    # artifacts/ never lets `split` replace its files and then fail unrecorded.
    for p in (paths.artifacts, paths.notebook, paths.runs, paths.processed, paths.processed / "splits"):
        if p.exists() and not os.access(p, os.W_OK | (os.X_OK if p.is_dir() else 0)):
            raise HomeError(f"{p}: not writable (commands that do work write there); nothing was changed")
    return paths


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HomeError(f"{path}: cannot create directory ({exc.strerror})") from exc
    return path


def resolve_cli_path(value: str | os.PathLike | None, default: Path) -> Path:
    """A path given on the command line, relative to the shell's directory (as
    every shell user expects); `default` (inside the lab home) when not given."""
    if value in (None, ""):
        return default
    return Path(value).expanduser().absolute()


def _umask_mode(base: int) -> int:
    # mkstemp/mkdtemp create 0600/0700 entries; results are shared with
    # labmates through the group, so they get the mode any other new file or
    # directory would get under the umask.
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it over `target` on success.

    A crash or an exception leaves no half-written file under the final name.
    """
    ensure_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent)
    os.fchmod(fd, _umask_mode(0o666))
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


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling directory of `target`; on success it
    replaces `target` whole (the old one is removed only after the swap), so a
    failure never leaves a mix of old and new files, nor loses the old ones."""
    ensure_dir(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, _umask_mode(0o777))
    try:
        yield tmp
        trash = None
        if target.exists():
            trash = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, trash)
        os.replace(tmp, target)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def lab_home_of(processed: Path) -> Path | None:
    """The lab home a `data/processed` directory belongs to (None elsewhere)."""
    processed = Path(processed).resolve()
    if processed.name == "processed" and processed.parent.name == "data":
        return processed.parent.parent
    return None


def portable(target: str | os.PathLike, base: Path, home: Path | None) -> str:
    """How a record beside `base` names `target`: relative to `base` when both
    are inside the same lab home (so the lab can be moved or copied whole),
    absolute otherwise (a receiver store at /srv/receiver stays where it is)."""
    target = Path(target).resolve()
    if home is not None and target.is_relative_to(home):
        return os.path.relpath(target, Path(base).resolve())
    return str(target)


def unportable(recorded: str, base: Path) -> Path:
    """The path a record names, relative ones taken from `base`."""
    p = Path(recorded)
    return p if p.is_absolute() else (Path(base) / p).resolve()


def eval_settings(part: str, unit: str, resamples: int, seed: int) -> str:
    """How eval reports and comparisons name the settings that change them."""
    return f"{part}-{unit}-b{resamples}-s{seed}"


def eval_settings_options(name: str) -> str:
    """The eval options an `eval_settings` name stands for."""
    part, unit, b, s = name.split("-")
    return f"--part {part} --unit {unit} --resamples {b[1:]} --seed {s[1:]}"
