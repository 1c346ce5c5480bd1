"""Posting events to a dashboard (`POST /publish`), in order, retrying with
backoff while the server is down or starting: what every producer uses,
whether it runs beside the server or on another machine."""
from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from typing import Callable
from urllib.parse import urlsplit

from core.errors import Cis490Error

BACKOFF_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)     # then 5 s between tries


class PublishError(Cis490Error):
    """The dashboard refused the events (a bad token or an event off its schema)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status      # the HTTP status of a refusal; None: gave up retrying


class Publisher:
    """Sends batches one at a time and returns only once a batch is delivered,
    so events arrive in the order they were sent; a server that is down or not
    yet started is retried (BACKOFF_S), a refusal (4xx) is an error."""

    def __init__(self, url: str, token: str | None = None, stop: threading.Event | None = None,
                 timeout_s: float = 10.0, retry_for_s: float | None = None,
                 on_retry: Callable[[str, float], None] | None = None):
        self.url = url.rstrip("/") + "/publish"
        self.token = token
        self.stop = stop or threading.Event()
        self.timeout_s = timeout_s
        # None: retry until stopped (a live replay waits for its dashboard);
        # else give up once a batch has been retried this long.
        self.retry_for_s = retry_for_s
        self.on_retry = on_retry
        self.sent = 0
        self.retries = 0

    def send(self, events: list[dict]) -> bool:
        """True once delivered; False if stopped before it could be."""
        body = json.dumps(events).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        attempt = 0
        started = time.monotonic()
        while not self.stop.is_set():
            # One deadline for the whole attempt (connect, send, the response
            # read to its end), within what is left of --retry-for: a server
            # dripping its answer a byte at a time never holds a send longer.
            limit = self.timeout_s
            if self.retry_for_s is not None:
                limit = max(0.1, min(limit, self.retry_for_s - (time.monotonic() - started)))
            try:
                status, detail = post(self.url, body, headers, limit)
                if status < 300:
                    self.sent += len(events)
                    return True
                if 400 <= status < 500:
                    raise PublishError(f"{self.url} refused the events ({status}): {detail}", status)
                error = f"HTTP {status}"
            except (ConnectionError, TimeoutError, OSError, http.client.HTTPException) as exc:
                error = str(exc) or type(exc).__name__
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            waited = time.monotonic() - started
            if self.retry_for_s is not None and waited + wait > self.retry_for_s:
                raise PublishError(f"{self.url}: gave up after {waited:.0f} s of retries (--retry-for "
                                   f"{self.retry_for_s:g}): {error}")
            if self.on_retry is not None:
                self.on_retry(error, wait)
            self.retries += 1
            self.stop.wait(wait)
            attempt += 1
        return False

    def wait_s(self, seconds: float) -> bool:
        """Sleep, unless stopped first (True when stopped)."""
        return self.stop.wait(max(0.0, seconds))


def post(url: str, body: bytes, headers: dict, deadline_s: float) -> tuple[int, str]:
    """POST and read the response whole within `deadline_s` in all: (status,
    the start of its body). A socket timeout bounds each read, not their sum;
    here the request runs in a thread and its socket is shut when the
    deadline passes, whatever the server does (TimeoutError)."""
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=deadline_s)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    result: dict = {}

    def run() -> None:
        try:
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            result["status"] = response.status
            result["detail"] = response.read(64 * 1024).decode(errors="replace").strip()[:300]
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            result["error"] = exc
    worker = threading.Thread(target=run, daemon=True, name="cis490-post")
    worker.start()
    worker.join(deadline_s)
    if worker.is_alive():
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        conn.close()
        worker.join(1.0)
        raise TimeoutError(f"no whole response within {deadline_s:.1f} s")
    conn.close()
    if "error" in result:
        raise result["error"]
    return result["status"], result["detail"]


def paced(publisher: Publisher, events, speed: float, clock=time.monotonic):
    """Send (t_s, event) pairs at `speed` times their episode time; yields the
    seconds each event took to produce (the generator's own work) with it."""
    start = clock()
    it = iter(events)
    while True:
        t0 = clock()
        item = next(it, None)
        took = clock() - t0
        if item is None:
            return
        t, event = item
        if publisher.wait_s(start + t / speed - clock()):
            return
        if not publisher.send([event]):
            return
        yield event, took


class ProducerThread:
    """A producer posting to a dashboard from a daemon thread (the replay, the
    watch), stopped and joined on exit; an error ends it with one line on
    stderr and is kept in `error` for the command to report."""

    def __init__(self, url: str, token: str | None, what: str, run: Callable[[Publisher], None]):
        self.stop = threading.Event()
        self.publisher = Publisher(url, token, self.stop)
        self.error: BaseException | None = None
        self.what = what
        self.thread = threading.Thread(target=self._run, args=(run,), daemon=True, name=f"cis490-{what}")

    def _run(self, run: Callable[[Publisher], None]) -> None:
        try:
            run(self.publisher)
        except BaseException as exc:  # noqa: BLE001 - reported by the command once the server stops
            self.error = exc
            os.write(2, f"Error: {self.what} stopped: {exc}\n".encode())

    def __enter__(self) -> "ProducerThread":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
