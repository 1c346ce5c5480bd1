"""A hostile store: every kind of bad episode a receiver next to malware can
be sent, written beside good ones, each with the status and reason validate
must give it. Used by tests/core/test_hostile.py and bench/hostile.py."""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

DAY_NS = 86_400 * 10 ** 9


@dataclass(frozen=True)
class Expect:
    status: str
    reason: str          # a reason code the episode's reasons must hold (code or code:detail prefix)


def _manifest(ep: Path) -> dict:
    return json.loads((ep / "manifest.json").read_text())


def _write_manifest(ep: Path, m: dict) -> None:
    (ep / "manifest.json").write_text(json.dumps(m))


def _received_after_end(m: dict) -> None:
    """The receipt time a manifest claiming a later end needs to stay plausible
    (validate rejects one received before the episode ended)."""
    from datetime import datetime, timezone
    m["received_at"] = datetime.fromtimestamp(m["ended_at_ns"] / 1e9 + 30, timezone.utc).isoformat()


def _relist(ep: Path, m: dict, name: str, rows: int | None = None) -> None:
    blob = (ep / name).read_bytes()
    entry = m["files"][name]
    entry.update(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
    if rows is not None:
        entry["rows"] = rows


def write_bomb(path: Path, expanded_bytes: int) -> None:
    """A gzip file of `expanded_bytes` zero bytes (no newline: one endless
    line), compressed about a thousandfold, written without holding it."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        left = expanded_bytes
        while left > 0:
            f.write(c.compress(block[:min(left, len(block))]))
            left -= len(block)
        f.write(c.flush())


def crafted_four_days(ep: Path) -> None:
    """The poisoning episode: every rate 1e-9 Hz, four days claimed, a few
    hundred rows (the row gate and the gap rule scaled with 1/hz)."""
    m = _manifest(ep)
    m["sampling_hz"] = {src: 1e-9 for src in m["sampling_hz"]}
    m["ended_at_ns"] = m["started_at_ns"] + 4 * DAY_NS
    _received_after_end(m)
    _write_manifest(ep, m)


def slow_and_long(ep: Path, hours: float = 2.0) -> None:
    """Plausible claims (0.01 Hz over two hours) that the rows do not fill:
    accepted as degraded (a source gap), and must not make a window per hop
    of the claimed duration."""
    m = _manifest(ep)
    m["sampling_hz"] = {src: 0.01 for src in m["sampling_hz"]}
    m["ended_at_ns"] = m["started_at_ns"] + int(hours * 3600 * 10 ** 9)
    _received_after_end(m)
    _write_manifest(ep, m)


def limit_episode(ep: Path, hours: float = 24.0, hz: float = 0.01) -> None:
    """An episode at the plausibility limits that its rows really fill: proc
    and qmp sampled at `hz` (the lowest rate Limits allows) over `hours` (up
    to a day), their rows the episode's own repeated, labels as recorded (the
    last phase holds to the end); guest and netflow dropped (optional).
    Degraded, not rejected: every claim is within the limits. It makes a
    window wherever its rows are, hundreds more than a normal episode."""
    m = _manifest(ep)
    start = m["started_at_ns"]
    step = int(1e9 / hz)
    n = int(hours * 3600 * hz)
    m["ended_at_ns"] = start + n * step
    _received_after_end(m)
    for src in ("proc", "qmp"):
        name = f"{src}.jsonl.gz"
        rows = [json.loads(x) for x in gzip.decompress((ep / name).read_bytes()).splitlines()]
        out = []
        for i in range(n):
            r = dict(rows[i % len(rows)])
            r["t_wall_ns"] = start + i * step + step // 2
            out.append(json.dumps(r))
        (ep / name).write_bytes(gzip.compress(("\n".join(out) + "\n").encode(), mtime=0))
        _relist(ep, m, name, rows=n)
        m["sampling_hz"][src] = hz
    for src in ("guest", "netflow"):
        name = f"{src}.jsonl.gz"
        m["files"].pop(name, None)
        m["sampling_hz"].pop(src, None)
        m["clocks"].pop(src, None)
        (ep / name).unlink(missing_ok=True)
    _write_manifest(ep, m)


def row_bomb(ep: Path, rows: int = 65_536, claim: int | None = None, line_bytes: int = 4000) -> None:
    """proc.jsonl.gz swapped for `rows` rows of about `line_bytes` each (a
    long unknown field), compressed to little, its manifest rehashed and
    claiming `claim` rows (default: as many as it holds)."""
    m = _manifest(ep)
    start = m["started_at_ns"]
    pad = "x" * line_bytes
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    with open(ep / "proc.jsonl.gz", "wb") as f:
        for i in range(rows):
            f.write(c.compress(json.dumps({"t_wall_ns": start + i * 1000, "cpu_user_s": 1.0, "pad": pad})
                               .encode() + b"\n"))
        f.write(c.flush())
    _relist(ep, m, "proc.jsonl.gz", rows=rows if claim is None else claim)
    _write_manifest(ep, m)


def gzip_bomb(ep: Path, expanded_bytes: int) -> None:
    """proc.jsonl.gz swapped for a bomb, the manifest rehashed to match (the
    agent writing the manifest is as hostile as the data)."""
    m = _manifest(ep)
    write_bomb(ep / "proc.jsonl.gz", expanded_bytes)
    _relist(ep, m, "proc.jsonl.gz")
    _write_manifest(ep, m)


def file_outside(ep: Path, name: str, target: str) -> None:
    """A `files` entry naming a file outside the episode (../ or absolute)."""
    m = _manifest(ep)
    m["files"][target] = m["files"].pop(name)
    _write_manifest(ep, m)


def symlinked_file(ep: Path, name: str, outside: Path) -> None:
    """A listed file that is a link to a file outside the store."""
    shutil.copyfile(ep / name, outside)
    (ep / name).unlink()
    (ep / name).symlink_to(outside)


def build_hostile_store(good: Path, store: Path, scratch: Path, bomb_bytes: int = 64 << 20) -> dict[str, Expect]:
    """Copy the store `good` to `store` and turn some of its clean episodes
    (see the synth truth file) into hostile ones; the expected outcome of
    each, by rel_path. `scratch` (outside the store) holds what links point at."""
    shutil.copytree(good, store, symlinks=True)
    truth = [json.loads(x) for x in (good.parent / f"{good.name}.truth.jsonl").read_text().splitlines()]
    clean = sorted(t["rel_path"] for t in truth if t["fault"] is None and t["expected_status"] == "accepted")
    scratch.mkdir(parents=True, exist_ok=True)
    it = iter(clean)
    expect: dict[str, Expect] = {}

    def take(fn, exp: Expect, *args) -> str:
        rel = next(it)
        fn(store / rel, *args)
        expect[rel] = exp
        return rel

    take(crafted_four_days, Expect("rejected", "manifest_implausible"))
    take(slow_and_long, Expect("degraded", "source_gap"))
    take(gzip_bomb, Expect("rejected", "decompressed_too_large:proc.jsonl.gz"), bomb_bytes)
    take(file_outside, Expect("rejected", "file_name_unsafe:../../../../etc/hostname"), "labels.jsonl",
         "../../../../etc/hostname")
    take(file_outside, Expect("rejected", "file_name_unsafe:/etc/passwd"), "labels.jsonl", "/etc/passwd")
    take(symlinked_file, Expect("rejected", "file_outside_store:qmp.jsonl.gz"), "qmp.jsonl.gz",
         scratch / "qmp.jsonl.gz")
    rel = take(lambda ep: _write_manifest(ep, {**_manifest(ep), "sample_name": "\ud800"}),
               Expect("rejected", "manifest_not_utf8:sample_name"))
    take(lambda ep: _write_manifest(ep, {**_manifest(ep), "started_at_ns": 10 ** 30}),
         Expect("rejected", "manifest_field_value:started_at_ns"))
    # An episode directory that is a link out of the store.
    away = scratch / "elsewhere"
    src = next(it)
    shutil.copytree(store / src, away)
    host = (store / rel).parent
    (host / "zz-linked-out").symlink_to(away, target_is_directory=True)
    expect[(host / "zz-linked-out").relative_to(store).as_posix()] = Expect("rejected", "episode_outside_store")
    # A symlink loop inside the store: walked once, never an error.
    (host / "loop").symlink_to("..")
    # A copy reusing a good episode's id, received later.
    orig = next(it)
    copy = (store / orig).parent / "000-copy"
    shutil.copytree(store / orig, copy)
    _write_manifest(copy, {**_manifest(copy), "received_at": "2099-01-01T00:00:00Z"})
    expect[copy.relative_to(store).as_posix()] = Expect("rejected", "duplicate_episode_id")
    expect[orig] = Expect("accepted", "")
    # A gzip file cut short.
    cut = next(it)
    raw = gzip.decompress((store / cut / "qmp.jsonl.gz").read_bytes())
    blob = gzip.compress(raw, mtime=0)[:-30]
    (store / cut / "qmp.jsonl.gz").write_bytes(blob)
    m = _manifest(store / cut)
    _relist(store / cut, m, "qmp.jsonl.gz")
    _write_manifest(store / cut, m)
    expect[cut] = Expect("errored", "read_error:qmp.jsonl.gz")
    return expect
