"""The event hub: ids, the ring of recent events, the snapshot, subscribers.

Everything here runs on the server's one event loop and never awaits while
it changes state, so publishing, subscribing and replaying are atomic with
respect to each other: a subscriber's backlog and its live queue meet exactly
at its start id, with no gap and no duplicate.

Slow subscribers never slow anyone: each has a bounded queue, and one that
fills is dropped (its stream ends; the browser reconnects with Last-Event-ID
and catches up from the ring, or gets a reset with the snapshot).

The ring holds each event once, as its encoded SSE frame (bytes), never as
the parsed event: a dict of floats and strings is ten times its JSON, and a
64 MiB ring of dicts held 868 MB. The snapshot is spliced from those frames
(no event is decoded or encoded again), once per ring version, off the loop.
"""
from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from core.dashboard.events import snapshot_key

DROPPED = object()    # the last item a dropped subscriber's queue ever holds
HISTORY_TYPES = ("prediction", "telemetry")
HISTORY = 2_000       # events of the current episode sent to a late browser
# Bounds in bytes (of the encoded SSE frames), whatever producers send: the
# largest event a producer may publish (app.py refuses bigger ones with 413;
# the largest real one, profile_stats of a big lab, is a few kB), the ring's
# total, and the history a late browser's snapshot carries.
MAX_EVENT_BYTES = 32 * 1024
RING_BYTES = 64 * 1024 * 1024
HISTORY_BYTES = 4 * 1024 * 1024
# The snapshot keeps one latest event per key (per checkpoint for model_metric
# and profile_stats); a publisher inventing keys could grow it without end, so
# a type keeps its most recent SNAPSHOT_SLOTS keys. With MAX_EVENT_BYTES each,
# a snapshot is bounded (a few MiB for the handful of types), whatever is sent.
SNAPSHOT_SLOTS = 64


class Item(NamedTuple):
    """One published event as the ring keeps it: its id, type and SSE frame."""
    id: int
    type: str
    frame: bytes

    @property
    def data(self) -> bytes:
        """The event's JSON (the frame's `data:` line)."""
        return self.frame[self.frame.index(b"\ndata: ") + 7:-2]

    def event(self) -> dict:
        return json.loads(self.data)


@dataclass(frozen=True)
class StateParts:
    """What a late browser starts from, as references into the ring, taken
    on the loop in one step (so it is exactly the state at `last_id`);
    joined into JSON bytes anywhere (`encode_state`)."""
    last_id: int
    snapshot: tuple[tuple[str, tuple[Item, ...]], ...]
    history: tuple[Item, ...]


def _with_id(item: Item) -> bytes:
    return b'{"id":%d,' % item.id + item.data[1:] if item.data != b"{}" else b'{"id":%d}' % item.id


def encode_state(parts: StateParts) -> bytes:
    """{"last_id", "snapshot": {type: [event + id, ...]}, "history": [...]}, by
    splicing the events' own JSON: nothing decoded, nothing encoded twice."""
    snap = b",".join(b'"%s":[%s]' % (kind.encode(), b",".join(_with_id(i) for i in items))
                     for kind, items in parts.snapshot)
    hist = b",".join(_with_id(i) for i in parts.history)
    return b'{"last_id":%d,"snapshot":{%s},"history":[%s]}' % (parts.last_id, snap, hist)


@dataclass(eq=False)     # identity, not value: a subscriber is one connection
class Subscriber:
    queue: asyncio.Queue
    dropped: bool = False


@dataclass
class Replay:
    """Where a new subscriber starts: the events it missed, or a reset."""
    events: list[Item]
    reset: StateParts | None = None     # the state to start from, when the ring no longer holds what it missed


