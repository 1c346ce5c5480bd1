"""Windows of one episode: aligned channel x time values, mask, summary features.

Every source is aligned on `t_wall_ns` onto a grid of `step_s` steps from the
episode start. Gauges take the step's last sample, carried forward at most one
step; counters become per-second rates between consecutive samples (a reset,
i.e. a decrease, gives a missing value, never a negative spike), placed like
gauges; flow channels aggregate the flows starting in the step. Missing stays
missing (NaN, mask 0): nothing is zero-filled, except that a present netflow
source seeing no flow in a step really observed zero flows.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from core.errors import Cis490Error
from core.registry import Channel, Registry
from core.store import LABELS, TCP_ACK, TCP_SYN, Episode

STATS = ("mean", "std", "min", "max", "delta", "present")
# Bumped whenever a change here changes any value extract writes: extract's
# reuse key includes it, so rows made by older code are recomputed, not copied.
# 2: exact duplicate flows dropped; null flow fields skipped, not zero-filled.
# 3: no window without a value from any required source.
# 5: values and rates out of range (core.registry.Channel.bounds) are missing.
EXTRACT_VERSION = "5"


class ExtractError(Cis490Error):
    """One episode cannot be turned into windows (named in the summary)."""


@dataclass(frozen=True)
class WindowSpec:
    step_s: float = 0.5
    window_s: float = 10.0
    hop_s: float = 5.0

    @property
    def steps(self) -> int:
        return int(round(self.window_s / self.step_s))

    @property
    def hop_steps(self) -> int:
        return int(round(self.hop_s / self.step_s))

    def check(self) -> None:
        from core.errors import ConfigError
        if self.step_s <= 0 or self.window_s < self.step_s or self.hop_s < self.step_s:
            raise ConfigError(f"--window and --hop must be at least --step ({self.step_s:g} s), got --window "
                              f"{self.window_s:g} and --hop {self.hop_s:g}")
        for name in ("window_s", "hop_s"):
            ratio = getattr(self, name) / self.step_s
            if abs(ratio - round(ratio)) > 1e-9:
                raise ConfigError(f"--{name[:-2]} must be a whole number of {self.step_s:g} s steps")

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def window_id(episode_id: str, t_center_s: float) -> str:
    """A window's id: its episode and centre in milliseconds (the window index's key)."""
    return f"{episode_id}:{int(round(t_center_s * 1000)):08d}"


def feature_names(registry: Registry) -> list[str]:
    return [f"{c.name}:{s}" for c in registry.channels for s in STATS]


@dataclass(frozen=True)
class PhaseOnsets:
    """The label transitions of an episode: when each phase began, in seconds
    from the episode start, with repeats of the same phase merged (a phase
    holds until the next label, so a repeat starts nothing). Time to detect
    measures from these (core.evaluate.detection)."""
    t_s: tuple[float, ...]
    phases: tuple[str, ...]

    @classmethod
    def of_labels(cls, t_wall_ns, phases, started_at_ns: int) -> "PhaseOnsets":
        t, p = [], []
        for ns, ph in zip(np.asarray(t_wall_ns).tolist(), phases):
            if not p or p[-1] != ph:
                t.append((int(ns) - int(started_at_ns)) / 1e9)
                p.append(ph)
        return cls(tuple(t), tuple(p))

    def onset_of(self, phase: str, t_center_s: float) -> float | None:
        """When the stretch of `phase` holding time `t_center_s` began."""
        i = int(np.searchsorted(self.t_s, t_center_s, side="right")) - 1
        return self.t_s[i] if i >= 0 and self.phases[i] == phase else None


@dataclass
class EpisodeWindows:
    episode_id: str
    host_id: str
    profile: str
    sample_name: str
    t_center_s: np.ndarray        # (W,) seconds from the episode start
    labels: list[str]             # (W,) phase at the window centre
    onsets: "PhaseOnsets"         # when each labelled phase began (time to detect)
    values: np.ndarray            # (W, C, T) float32, NaN where missing
    mask: np.ndarray              # (W, C, T) uint8, 1 where present
    features: np.ndarray          # (W, C * len(STATS)) float32
    coverage: dict[str, float]    # per source: fraction of (channel, step) cells present

    @property
    def n(self) -> int:
        return len(self.labels)


def _last_per_step(step: np.ndarray, vals: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid (k, n) of the last value per step of each of k columns of `vals`
    (rows sorted by time), NaN elsewhere, and which steps had a sample at all."""
    out = np.full((vals.shape[1], n), np.nan)
    sampled = np.zeros(n, dtype=bool)
    if len(step):
        last = np.r_[step[1:] != step[:-1], True]
        out[:, step[last]] = vals[last].T
        sampled[step] = True
    return out, sampled


