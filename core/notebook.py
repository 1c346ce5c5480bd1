"""The lab notebook: one run record per command that does work.

Records append to `artifacts/notebook.jsonl` (one JSON line, under an
exclusive lock, fsynced) and are also written whole to
`artifacts/runs/<run_id>/record.json`. A run that raises is recorded as
failed (or interrupted) with its error before the exception goes on.
"""
from __future__ import annotations

import contextvars
import fcntl
import hashlib
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from core.errors import Cis490Error, NotebookError
from core.paths import LabPaths, atomic_write_text, ensure_dir

# What a run may use, and the distributions that can provide each: the lab
# installs `xgboost-cpu`, which `importlib.metadata` does not know as `xgboost`.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "cis490": ("cis490",), "typer": ("typer",), "rich": ("rich",), "numpy": ("numpy",), "polars": ("polars",),
    "pyarrow": ("pyarrow",), "torch": ("torch",), "xgboost": ("xgboost", "xgboost-cpu"),
    "scikit-learn": ("scikit-learn",), "matplotlib": ("matplotlib",), "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "onnxmltools": ("onnxmltools",)}
_CURRENT: contextvars.ContextVar["Run | None"] = contextvars.ContextVar("cis490_run", default=None)


def current_run() -> "Run | None":
    """The run being recorded in this context, if any (a demo's stages run inside it)."""
    return _CURRENT.get()


def config_hash(config: dict) -> str:
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def describe_path(path: Path, role: str = "", known: dict | None = None) -> dict:
    """sha256 and size of a file; a store is summarised by its manifests.

    `known` is the description a stage already took (`sha256` and `bytes` of
    what it wrote, or a store's `sha256`, `episodes` and `in_flight`): it is
    recorded as it is, so nothing is read a second time."""
    from core.storescan import file_digest, store_digest
    path = Path(path)
    entry: dict[str, Any] = {"path": str(path), "role": role}
    if known is not None and path.exists():
        entry.update(known)
        entry.setdefault("kind", "dir" if path.is_dir() else "file")
    elif path.is_file():
        entry["sha256"], entry["bytes"] = file_digest(path)
        entry["kind"] = "file"
    elif path.is_dir() and _looks_like_store(path):
        entry["sha256"], entry["episodes"], entry["in_flight"] = store_digest(path)
        entry["kind"] = "store"
    elif path.is_dir():
        h = hashlib.sha256()
        size = 0
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            sha, n = file_digest(p)
            h.update(f"{p.relative_to(path).as_posix()}\t{sha}\n".encode())
            size += n
        entry.update(kind="dir", sha256=h.hexdigest(), bytes=size)
    else:
        entry["kind"] = "missing"
    return entry


def _looks_like_store(path: Path) -> bool:
    # Store layout is <store>/<host>/<episode>/manifest.json.
    from core.storescan import MANIFEST
    for host in path.iterdir():
        if host.is_dir():
            return any((ep / MANIFEST).exists() for ep in host.iterdir() if ep.is_dir())
    return False


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_version() -> dict:
    """The git commit (and dirty flag) of the cis490 checkout, when it is one."""
    root = Path(__file__).resolve().parent.parent
    commit = _git(["rev-parse", "HEAD"], root)
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    return {"git_commit": commit, "git_dirty": bool(status)}


def library_versions() -> dict[str, str | None]:
    """Each library's installed version, naming the distribution when it is
    not the library's own name (`3.0.2 (xgboost-cpu)`); None when absent."""
    out: dict[str, str | None] = {}
    for name, dists in LIBRARIES.items():
        out[name] = None
        for dist in dists:
            try:
                version = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
            out[name] = version if dist == name else f"{version} ({dist})"
            break
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Run:
    paths: LabPaths
    command: str
    argv: list[str]
    config: dict
    parent: str | None = None
    run_id: str = ""
    parents: list[str] = field(default_factory=list)   # runs whose outputs this one used
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Sortable by time, short enough for a table, unique across parallel runs.
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        self.run_id = self.run_id or f"{stamp}-{secrets.token_hex(2)}"

    def add_input(self, path: Path, role: str = "", known: dict | None = None) -> dict:
        entry = describe_path(path, role, known)
        self.inputs.append(entry)
        return entry

    def add_output(self, path: Path, role: str = "", known: dict | None = None) -> dict:
        entry = describe_path(path, role, known)
        self.outputs.append(entry)
        return entry


