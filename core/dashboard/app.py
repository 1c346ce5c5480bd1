"""The dashboard's web app (Starlette): the page, one SSE stream per tab,
publishing, the snapshot and a health check. `commands/serve.py` only wires
options; `core.dashboard.server` runs it.

    GET  /               the page (package data; no request leaves the server)
    GET  /events         every event type on one Server-Sent-Events stream
    POST /publish        one event or a list (validated; all or nothing)
    GET  /api/snapshot   the latest state per type, the current episode so far, the last id
    GET  /healthz        liveness and the hub's counters
"""
from __future__ import annotations

import asyncio
import hmac
import json
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from core.dashboard.events import EventError, validate
from core.dashboard.hub import DROPPED, MAX_EVENT_BYTES, EventHub

STATIC = Path(__file__).with_name("static")
MAX_BODY = 256 * 1024
BODY_TIMEOUT_S = 10.0
BATCH_FRAMES = 256
# The page is our own files only: no inline script, no other origin (the Pi
# may be offline, and a page on the lab network must not be a way in).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class SecurityHeaders:
    """Adds the Content-Security-Policy (and friends) to every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [
                    (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer")]
            await send(message)
        await self.app(scope, receive, with_headers)


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


# The names a loopback server answers to: any other Host header is a page of
# another site whose name was made to resolve to 127.0.0.1 (DNS rebinding).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def create_app(hub: EventHub | None = None, token: str | None = None, ping_s: float = 15.0,
               send_timeout_s: float = 10.0, max_body: int = MAX_BODY,
               allowed_hosts: tuple[str, ...] | None = None) -> Starlette:
    """`allowed_hosts`: the Host names served (others get 400), e.g.
    LOOPBACK_HOSTS for a server on 127.0.0.1; None serves any."""
    hub = hub or EventHub()

    async def page(request: Request):
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def events(request: Request):
        try:
            after = _after(request)
        except ValueError as exc:
            return _error(400, str(exc))
        sub, replay = hub.subscribe(after)

        async def stream():
            try:
                # Browsers reconnect after 1 s (instead of ~3 s) when a stream ends.
                yield b"retry: 1000\n\n"
                if replay.reset is not None:
                    body = await hub.state_bytes(replay.reset)
                    yield b"id: %d\nevent: reset\ndata: %s\n\n" % (replay.reset.last_id, body)
                for item in replay.events:
                    yield item.frame
                    # A long backlog to a client that has gone must not starve the loop.
                    await asyncio.sleep(0)
                while True:
                    item = await sub.queue.get()
                    if item is DROPPED:
                        return
                    frames = [item.frame]
                    while len(frames) < BATCH_FRAMES and not sub.queue.empty():
                        item = sub.queue.get_nowait()
                        if item is DROPPED:
                            yield b"".join(frames)
                            return
                        frames.append(item.frame)
                    yield b"".join(frames)
            finally:
                hub.unsubscribe(sub)
        # On shutdown the hub ends every stream (core.dashboard.server); the grace
        # period lets each finish its response cleanly instead of being cut.
        return EventSourceResponse(stream(), ping=ping_s, send_timeout=send_timeout_s, shutdown_grace_period=1.0,
                                   headers={"Cache-Control": "no-store"})

    async def publish(request: Request):
        # A web page of another site open in the researcher's browser can POST
        # text/plain here without a preflight; the browser names its origin.
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
            return _error(403, f"publishing from a web page of another origin ({origin[:80]}) is refused")
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _error(401, "publishing needs 'Authorization: Bearer <token>' (printed by `cis490 serve`)")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return _error(413, f"body over {max_body:,} bytes")
        body = bytearray()
        try:
            # A body dripped a byte at a time would hold its connection for good.
            async with asyncio.timeout(BODY_TIMEOUT_S):
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > max_body:
                        return _error(413, f"body over {max_body:,} bytes")
        except TimeoutError:
            return _error(408, f"body not received whole within {BODY_TIMEOUT_S:g} s")
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, f"body: not JSON ({exc})")
        except RecursionError:
            return _error(400, "body: JSON nested too deeply")
        batch = doc if isinstance(doc, list) else [doc]
        if not batch:
            return _error(400, "body: an empty list publishes nothing")
        try:
            # Every event is checked before any is published: all or nothing.
            checked = [validate(ev, f"event[{i}]" if isinstance(doc, list) else "event") for i, ev in enumerate(batch)]
        except EventError as exc:
            return _error(400, str(exc))
        except RecursionError:
            return _error(400, "event: nested too deeply")
        for i, ev in enumerate(checked):
            size = len(json.dumps(ev, separators=(",", ":")))
            if size > MAX_EVENT_BYTES:
                where = f"event[{i}]" if isinstance(doc, list) else "event"
                return _error(413, f"{where}: {size:,} bytes, over the {MAX_EVENT_BYTES:,}-byte limit of one event")
        return JSONResponse({"ids": hub.publish(checked)})

    async def snapshot(request: Request):
        # Gathered on the loop (references only, bounded by SNAPSHOT_SLOTS and
        # HISTORY_BYTES), joined in a thread once per ring version.
        return Response(await hub.state_bytes(), media_type="application/json")

    async def no_icon(request: Request):
        return Response(status_code=204)

    async def healthz(request: Request):
        return JSONResponse({"ok": True, **hub.stats()})

    @asynccontextmanager
    async def lifespan(app):
        app.state.loop = asyncio.get_running_loop()   # for closing streams from another thread
        yield
        hub.close()

    app = Starlette(routes=[
        Route("/", page), Route("/events", events), Route("/publish", publish, methods=["POST"]),
        Route("/api/snapshot", snapshot), Route("/healthz", healthz), Route("/favicon.ico", no_icon),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ], lifespan=lifespan)
    app.state.hub = hub
    app.add_middleware(SecurityHeaders)
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app


MAX_ID_DIGITS = 18       # an event id is an int64; anything longer is not one


def _after(request: Request) -> int | None:
    """The last id the client holds: the browser's Last-Event-ID on a
    reconnect, else `?after=` (the page passes its snapshot's last_id).
    ValueError (a 400) for one that is no id: `?after=²` is a digit to
    Python's isdigit and no integer to int()."""
    for name, raw in (("Last-Event-ID", request.headers.get("last-event-id")),
                      ("after", request.query_params.get("after"))):
        if raw is None or raw.strip() == "":
            continue
        text = raw.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS):
            raise ValueError(f"{name}: not an event id ({text[:20]!r}): a whole number of at most "
                             f"{MAX_ID_DIGITS} digits")
        return int(text)
    return None
