"""`cis490 compare`: paired bootstrap comparison of models on identical windows."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cis490cli import options as opt
from cis490cli.render import render_compare, render_rotation_compare
from cis490cli.state import get_state


def compare(
    ctx: typer.Context,
    models: List[str] = typer.Argument(..., metavar="MODEL", help="Two or more models, or all: gru (its realistic checkpoint), gbt_oracle, ..."),
    paired_bootstrap: bool = typer.Option(True, "--paired-bootstrap/--unpaired",
                                          help="Score both models on the same resamples (default) or independently."),
    wide: bool = typer.Option(False, "--wide", help="One table with every figure per pair (wider than 80 columns)."),
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
    """Compare models pairwise: macro-F1 gap, its 95% CI and p-value (Holm-adjusted for several pairs).

    Examples:

    \b
        cis490 compare gru gbt --paired-bootstrap
        cis490 compare gru gbt cnn gru_oracle --unit window --wide
    """
    from core.evaluate import resolve_model_names
    from core.extract import features_registry
    state = get_state(ctx)
    cfg = opt.eval_config(split, part, resamples, unit, seed, confirm, min_trust, alpha, slice)
    from core.rotation import folds
    fold_names = folds(state.paths.processed, cfg.split)
    # `all`: every realistic checkpoint of the split (the deployment-relevant ones), or those of --mode.
    # `all` names the models trained on the split (on a rotation: on its first fold).
    named = resolve_model_names(models, state.paths.artifacts, fold_names[0], mode.value if mode else None,
                                every_mode=False)
    registry = features_registry(state.paths.processed, channels)
    from core.stages import compare_stage
    if fold_names != [cfg.split]:
        if not paired_bootstrap:
            raise typer.BadParameter("a rotation is compared paired only.", param_hint="'--unpaired'")
        from core.stages import rotation_compare_stage
        render_rotation_compare(state, rotation_compare_stage(state, registry, named, cfg, fold_names))
        return
    render_compare(state, compare_stage(state, registry, named, cfg, paired_bootstrap), wide)


