"""Reading one episode file once: its sha256, its size and its rows' bytes.

Validation used to hash a file, then read it again to decompress the whole of
it into memory: two passes, and a 4.7 MB gzip bomb held 1 GiB. Here the file
is read in chunks that feed the hash and a streaming decompressor together,
and the decompressed bytes stop at a cap (core.registry.Limits.expand_cap).
"""
from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

from core.storescan import HASH_CHUNK

GZIP_WBITS = 16 + zlib.MAX_WBITS


class TooLarge(Exception):
    """The file expands beyond its cap: the episode is rejected, not read."""


class Damaged(Exception):
    """The file's compressed stream is broken or cut short."""


def safe_name(name: str) -> bool:
    """Whether a manifest's `files` entry is a plain name inside its episode
    directory: no separator, no `..`, not absolute, nothing a path could
    resolve outside the episode with."""
    return (bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name)


def read_once(path: Path, cap: int | None) -> tuple[str, int, bytes | None]:
    """(sha256, size, content) of a file in one pass. `content` is the file's
    decompressed bytes (a `.gz` name) or its bytes, at most `cap` of them
    (TooLarge beyond); None when `cap` is None (hash only)."""
    h = hashlib.sha256()
    size = 0
    gz = path.name.endswith(".gz")
    out = bytearray() if cap is not None else None
    inflater = _Inflater() if gz and out is not None else None
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
            if out is None:
                continue
            if inflater is None:
                out += chunk
            else:
                inflater.feed(chunk, out, cap)
            if len(out) > cap:
                raise TooLarge(f"expands beyond {cap:,} bytes")
    if inflater is not None:
        inflater.finish()
    return h.hexdigest(), size, bytes(out) if out is not None else None


class _Inflater:
    """gzip members one after another, as `gzip.open` reads them: trailing
    zero padding is allowed, anything else after a member must be a member."""

    def __init__(self):
        self.d = zlib.decompressobj(GZIP_WBITS)
        self.between = False      # a member ended; what follows is padding or a new member
        self.fed = False          # the current member has had input

    def feed(self, data: bytes, out: bytearray, cap: int) -> None:
        while data:
            if self.between:
                data = data.lstrip(b"\0")
                if not data:
                    return
                self.d, self.between, self.fed = zlib.decompressobj(GZIP_WBITS), False, False
            try:
                # At most one byte past the cap per call: a bomb expands a
                # thousandfold, so an unbounded call would hold all of it.
                out += self.d.decompress(data, max(cap - len(out) + 1, 1))
            except zlib.error as exc:
                raise Damaged(f"not a valid gzip stream ({exc})") from exc
            self.fed = True
            if len(out) > cap:
                return
            if self.d.eof:
                data, self.between = self.d.unused_data, True
            else:
                data = self.d.unconsumed_tail

    def finish(self) -> None:
        if self.fed and not self.between:
            raise Damaged("compressed file ended before the end-of-stream marker was reached")
