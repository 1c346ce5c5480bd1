"""`cis490 demo`: the whole pipeline on a small synthetic lab, in the lab home."""
from __future__ import annotations

import typer

from cis490cli.state import get_state
from commands.extract import render_extract, run_extract_cmd
from commands.split import render_split, run_split
from commands.synth import render_synth, run_synth
from commands.train import render_train, run_train
from commands.validate import render_validate, run_validate
from core.errors import StoreError
from core.extract import ExtractConfig
from core.split import SplitConfig
from core.registry import load_registry
from core.validate import INDEX_NAME
from core.validate.truth import check_against_truth
from core.synth import SynthConfig, truth_path
from core.parallel import default_workers


# Train on two hosts, test on the two the models never saw.
DEMO_TRAIN_HOSTS = ("lab-thinkpad", "lab-desktop")
DEMO_MODELS = ("gbt", "cnn")


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

        term.rule("2. validate: the acceptance index")
        index = paths.processed / INDEX_NAME
        summary = run_validate(state, load_registry(), store, index, workers)
        render_validate(state, summary)
        check = check_against_truth(index, result.truth, summary.in_flight)
        term.print(f"Agrees with synth's ground truth on {check.agree}/{check.total} episode directories.")
        run.metrics["validation_vs_truth"] = f"{check.agree}/{check.total}"

        term.rule("3. extract: windows, features, tensors")
        registry = load_registry()
        ext = run_extract_cmd(state, registry, store, index, ExtractConfig(), workers)
        render_extract(state, ext)
        run.metrics["windows"] = ext.windows

        term.rule("4. split: held-out hosts")
        sp = run_split(state, SplitConfig("host", DEMO_TRAIN_HOSTS, seed=seed))
        render_split(state, sp)

        term.rule("5. train: gbt and cnn, realistic and oracle")
        trained = run_train(state, registry, list(DEMO_MODELS), ["realistic", "oracle"], "host", {}, "cpu", seed)
        render_train(state, trained)
    term.print("")
    term.print(f"Every step above is a run record in [bold]{paths.notebook}[/]: "
               "see them with `cis490 notebook list`.")
