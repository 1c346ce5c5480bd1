"""What a manifest and its rows may plausibly claim (core.registry.Limits):
rates and durations, the rows a file may hold, the time it was received,
the values a channel's samples may take. An episode beyond them is
rejected, or degraded for values out of range, with a reason
(docs/store-format.md, "Validation rules" and "Limits")."""
from __future__ import annotations

import polars as pl

from core.registry import Registry
from core.store import parse_received_at

EARLIEST_RECEIVED_NS = 946_684_800 * 10 ** 9      # 2000-01-01T00:00:00Z
RECEIPT_SKEW_NS = 3600 * 10 ** 9                  # the receiver's clock may be an hour behind the sensors


def row_bounds(m: dict, duration_s: float, roles: dict[str, str], registry: Registry) -> dict[str, int]:
    """Per listed file, the rows an episode of this duration can hold
    (Limits.max_rows): what its rows are never parsed beyond."""
    lim = registry.limits
    rates = m.get("sampling_hz") if isinstance(m.get("sampling_hz"), dict) else {}
    out = {}
    for fname, role in roles.items():
        if role == "labels":
            per_s = 1.0                    # a phase change a second, at most
        elif registry.source(role).kind == "flow":
            per_s = lim.max_flows_per_s
        else:
            hz = rates.get(role)
            ok = isinstance(hz, (int, float)) and not isinstance(hz, bool) and lim.min_hz <= hz <= lim.max_hz
            # Four times the claimed rate (duplicates, resends, a clock that
            # runs fast), and two a second at least (a rate claimed too low
            # is for the row gate to judge, not this bound).
            per_s = max(4 * (hz if ok else registry.source(role).default_hz), 2.0)
        out[fname] = lim.max_rows(max(duration_s, 0.0), per_s)
    return out


def check_plausible(m: dict, duration_s: float, registry: Registry, reasons: list[str]) -> None:
    """What the manifest claims must be plausible (core.registry.Limits): the
    row gate and the gap rule scale with rate and duration, so an implausible
    claim would pass them and make thousands of empty windows."""
    lim = registry.limits
    if duration_s > lim.max_duration_s:
        reasons.append(f"manifest_implausible:duration_s={duration_s:.0f}>{lim.max_duration_s:.0f}")
    received = parse_received_at(m.get("received_at"))
    # A receipt time before the lab could have received anything, or before
    # the episode ended: forged or broken, and never what decides which copy
    # of a duplicated id is kept (core.validate.pipeline._mark_duplicates).
    if received is not None and (received < EARLIEST_RECEIVED_NS or received < m["ended_at_ns"] - RECEIPT_SKEW_NS):
        reasons.append(f"received_at_implausible:{m['received_at'][:40]}")
    rates = m.get("sampling_hz") if isinstance(m.get("sampling_hz"), dict) else {}
    for src in registry.source_names():
        if src not in rates or registry.source(src).kind != "sample":
            continue
        hz = rates[src]
        if isinstance(hz, bool) or not isinstance(hz, (int, float)) or not lim.min_hz <= hz <= lim.max_hz:
            reasons.append(f"manifest_implausible:sampling_hz.{src}={hz!r}")


def out_of_range(df: pl.DataFrame, src: str, registry: Registry) -> dict[str, int]:
    """Per field, how many of its values are NaN, infinite or beyond the
    channel's bounds (core.registry.Channel.bounds): a sample source's
    channels, and a flow source's fields its channels sum or average."""
    limits = registry.limits
    if registry.source(src).kind == "flow":
        fields = {c.field for c in registry.channels_of(src) if c.agg in ("sum", "mean")}
        bounds = {f: (-limits.max_abs_value, limits.max_abs_value) for f in sorted(fields)}
    else:
        bounds = {c.row_field: c.bounds(limits) for c in registry.channels_of(src)}
    exprs = []
    for f, (lo, hi) in bounds.items():
        col = pl.col(f).cast(pl.Float64)
        exprs.append((col.is_nan() | (col < lo) | (col > hi)).sum().alias(f))
    counts = df.select(exprs).row(0) if exprs else ()
    return {f: int(n) for f, n in zip(bounds, counts) if n}
