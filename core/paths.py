"""Where a lab's files live: the home, its data/ and artifacts/."""
from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from core.errors import DiskFullError, HomeError

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


def resolve_home(home: str | os.PathLike | None = None, writable: bool = True, create: bool = True) -> LabPaths:
    """--home wins, then $CIS490_HOME, then the current directory.

    Commands that make a lab (synth, validate, demo, serve) create a home
    that does not exist yet (`create`); the others need a lab there already,
    so a mistyped --home is named, not made. A home must be writable: every
    command that does work records a run in artifacts/, so a read-only home
    fails at the start, not at the end.
    """
    raw = home if home not in (None, "") else os.environ.get(HOME_ENV) or os.getcwd()
    path = Path(raw).expanduser()
    try:
        str(path.resolve()).encode("utf-8")
    except UnicodeEncodeError:
        # Arrow and polars take paths as UTF-8 text: every parquet of the lab
        # would fail to open. Said once, here, before anything is written.
        from core.safenames import utf8_text
        raise HomeError(f"lab home {utf8_text(str(path.resolve()))}: its path is not UTF-8, which the parquet "
                        "libraries cannot open; use a home whose path is (rename or move it)") from None
    if path.is_file():
        raise HomeError(f"lab home {path} is a file, not a directory")
    if not create and not (path / "data").is_dir() and not (path / "artifacts").is_dir():
        raise HomeError(f"no lab at {path} (no data/ or artifacts/): check --home, or make one with "
                        "`cis490 synth` or `cis490 validate --store DIR`")
    if not writable:
        # Reading a lab (status, the notebook) works on a read-only copy, and never creates one.
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


def require_writable(target: Path, what: str) -> None:
    """That `target` (a file or folder to be made) can be written: its
    nearest existing folder is writable. Checked before the work that ends
    in it, so a read-only artifacts/models stops `train` at once, not after
    an hour of training."""
    p = Path(target).parent
    while not p.exists() and p != p.parent:
        p = p.parent
    if not os.access(p, os.W_OK | os.X_OK):
        raise HomeError(f"{p}: not writable ({what} writes {target}); nothing was changed")


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


# Every temporary a command makes is named `.<what>.~<pid>~...`: a run killed
# with -9 cannot remove its own, so the next run that writes the same kind of
# output in that folder removes those whose process is gone.
_TEMP = re.compile(r"^\.(?P<what>.+?)\.~(?P<pid>\d+)~")


def temp_prefix(what: str) -> str:
    """The start of the name of a temporary this process makes for `what`."""
    return f".{what}.~{os.getpid()}~"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # someone else's live process
        return True
    return True


def remove_dead_temps(directory: Path, what: str) -> int:
    """Remove the temporaries for `what` in `directory` left by a process that
    no longer runs; the number removed."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or m["what"] != what or _alive(int(m["pid"])):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:
            pass                  # another run removed it first, or it is not ours to remove
    return removed


_FULL = (errno.ENOSPC, errno.EDQUOT)
# XGBoost's own writes (external-memory pages) fail as "FileStream.Write
# incomplete" with no errno: on a lab machine, a full disk (the line that
# reports it gives the free space, so a reader can tell).
_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "FileStream.Write incomplete")


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk is full: an OSError's errno, or the words
    of a library that wraps it (pyarrow, XGBoost's C++ errors)."""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    return isinstance(exc, Exception) and any(w in str(exc) for w in _FULL_WORDS)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n / 1e3:,.1f} kB"


def free_bytes(path: Path) -> int | None:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def disk_full(target: Path, written: int | None = None) -> DiskFullError:
    """One line for a write that ran out of space: the file, what is free on
    its filesystem and what it needs (more than what was written when the
    disk filled), and that nothing was replaced."""
    free = free_bytes(Path(target).parent)
    need = f", needs more than the {_mb(written)} written when it filled" if written else ""
    have = f"{_mb(free)} free" if free is not None else "free space unknown"
    return DiskFullError(f"{target}: disk full ({have} on its filesystem{need}); free some space and re-run "
                         "(nothing was replaced)")


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextmanager
def atomic_path(target: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it over `target` on success.

    A crash or an exception leaves no half-written file under the final name.
    """
    ensure_dir(target.parent)
    remove_dead_temps(target.parent, target.name)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=suffix or ".tmp", dir=target.parent)
    os.fchmod(fd, _umask_mode(0o666))
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException as exc:
        full = is_disk_full(exc)
        written = size_of(tmp_path) if full and tmp_path.exists() else None
        tmp_path.unlink(missing_ok=True)
        if full:
            raise disk_full(target, written) from None
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
    made = _missing_parents(target)
    ensure_dir(target.parent)
    remove_dead_temps(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), dir=target.parent))
    os.chmod(tmp, _umask_mode(0o777))
    try:
        yield tmp
        trash = None
        if target.exists():
            trash = target.with_name(f"{temp_prefix(target.name)}old")
            os.replace(target, trash)
        os.replace(tmp, target)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException as exc:
        # A file written inside (a figure's own atomic_path) names a temporary
        # path: the folder that would have been replaced is the one to name.
        full = is_disk_full(exc) or isinstance(exc, DiskFullError)
        written = size_of(tmp) if full and tmp.exists() else None
        shutil.rmtree(tmp, ignore_errors=True)
        for d in made:                       # the folders made for it, left empty: no orphan folder
            try:
                d.rmdir()
            except OSError:
                break
        if full:
            raise disk_full(target, written) from None
        raise


def _missing_parents(target: Path) -> list[Path]:
    """The folders above `target` that do not exist yet, deepest first."""
    out, p = [], Path(target).parent
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


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


def eval_settings(part: str, unit: str, resamples: int, seed: int, confirm: int = 1, min_trust: float = 0.0,
                  alpha: float = 0.1, slice: str | None = None) -> str:
    """How eval reports and comparisons name the settings that change them
    (the detection rule, conformal alpha and time slice only when not the default)."""
    name = f"{part}-{unit}-b{resamples}-s{seed}"
    for key, value, default in (("c", confirm, 1), ("t", min_trust, 0.0), ("a", alpha, 0.1), ("sl", slice, None)):
        if value != default:
            name += f"-{key}{value:g}" if isinstance(value, float) else f"-{key}{value}"
    return name


_OPTIONS = {"c": "--confirm", "t": "--min-trust", "a": "--alpha", "sl": "--slice"}


def eval_settings_options(name: str) -> str:
    """The eval options an `eval_settings` name stands for."""
    part, unit, b, s, *rest = name.split("-")
    extra = ""
    for item in rest:
        key = "sl" if item.startswith("sl") else item[0]
        extra += f" {_OPTIONS[key]} {item[len(key):]}"
    return f"--part {part} --unit {unit} --resamples {b[1:]} --seed {s[1:]}" + extra
