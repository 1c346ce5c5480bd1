"""Running the dashboard: uvicorn on the main thread for `cis490 serve`, on a
thread for tests and benchmarks. Both bind the socket themselves, so a port
in use is one clear error instead of uvicorn's log line and exit."""
from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time

from core.errors import Cis490Error

# Open SSE streams would otherwise hold a shutdown forever (and make Ctrl-C
# need pressing twice): streams are ended on shutdown, and anything left is
# cut after this many seconds.
GRACEFUL_S = 1.5


class ServeError(Cis490Error):
    """The dashboard cannot be served as asked."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: a response's headers and body go out at
    # once, instead of the body waiting ~40 ms on the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port or --host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _ShutdownCut(logging.Filter):
    """After Ctrl-C, a frozen client's stream (blocked in a send) is cut when
    the grace period ends: intended, and uvicorn's two ERROR lines about it
    would read as a failure. Only those two, only once shutdown has begun."""
    NOISE = ("ASGI callable returned without completing response", "timeout graceful shutdown exceeded")

    def __init__(self, server):
        super().__init__()
        self.server = server

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.server.should_exit and any(n in record.getMessage() for n in self.NOISE))


def _close_streams(app) -> None:
    loop = getattr(app.state, "loop", None)
    if loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(app.state.hub.close)


# A connection must send a whole request head within this; and no more than
# MAX_CONNECTIONS are held at once (a Pi has 1,024 open files): slow or idle
# clients were never closed, and 1,100 of them left the server no file to open.
HEADER_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 512


def guarded_protocol():
    """uvicorn's h11 protocol with a request-head timeout and a connection
    cap, which uvicorn does not have (its keep-alive timeout starts only
    after a first response). Beyond the cap a new connection is closed at once."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Guarded(H11Protocol):
        _head_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > MAX_CONNECTIONS:
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and (self.cycle is None
                                                                      or self.cycle.response_complete):
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self._arm()                     # a new request head begins: it has HEADER_TIMEOUT_S
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before:
                self._disarm()                  # its head is whole

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return Guarded


def _server(app, sock: socket.socket):
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            # Ctrl-C ends every SSE stream first, so that shutdown need not wait for browsers.
            _close_streams(app)
            super().handle_exit(sig, frame)

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=GRACEFUL_S, timeout_keep_alive=5,
                            http=guarded_protocol(), limit_concurrency=MAX_CONNECTIONS)
    server = Server(config)
    server.cut_filter = _ShutdownCut(server)
    logging.getLogger("uvicorn.error").addFilter(server.cut_filter)
    return server


def _forget(server) -> None:
    logging.getLogger("uvicorn.error").removeFilter(server.cut_filter)


def serve_forever(app, sock: socket.socket) -> None:
    """Serve on the main thread until Ctrl-C or SIGTERM, then shut down
    gracefully. uvicorn re-raises the signal it caught once it has stopped;
    that is the normal way to stop a server, not an interruption of work."""
    server = _server(app, sock)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        _forget(server)
        sock.close()


class ThreadedServer:
    """The app on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self.sock = bind(host, port)
        self.server = _server(app, self.sock)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ServeError("the dashboard server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        _close_streams(self.app)
        self.server.should_exit = True
        self.thread.join(timeout=10)
        _forget(self.server)
        self.sock.close()

    def __exit__(self, *exc) -> None:
        self.stop()
