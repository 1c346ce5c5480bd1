"""Dashboard fan-out: events/s to 20 subscribers, publish-to-receive latency,
gapless ids, server memory; then the same with one frozen subscriber; then
the server's memory as its ring fills, and publishing while clients loop
on snapshots (issue 32).

    .venv/bin/python bench/serve.py [--subscribers 20] [--rate 2500] [--seconds 10]

The server is a real `cis490 serve --dashboard` process on 127.0.0.1 (its RSS
is read from /proc); a publisher process POSTs batches of `perf` events
stamped with `sent_at`; the subscribers are raw-socket SSE clients in this
process (asyncio), which check that their ids are gapless. The frozen
subscriber connects, asks for /events and never reads again. Bounded: every
run lasts --seconds plus a few of start-up.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._measure import rss_mb  # noqa: E402

ID = re.compile(rb"^id: (\d+)$", re.M)
SENT = re.compile(rb'"sent_at":([0-9.e+]+)')


def publisher(url: str, rate: int, seconds: float, batch: int, out) -> None:
    """POSTs `batch` events at a time, paced to `rate`, on one keep-alive
    connection; each request goes out in one write with TCP_NODELAY (a client
    that writes headers and body separately waits on the server's delayed ACK,
    ~40 ms a request, and measures that instead of the server)."""
    import json
    host, port = url.removeprefix("http://").split(":")
    ev = {"type": "perf", "latency_p50_ms": 1.0, "latency_p99_ms": 2.0, "windows_per_s": 1.0, "rss_mb": 1.0,
          "cpu_percent": 1.0}
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rb")
    sent = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        pause = t0 + sent / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        body = json.dumps([{**ev, "sent_at": time.time()}] * batch).encode()
        sock.sendall(b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        status = f.readline()
        length = 0
        while (line := f.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        f.read(length)
        if b" 200 " not in status:
            raise SystemExit(f"publish failed: {status!r}")
        sent += batch
    out.put((sent, time.perf_counter() - t0))
    sock.close()


async def subscriber(host: str, port: int, stop: asyncio.Event, stats: dict) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    await writer.drain()
    buf = b""
    last = None
    lat = stats["latency"]
    while not stop.is_set():
        try:
            chunk = await asyncio.wait_for(reader.read(1 << 16), 0.2)
        except asyncio.TimeoutError:
            continue
        if not chunk:
            break
        now = time.time()
        buf += chunk
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            continue
        block, buf = buf[:cut], buf[cut + 2:]
        ids = [int(x) for x in ID.findall(block)]
        if ids:
            if last is not None and ids[0] != last + 1:
                stats["gaps"] += 1
            if any(b - a != 1 for a, b in zip(ids, ids[1:])):
                stats["gaps"] += 1
            last = ids[-1]
            stats["received"] += len(ids)
            # Latency of a sample of each block (the newest event), to keep the client light.
            m = SENT.findall(block[-400:])
            if m:
                lat.append(now - float(m[-1]))
    writer.close()


def frozen_subscriber(host: str, port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    s.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return s


def run(n_subs: int, rate: int, seconds: float, frozen: bool) -> dict:
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.Popen([sys.executable, "-c", "from cis490cli.app import main; main()", "--home", home,
                                 "serve", "--dashboard", "--port", "0"], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
        url = re.search(r"(http://\S+)/", proc.stdout.readline()).group(1)
        host, port = url.removeprefix("http://").split(":")
        port = int(port)
        time.sleep(0.5)
        rss_start = rss_mb(proc.pid)
        frozen_sock = frozen_subscriber(host, port) if frozen else None
        stats = [{"received": 0, "gaps": 0, "latency": []} for _ in range(n_subs)]
        q = multiprocessing.get_context("spawn").Queue()

        async def main() -> tuple[int, float]:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(subscriber(host, port, stop, s)) for s in stats]
            await asyncio.sleep(1.0)
            pub = multiprocessing.get_context("spawn").Process(target=publisher, args=(url, rate, seconds, 25, q))
            pub.start()
            while pub.is_alive():
                await asyncio.sleep(0.1)
            sent, took = q.get()
            deadline = time.monotonic() + 5
            while min(s["received"] for s in stats) < sent and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*tasks)
            return sent, took

        sent, took = asyncio.run(main())
        rss_end = rss_mb(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        if frozen_sock is not None:
            frozen_sock.close()
    lat = np.array([x for s in stats for x in s["latency"]]) * 1000
    return {"sent": sent, "publish_rate": sent / took, "delivered_min": min(s["received"] for s in stats),
            "deliveries_per_s": sum(s["received"] for s in stats) / took, "gaps": sum(s["gaps"] for s in stats),
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
            "rss_start": rss_start, "rss_end": rss_end}


def _serve(home: str, *args: str):
    proc = subprocess.Popen([sys.executable, "-c", "from cis490cli.app import main; main()", "--home", home,
                             "serve", "--dashboard", "--port", "0", *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    url = re.search(r"(http://\S+)/", proc.stdout.readline()).group(1)
    time.sleep(0.5)
    return proc, url


def ring_memory(event_kb: int = 24) -> dict:
    """The server's RSS growth while its ring fills to RING_BYTES with
    telemetry events of about `event_kb` (the issue-32 audit: 58 -> 868 MB
    for a 64 MiB ring), against the ring's own bytes (/healthz)."""
    import json

    import httpx
    values = {f"guest.c{i:04d}": 12345.678 + i for i in range(event_kb * 1024 // 26)}
    with tempfile.TemporaryDirectory() as home:
        proc, url = _serve(home)
        try:
            before = rss_mb(proc.pid)
            with httpx.Client(timeout=30) as c:
                for i in range(4000):
                    c.post(url + "/publish", content=json.dumps(
                        [{"type": "telemetry", "episode_id": "ep", "t_s": float(i), "values": values}]))
                stats = c.get(url + "/healthz").json()
            after = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
    ring = stats["ring_bytes"] / 2 ** 20
    return {"rss_before": before, "rss_after": after, "ring_mb": ring, "events": stats["ring"],
            "ratio": (after - before) / ring}


def snapshot_load(clients: int = 4, publishes: int = 200) -> dict:
    """Publish latency (p50, p99) and /healthz while `clients` loop on
    /api/snapshot of a full snapshot and history, against none looping."""
    import json
    import threading

    import httpx
    big = {"type": "telemetry", "episode_id": "ep", "t_s": 0.0,
           "values": {f"guest.c{i:04d}": float(i) for i in range(900)}}
    start = {"type": "episode", "event": "start", "episode_id": "ep", "host_id": "h", "profile": "rat",
             "sample_name": "s", "model": "gbt", "mode": "realistic"}
    out = {}
    with tempfile.TemporaryDirectory() as home:
        proc, url = _serve(home)
        try:
            pred = {"type": "prediction", "episode_id": "ep", "t_center_s": 0.0, "predicted": "idle", "trust": 0.5,
                    "probabilities": {"idle": 0.5, "execute": 0.1, "persist": 0.1, "beacon": 0.1, "act": 0.1,
                                      "dormant": 0.1}, "model": "gbt", "mode": "realistic"}
            with httpx.Client(timeout=30) as c:
                # A late browser's history at its bound: the episode's 2,000 latest
                # predictions and telemetry (the issue-32 audit's four looping clients).
                c.post(url + "/publish", content=json.dumps([start] + [{**big, "t_s": float(i)} for i in range(100)]))
                for k in range(8):
                    c.post(url + "/publish", content=json.dumps([{**pred, "t_center_s": float(k * 250 + i)}
                                                                 for i in range(250)]))
            for n in (0, clients):
                stop = threading.Event()

                def loop():
                    with httpx.Client(timeout=30) as c:
                        while not stop.is_set():
                            c.get(url + "/api/snapshot")
                threads = [threading.Thread(target=loop) for _ in range(n)]
                for t in threads:
                    t.start()
                took, health = [], []
                with httpx.Client(timeout=30) as c:
                    for i in range(publishes):
                        t0 = time.perf_counter()
                        c.post(url + "/publish", content=json.dumps({"type": "perf", "latency_p50_ms": 1.0,
                                                                     "latency_p99_ms": 2.0, "windows_per_s": 1.0,
                                                                     "rss_mb": float(i), "cpu_percent": 1.0}))
                        took.append(time.perf_counter() - t0)
                        if i % 20 == 0:
                            t0 = time.perf_counter()
                            c.get(url + "/healthz")
                            health.append(time.perf_counter() - t0)
                stop.set()
                for t in threads:
                    t.join()
                out[n] = {"p50_ms": float(np.percentile(took, 50)) * 1000, "p99_ms": float(np.percentile(took, 99)) * 1000,
                          "healthz_max_ms": max(health) * 1000}
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
    return out


def show(label: str, r: dict, n: int) -> None:
    print(f"{label}: {r['publish_rate']:,.0f} events/s published, each of {n} subscribers got "
          f"{r['delivered_min']:,}/{r['sent']:,} ({r['deliveries_per_s']:,.0f} deliveries/s in all), "
          f"gaps {r['gaps']}, latency p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms, "
          f"server RSS {r['rss_start']:.0f} -> {r['rss_end']:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=20)
    ap.add_argument("--rate", type=int, default=2500)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    base = run(args.subscribers, args.rate, args.seconds, frozen=False)
    show("baseline", base, args.subscribers)
    froz = run(args.subscribers, args.rate, args.seconds, frozen=True)
    show("with a frozen subscriber", froz, args.subscribers)
    for key in ("publish_rate", "p50_ms", "p99_ms", "rss_end"):
        print(f"  frozen/baseline {key}: {froz[key] / base[key]:.2f}x")
    mem = ring_memory()
    print(f"ring filled: {mem['events']:,} events, {mem['ring_mb']:.1f} MiB of frames; server RSS "
          f"{mem['rss_before']:.0f} -> {mem['rss_after']:.0f} MB: {mem['ratio']:.2f} MB of memory per MiB of ring "
          "(issue 32's goal: the server's memory follows the ring's bytes)")
    load = snapshot_load()
    quiet, busy = load[0], load[max(load)]
    print(f"publish while {max(load)} clients loop on /api/snapshot: p50 {busy['p50_ms']:.1f} ms, p99 "
          f"{busy['p99_ms']:.1f} ms, /healthz at most {busy['healthz_max_ms']:.0f} ms (none looping: p50 "
          f"{quiet['p50_ms']:.1f} ms, p99 {quiet['p99_ms']:.1f} ms; p99 ratio {busy['p99_ms'] / quiet['p99_ms']:.1f}x)")


if __name__ == "__main__":
    main()
