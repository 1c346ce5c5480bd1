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

One episode never stops the watch: whatever fails on it (its data, its
prediction, an event the dashboard refuses) becomes one bounded notice and
the watch goes on. A manifest that does not read yet as a whole one (a
receiver that writes it in two steps) is looked at again until it has been
still for SETTLE_S, and only then refused.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from core.live.publish import ProducerThread, PublishError, Publisher
from core.safenames import bounded, shown
from core.validate import READABLE

POLL_S = 0.2           # how often the store is looked at
SETTLE_S = 10.0        # how long an unreadable manifest may still be being written
NOTICE_CHARS = 400     # a notice's text at most (an event is at most 32 KiB)
# Reasons a manifest still being written gives: looked at again, not refused at once.
UNSETTLED = ("manifest_unparseable", "manifest_field_missing", "manifest_not_object", "read_error:manifest.json",
             "file_missing")


class StoreWatch:
    """Episodes of a store that were not there before: each reported once,
    or again later when `later` asks for it (a manifest still being written)."""

    def __init__(self, store: Path, clock=time.monotonic):
        self.store = Path(store)
        self.clock = clock
        self.seen = {e.rel for e in self._complete()}
        self.first_seen: dict[str, float] = {}
        self.pending: dict[str, tuple[object, float]] = {}

    def _complete(self):
        from core.store import scan_store
        return [e for e in scan_store(self.store) if not e.in_flight]

    def arrivals(self) -> list:
        new = [e for e in self._complete() if e.rel not in self.seen]
        self.seen.update(e.rel for e in new)
        now = self.clock()
        for e in new:
            self.first_seen.setdefault(e.rel, now)
        due = [e for rel, (e, at) in list(self.pending.items()) if at <= now]
        for e in due:
            del self.pending[e.rel]
        return new + due

    def settling(self, entry) -> bool:
        """Whether `entry` landed less than SETTLE_S ago: its manifest may still be being written."""
        return self.clock() - self.first_seen.get(entry.rel, self.clock()) < SETTLE_S

    def later(self, entry, after_s: float = 1.0) -> None:
        self.pending[entry.rel] = (entry, self.clock() + after_s)


def notice(level: str, text: str, episode_id: str | None = None) -> dict:
    """A notice whose every field fits an event, whatever the store named."""
    event = {"type": "notice", "level": level, "text": shown(text, NOTICE_CHARS)}
    if episode_id:
        event["episode_id"] = bounded(episode_id)
    return event


def unsettled(row: dict) -> bool:
    return any(r.startswith(UNSETTLED) for r in row["reasons"])


def watch_events(entry, row: dict, engine, info, channels: list[str], charted: list[int], units: dict[str, str]):
    """The events of one episode that just landed, `row` its check by
    validate's rules: a notice, then its replayed events (or only a notice,
    when the rules refuse it)."""
    from core.extract.episode import episode_grid
    from core.live.replay import episode_events
    from core.store import Episode
    episode_id = row.get("episode_id") or entry.rel
    if row["status"] not in READABLE:
        reasons = ", ".join(row["reasons"][:3]) + (", ..." if len(row["reasons"]) > 3 else "")
        yield notice("refused", f"{entry.rel}: {row['status']} ({reasons}): not predicted", episode_id)
        return
    yield notice("info", f"new episode {episode_id} ({row['status']}) on {row.get('host_id') or '?'}: predicting",
                 episode_id)
    grid = episode_grid(Episode.open(entry.path, entry.rel), engine.registry, engine.spec, labelled=False)
    for _, event in episode_events(grid, engine.model.predict_proba, info, channels, charted, units=units,
                                   source="watch"):
        yield event


def run_watch(store: Path, engine, mode: str, publisher: Publisher, log=None) -> None:
    """Watch until the publisher is stopped; `log(line)` gets each notice.
    `engine`: a loaded model (core.predict.load_engine)."""
    from core.live.replay import ModelInfo, charted_channels
    from core.validate.checks import ValidateConfig, validate_episode
    m = engine.model
    info = ModelInfo(m.name, mode, m.input_kind, list(m.classes))
    channels = engine.registry.channel_names
    charted = charted_channels(channels, m.header.get("keep_names", []))
    units = {channels[i]: engine.registry.channels[i].unit for i in charted}
    watch = StoreWatch(store)

    def send(event: dict) -> bool:
        if event["type"] == "notice" and log:
            log(event["text"])
        return publisher.send([event])
    if not send(notice("info", f"watching {store} for new episodes ({len(watch.seen):,} there already) with "
                               f"{m.name} ({mode}, {engine.kind})")):
        return
    while not publisher.stop.is_set():
        for entry in watch.arrivals():
            row = validate_episode(entry.path, entry.rel, engine.registry, ValidateConfig(), root=store)
            if row["status"] not in READABLE and unsettled(row) and watch.settling(entry):
                watch.later(entry)
                continue
            if not _publish_episode(entry, row, watch_events(entry, row, engine, info, channels, charted, units),
                                    send):
                return
        publisher.stop.wait(POLL_S)


def _publish_episode(entry, row: dict, events, send) -> bool:
    """Send one episode's events; False once stopped. A failure on this
    episode (its data, its prediction, an event refused) is one notice;
    only a refused token, which no later episode can get past, stops the watch."""
    episode_id = row.get("episode_id") or entry.rel
    try:
        for event in events:
            if not send(event):
                return False
    except PublishError as exc:
        if exc.status in (401, 403):
            raise
        return send(notice("refused", f"{entry.rel}: the dashboard refused its events ({exc})", episode_id))
    except Exception as exc:  # noqa: BLE001 - one episode never stops the watch
        return send(notice("refused", f"{entry.rel}: not predicted: {type(exc).__name__}: {exc}", episode_id))
    return True


class WatchThread(ProducerThread):
    """run_watch in a daemon thread (serve --watch), stopped on exit."""

    def __init__(self, store: Path, engine, mode: str, url: str, token: str | None = None):
        super().__init__(url, token, "watch", lambda publisher: run_watch(
            store, engine, mode, publisher, log=lambda line: os.write(2, f"{line}\n".encode())))