# Options whose value is a secret: the notebook and run records never hold it.
SECRET_OPTIONS = ("--token",)


def redact_argv(argv: list[str]) -> list[str]:
    """argv with every secret option's value replaced by '***' (`--token X`, `--token=X`)."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("***")
            hide = False
        elif arg in SECRET_OPTIONS:
            out.append(arg)
            hide = True
        elif arg.split("=", 1)[0] in SECRET_OPTIONS and "=" in arg:
            out.append(arg.split("=", 1)[0] + "=***")
        else:
            out.append(arg)
    return out


@contextmanager
def record_run(paths: LabPaths, command: str, config: dict, argv: list[str] | None = None,
               parent: str | None = None) -> Iterator[Run]:
    """Record a run around the work in the block, whatever its outcome."""
    outer = _CURRENT.get()
    run = Run(paths, command, redact_argv(list(sys.argv if argv is None else argv)), config,
              parent or (outer.run_id if outer else None))
    started, t0 = _now(), time.perf_counter()
    token = _CURRENT.set(run)
    status, error, raised = "ok", None, None
    try:
        yield run
    except KeyboardInterrupt as exc:            # Ctrl-C, or SIGTERM (core.errors.Terminated)
        status, error, raised = "interrupted", type(exc).__name__, exc
        raise
    except BaseException as exc:
        status, error, raised = "failed", f"{type(exc).__name__}: {exc}", exc
        raise
    finally:
        _CURRENT.reset(token)
        run.timings.setdefault("total_s", round(time.perf_counter() - t0, 3))
        record = relative_to_home({
            "run_id": run.run_id, "command": command, "status": status, "error": error,
            "started_at": started, "ended_at": _now(), "argv": run.argv,
            "config": run.config, "config_hash": config_hash(run.config),
            "inputs": run.inputs, "outputs": run.outputs, "metrics": run.metrics, "timings": run.timings,
            "parent_run": run.parent, "parent_runs": run.parents or ([run.parent] if run.parent else []),
            **code_version(), "libraries": library_versions(),
            "platform": {"python": platform.python_version(), "system": platform.platform(),
                         "machine": platform.machine(), "cpus": os.cpu_count()},
        }, paths.home)
        try:
            append_record(paths, record)
        except NotebookError:
            # A run that failed (a full disk, most likely the same one) is
            # reported by its own error: the notebook's must not hide it.
            if raised is None:
                raise


def relative_to_home(value: Any, home: Path) -> Any:
    """Every path inside the lab home, anywhere in a record, made relative to
    it: a lab folder moved or copied elsewhere keeps a notebook that resolves.
    Paths outside the home (a store at /srv/receiver) stay absolute."""
    if isinstance(value, dict):
        return {k: relative_to_home(v, home) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_to_home(v, home) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        p = Path(value)
        if p.is_relative_to(home):
            return p.relative_to(home).as_posix() or "."
    return value


def append_record(paths: LabPaths, record: dict) -> None:
    ensure_dir(paths.artifacts)
    data = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
    # One write of the whole line under an exclusive lock: concurrent runs
    # never interleave. A line left without its newline (a crash, a full disk)
    # gets one first, so this record is never glued onto it; a write that
    # fails is cut back off: the record is in the notebook whole or not at all.
    fd = os.open(paths.notebook, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            if os.write(fd, data) != len(data):
                raise OSError(28, "No space left on device (a short write)")
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, size)
            raise NotebookError(f"{paths.notebook}: could not append the run's record ({exc.strerror}); "
                                "the notebook is as it was") from None
    finally:
        os.close(fd)            # closing releases the lock
    run_dir = paths.runs / record["run_id"]
    try:
        atomic_write_text(run_dir / "record.json", json.dumps(record, indent=2, default=str) + "\n")
    except Cis490Error as exc:
        shutil.rmtree(run_dir, ignore_errors=True)         # no empty run folder left behind
        raise NotebookError(f"{exc} (the run's record is in {paths.notebook.name}; runs/{record['run_id']}/ "
                            "could not be written)") from None


# What every reader of a record may count on: a field of another type (an
# edited or foreign notebook line) reads as its empty value, never as an
# "unexpected KeyError" in `notebook list`.
_FIELDS: dict[str, tuple[type, Any]] = {
    "status": (str, "?"), "error": (str, None), "started_at": (str, ""), "ended_at": (str, ""),
    "argv": (list, []), "config": (dict, {}), "config_hash": (str, ""), "inputs": (list, []), "outputs": (list, []),
    "metrics": (dict, {}), "timings": (dict, {}), "parent_run": (str, None), "parent_runs": (list, []),
    "libraries": (dict, {}), "platform": (dict, {}),
}


def sane_record(rec: dict) -> dict:
    """A record whose known fields have their types (others kept as read)."""
    out = dict(rec)
    for key, (typ, empty) in _FIELDS.items():
        if not isinstance(out.get(key), typ):
            out[key] = empty
    for key in ("inputs", "outputs"):
        out[key] = [x for x in out[key] if isinstance(x, dict)]
    out["argv"] = [str(a) for a in out["argv"]]
    out["parent_runs"] = [p for p in out["parent_runs"] if isinstance(p, str)]
    return out


def is_record(value: Any) -> bool:
    """A run record as readers need one: an object with a text run id and command."""
    return isinstance(value, dict) and isinstance(value.get("run_id"), str) and isinstance(value.get("command"), str)


@dataclass
class NotebookListing:
    records: list[dict]
    skipped_lines: list[int]


def read_notebook(paths: LabPaths, command: str | None = None) -> NotebookListing:
    """All records, oldest first; unreadable lines are skipped and reported."""
    records, skipped = [], []
    if not paths.notebook.exists():
        return NotebookListing([], [])
    with open(paths.notebook, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):         # cut short, not JSON, or nested beyond reading
                rec = None
            if not is_record(rec):          # a line cut short, or JSON that is not a run record
                skipped.append(i)
                continue
            rec = sane_record(rec)
            if command is None or rec.get("command") == command:
                records.append(rec)
    return NotebookListing(records, skipped)


def get_record(paths: LabPaths, run_id: str) -> dict:
    """A run by id, or by a unique prefix of one; 'last' is the newest run."""
    records = read_notebook(paths).records
    if not records:
        raise NotebookError(f"{paths.notebook}: the notebook has no runs yet")
    if run_id == "last":
        return records[-1]
    # The full id, else any unique part of one (the listing shows ids without their year).
    hits = [r for r in records if r["run_id"] == run_id] or [r for r in records if run_id in r["run_id"]]
    if not hits:
        raise NotebookError(f"no run '{run_id}' in {paths.notebook} (see `cis490 notebook list`)")
    if len({r['run_id'] for r in hits}) > 1:
        raise NotebookError(f"run id part '{run_id}' matches {len({r['run_id'] for r in hits})} runs; give more of it")
    return hits[-1]


def last_ok_run(paths: LabPaths, command: str) -> dict | None:
    runs = [r for r in read_notebook(paths, command).records if r.get("status") == "ok"]
    return runs[-1] if runs else None


def inputs_changed(previous: dict | None, current_inputs: list[dict]) -> list[str]:
    """Paths whose digest differs from the previous run's (all of them if no run)."""
    if previous is None:
        return [i["path"] for i in current_inputs]
    before = {i["path"]: i.get("sha256") for i in previous.get("inputs", [])}
    return [i["path"] for i in current_inputs if before.get(i["path"]) != i.get("sha256")]


