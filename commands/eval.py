"""`cis490 eval`: score checkpoints with bootstrap confidence intervals."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cis490cli import options as opt
from cis490cli.render import render_eval, render_rotation_eval
from cis490cli.state import get_state


def eval_cmd(
    ctx: typer.Context,
    models: List[str] = typer.Argument(..., metavar="MODEL", help="Models (or all): a bare name (gru) is its realistic checkpoint; "
                                                 "gru_oracle the other."),
    mode: Optional[opt.Mode] = opt.MODE,
    split: str = opt.SPLIT,
    part: opt.PartName = opt.PART,
    resamples: int = opt.RESAMPLES,
    unit: opt.UnitName = opt.UNIT,
    seed: int = opt.BOOT_SEED,
    confirm: int = opt.CONFIRM,
    min_trust: float = opt.MIN_TRUST,
    alpha: float = opt.ALPHA,
    slice: Optional[str] = opt.SLICE,
    channels: Optional[Path] = opt.CHANNELS,
) -> None:
    """Score checkpoints on a split: macro-F1 with a bootstrap CI, per class, profile and host.

    Examples:

    \b
        cis490 eval gru gbt_oracle
        cis490 eval all --split sample --unit window
    """
    from core.evaluate import resolve_model_names
    from core.extract import features_registry
    state = get_state(ctx)
    cfg = opt.eval_config(split, part, resamples, unit, seed, confirm, min_trust, alpha, slice)
    from core.rotation import folds
    fold_names = folds(state.paths.processed, cfg.split)
    # `all` names the models trained on the split (on a rotation: on its first fold).
    named = resolve_model_names(models, state.paths.artifacts, fold_names[0], mode.value if mode else None,
                                every_mode=True)
    registry = features_registry(state.paths.processed, channels)
    from core.stages import eval_stage, rotation_eval_stage
    if fold_names != [cfg.split]:
        # A rotation: every fold scored, then the report across them.
        rotations = [rotation_eval_stage(state, registry, model, md, cfg, fold_names) for model, md in named]
        render_rotation_eval(state, rotations)
        return
    results = [eval_stage(state, registry, model, md, cfg) for model, md in named]
    render_eval(state, results)


