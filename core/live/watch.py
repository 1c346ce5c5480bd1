"""Live inference on episodes as they land in a store (`serve --watch`,
`publish watch`).

An episode is complete when its manifest appears (the receiver writes it
last, as validate already knows). Each new one is checked by validate's own
rules (core.validate.checks): one it refuses is a `notice` (level
`refused`) on the page and a line in the log, never predicted; one it
keeps, labelled or not, is announced and its windows predicted at once (the
episode is over: no pacing), published as a replay's events are
(core.live.replay.episode_events, source `watch`). Episodes already in the
store when the watch starts are not re-predicted.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.live.publish import ProducerThread, Publisher
from core.validate import READABLE

POLL_S = 0.2           # how often the store is looked at


class StoreWatch:
    """Episodes of a store that were not there before: each reported once."""

    def __init__(self, store: Path):
        self.store = Path(store)
        self.seen = {e.rel for e in self._complete()}

    def _complete(self):
        from core.store import scan_store
        return [e for e in scan_store(self.store) if not e.in_flight]

    def arrivals(self) -> list:
        new = [e for e in self._complete() if e.rel not in self.seen]
        self.seen.update(e.rel for e in new)
        return new


def watch_events(entry, store: Path, engine, info, channels: list[str], charted: list[int], units: dict[str, str]):
    """The events of one episode that just landed: a notice, then its
    replayed events (or only a notice, when validate's rules refuse it)."""
    from core.extract.episode import episode_grid
    from core.live.replay import episode_events
    from core.store import Episode
    from core.validate.checks import ValidateConfig, validate_episode
    row = validate_episode(entry.path, entry.rel, engine.registry, ValidateConfig(), root=store)
    episode_id = row.get("episode_id") or entry.rel
    if row["status"] not in READABLE:
        reasons = ", ".join(row["reasons"][:3]) + (", ..." if len(row["reasons"]) > 3 else "")
        yield {"type": "notice", "level": "refused", "episode_id": episode_id,
               "text": f"{entry.rel}: {row['status']} ({reasons}): not predicted"}
        return
    yield {"type": "notice", "level": "info", "episode_id": episode_id,
           "text": f"new episode {episode_id} ({row['status']}) on {row.get('host_id') or '?'}: predicting"}
    grid = episode_grid(Episode.open(entry.path, entry.rel), engine.registry, engine.spec, labelled=False)
    for _, event in episode_events(grid, engine.model.predict_proba, info, channels, charted, units=units,
                                   source="watch"):
        yield event


def run_watch(store: Path, engine, mode: str, publisher: Publisher, log=None) -> None:
    """Watch until the publisher is stopped; `log(line)` gets each notice.
    `engine`: a loaded model (core.predict.load_engine)."""
    from core.live.replay import ModelInfo, charted_channels
    m = engine.model
    info = ModelInfo(m.name, mode, m.input_kind, list(m.classes))
    channels = engine.registry.channel_names
    charted = charted_channels(channels, m.header.get("keep_names", []))
    units = {channels[i]: engine.registry.channels[i].unit for i in charted}
    watch = StoreWatch(store)
    start = {"type": "notice", "level": "info",
             "text": f"watching {store} for new episodes ({len(watch.seen):,} there already) with {m.name} "
                     f"({mode}, {engine.kind})"}
    if not publisher.send([start]):
        return
    while not publisher.stop.is_set():
        for entry in watch.arrivals():
            for event in watch_events(entry, store, engine, info, channels, charted, units):
                if event["type"] == "notice" and log:
                    log(event["text"])
                if not publisher.send([event]):
                    return
        publisher.stop.wait(POLL_S)


class WatchThread(ProducerThread):
    """run_watch in a daemon thread (serve --watch), stopped on exit."""

    def __init__(self, store: Path, engine, mode: str, url: str, token: str | None = None):
        super().__init__(url, token, "watch", lambda publisher: run_watch(
            store, engine, mode, publisher, log=lambda line: os.write(2, f"{line}\n".encode())))
