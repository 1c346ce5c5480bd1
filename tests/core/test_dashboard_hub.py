"""The hub: ids, ring, replay, reset, snapshot and the slow-subscriber policy."""
import asyncio

import pytest

from core.dashboard.events import EXAMPLES
from core.dashboard.hub import DROPPED, EventHub


def _perf(i):
    return {**EXAMPLES["perf"], "latency_p50_ms": float(i)}


def run(coro):
    return asyncio.run(coro)


def test_ids_are_monotonic_and_the_ring_is_bounded():
    async def go():
        hub = EventHub(ring_size=5)
        assert hub.publish([_perf(i) for i in range(3)]) == [1, 2, 3]
        assert hub.publish([_perf(i) for i in range(4)]) == [4, 5, 6, 7]
        _, replay = hub.subscribe(after=4)
        assert [i for i, _, _ in replay.events] == [5, 6, 7]
        assert hub.stats()["ring"] == 5
    run(go())


def test_replay_from_an_id_has_no_gap_and_no_duplicate():
    async def go():
        hub = EventHub(ring_size=100)
        hub.publish([_perf(i) for i in range(10)])
        sub, replay = hub.subscribe(after=6)
        hub.publish([_perf(i) for i in range(3)])
        live = [sub.queue.get_nowait()[0] for _ in range(sub.queue.qsize())]
        assert [i for i, _, _ in replay.events] + live == list(range(7, 14))
        assert replay.events[0][2].startswith(b"id: 7\nevent: perf\ndata: {")
    run(go())


def test_an_id_older_than_the_ring_gets_a_reset_with_the_snapshot():
    async def go():
        hub = EventHub(ring_size=3)
        hub.publish([EXAMPLES["model_metric"], {**EXAMPLES["model_metric"], "model": "gbt"}])
        hub.publish([_perf(i) for i in range(5)])
        _, replay = hub.subscribe(after=1)
        assert replay.events == [] and replay.reset.last_id == 7
        snap = __import__("json").loads(await hub.state_bytes(replay.reset))["snapshot"]
        assert [m["model"] for m in snap["model_metric"]] == ["gru", "gbt"]    # one per checkpoint
        assert [p["id"] for p in snap["perf"]] == [7] and snap["perf"][0]["latency_p50_ms"] == 4.0
        # An id from another run of the server (ahead of this one) is reset too.
        assert hub.subscribe(after=99)[1].reset is not None
        assert hub.subscribe(after=7)[1] .events == [] and hub.subscribe(after=None)[1].reset is None
    run(go())


def test_history_is_the_current_episode_so_far():
    async def go():
        hub = EventHub()
        start = {k: v for k, v in EXAMPLES["episode"].items() if k not in ("accuracy", "windows")}
        hub.publish([EXAMPLES["prediction"], {**start, "event": "start"}, EXAMPLES["telemetry"],
                     EXAMPLES["perf"], EXAMPLES["prediction"]])
        assert [e["id"] for e in hub.history()] == [3, 5]
    run(go())


def test_a_slow_subscriber_is_dropped_and_never_slows_the_others():
    async def go():
        hub = EventHub(queue_size=4)
        slow, _ = hub.subscribe(None)
        fast, _ = hub.subscribe(None)
        got = []
        for i in range(10):
            hub.publish([_perf(i)])               # never blocks, whatever the slow one does
            while not fast.queue.empty():
                got.append(fast.queue.get_nowait()[0])
        assert got == list(range(1, 11))
        assert slow.dropped and hub.dropped_subscribers == 1 and hub.subscribers == 1
        assert slow.queue.get_nowait() is DROPPED and slow.queue.empty()
    run(go())


def test_close_ends_every_stream():
    async def go():
        hub = EventHub(queue_size=1)
        a, _ = hub.subscribe(None)
        hub.publish([_perf(1)])                     # a's queue is now full
        hub.close()
        assert a.queue.get_nowait() is DROPPED and hub.subscribers == 0
    run(go())


@pytest.mark.parametrize("size", [0, -1])
def test_hub_sizes(size):
    with pytest.raises(ValueError):
        EventHub(ring_size=size)


def _telemetry(i: int, channels: int) -> dict:
    return {"type": "telemetry", "episode_id": "ep", "t_s": float(i),
            "values": {f"guest.channel_{c:04d}": float(c) for c in range(channels)}}


def test_the_ring_is_bounded_in_bytes_not_only_in_count():
    """Regression: 1,400 telemetry events of 250 KB took the server from 60 to
    730 MB; the ring was bounded by count only."""
    hub = EventHub(ring_size=10_000, ring_bytes=200_000)
    for i in range(300):
        hub.publish([_telemetry(i, 400)])            # about 12 kB each
    stats = hub.stats()
    assert stats["ring_bytes"] <= 200_000 and 10 < stats["ring"] < 20
    assert hub._ring[-1][0] == 300                    # the newest kept, the oldest gone


def test_a_late_browsers_history_is_bounded_in_bytes(monkeypatch):
    import core.dashboard.hub as hub_mod
    monkeypatch.setattr(hub_mod, "HISTORY_BYTES", 100_000)
    hub = EventHub()
    hub.publish([{"type": "episode", "event": "start", "episode_id": "ep", "host_id": "h", "profile": "p",
                  "sample_name": "s", "model": "gbt", "mode": "realistic"}])
    for i in range(100):
        hub.publish([_telemetry(i, 400)])
    history = hub.history()
    assert 0 < len(history) < 10 and history[-1]["t_s"] == 99.0
    assert [e["t_s"] for e in history] == sorted(e["t_s"] for e in history)


def test_the_server_s_memory_follows_the_ring_s_bytes():
    """Regression: a 64 MiB ring held about 13 times that (58 -> 868 MB RSS):
    each event was kept parsed (a dict of floats and strings) beside its frame.
    Now only the frame is kept; measured in bench/serve.py."""
    import sys
    hub = EventHub(ring_size=10_000)
    for i in range(2_000):
        hub.publish([_telemetry(i, 40)])
    frames = sum(len(item.frame) for item in hub._ring)
    held = sum(sys.getsizeof(item) + sys.getsizeof(item.frame) + sys.getsizeof(item.type) for item in hub._ring)
    assert held < 1.2 * frames
    assert all(isinstance(item.frame, bytes) and not any(isinstance(x, dict) for x in item) for item in hub._ring)


def test_the_state_is_spliced_from_the_frames_and_encoded_once_per_version(monkeypatch):
    import json

    import core.dashboard.hub as hub_mod
    calls = []
    real = hub_mod.encode_state
    monkeypatch.setattr(hub_mod, "encode_state", lambda parts: calls.append(parts.last_id) or real(parts))

    async def go():
        hub = EventHub()
        hub.publish([EXAMPLES[t] for t in EXAMPLES])
        bodies = await asyncio.gather(*[hub.state_bytes() for _ in range(8)])
        assert len(set(bodies)) == 1 and calls == [hub.last_id]          # eight asked, one encoding
        state = json.loads(bodies[0])
        assert state["last_id"] == hub.last_id
        for kind, example in EXAMPLES.items():
            (got,) = state["snapshot"][kind]
            assert got == {"id": got["id"], **json.loads(json.dumps(example))}
        hub.publish([_perf(1)])
        assert json.loads(await hub.state_bytes())["snapshot"]["perf"][0]["latency_p50_ms"] == 1.0
        assert calls == [hub.last_id - 1, hub.last_id]
    run(go())
