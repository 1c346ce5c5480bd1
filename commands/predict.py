"""`cis490 predict`: which phase is each window of a run in, for runs nobody labelled."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cis490cli import options as opt
from cis490cli.render_predict import render_predict
from cis490cli.state import get_state


def predict(
    ctx: typer.Context,
    model: str = typer.Argument(..., metavar="MODEL", help="The model: gru (its realistic checkpoint or bundle), "
                                                           "or gru_oracle."),
    episodes: Optional[List[str]] = typer.Argument(None, metavar="[EPISODE_ID]...", help="Episodes to predict."),
    unlabelled: bool = typer.Option(False, "--unlabelled", help="The episodes validate kept as unlabelled that this "
                                                               "model has not predicted yet."),
    again: bool = typer.Option(False, "--again", help="With --unlabelled: every unlabelled episode, the ones "
                                                      "this model predicted already too."),
    every: bool = typer.Option(False, "--all", help="Every readable episode (accepted, degraded, unlabelled)."),
    mode: Optional[opt.Mode] = opt.MODE,
    split: str = opt.REPLAY_SPLIT,
    store: Optional[Path] = opt.STORE,
    engine: opt.EngineName = opt.ENGINE,
) -> None:
    """Predict the phase of every window of episodes, labelled or not.

    Reads the episodes from the store as live inference does (no extract
    needed) and writes per-window predictions, each episode's phase
    timeline (parquet and CSV) and timeline figures under
    artifacts/predict/SPLIT/MODEL_MODE/RUN/.

    Examples:

    \b
        cis490 predict gbt --unlabelled
        cis490 predict minirocket ep000123-1a2b3c4d ep000124-5e6f7a8b
        cis490 predict gru_oracle --all --split sample --engine checkpoint
    """
    from core.evaluate import parse_model_name
    from core.stages import predict_stage
    if again and not unlabelled:
        raise typer.BadParameter("it goes with --unlabelled (episode ids and --all are always predicted).",
                                 param_hint="'--again'")
    name, md = parse_model_name(model, mode.value if mode else None)
    state = get_state(ctx)
    result = predict_stage(state, name, md, split, store, engine.value, list(episodes or []), unlabelled,
                           every, again)
    render_predict(state, result)
