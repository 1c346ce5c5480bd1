"""`cis490 publish`: run the dashboard's producers here and post to a remote dashboard."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cis490cli import options as opt
from cis490cli.state import get_state

app = typer.Typer(help="Run the dashboard's producers on this machine and post their events to a dashboard "
                       "elsewhere (e.g. the lab's Pi): the Pi need not hold eval reports.",
                  no_args_is_help=True)

def _dashboard_url(value: str) -> str:
    """Callback of --to: an http(s) URL with a host (a bare host:port would
    be read as a scheme and retried for minutes)."""
    from urllib.parse import urlsplit
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{value} is not an http(s) URL: write it as http://{value.split('://')[-1]}")
    return value


TO = typer.Option(..., "--to", metavar="URL", callback=_dashboard_url,
                  help="The dashboard, e.g. http://lab-pi.local:8447")
RETRY_FOR = typer.Option(60.0, "--retry-for", min=0.0, metavar="SECONDS",
                         help="Give up once a batch has been retried this long (dashboard down or not there); each "
                              "retry is printed with its error.")


def _retry_printer(state):
    def on_retry(error: str, wait: float) -> None:
        state.terminal.warn(f"dashboard not reached ({error}); retrying in {wait:g} s")
    return on_retry
TOKEN = typer.Option(None, "--token", metavar="TOKEN", envvar="CIS490_TOKEN", show_envvar=True,
                     help="The token `cis490 serve` printed, if it has one (never recorded in the notebook).")


@app.command("metrics")
def metrics(
    ctx: typer.Context,
    to: str = TO,
    token: Optional[str] = TOKEN,
    split: str = typer.Option("host", "--split", metavar="NAME", callback=opt.split_name,
                              help="The split whose eval reports to post, by name."),
    watch: bool = typer.Option(False, "--watch", help="Keep running and post again whenever a report changes."),
    retry_for: float = RETRY_FOR,
) -> None:
    """Post every evaluated model's metrics and per-profile scores (test part).

    Examples:

    \b
        cis490 publish metrics --to http://lab-pi.local:8447 --token TOKEN
        cis490 publish metrics --to http://lab-pi.local:8447 --watch
    """
    from core.live.producers import publish_metrics
    state = get_state(ctx)
    with state.record("publish", {"what": "metrics", "to": to, "split": split, "watch": watch}) as run:
        sent = publish_metrics(state.paths.artifacts, split, to, token, watch, retry_for_s=retry_for,
                               on_retry=_retry_printer(state))
        run.metrics.update(events_posted=sent)
    if state.terminal.json_mode:
        state.terminal.json({"to": to, "events": sent})
    else:
        state.terminal.print(f"Posted {sent} event(s) to {to}")


@app.command("replay")
def replay(
    ctx: typer.Context,
    episodes: str = typer.Argument("all", metavar="all|ID[,ID...]",
                                   help="'all': the split's test part (held-out work); or episode ids."),
    model: str = typer.Option(..., "--model", metavar="NAME", help="The model whose live predictions to show."),
    to: str = TO,
    token: Optional[str] = TOKEN,
    mode: opt.Mode = opt.REPLAY_MODE,
    split: str = opt.REPLAY_SPLIT,
    speed: float = opt.SPEED,
    store: Optional[Path] = opt.STORE,
    once: bool = typer.Option(False, "--once", help="Replay the episodes once, then stop [default: loop]."),
    engine: opt.EngineName = opt.ENGINE,
    channels_shown: Optional[str] = opt.CHANNELS_SHOWN,
    retry_for: float = RETRY_FOR,
) -> None:
    """Replay episodes with live inference here, posting to a remote dashboard.

    Examples:

    \b
        cis490 publish replay all --model gru --to http://lab-pi.local:8447
        cis490 publish replay ep000012-3f2a --model gbt --to http://lab-pi.local:8447 --once
    """
    from core.live.producers import lab_replay, publish_replay
    from core.models import model_class
    model_class(model)                   # the arguments first, then the lab
    state = get_state(ctx)
    prepared = lab_replay(state.read_paths, episodes, model, mode.value, split, store, speed, engine.value,
                          channels_shown)
    prepared.loop = not once
    state.terminal.print(f"Replaying {prepared.describe()}, to {to}" + ("" if once else " (Ctrl-C to stop)"),
                         wrap=False)
    config = {"what": "replay", "to": to, "model": model, "mode": mode.value, "split": split, "speed": speed,
              "episodes": [e for e, _ in prepared.episodes], "loop": not once,
              "source": prepared.source, "channels_shown": prepared.shown}
    with state.record("publish", config) as run:
        sent = publish_replay(prepared, to, token, retry_for_s=retry_for, on_retry=_retry_printer(state))
        run.metrics.update(events_posted=sent)
    if state.terminal.json_mode:
        state.terminal.json({"to": to, "events": sent})
    else:
        state.terminal.print(f"Posted {sent:,} event(s) to {to}")


@app.command("watch")
def watch(
    ctx: typer.Context,
    store: Path = typer.Argument(..., metavar="STORE", help="The receiver store to watch for new episodes."),
    model: str = typer.Option(..., "--model", metavar="NAME", help="The model whose live predictions to show."),
    to: str = TO,
    token: Optional[str] = TOKEN,
    mode: opt.Mode = opt.REPLAY_MODE,
    split: str = opt.REPLAY_SPLIT,
    engine: opt.EngineName = opt.ENGINE,
    retry_for: float = RETRY_FOR,
) -> None:
    """Predict episodes as they land in a store here, posting to a remote dashboard, until Ctrl-C.

    Each new episode is checked by validate's rules first: one they refuse
    is a notice on the page, never predicted.

    Examples:

    \b
        cis490 publish watch /srv/receiver --model gbt --to http://lab-pi.local:8447
    """
    import threading

    from core.live.publish import Publisher
    from core.live.watch import run_watch
    from core.paths import resolve_cli_path
    from core.predict import load_engine
    state = get_state(ctx)
    eng = load_engine(state.read_paths, model, mode.value, split, engine.value)
    root = resolve_cli_path(store, store)
    if not root.is_dir():
        raise typer.BadParameter(f"{root} is not a directory", param_hint="'STORE'")
    config = {"what": "watch", "to": to, "store": str(root), "model": model, "mode": mode.value,
              "split": split, "engine": eng.kind, "source": str(eng.source)}
    state.terminal.print(f"Watching {root} with {model} ({mode.value}, {eng.kind}), posting to {to} "
                         "(Ctrl-C to stop)", wrap=False)
    with state.record("publish", config) as run:
        publisher = Publisher(to, token, threading.Event(), retry_for_s=retry_for, on_retry=_retry_printer(state))
        try:
            run_watch(root, eng, mode.value, publisher, log=state.terminal.print)
        except KeyboardInterrupt:
            publisher.stop.set()
        run.metrics.update(events_posted=publisher.sent)
    if state.terminal.json_mode:
        state.terminal.json({"to": to, "events": publisher.sent})
    else:
        state.terminal.print(f"Posted {publisher.sent:,} event(s) to {to}")
