"""One command at a time writes a lab.

Two commands writing one lab side by side could each be right alone and
wrong together: a validate during an extract left the features "fresh"
while 37 usable episodes were missing from them. A command that writes the
lab (core.stages: validate, extract, split, train, eval, compare, export,
predict, synth, demo) holds an exclusive lock on `artifacts/.lock` for its
whole run; a second one says in one line which command holds it and stops,
or waits for it (`--wait`). Commands that only read (status, notebook) and
the long-running ones that only record (serve, publish) never take it.

The lock is flock(2): the kernel drops it when its holder exits, however it
exits (kill -9 included), so a dead run never leaves the lab locked.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from core.errors import Cis490Error

LOCK_NAME = ".lock"


class LabBusy(Cis490Error):
    """Another command is writing this lab."""


def lock_path(artifacts: Path) -> Path:
    return Path(artifacts) / LOCK_NAME


def holder(path: Path) -> dict:
    """Who holds the lock, as its holder wrote it (empty when unknown)."""
    try:
        doc = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def describe(who: dict) -> str:
    if not who:
        return "another cis490 command"
    since = time.strftime("%H:%M:%S", time.localtime(who.get("started", 0)))
    return f"`{who.get('argv') or 'cis490 ' + str(who.get('command'))}` (pid {who.get('pid')}, since {since})"


@contextmanager
def lab_lock(artifacts: Path, command: str, argv: str, wait: bool = False,
             on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lab's write lock for the block: at once, or (`wait`) once
    the command holding it ends, `on_wait(who)` told first; else LabBusy.
    A run nested in another (a demo's stages) runs under its parent's lock
    and takes none itself (cis490cli.state.AppState.record)."""
    from core.paths import ensure_dir
    path = lock_path(ensure_dir(Path(artifacts)))
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = describe(holder(path))
            if not wait:
                raise LabBusy(f"{Path(artifacts).parent}: {who} is writing this lab; run this when it is done, "
                              "or add --wait to wait for it") from None
            if on_wait:
                on_wait(who)
            fcntl.flock(fd, fcntl.LOCK_EX)         # Ctrl-C still interrupts the wait
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command, "argv": argv,
                                  "started": time.time()}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)                                # closing drops the lock
