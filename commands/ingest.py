"""`cis490 ingest`: the day's new runs, validated, extracted and predicted."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cis490cli import options as opt
from cis490cli.render_ingest import render_ingest
from cis490cli.state import get_state
from core.paths import INDEX_NAME, resolve_cli_path


def ingest(
    ctx: typer.Context,
    store: Optional[Path] = typer.Option(None, "--store", metavar="DIR", help="Receiver store [default: the one the "
                                                                             "index was validated from, else "
                                                                             "data/raw/store]."),
    model: Optional[str] = typer.Option(None, "--model", metavar="MODEL",
                                        help="Predict the unlabelled runs with this model (remembered for the next "
                                             "ingest) [default: the one chosen last time; none: no prediction]."),
    mode: Optional[opt.Mode] = typer.Option(None, "--mode", help="The model's mode [default: as chosen last time, "
                                                                 "else realistic]."),
    split: Optional[str] = typer.Option(None, "--split", metavar="NAME", callback=opt.split_name,
                                        help="The split the model was trained on [default: as chosen last time, "
                                             "else host]."),
    engine: Optional[opt.EngineName] = typer.Option(None, "--engine", help="bundle, checkpoint or auto (a bundle "
                                                                           "when there is one) [default: auto]."),
    workers: int = opt.WORKERS,
    channels: Optional[Path] = opt.CHANNELS,
) -> None:
    """Take in the runs that landed: validate them, extract them, predict the unlabelled ones.

    Only the new work is done: validate re-checks what changed since the
    last index, extract adds the new runs beside the old ones, and predict
    reads only the unlabelled runs the model has not read yet. One table
    says what each step did.

    Examples:

    \b
        cis490 ingest --store /srv/receiver --model gbt
        cis490 ingest                      # the next day: the same store and model
    """
    from core.validate import indexed_store
    state = get_state(ctx)
    paths = state.paths
    index = paths.processed / INDEX_NAME
    if store is not None:
        given = resolve_cli_path(store, store)
        if not given.is_dir():
            raise typer.BadParameter(f"{given}: no such folder", param_hint="'--store'")
    where = resolve_cli_path(store, indexed_store(index) or paths.default_store)
    if model is not None:
        from core.evaluate import parse_model_name
        from core.models import model_class
        name, md = parse_model_name(model, mode.value if mode else None)
        model_class(name)                      # an unknown name fails before anything runs
        model, mode_value = name, md
    else:
        mode_value = mode.value if mode else None
    from core.stages import ingest_stage
    result = ingest_stage(state, where, index, channels, workers, model, mode_value, split,
                          engine.value if engine else None)
    render_ingest(state, result)
