"""Dashboard fan-out: events/s to 20 subscribers, publish-to-receive latency,
gapless ids, server memory; then the same with one frozen subscriber.

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
        sock.sendall(b"POST /publish HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
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
    writer.write(b"GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
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
    s.sendall(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
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


if __name__ == "__main__":
    main()