@dataclass
class EventHub:
    ring_size: int = 10_000
    ring_bytes: int = RING_BYTES
    queue_size: int = 2_000
    last_id: int = 0
    episode_start_id: int = 0       # the latest `episode` start: where the current episode's history begins
    published: int = 0
    dropped_subscribers: int = 0
    _ring: deque = field(default_factory=deque)
    _ring_held: int = 0             # bytes of the frames in the ring
    _snapshot: dict[str, dict[str, Item]] = field(default_factory=dict)
    _subscribers: set[Subscriber] = field(default_factory=set)
    # The encoded state of one ring version (its last_id), shared by every
    # snapshot and reset asked for until the next publish.
    _state: tuple[int, "asyncio.Future[bytes]"] | None = None

    def __post_init__(self) -> None:
        if self.ring_size < 1 or self.queue_size < 1:
            raise ValueError(f"ring and queue sizes must be at least 1, got {self.ring_size} and {self.queue_size}")
        self._ring = deque()

    # -- producers -------------------------------------------------------------
    def publish(self, events: list[dict]) -> list[int]:
        """Give each (already validated) event the next id, keep it, fan it out.
        Its SSE frame is encoded here, once, not once per subscriber."""
        ids = []
        for ev in events:
            self.last_id += 1
            item = Item(self.last_id, ev["type"], sse_frame(self.last_id, ev["type"], ev))
            self._ring.append(item)
            self._ring_held += len(item.frame)
            # Bounded by count and by bytes: the oldest events go first.
            while len(self._ring) > self.ring_size or (self._ring_held > self.ring_bytes and len(self._ring) > 1):
                self._ring_held -= len(self._ring.popleft().frame)
            slots = self._snapshot.setdefault(ev["type"], {})
            key = snapshot_key(ev)
            slots.pop(key, None)                # re-inserted: dicts keep insertion order, oldest first
            slots[key] = item
            if len(slots) > SNAPSHOT_SLOTS:
                del slots[next(iter(slots))]
            if ev["type"] == "episode" and ev["event"] == "start":
                self.episode_start_id = self.last_id
            for sub in list(self._subscribers):
                self._offer(sub, item)
            ids.append(self.last_id)
        self.published += len(events)
        return ids

    def _offer(self, sub: Subscriber, item) -> None:
        try:
            sub.queue.put_nowait(item)
        except asyncio.QueueFull:
            # Never block a producer for one slow client: drop it. The queue is
            # full, so make room for the marker that ends its stream.
            self._subscribers.discard(sub)
            sub.dropped = True
            self.dropped_subscribers += 1
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(DROPPED)

    # -- subscribers -----------------------------------------------------------
    def subscribe(self, after: int | None) -> tuple[Subscriber, Replay]:
        """A live subscriber and what it must be sent first. `after` is the last
        id the client has (Last-Event-ID); None means it starts from now (it
        read the snapshot, which carries `last_id`, or wants only live events)."""
        sub = Subscriber(asyncio.Queue(maxsize=self.queue_size))
        self._subscribers.add(sub)
        if after is None or after == self.last_id:
            return sub, Replay([])
        oldest = self._ring[0].id if self._ring else self.last_id + 1
        if after > self.last_id or after < oldest - 1:
            # Ids it holds belong to another run of the server, or fell off the ring.
            return sub, Replay([], self.state_parts())
        return sub, Replay([item for item in self._ring if item.id > after])

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        for sub in list(self._subscribers):
            self._subscribers.discard(sub)
            try:
                sub.queue.put_nowait(DROPPED)
            except asyncio.QueueFull:
                sub.queue.get_nowait()
                sub.queue.put_nowait(DROPPED)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def state_parts(self) -> StateParts:
        """The latest state per type (one event for most types, one per
        checkpoint for model_metric and profile_stats) and the current
        episode's predictions and telemetry still in the ring (since its
        `episode` start, oldest first: a browser opening mid-episode draws the
        episode so far), as references: cheap, on the loop."""
        snap = tuple((kind, tuple(sorted(slots.values(), key=lambda x: x.id))) for kind, slots in self._snapshot.items())
        out, held = [], 0
        for item in reversed(self._ring):          # newest first, until a bound is reached
            if item.id <= self.episode_start_id or len(out) >= HISTORY:
                break
            if item.type in HISTORY_TYPES:
                held += len(item.frame)
                if held > HISTORY_BYTES:
                    break
                out.append(item)
        return StateParts(self.last_id, snap, tuple(out[::-1]))

    async def state_bytes(self, parts: StateParts | None = None) -> bytes:
        """The encoded state (of `parts`, else of now), joined in a thread
        once per ring version however many browsers ask at once: with four
        clients looping on snapshots, encoding on the loop made a publish's
        p99 7 -> 616 ms."""
        import anyio
        parts = parts or self.state_parts()
        if self._state is not None and self._state[0] == parts.last_id:
            return await asyncio.shield(self._state[1])
        if parts.last_id != self.last_id:         # an older version (a reset asked before a publish): not kept
            return await anyio.to_thread.run_sync(encode_state, parts)
        future = asyncio.get_running_loop().create_future()
        self._state = (parts.last_id, future)
        try:
            body = await anyio.to_thread.run_sync(encode_state, parts)
        except BaseException as exc:
            self._state = None
            future.set_exception(exc)
            future.exception()           # retrieved: no "never retrieved" warning
            raise
        future.set_result(body)
        return body

    def state(self) -> dict:
        """What a late or reset browser starts from, decoded (tests, tools)."""
        return json.loads(encode_state(self.state_parts()))

    def snapshot(self) -> dict[str, list[dict]]:
        return self.state()["snapshot"]

    def history(self) -> list[dict]:
        return self.state()["history"]

    def events(self) -> list[dict]:
        """Every event the ring holds, decoded, oldest first (tests, tools)."""
        return [item.event() for item in self._ring]

    def stats(self) -> dict:
        return {"last_id": self.last_id, "published": self.published, "subscribers": self.subscribers,
                "dropped_subscribers": self.dropped_subscribers, "ring": len(self._ring),
                "ring_size": self.ring_size, "ring_bytes": self._ring_held}


def sse_frame(event_id: int, name: str, payload: dict) -> bytes:
    """One Server-Sent-Events message: its id, its event name, its JSON data."""
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()
