"""The channel registry: channels, phases and profiles, loaded from data.

The shipped registry is `core/channels.toml`; `--channels FILE` swaps in a
lab's own. Its schema hash covers every attribute that changes what a feature
means, so features and checkpoints built under one registry refuse another.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

from core.errors import RegistryError

DEFAULT_REGISTRY = Path(__file__).with_name("channels.toml")
KINDS = ("gauge", "counter", "flow")
SOURCE_KINDS = ("sample", "flow")
FLOW_AGGS = ("count", "sum", "nunique", "mean")
# Flow predicates are code, not data: each is a documented boolean over a
# netflow row (see docs/store-format.md).
FLOW_WHERE = ("syn_only", "dns", "tcp")
NETFLOW_FIELDS = (
    "duration_ms", "src_ip", "dst_ip", "src_port", "dst_port", "proto",
    "bytes_out", "bytes_in", "packets_out", "packets_in", "tcp_flags",
)


@dataclass(frozen=True)
class Channel:
    name: str
    source: str
    kind: str
    unit: str
    deployable: bool
    description: str = ""
    agg: str | None = None
    field: str | None = None
    where: str | None = None
    # The values a sample (a gauge's level, a counter's reading) can plausibly
    # take, when the registry declares them; None: any within Limits.max_abs_value.
    range: tuple[float, float] | None = None

    @property
    def row_field(self) -> str:
        """The field of a source row this channel reads (samples only)."""
        return self.name.split(".", 1)[1]

    def bounds(self, limits: "Limits") -> tuple[float, float]:
        """The values this channel's samples (and a counter's rates) may take:
        its declared range within +-Limits.max_abs_value. Anything else (an
        infinity, NaN, 1e39 in a gauge, a counter whose rate overflows) is
        out of range: missing in every window, and a reason in the index."""
        lo, hi = self.range or (-limits.max_abs_value, limits.max_abs_value)
        return max(lo, -limits.max_abs_value), min(hi, limits.max_abs_value)


@dataclass(frozen=True)
class Source:
    name: str
    kind: str
    required: bool
    default_hz: float | None


@dataclass(frozen=True)
class Limits:
    """What a manifest may plausibly claim, and how much a file may expand.

    A store is written next to malware: a crafted manifest claiming 1e-9 Hz
    over four days passed every check that scales with rate or duration, and a
    4.7 MB gzip file expanded to 1 GiB in memory. Beyond these, an episode is
    rejected with a reason. Validation's config hash covers them (they change
    which episodes are accepted); the schema hash does not (they change no
    feature's meaning). Documented in docs/store-format.md#limits."""
    min_hz: float = 0.01              # a sample source's sampling_hz below: implausible
    max_hz: float = 1000.0            # ... above: implausible
    max_duration_s: float = 86400.0   # an episode longer than a day: implausible
    max_row_bytes: int = 4096         # a file may expand to rows x this (its manifest's rows) ...
    min_file_mb: float = 16.0         # ... or to this many MiB (a few long lines are no crime) ...
    max_file_mb: float = 256.0        # ... and never beyond this many MiB, whatever it claims
    # Any value or rate beyond +-this is out of range: float32 (the features'
    # and tensors' type) ends at 3.4e38, and a std or a last-first of values
    # near it overflows; 1e15 is a petabyte, or a petabyte a second.
    max_abs_value: float = 1e15
    max_flows_per_s: float = 2000.0   # a flow source's rows: at most this many a second of the episode

    def max_rows(self, duration_s: float, per_s: float) -> int:
        """The rows a file may hold for an episode of `duration_s` whose rows
        come at `per_s` a second (a sample source: four times its rate, two
        at least; a flow source: max_flows_per_s; labels: one), plus 100.
        Beyond this a file is not parsed: a 0.5 MB gzip claiming 65,536
        rows of a one-minute episode took 2.5 GB to parse."""
        return int(duration_s * per_s) + 100

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 2 ** 20)

    def expand_cap(self, rows: object) -> int:
        """How many bytes a file whose manifest claims `rows` rows may expand to."""
        claimed = rows if isinstance(rows, int) and not isinstance(rows, bool) and rows > 0 else 1
        return min(self.max_file_bytes, max(claimed * self.max_row_bytes, int(self.min_file_mb * 2 ** 20)))


@dataclass(frozen=True)
class Registry:
    channels: tuple[Channel, ...]
    sources: tuple[Source, ...]
    phases: tuple[str, ...]
    profiles: tuple[str, ...]
    path: str = field(default="", compare=False)
    limits: Limits = field(default=Limits(), compare=False)

    @cached_property
    def schema_hash(self) -> str:
        # Cached: validation stamps it on every row, and it costs 2 ms.
        return schema_hash(self)

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)

    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    def channels_of(self, source: str) -> list[Channel]:
        return [c for c in self.channels if c.source == source]


