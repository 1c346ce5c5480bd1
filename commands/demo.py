"""`cis490 demo`: the whole pipeline on a small synthetic lab, in the lab home."""
from __future__ import annotations

import typer

from cis490cli.state import get_state
from commands.synth import render_synth, run_synth
from core.errors import StoreError
from core.synth import SynthConfig, truth_path
from core.parallel import default_workers


def demo(
    ctx: typer.Context,
    episodes: int = typer.Option(120, "--episodes", help="Episodes in the demo store."),
    duration: float = typer.Option(180.0, "--duration", help="Mean episode length in seconds."),
    seed: int = typer.Option(7, "--seed", help="Random seed."),
    workers: int = typer.Option(default_workers(), "--workers", "-j", help="Worker processes."),
) -> None:
    """Run the pipeline end to end on a small synthetic store (synth, then each later stage)."""
    state = get_state(ctx)
    term = state.terminal
    paths = state.paths
    store = paths.default_store
    # Never overwrite a real store: only one that synth made (it has a ground truth beside it).
    if store.exists() and any(store.iterdir()) and not truth_path(store).exists():
        raise StoreError(f"{store}: holds a store that synth did not make; run the demo in another --home")
    cfg = SynthConfig(episodes=episodes, duration_s=duration, seed=seed)
    cfg.check()
    with state.record("demo", {"episodes": episodes, "duration_s": duration, "seed": seed}) as run:
        term.rule("1. synth: a synthetic lab store")
        result = run_synth(state, cfg, store, workers, force=True)
        render_synth(state, result)
        run.metrics["episodes"] = result.episodes
    term.print("")
    term.print(f"Every step above is a run record in [bold]{paths.notebook}[/]: "
               "see them with `cis490 notebook list`.")