def _carry_one(x: np.ndarray, sampled: np.ndarray) -> np.ndarray:
    """Carry a value into the next step only if that step had no sample: a step
    whose sample gave no value (a counter reset, a null) stays missing."""
    y = x.copy()
    fill = ~sampled[1:] & ~np.isnan(x[:, :-1])
    y[:, 1:][fill] = x[:, :-1][fill]
    return y


def _within(a: np.ndarray, lo, hi) -> np.ndarray:
    """`a` with every value outside [lo, hi] (NaN and infinities included)
    missing: 1e39 in a gauge, or a counter whose rate overflows, would be
    infinite in float32 features and stop every model that reads them."""
    with np.errstate(invalid="ignore"):
        ok = (a >= lo) & (a <= hi)
    return a if ok.all() else np.where(ok, a, np.nan)


def _sample_grids(values: np.ndarray, counter: np.ndarray, step: np.ndarray, t: np.ndarray,
                  n: int) -> np.ndarray:
    """The (k, n) grids of a source's k channels from its samples `values`
    (rows x k, NaN where null) at times `t`: a gauge's last value per step, a
    counter's per-second rate between consecutive samples (`counter` marks
    which), each carried one step. All channels of a source at once: one
    channel at a time cost more in numpy calls than in arithmetic."""
    grids = np.empty((values.shape[1], n))
    if (~counter).any():
        grids[~counter] = _carry_one(*_last_per_step(step, values[:, ~counter], n))
    if counter.any():
        dt = (np.diff(t) / 1e9)[:, None]
        dv = np.diff(values[:, counter], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where((dv >= 0) & (dt > 0), dv / dt, np.nan)
        grids[counter] = _carry_one(*_last_per_step(step[1:], rate, n))
    return grids


class _Flows:
    """A flow source's columns as arrays, made by one query per episode:
    every flow channel is then numpy over them (eleven channels each
    filtering and converting the frame cost more than the rest of the
    extraction). A null in a predicate's field fails the predicate; a null
    value is NaN (a code, -1)."""

    def __init__(self, df: pl.DataFrame, chans: list[Channel], bound: float):
        proto = pl.col("proto").fill_null("")
        exprs = [(proto == "tcp").alias("is_tcp"), (proto == "udp").alias("is_udp"),
                 pl.col("tcp_flags").fill_null(0).alias("flags"), pl.col("dst_port").fill_null(-1).alias("port")]
        for ch in chans:
            if ch.agg == "nunique":
                exprs.append((pl.col(ch.field).rank("dense").cast(pl.Int64).fill_null(0) - 1)
                             .alias(f"codes:{ch.field}"))
            elif ch.agg in ("sum", "mean"):
                # A value out of range is unknown, as a null is (validate names it).
                v = pl.col(ch.field).cast(pl.Float64)
                exprs.append(pl.when(v.abs() <= bound).then(v).otherwise(np.nan).alias(f"values:{ch.field}"))
        cols = df.select(exprs)
        self.arrays = {name: cols[name].to_numpy() for name in cols.columns}
        tcp, udp = self.arrays["is_tcp"], self.arrays["is_udp"]
        self.where = {None: None, "tcp": tcp,
                      "syn_only": tcp & (self.arrays["flags"] & (TCP_SYN | TCP_ACK) == TCP_SYN),
                      "dns": udp & (self.arrays["port"] == 53)}


def _flow_grid(flows: _Flows, ch: Channel, step: np.ndarray, n: int) -> np.ndarray:
    """One flow channel per step. A null field is unknown, not zero: distinct
    counts ignore it, sums and means skip it (a step whose every flow lacks the
    field is missing); a null in a predicate's field fails the predicate."""
    sel = flows.where[ch.where]
    s = step if sel is None else step[sel]
    if ch.agg == "count":
        return np.bincount(s, minlength=n).astype(float)
    if ch.agg == "nunique":
        codes = flows.arrays[f"codes:{ch.field}"]
        codes = codes if sel is None else codes[sel]
        known = codes >= 0
        base = codes.max(initial=0) + 1
        pairs = np.unique(s[known] * base + codes[known])
        return np.bincount(pairs // base, minlength=n).astype(float)
    vals = flows.arrays[f"values:{ch.field}"]
    vals = vals if sel is None else vals[sel]
    known = ~np.isnan(vals)
    s_known = s[known]
    total = np.bincount(s_known, weights=vals[known], minlength=n)
    counts = np.bincount(s_known, minlength=n)
    if ch.agg == "sum":
        flows_in = np.bincount(s, minlength=n)
        return np.where((flows_in > 0) & (counts == 0), np.nan, total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / counts, np.nan)


def align_episode(ep: Episode, registry: Registry, spec: WindowSpec) -> tuple[np.ndarray, dict[str, int]]:
    """The (C, n_steps) grid of every channel, and per present source its rows
    that fall on the grid (the clock-base guard reads these)."""
    m = ep.manifest
    start = m["started_at_ns"]
    step_ns = int(round(spec.step_s * 1e9))
    n = int((m["ended_at_ns"] - start) // step_ns)
    grid = np.full((len(registry.channels), max(n, 0)), np.nan)
    on_grid: dict[str, int] = {}
    row_of = {c.name: i for i, c in enumerate(registry.channels)}
    for src in registry.source_names():
        if ep.source_file(src) is None:
            continue
        df = ep.read_source(src, registry)
        if df["t_wall_ns"].null_count():
            df = df.filter(pl.col("t_wall_ns").is_not_null())
        # Degraded episodes may be out of order or hold duplicates: sort; a sample
        # source keeps the last of a time stamp, a flow source drops exact
        # duplicate flows (the same flow recorded twice is one flow). Most
        # episodes are neither, and skip the work.
        if registry.source(src).kind == "sample":
            t = df["t_wall_ns"].to_numpy()
            if len(t) > 1 and not (np.diff(t) > 0).all():
                df = df.sort("t_wall_ns", maintain_order=True).unique("t_wall_ns", keep="last",
                                                                     maintain_order=True)
        else:
            df = df.unique(maintain_order=True)
            if not df["t_wall_ns"].is_sorted():
                df = df.sort("t_wall_ns", maintain_order=True)
        t = df["t_wall_ns"].to_numpy()
        step = (t - start) // step_ns
        inside = (step >= 0) & (step < n)
        on_grid[src] = int(inside.sum()) if len(t) else -1
        chans = registry.channels_of(src)
        if registry.source(src).kind == "flow":
            flows, s_in = _Flows(df.filter(pl.Series(inside)), chans, registry.limits.max_abs_value), step[inside]
            for ch in chans:
                grid[row_of[ch.name]] = _flow_grid(flows, ch, s_in, n)
        else:
            # Pad the grid with one bucket each side: rows before the start land in
            # the first (a counter's rate needs the sample before the first step),
            # rows after the end in the last; both are cut off.
            padded = np.clip(step, -1, n) + 1
            fields = [ch.row_field for ch in chans]
            # The row schema reads these as Float64 (NaN where null): the
            # columns convert without a query, which would cost more than the maths.
            values = np.column_stack([df[f].to_numpy() for f in fields]) if fields else np.zeros((len(t), 0))
            counter = np.array([ch.kind == "counter" for ch in chans], dtype=bool)
            lo, hi = np.array([ch.bounds(registry.limits) for ch in chans]).reshape(-1, 2).T
            values = _within(values, lo, hi)
            bound = registry.limits.max_abs_value
            grids = _within(_sample_grids(values, counter, padded, t, n + 2)[:, 1:n + 1], -bound, bound)
            grid[[row_of[ch.name] for ch in chans]] = grids
    return grid, on_grid


@dataclass
class EpisodeGrid:
    """An episode aligned once, from which windows are cut: every window at
    once (`cis490 extract`) or one at a time as it completes (live replay);
    both cut through `window_at`'s arithmetic, so they agree bit for bit."""
    episode_id: str
    host_id: str
    profile: str
    sample_name: str
    grid: np.ndarray              # (C, n_steps) float64, NaN where missing
    starts: np.ndarray            # (W,) first step of each labelled window
    labels: list[str]             # (W,) phase at each window's centre
    spec: WindowSpec
    onsets: "PhaseOnsets" = None

    @property
    def n(self) -> int:
        return len(self.starts)

    def t_center_s(self, i=slice(None)) -> np.ndarray:
        return ((self.starts[i] + self.spec.steps / 2) * self.spec.step_s).astype(np.float64)

    def end_s(self, i: int) -> float:
        """When window i is complete, seconds from the episode start."""
        return float((self.starts[i] + self.spec.steps) * self.spec.step_s)

    def windows(self, rows=slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values (W, C, T) float32, mask (W, C, T) uint8, features (W, F) float32) of windows `rows`."""
        starts = self.starts[rows]
        T = self.spec.steps
        win = self.grid[:, starts[:, None] + np.arange(T)].transpose(1, 0, 2) if len(starts) else \
            np.zeros((0, self.grid.shape[0], T))
        return win.astype(np.float32), (~np.isnan(win)).astype(np.uint8), summary_features(win)

    def window_at(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Window i alone, on demand: values (C, T), mask (C, T), features (F,)."""
        values, mask, features = self.windows(np.array([i]))
        return values[0], mask[0], features[0]


def episode_grid(ep: Episode, registry: Registry, spec: WindowSpec = WindowSpec(),
                 labelled: bool = True) -> EpisodeGrid:
    """Align an episode and find its labelled windows (the checks of extract
    included). `labelled=False` (cis490 predict): every window that holds
    data, labelled where the episode has labels (None elsewhere, and
    everywhere in an episode nobody labelled)."""
    m = ep.manifest
    grid, on_grid = align_episode(ep, registry, spec)
    for src, rows in on_grid.items():
        if rows == 0:
            raise ExtractError(f"{ep.rel}: source '{src}' is present but none of its rows aligns to the episode "
                               f"(check that it is stamped on the wall clock, t_wall_ns, not its native clock)")
    n = grid.shape[1]
    T, hop = spec.steps, spec.hop_steps
    n_win = (n - T) // hop + 1 if n >= T else 0
    starts = np.arange(n_win) * hop
    # A window must hold data: one with no value from any required source says
    # nothing, and a manifest claiming days of rows it does not have would
    # otherwise make thousands of such windows from a few hundred rows.
    starts = starts[_has_required_data(grid, registry, starts, T)]
    centres_ns = m["started_at_ns"] + ((starts + T / 2) * spec.step_s * 1e9).astype(np.int64)
    if not labelled:
        return _unlabelled_grid(ep, grid, starts, centres_ns, spec)
    labels_df = ep.read_labels().sort("t_wall_ns")
    lt, lp = labels_df["t_wall_ns"].to_numpy(), labels_df["phase"].to_list()
    li = np.searchsorted(lt, centres_ns, side="right") - 1
    keep = li >= 0  # a centre before the first label has no phase
    return EpisodeGrid(m["episode_id"], m["host_id"], m["profile"], m["sample_name"], grid, starts[keep],
                       [lp[i] for i in li[keep]], spec, PhaseOnsets.of_labels(lt, lp, m["started_at_ns"]))


def _unlabelled_grid(ep: Episode, grid: np.ndarray, starts: np.ndarray, centres_ns: np.ndarray,
                     spec: WindowSpec) -> EpisodeGrid:
    m = ep.manifest
    labels: list[str | None] = [None] * len(starts)
    onsets = None
    if LABELS in (m.get("files") or {}) and (ep.path / LABELS).exists():
        labels_df = ep.read_labels().sort("t_wall_ns")
        lt, lp = labels_df["t_wall_ns"].to_numpy(), labels_df["phase"].to_list()
        li = np.searchsorted(lt, centres_ns, side="right") - 1
        labels = [lp[i] if i >= 0 else None for i in li]
        onsets = PhaseOnsets.of_labels(lt, lp, m["started_at_ns"])
    return EpisodeGrid(m["episode_id"], m["host_id"], m["profile"], m["sample_name"], grid, starts, labels, spec,
                       onsets)


def _has_required_data(grid: np.ndarray, registry: Registry, starts: np.ndarray, T: int) -> np.ndarray:
    required = {s.name for s in registry.sources if s.required} or set(registry.source_names())
    rows = [i for i, c in enumerate(registry.channels) if c.source in required]
    step_has = ~np.isnan(grid[rows]).all(axis=0)
    seen = np.concatenate([[0], np.cumsum(step_has)])
    return seen[starts + T] - seen[starts] > 0


def extract_episode(ep: Episode, registry: Registry, spec: WindowSpec = WindowSpec()) -> EpisodeWindows:
    """Windows of one episode, in memory. The batch extractor calls exactly this."""
    g = episode_grid(ep, registry, spec)
    values, mask, features = g.windows()
    coverage = {}
    for src in registry.source_names():
        rows = [i for i, c in enumerate(registry.channels) if c.source == src]
        coverage[src] = float(mask[:, rows].mean()) if g.n else 0.0
    return EpisodeWindows(g.episode_id, g.host_id, g.profile, g.sample_name, g.t_center_s(), g.labels, g.onsets,
                          values, mask, features, coverage)


def summary_features(win: np.ndarray) -> np.ndarray:
    """(W, C, T) -> (W, C * 6): mean, std, min, max, last-first, fraction present."""
    W, C, T = win.shape
    present = ~np.isnan(win)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(win, axis=2)
        std = np.nanstd(win, axis=2)
        mn = np.nanmin(win, axis=2) if T else mean
        mx = np.nanmax(win, axis=2) if T else mean
    any_p = present.any(axis=2)
    first = np.argmax(present, axis=2)
    last = T - 1 - np.argmax(present[:, :, ::-1], axis=2)
    wi, ci = np.meshgrid(np.arange(W), np.arange(C), indexing="ij")
    delta = np.where(any_p, win[wi, ci, last] - win[wi, ci, first], np.nan)
    frac = present.mean(axis=2)
    return np.stack([mean, std, mn, mx, delta, frac], axis=2).reshape(W, C * len(STATS)).astype(np.float32)
