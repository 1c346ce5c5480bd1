"""Names a store gives (episode, host, sample, profile), made safe for the
places they end up: a file or split name, a CSV cell, a line of text.

The store is written next to malware (docs/store-format.md, "The store is
untrusted input"), so an `episode_id` of `../../x`, `=cmd|...`, a NUL or
4,000 characters must never decide where a file lands, run as a formula in a
spreadsheet, or flood a terminal. docs/store-format.md, "Names from a store",
documents each mapping.
"""
from __future__ import annotations

import hashlib
import re
import string

# Kept as they are in a file name; '_' is the escape character, so it is
# escaped itself, and a leading '.' is escaped (no hidden file, no `..`).
_KEPT = frozenset(string.ascii_letters + string.digits + "-.")
MAX_COMPONENT = 96
_HASHED = "_h"           # never produced by the escaping: '_' is followed by two upper-case hex digits there


def file_component(name: str, limit: int = MAX_COMPONENT) -> str:
    """`name` as one path component: letters, digits, '-' and '.' kept, every
    other byte of its UTF-8 as `_XX` (upper-case hex), a leading '.' as `_2E`,
    the empty name as `_`. Injective: distinct names give distinct
    components. One longer than `limit` keeps its first `limit - 18`
    characters and ends in `_h` + the first 16 hex digits of the name's
    sha256 (distinct unless two names share a 64-bit digest prefix)."""
    data = name.encode("utf-8", "surrogatepass")     # a lone surrogate is bytes too, never an error
    out = []
    for i, byte in enumerate(data):
        ch = chr(byte)
        out.append(ch if ch in _KEPT and not (i == 0 and ch == ".") else f"_{byte:02X}")
    text = "".join(out) or "_"
    if len(text) > limit:
        text = text[:limit - 18] + _HASHED + hashlib.sha256(data).hexdigest()[:16]
    return text


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str | None) -> str | None:
    """A text cell a spreadsheet will show, not run: one that begins with
    `= + - @`, a tab or a carriage return gets a leading `'` (the OWASP
    guidance on CSV injection). The parquet files keep the value as it is."""
    if value and value.startswith(_FORMULA):
        return "'" + value
    return value


def csv_safe(frame):
    """A polars frame as its CSV holds it: every text column through
    `csv_cell`'s rule, as one expression per column (no Python per row)."""
    import polars as pl
    starts = "^[" + "".join(re.escape(c) for c in _FORMULA) + "]"
    text = [c for c, t in frame.schema.items() if t == pl.Utf8]
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(starts)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in text)


def shown(value: object, limit: int = 80) -> str:
    """A name as one line of text: control characters escaped, cut to
    `limit` characters with an ellipsis."""
    text = str(value)
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def bounded(name: str, limit: int = 200) -> str:
    """A name as an event or a report carries it: as it is up to `limit`
    characters, else its first characters, an ellipsis and the first 16
    hex digits of its sha256 (so two long names stay apart). A dashboard
    event is at most 32 KiB: a 40,000-character sample name would have it
    refused."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return name[:limit - 17] + "…" + digest


def utf8_text(name: str) -> str:
    """A name the filesystem gave (os.fsdecode: bytes that are not UTF-8
    become lone surrogates) as text any file can hold: those bytes written
    `\\xff`. Only such a name changes; it is how an index names a folder
    whose name is not UTF-8 (the episode is rejected, `path_not_utf8`)."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