def short_id(run_id: str | None) -> str:
    """A run id as listed: month-day and time and its random part
    (`notebook show` and `diff` take any unique part of an id)."""
    return run_id[4:] if run_id and len(run_id) > 8 else (run_id or "")


def run_subject(rec: dict) -> str:
    """What a run was about: model, mode and split, or the models compared."""
    c = rec.get("config", {})
    cmd = rec.get("command")
    if cmd in ("train", "eval"):
        # As models are named on the command line: a bare name is its realistic checkpoint;
        # a part other than test is named (`@host/val`: never mistaken for a held-out score).
        mode = c.get("mode")
        part = c.get("part")
        return (f"{c.get('model')}{'' if mode in ('realistic', None) else '_' + str(mode)} @{c.get('split')}"
                + (f"/{part}" if cmd == "eval" and part not in (None, "test") else ""))
    if cmd == "compare":
        models = c.get("models") if isinstance(c.get("models"), list) else []
        return f"{' vs '.join(str(m).removesuffix('_realistic') for m in models)} @{c.get('split')}"
    if cmd == "split":
        # Its name, as --split takes it (a named split, or a rotation), else its recipe.
        return str(c.get("name") or ("host-rotation" if c.get("rotate") else c.get("recipe")) or "")
    return ""


def run_headline(rec: dict) -> str:
    """The figure a researcher scans a run for (a score is macro-F1, as the
    listing's header says)."""
    m = rec.get("metrics", {})
    cmd = rec.get("command")
    try:
        if cmd == "eval":
            lo, hi = m["macro_f1_ci"]
            return f"{m['macro_f1']:.3f} [{lo:.3f}, {hi:.3f}]"
        if cmd == "train":
            from core.selection import SCORES
            return f"{SCORES.get(m.get('score_on', 'val'), ('val',))[0]} {m['val_macro_f1']:.3f}"
        if cmd == "compare":
            p = m["pairs"][0]
            more = f" (+{len(m['pairs']) - 1} pairs)" if len(m["pairs"]) > 1 else ""
            return f"{p['a']}-{p['b']} {p['gap']:+.3f}, {p['winner']}{more}"
        if cmd == "extract":
            return f"{m['windows']:,} windows"
        if cmd == "validate":
            counts = m["status_counts"]
            return f"{m['episodes']:,} ({counts.get('rejected', 0) + counts.get('errored', 0):,} unusable)"
        if cmd == "split":
            if m.get("folds"):
                return f"{len(m['folds'])} folds"
            t = m["totals"]
            return "/".join(str(t[p]["episodes"]) for p in ("train", "val", "test")) + " episodes"
        if cmd in ("synth",):
            return f"{m['episodes']:,} episodes"
        if cmd == "demo":
            best = max(m["test_macro_f1"].items(), key=lambda kv: kv[1])
            return f"best {best[0]} {best[1]:.3f}"
        if cmd == "serve":
            return f"{m['events_published']:,} events"
    except (KeyError, TypeError, ValueError, IndexError):
        pass
    return ""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


DIFF_SECTIONS = ("command", "status", "config", "inputs", "outputs", "metrics", "git_commit", "git_dirty",
                 "libraries", "platform")


def diff_records(a: dict, b: dict, everything: bool = False) -> list[tuple[str, Any, Any]]:
    """(key, value in A, value in B) for what differs between two runs (every
    key with `everything`): config, inputs and outputs by role and digest,
    metrics (with their CIs), code commit, library versions, platform."""
    def flat(rec: dict) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for section in DIFF_SECTIONS:
            value = rec.get(section)
            if section in ("inputs", "outputs"):
                value = {f"{i.get('role') or i.get('path')}": f"{i.get('path')} "
                         f"{(i.get('sha256') or i.get('kind') or '')[:12]}" for i in value or []}
            out.update(_flatten(value, section))
        return out
    fa, fb = flat(a), flat(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    return [(k, fa.get(k), fb.get(k)) for k in keys if everything or fa.get(k) != fb.get(k)]
