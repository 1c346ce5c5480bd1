"""`cis490 serve --dashboard`: the lab's live dashboard (core/dashboard)."""
from __future__ import annotations

import secrets
from pathlib import Path
from typing import Optional

import typer

from cis490cli import options as opt
from cis490cli.state import get_state


def serve(
    ctx: typer.Context,
    dashboard: bool = typer.Option(False, "--dashboard", help="Serve the live dashboard (the page, /events, "
                                                              "/publish, /api/snapshot)."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Address to listen on; any other than loopback "
                                                         "needs a publish token."),
    port: int = typer.Option(8447, "--port", min=0, max=65535, metavar="PORT", help="Port to listen on."),
    token: Optional[str] = typer.Option(None, "--token", metavar="TOKEN", envvar="CIS490_TOKEN", show_envvar=True,
                                        help="Token producers send as 'Authorization: Bearer TOKEN' [default: "
                                             "none on loopback, else one generated and printed]."),
    ring: int = typer.Option(10_000, "--ring", min=100, metavar="N", help="Recent events kept for reconnecting browsers."),
    replay: Optional[str] = typer.Option(None, "--replay", metavar="all|ID[,ID...]",
                                         help="Replay episodes with live inference: 'all' (the split's test part: "
                                              "held-out work) or episode ids, looping until stopped."),
    model: Optional[str] = typer.Option(None, "--model", metavar="NAME", help="The model whose live predictions "
                                                                              "a replay shows (e.g. gru)."),
    mode: opt.Mode = opt.REPLAY_MODE,
    split: str = opt.REPLAY_SPLIT,
    speed: float = opt.SPEED,
    store: Optional[Path] = opt.STORE,
    engine: opt.EngineName = opt.ENGINE,
    channels_shown: Optional[str] = opt.CHANNELS_SHOWN,
    watch: Optional[Path] = typer.Option(None, "--watch", metavar="STORE",
                                         help="Predict episodes as they land in STORE (with --model), each checked "
                                              "by validate's rules first."),
) -> None:
    """Serve the live dashboard until Ctrl-C.

    Producers POST events to /publish; browsers get them live over one
    Server-Sent-Events stream per tab (docs/dashboard.md).

    Examples:

    \b
        cis490 serve --dashboard
        cis490 serve --dashboard --host 0.0.0.0 --port 8447
        cis490 serve --dashboard --replay all --model gru --speed 10
        cis490 serve --dashboard --watch /srv/receiver --model gbt
    """
    if not dashboard:
        raise typer.BadParameter("nothing to serve: pass --dashboard (the only service so far).",
                                 param_hint="'--dashboard'")
    if replay is not None and watch is not None:
        raise typer.BadParameter("--replay or --watch, not both.", param_hint="'--watch'")
    if token is not None and not token.strip():
        # The server would take only 'Bearer ' and print no token: nobody could publish.
        raise typer.BadParameter("an empty token lets nobody publish; leave --token out (one is generated "
                                 "off loopback) or give one.", param_hint="'--token'")
    if (replay is None and watch is None) != (model is None):
        raise typer.BadParameter("--replay and --model go together (e.g. --replay all --model gru), as do --watch "
                                 "and --model.",
                                 param_hint="'--replay'")
    from core.dashboard.app import create_app
    from core.dashboard.hub import EventHub
    from core.dashboard.server import bind, is_loopback, serve_forever

    state = get_state(ctx)
    term = state.terminal
    prepared = None
    if replay is not None:
        from core.live.producers import lab_replay
        from core.models import model_class
        model_class(model)               # the arguments first, then the lab
        prepared = lab_replay(state.read_paths, replay, model, mode.value, split, store, speed,
                              engine.value, channels_shown)
    engine_loaded = watched = None
    if watch is not None:
        from core.paths import resolve_cli_path
        from core.predict import load_engine
        engine_loaded = load_engine(state.read_paths, model, mode.value, split, engine.value)
        watched = resolve_cli_path(watch, watch)
        if not watched.is_dir():
            raise typer.BadParameter(f"{watched} is not a directory", param_hint="'--watch'")
    if token is None and not is_loopback(host):
        # Reading stays open on the lab network; publishing off loopback never does.
        token = secrets.token_urlsafe(18)
    sock = bind(host, port)
    hub = EventHub(ring_size=ring)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    from core.dashboard.app import LOOPBACK_HOSTS
    # On loopback, only loopback names (DNS rebinding); on the lab network the token guards publishing.
    # The loopback address it listens on is one of them (127.0.0.2 answers its own URL).
    hosts = tuple(dict.fromkeys((*LOOPBACK_HOSTS, host, shown))) if is_loopback(host) else None
    config = {"host": host, "port": sock.getsockname()[1], "ring": ring, "token": token is not None}
    if prepared is not None:
        config["replay"] = {"model": model, "mode": mode.value, "split": split, "speed": speed,
                            "episodes": [e for e, _ in prepared.episodes], "source": prepared.source,
                            "channels_shown": prepared.shown}
    if watched is not None:
        config["watch"] = {"store": str(watched), "model": model, "mode": mode.value, "split": split,
                           "engine": engine_loaded.kind, "source": str(engine_loaded.source)}
    with state.record("serve", config) as run:
        term.print(f"Dashboard: [bold]{url}[/]  (Ctrl-C to stop)", wrap=False)
        term.print(f"Publish: POST {url}publish" + (f"  with 'Authorization: Bearer {token}'" if token else ""), wrap=False)
        port_ = sock.getsockname()[1]
        # A producer posts to this server like any other; a wildcard bind is reached on loopback.
        target = {"0.0.0.0": f"http://127.0.0.1:{port_}", "::": f"http://[::1]:{port_}"}.get(host, url)
        if watched is not None:
            from core.live.watch import WatchThread
            term.print(f"Watching {watched} with {model} ({mode.value}, {engine_loaded.kind})", wrap=False)
            with WatchThread(watched, engine_loaded, mode.value, target, token):
                serve_forever(create_app(hub, token=token, allowed_hosts=hosts), sock)
        elif prepared is None:
            serve_forever(create_app(hub, token=token, allowed_hosts=hosts), sock)
        else:
            from core.live.producers import ReplayThread
            term.print(f"Replaying {prepared.describe()}", wrap=False)
            with ReplayThread(prepared, target, token):
                serve_forever(create_app(hub, token=token, allowed_hosts=hosts), sock)
        run.metrics.update(events_published=hub.published, last_id=hub.last_id,
                           dropped_subscribers=hub.dropped_subscribers)
    if term.json_mode:
        term.json({"url": url, "events_published": hub.published, "dropped_subscribers": hub.dropped_subscribers})
    else:
        term.print(f"Stopped: {hub.published:,} events published.")
