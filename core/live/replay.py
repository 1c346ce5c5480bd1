"""Replaying a recorded episode as if live: the dashboard's event stream for
one episode, in episode time.

The episode is aligned once (core.extract.episode.episode_grid, the code
`cis490 extract` runs); as each window completes, that window alone is cut
from the grid, predicted by the model and scored for trust. What comes out is
a time-ordered list of (seconds from the episode start, event) that a driver
paces and publishes (events follow core/dashboard/events.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from core.extract.episode import EpisodeGrid, window_id
from core.live.trust import TrustMeter
from core.safenames import bounded

TICK_S = 1.0        # telemetry every second of episode time
CHARTED = 8         # channels in each telemetry tick (what the page charts)


@dataclass(frozen=True)
class ModelInfo:
    name: str          # e.g. "gru"
    mode: str          # "realistic" or "oracle"
    input_kind: str    # "summary" or "tensor"
    classes: list[str]


def charted_channels(channel_names: list[str], keep_names: list[str], limit: int = CHARTED) -> list[int]:
    """Rows of the grid to chart: channels the model sees, taken in turn from
    each source it sees (registry order within a source), so the page shows
    every kind of telemetry, netflow included, not the first source's eight.
    keep_names are features (`channel:stat`) or channels; either names the channel."""
    seen = {n.split(":", 1)[0] for n in keep_names}
    by_source: dict[str, list[int]] = {}
    for i, c in enumerate(channel_names):
        if c in seen:
            by_source.setdefault(c.split(".", 1)[0], []).append(i)
    out: list[int] = []
    queues = list(by_source.values())
    while len(out) < limit and any(queues):
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return sorted(out)


def _value(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def episode_delays(seen: list[tuple[float, float, str, bool]]) -> list[dict]:
    """Each phase occurrence of one replayed episode and its time to detect
    (eval's rule, one window: core.detect), for the `episode` end event."""
    from core.detect import occurrences
    t_end, onset, truth, hit = (np.asarray(x) for x in zip(*seen))
    names, codes = np.unique(truth, return_inverse=True)
    occ = occurrences(np.zeros(len(seen), np.int64), t_end.astype(float), onset.astype(float), codes, hit.astype(bool))
    return [{"phase": str(names[c]), "onset_s": round(float(o), 3),
             "delay_s": None if np.isnan(d) else round(float(d), 3)}
            for c, o, d in zip(occ.phase, occ.onset_s, occ.delay_s)]


def episode_events(grid: EpisodeGrid, predict, info: ModelInfo, channel_names: list[str], charted: list[int],
                   tick_s: float = TICK_S, units: dict[str, str] | None = None,
                   source: str = "replay") -> Iterator[tuple[float, dict]]:
    """(t_s, event) in episode time: `episode` start, `telemetry` every
    `tick_s`, a `prediction` as each window completes, `episode` end.

    `predict(inputs) -> (1, K) probabilities` takes one window's raw inputs:
    its summary features (1, F), or (values, masks) of shape (1, C, T)."""
    # Names from the store, bounded: one event is at most 32 KiB (core.dashboard.hub).
    episode_id = bounded(grid.episode_id)
    base = {"episode_id": episode_id}
    head = {**base, "host_id": bounded(grid.host_id), "profile": bounded(grid.profile),
            "sample_name": bounded(grid.sample_name), "model": info.name, "mode": info.mode, "source": source}
    yield 0.0, {"type": "episode", "event": "start", **head}
    step_s = grid.spec.step_s
    steps = grid.grid.shape[1]
    ticks = [(k * tick_s, "tick", k) for k in range(int(steps * step_s // tick_s) + 1)]
    windows = [(grid.end_s(i), "window", i) for i in range(grid.n)]
    meter = TrustMeter()
    right = 0
    seen: list[tuple[float, float, str, bool]] = []    # per window: end, onset, truth, caught
    # A window completes at the same instant as a tick: the tick (its data) first.
    for t, what, k in sorted(ticks + windows, key=lambda e: (e[0], e[1] == "window")):
        if what == "tick":
            col = min(int(round(t / step_s)), steps - 1)
            values = {channel_names[r]: _value(grid.grid[r, col]) for r in charted}
            if values:
                yield t, {"type": "telemetry", **base, "t_s": round(t, 3), "values": values,
                          **({"units": {c: units[c] for c in values if c in units}} if units else {})}
            continue
        values, mask, features = grid.window_at(k)
        inputs = features[None] if info.input_kind == "summary" else (values[None], mask[None])
        proba = np.asarray(predict(inputs))[0]
        predicted = info.classes[int(proba.argmax())]
        truth = grid.labels[k]                # None: a window nobody labelled (a watched store's new run)
        right += predicted == truth
        centre = float(grid.t_center_s(k))
        if truth is not None:
            onset = grid.onsets.onset_of(truth, centre) if grid.onsets else None
            seen.append((t, np.nan if onset is None else onset, truth, predicted == truth))
        yield t, {"type": "prediction", **base, "window_id": window_id(episode_id, centre),
                  "t_center_s": centre, "predicted": predicted,
                  "probabilities": {c: float(p) for c, p in zip(info.classes, proba)},
                  "truth": truth, "trust": round(meter.update(proba), 4), "model": info.name, "mode": info.mode}
    end = {"type": "episode", "event": "end", **head, "windows": grid.n}
    if seen:
        # Over the labelled windows; an episode nobody labelled has no accuracy and no delays.
        end["accuracy"] = right / len(seen)
        end["detection"] = episode_delays(seen)
    yield float(steps * step_s), end