def schema_hash(reg: Registry) -> str:
    """sha256 of the registry's canonical JSON (order of channels included:
    it is the column order of every tensor). Comments and layout do not count."""
    # A channel without a declared range, and the default value bound, leave
    # the hash as it was before either existed: labs made then stay fresh.
    body = {
        "channels": [{k: v for k, v in asdict(c).items() if not (k == "range" and v is None)}
                     for c in reg.channels],
        "sources": [asdict(s) for s in reg.sources],
        "phases": list(reg.phases),
        "profiles": list(reg.profiles),
    }
    if reg.limits.max_abs_value != Limits.max_abs_value:
        body["max_abs_value"] = reg.limits.max_abs_value        # it changes which values are missing
    blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def load_registry(path: str | Path | None = None) -> Registry:
    p = Path(path) if path else DEFAULT_REGISTRY
    if not p.exists():
        return _load_cached(str(p), 0)
    # Keyed by modification time too: an edited file is read again, not served from the cache.
    return _load_cached(str(p.resolve()), p.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> Registry:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{p}: channel registry not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{p}: cannot read channel registry ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{p}: not valid TOML ({exc})") from None
    except RecursionError:
        raise RegistryError(f"{p}: not a channel registry (tables or arrays nested too deeply to read)") from None
    return parse_registry(raw, str(p))


def _need(where: str, entry: dict, key: str, typ: type | tuple[type, ...]):
    if key not in entry:
        raise RegistryError(f"{where}: missing '{key}'")
    val = entry[key]
    if not isinstance(val, typ) or (typ is not bool and isinstance(val, bool)):
        tname = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise RegistryError(f"{where}: '{key}' must be {tname}, got {val!r}")
    return val


def parse_registry(raw: dict, path: str = "<registry>") -> Registry:
    if raw.get("format") != 1:
        raise RegistryError(f"{path}: 'format' must be 1, got {raw.get('format')!r}")
    phases = _need(path, raw, "phases", list)
    profiles = _need(path, raw, "profiles", list)
    for what, items in (("phases", phases), ("profiles", profiles)):
        if not items or not all(isinstance(x, str) and x for x in items):
            raise RegistryError(f"{path}: '{what}' must be a non-empty list of names")
        if len(set(items)) != len(items):
            raise RegistryError(f"{path}: '{what}' has a duplicate name")

    sources = []
    for name, entry in _need(path, raw, "sources", dict).items():
        where = f"{path}: source '{name}'"
        kind = _need(where, entry, "kind", str)
        if kind not in SOURCE_KINDS:
            raise RegistryError(f"{where}: kind '{kind}' is not one of {', '.join(SOURCE_KINDS)}")
        hz = entry.get("default_hz")
        if kind == "sample" and (not isinstance(hz, (int, float)) or isinstance(hz, bool) or hz <= 0):
            raise RegistryError(f"{where}: 'default_hz' must be a positive number")
        sources.append(Source(name, kind, _need(where, entry, "required", bool),
                              float(hz) if hz is not None else None))
    src_by_name = {s.name: s for s in sources}

    channels: list[Channel] = []
    seen: set[str] = set()
    for i, entry in enumerate(_need(path, raw, "channel", list), start=1):
        label = entry.get("name", "?") if isinstance(entry, dict) else "?"
        where = f"{path}: channel #{i} '{label}'"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where}: must be a table")
        name = _need(where, entry, "name", str)
        if name in seen:
            raise RegistryError(f"{where}: duplicate channel name")
        seen.add(name)
        source = _need(where, entry, "source", str)
        if source not in src_by_name:
            raise RegistryError(f"{where}: unknown source '{source}'")
        if not name.startswith(source + ".") or len(name) <= len(source) + 1:
            raise RegistryError(f"{where}: name must be '{source}.<field>'")
        kind = _need(where, entry, "kind", str)
        if kind not in KINDS:
            raise RegistryError(f"{where}: kind '{kind}' is not one of {', '.join(KINDS)}")
        is_flow_source = src_by_name[source].kind == "flow"
        if (kind == "flow") != is_flow_source:
            raise RegistryError(f"{where}: kind '{kind}' does not fit source kind "
                                f"'{src_by_name[source].kind}'")
        agg = fld = whr = None
        if kind == "flow":
            agg = _need(where, entry, "agg", str)
            if agg not in FLOW_AGGS:
                raise RegistryError(f"{where}: agg '{agg}' is not one of {', '.join(FLOW_AGGS)}")
            fld = entry.get("field")
            if agg != "count" and fld not in NETFLOW_FIELDS:
                raise RegistryError(f"{where}: agg '{agg}' needs 'field', one of {', '.join(NETFLOW_FIELDS)}")
            whr = entry.get("where")
            if whr is not None and whr not in FLOW_WHERE:
                raise RegistryError(f"{where}: where '{whr}' is not one of {', '.join(FLOW_WHERE)}")
        channels.append(Channel(
            name=name, source=source, kind=kind,
            unit=_need(where, entry, "unit", str),
            deployable=_need(where, entry, "deployable", bool),
            description=str(entry.get("description", "")),
            agg=agg, field=fld, where=whr, range=_range(where, entry, kind),
        ))
    for s in sources:
        if not any(c.source == s.name for c in channels):
            raise RegistryError(f"{path}: source '{s.name}' has no channel")
    return Registry(tuple(channels), tuple(sources), tuple(phases), tuple(profiles), path,
                    _parse_limits(raw.get("limits", {}), path))


