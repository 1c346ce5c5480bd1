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
from core.store import TCP_ACK, TCP_SYN, Episode

STATS = ("mean", "std", "min", "max", "delta", "present")
# Bumped whenever a change here changes any value extract writes: extract's
# reuse key includes it, so rows made by older code are recomputed, not copied.
# 2: exact duplicate flows dropped; null flow fields skipped, not zero-filled.
EXTRACT_VERSION = "2"


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
            raise ConfigError(f"window spec needs 0 < step <= window and step <= hop, got {asdict(self)}")
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


@dataclass
class EpisodeWindows:
    episode_id: str
    host_id: str
    profile: str
    sample_name: str
    t_center_s: np.ndarray        # (W,) seconds from the episode start
    labels: list[str]             # (W,) phase at the window centre
    values: np.ndarray            # (W, C, T) float32, NaN where missing
    mask: np.ndarray              # (W, C, T) uint8, 1 where present
    features: np.ndarray          # (W, C * len(STATS)) float32
    coverage: dict[str, float]    # per source: fraction of (channel, step) cells present

    @property
    def n(self) -> int:
        return len(self.labels)


def _last_per_step(step: np.ndarray, vals: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid of the last value per step (rows sorted by time), NaN elsewhere,
    and which steps had a sample at all."""
    out = np.full(n, np.nan)
    sampled = np.zeros(n, dtype=bool)
    if len(step):
        last = np.r_[step[1:] != step[:-1], True]
        out[step[last]] = vals[last]
        sampled[step] = True
    return out, sampled


def _carry_one(x: np.ndarray, sampled: np.ndarray) -> np.ndarray:
    """Carry a value into the next step only if that step had no sample: a step
    whose sample gave no value (a counter reset, a null) stays missing."""
    y = x.copy()
    fill = ~sampled[1:] & ~np.isnan(x[:-1])
    y[1:][fill] = x[:-1][fill]
    return y


def _sample_grid(v: np.ndarray, ch: Channel, step: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    """One channel's grid from its samples `v` (NaN where null) at times `t`."""
    if ch.kind == "counter":
        dt = np.diff(t) / 1e9
        dv = np.diff(v)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where((dv >= 0) & (dt > 0), dv / dt, np.nan)
        return _carry_one(*_last_per_step(step[1:], rate, n))
    return _carry_one(*_last_per_step(step, v, n))


def _flow_grid(df: pl.DataFrame, ch: Channel, step: np.ndarray, n: int) -> np.ndarray:
    """One flow channel per step. A null field is unknown, not zero: distinct
    counts ignore it, sums and means skip it (a step whose every flow lacks the
    field is missing); a null in a predicate's field fails the predicate."""
    sel = np.ones(len(step), dtype=bool)
    proto = df["proto"].fill_null("")
    if ch.where == "syn_only":
        flags = df["tcp_flags"].fill_null(0).to_numpy()
        sel = (proto == "tcp").to_numpy() & (flags & (TCP_SYN | TCP_ACK) == TCP_SYN)
    elif ch.where == "dns":
        sel = (proto == "udp").to_numpy() & (df["dst_port"].fill_null(-1).to_numpy() == 53)
    elif ch.where == "tcp":
        sel = (proto == "tcp").to_numpy()
    s = step[sel]
    if ch.agg == "count":
        return np.bincount(s, minlength=n).astype(float)
    col = df[ch.field].filter(pl.Series(sel))
    known = col.is_not_null().to_numpy()
    s_known, col = s[known], col.drop_nulls()
    if ch.agg == "nunique":
        codes = col.cast(pl.Utf8).cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
        base = codes.max(initial=0) + 1
        pairs = np.unique(s_known * base + codes)
        return np.bincount(pairs // base, minlength=n).astype(float)
    vals = col.cast(pl.Float64).to_numpy()
    total = np.bincount(s_known, weights=vals, minlength=n)
    counts = np.bincount(s_known, minlength=n)
    if ch.agg == "sum":
        flows = np.bincount(s, minlength=n)
        return np.where((flows > 0) & (counts == 0), np.nan, total)
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
        df = ep.read_source(src, registry).filter(pl.col("t_wall_ns").is_not_null())
        # Degraded episodes may be out of order or hold duplicates: sort; a sample
        # source keeps the last of a time stamp, a flow source drops exact
        # duplicate flows (the same flow recorded twice is one flow).
        df = df.sort("t_wall_ns", maintain_order=True).unique("t_wall_ns", keep="last", maintain_order=True) \
            if registry.source(src).kind == "sample" else df.unique(maintain_order=True).sort("t_wall_ns",
                                                                                           maintain_order=True)
        t = df["t_wall_ns"].to_numpy()
        step = (t - start) // step_ns
        inside = (step >= 0) & (step < n)
        on_grid[src] = int(inside.sum()) if len(t) else -1
        chans = registry.channels_of(src)
        if registry.source(src).kind == "flow":
            df_in, s_in = df.filter(pl.Series(inside)), step[inside]
            for ch in chans:
                grid[row_of[ch.name]] = _flow_grid(df_in, ch, s_in, n)
        else:
            # Pad the grid with one bucket each side: rows before the start land in
            # the first (a counter's rate needs the sample before the first step),
            # rows after the end in the last; both are cut off.
            padded = np.clip(step, -1, n) + 1
            fields = [ch.row_field for ch in chans]
            # One conversion per source: per-column polars calls cost more than the maths.
            values = df.select(pl.col(fields).cast(pl.Float64)).to_numpy()
            for j, ch in enumerate(chans):
                grid[row_of[ch.name]] = _sample_grid(values[:, j], ch, padded, t, n + 2)[1:n + 1]
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


def episode_grid(ep: Episode, registry: Registry, spec: WindowSpec = WindowSpec()) -> EpisodeGrid:
    """Align an episode and find its labelled windows (the checks of extract included)."""
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
    centres_ns = m["started_at_ns"] + ((starts + T / 2) * spec.step_s * 1e9).astype(np.int64)
    labels_df = ep.read_labels().sort("t_wall_ns")
    lt, lp = labels_df["t_wall_ns"].to_numpy(), labels_df["phase"].to_list()
    li = np.searchsorted(lt, centres_ns, side="right") - 1
    keep = li >= 0  # a centre before the first label has no phase
    return EpisodeGrid(m["episode_id"], m["host_id"], m["profile"], m["sample_name"], grid, starts[keep],
                       [lp[i] for i in li[keep]], spec)


def extract_episode(ep: Episode, registry: Registry, spec: WindowSpec = WindowSpec()) -> EpisodeWindows:
    """Windows of one episode, in memory. The batch extractor calls exactly this."""
    g = episode_grid(ep, registry, spec)
    values, mask, features = g.windows()
    coverage = {}
    for src in registry.source_names():
        rows = [i for i, c in enumerate(registry.channels) if c.source == src]
        coverage[src] = float(mask[:, rows].mean()) if g.n else 0.0
    return EpisodeWindows(g.episode_id, g.host_id, g.profile, g.sample_name, g.t_center_s(), g.labels,
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
