"""Walking a receiver store and hashing files: what needs no parsing (and no
polars), so that `cis490 status` and the notebook stay light. `core.store`
re-exports these names."""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from core.errors import StoreError

MANIFEST = "manifest.json"
HASH_CHUNK = 1 << 20
# A manifest lists a handful of files: a few kB. One beyond this is no manifest.
MANIFEST_MAX_BYTES = 1 << 20


class NotAFile(OSError):
    """What a store names as a file is a FIFO, a device, a directory ...: never read."""


class FileTooLarge(OSError):
    """A file beyond the size it may have: never read whole."""


def read_capped(path: Path, cap: int = MANIFEST_MAX_BYTES) -> bytes:
    """A regular file's bytes, at most `cap` of them: opened without
    blocking (a FIFO named manifest.json would hang a sweep, a link to
    /dev/zero fill its memory), refused when it is not a regular file or
    is larger than `cap`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAFile("not a regular file")
        if st.st_size > cap:
            raise FileTooLarge(f"{st.st_size:,} bytes, more than the {cap:,} it may have")
        chunks, size = [], 0
        while chunk := os.read(fd, min(HASH_CHUNK, cap + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:            # it grew while being read
                raise FileTooLarge(f"more than the {cap:,} bytes it may have")
        return b"".join(chunks)
    finally:
        os.close(fd)


def manifest_sha256(episode: Path) -> str:
    """sha256 of an episode's manifest, read as read_capped reads it ("unreadable" when it cannot be)."""
    try:
        return hashlib.sha256(read_capped(Path(episode) / MANIFEST)).hexdigest()
    except OSError:
        return "unreadable"


@dataclass(frozen=True)
class StoreEntry:
    """One leaf of a store walk: an episode directory or an in-flight upload."""
    path: Path
    rel: str
    in_flight: bool


def scan_store(root: Path) -> Iterator[StoreEntry]:
    """Walk the store in sorted order, yielding episode dirs and in-flight uploads.

    A directory holding `manifest.json` is an episode (not descended into). A
    directory with no manifest and no subdirectories is an upload in flight.
    """
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"{root}: store directory not found")
    stack = [root]
    # A directory reached twice (a symlink loop such as host/loop -> .., or two
    # links to one folder) is walked once: the walk always ends.
    seen: set[tuple[int, int]] = set()
    while stack:
        d = stack.pop()
        try:
            st = os.stat(d)
        except OSError:
            continue                      # a dangling or looping link: nothing to walk
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            if d != root:
                continue                  # one unreadable folder never stops the walk
            raise StoreError(f"{d}: cannot list directory ({exc.strerror})") from exc
        names = {e.name for e in entries}
        if MANIFEST in names and d != root:
            yield StoreEntry(d, d.relative_to(root).as_posix(), False)
            continue
        subdirs = [Path(e.path) for e in entries if _is_dir(e) and not e.name.startswith(".")]
        if not subdirs and d != root:
            yield StoreEntry(d, d.relative_to(root).as_posix(), True)
            continue
        stack.extend(reversed(subdirs))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:                       # ELOOP and the like: not a directory to walk
        return False


def file_digest(path: Path) -> tuple[str, int]:
    """sha256 and size of a file, streamed in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def episode_fingerprint(path: Path) -> str:
    """Two digests of an episode directory's files, `LIGHT:STRICT`, as git's
    index keeps them to notice a changed file without reading it. LIGHT
    covers every file's name, size and modification time: it survives a
    copy of the store, and `status` and `extract` compare it. STRICT adds
    each file's change time and inode, which no one can put back: a file
    rewritten with its size and modification time restored changes it, and
    `validate --since-last` re-hashes such an episode (a copied store is
    re-hashed once). Whatever the fingerprints say, extract reads only bytes
    whose sha256 is the manifest's (core.store.Episode.read_verified)."""
    light, strict = hashlib.sha256(), hashlib.sha256()
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return "unreadable:unreadable"
    for e in entries:
        name = e.name.encode("utf-8", "surrogateescape")
        try:
            st = e.stat()
        except OSError:
            light.update(name + b"\t?\n")
            strict.update(name + b"\t?\n")
            continue
        if not e.is_dir():
            light.update(name + f"\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
            strict.update(name + f"\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}\t{st.st_ino}\n".encode())
    return f"{light.hexdigest()[:32]}:{strict.hexdigest()[:32]}"


def light_fingerprint(fingerprint: str | None) -> str | None:
    """The copy-stable half of an episode_fingerprint (its name, size and mtime part)."""
    return fingerprint.split(":", 1)[0] if fingerprint else fingerprint


def store_digest(root: Path) -> tuple[str, int, int]:
    """A digest of a store by its manifests and its files' sizes and times:
    (sha256, episodes, in-flight).

    Manifests carry every file's sha256, so this changes whenever a manifest
    changes; the (light) fingerprints, whenever a file is rewritten under an
    unchanged manifest with another size or time. Nothing but the manifests
    is read, and a copy of the store has the same digest.
    """
    h = hashlib.sha256()
    n_ep = n_flight = 0
    for entry in scan_store(root):
        if entry.in_flight:
            n_flight += 1
            continue
        n_ep += 1
        msha = manifest_sha256(entry.path)
        h.update(f"{entry.rel}\t{msha}\t{light_fingerprint(episode_fingerprint(entry.path))}\n"
                 .encode("utf-8", "surrogateescape"))
    return h.hexdigest(), n_ep, n_flight