def _range(where: str, entry: dict, kind: str) -> tuple[float, float] | None:
    if "range" not in entry:
        return None
    val = entry["range"]
    ok = (isinstance(val, list) and len(val) == 2
          and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x == x for x in val))
    if not ok or not val[0] < val[1]:
        raise RegistryError(f"{where}: 'range' must be [low, high] with low < high, got {val!r}")
    if kind == "flow":
        raise RegistryError(f"{where}: 'range' is for gauges and counters (a flow channel is counted, not sampled)")
    return float(val[0]), float(val[1])


def _parse_limits(raw: object, path: str) -> Limits:
    where = f"{path}: [limits]"
    if not isinstance(raw, dict):
        raise RegistryError(f"{where} must be a table")
    known = {f for f in Limits.__dataclass_fields__}
    for key in raw:
        if key not in known:
            raise RegistryError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(known))})")
    values = {}
    for key, val in raw.items():
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0 or val != val:
            raise RegistryError(f"{where}: '{key}' must be a positive number, got {val!r}")
        values[key] = int(val) if key == "max_row_bytes" else float(val)
    limits = Limits(**values)
    if limits.min_hz >= limits.max_hz:
        raise RegistryError(f"{where}: 'min_hz' must be below 'max_hz'")
    if limits.min_file_mb > limits.max_file_mb:
        raise RegistryError(f"{where}: 'min_file_mb' must not be above 'max_file_mb'")
    return limits


def registry_ref(reg: Registry, base: Path | None = None) -> dict:
    """How an artefact records the registry it was made with: its hash, and
    its path unless it is the shipped one (which moves with the package).
    An artefact written in `base` names a registry inside its lab home
    relative to `base` (core.paths.portable), so the lab can move."""
    from core.paths import lab_home_of, portable
    shipped = Path(reg.path).resolve() == DEFAULT_REGISTRY.resolve() if reg.path else True
    path = None if shipped else reg.path
    if path and base is not None:
        path = portable(path, base, lab_home_of(base))
    return {"path": path, "hash": reg.schema_hash}


def resolve_registry(channels: str | Path | None, recorded: dict | None, made: str, remake: str) -> Registry:
    """The registry a stage uses: the one the stage before it recorded
    (`recorded`, from `registry_ref`), so `--channels` need not be repeated;
    `--channels` may name it again, but never another one. `made` names the
    artefact that recorded it; `remake` is the command that re-makes that
    artefact with another registry."""
    want = (recorded or {}).get("hash")
    if channels not in (None, ""):
        reg = load_registry(channels)
        if want and reg.schema_hash != want:
            was = (recorded or {}).get("path") or "the shipped registry"
            raise RegistryError(f"{reg.path}: channel registry {reg.schema_hash[:12]} is not the one {made} was made "
                                f"with ({was}, {want[:12]}): drop --channels, or re-run `{remake}` with it")
        return reg
    path = (recorded or {}).get("path")
    if path and not Path(path).exists():
        raise RegistryError(f"{path}: the channel registry {made} was made with is gone: pass --channels with "
                            f"a copy of it, or re-run `{remake}`")
    reg = load_registry(path)
    if want and reg.schema_hash != want:
        where = path or "the shipped registry"
        raise RegistryError(f"{reg.path}: channel registry changed since {made} was made with it "
                            f"({want[:12]} -> {reg.schema_hash[:12]}{'' if path else ', ' + where}): "
                            f"re-run `{remake}`, or pass --channels with the registry it was made with")
    return reg
