"""`cis490 train`: fit models in realistic and/or oracle mode and checkpoint them."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cis490cli import options as opt
from cis490cli.render import render_train
from cis490cli.state import get_state
from core.models import MODELS


def train(
    ctx: typer.Context,
    models: List[str] = typer.Argument(..., metavar="MODEL", help=f"Models to train, or 'all' ({', '.join(MODELS)})."),
    mode: opt.ModeOrBoth = typer.Option(opt.ModeOrBoth.both, "--mode",
                                        help="realistic: deployable channels only; oracle: all; both."),
    split: str = typer.Option("host", "--split", metavar="NAME", callback=opt.split_name,
                              help="Split to train on, by name (see `cis490 split`); checkpoints are kept per split."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, metavar="N",
                                         help="Maximum epochs for neural models [default: 30]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=2, metavar="N",
                                             help="Largest batch for neural models [default: 256; smaller on a "
                                                  "small train part, for enough steps per epoch]."),
    lr: Optional[float] = typer.Option(None, "--lr", metavar="X", callback=opt.positive,
                                       help="Peak learning rate (x>0): neural models [default: 0.002], gbt's "
                                            "learning_rate [default: 0.1]."),
    patience: Optional[int] = typer.Option(None, "--patience", min=1, metavar="N",
                                           help="Neural models: epochs without a better validation score, counted "
                                                "after warm-up [default: 10]."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", min=0.0, metavar="X",
                                                 help="AdamW weight decay for neural models [default: 0.01]; gbt's "
                                                      "L2 reg_lambda [default: 1]."),
    settings: List[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                       help="A model setting, repeatable: --set k=5, --set hidden=128, "
                                            "--set max_depth=8 (docs/models.md lists them)."),
    device: opt.DeviceName = typer.Option(opt.DeviceName.auto, "--device",
                                          help="auto, cpu or cuda (mixed precision on CUDA)."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Random seed: same seed, same validation score on CPU."),
    budget: Optional[str] = typer.Option(None, "--budget", metavar="DURATION", callback=opt.duration,
                                         help="Time each fit may take (30m, 1h30m, 90s): neural models, the ROCKET "
                                              "family and gbt stop there with the best so far, validating at least "
                                              "~10 times within it (--set budget_s=SECONDS too)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted neural fit from its last epoch "
                                                        "(weights, optimiser, schedule, random state), if it "
                                                        "left one."),
    channels: Optional[Path] = opt.CHANNELS,
) -> None:
    """Train models on a split; each model and mode gets a checkpoint and a notebook record.

    Examples:

    \b
        cis490 train gru gbt --mode both
        cis490 train all --split sample --epochs 50
        cis490 train knn --set k=5 --mode realistic
        cis490 train cnn --lr 0.001 --set hidden=128
        cis490 train minirocket cnn --budget 30m
        cis490 train cnn --resume
    """
    from core.extract import features_registry
    from core.lab import modes_of
    from core.train import model_settings, resolve_device
    import sys

    from cis490cli.render import render_trained_line
    state = get_state(ctx)
    # `all` stands for every model, beside any named too (`train all gbt` is all of them).
    names = list(dict.fromkeys(m for given in models for m in (MODELS if given == "all" else [given])))
    chosen = model_settings(names, {"epochs": epochs, "batch_size": batch_size, "lr": lr, "patience": patience,
                                     "weight_decay": weight_decay, "budget": budget}, settings)
    modes = modes_of(mode.value)
    registry = features_registry(state.paths.processed, channels)
    from core.rotation import folds
    from core.stages import train_stage
    done = []

    def finished(result) -> None:
        # Piped to a file, the table would come only at the end (40 minutes of
        # nothing): a line per model as it finishes.
        done.append(result)
        if not sys.stdout.isatty():
            render_trained_line(state, result)
    try:
        # A rotation's name trains every fold (one split per held-out host).
        for fold in folds(state.paths.processed, split):
            train_stage(state, registry, names, modes, fold, chosen, resolve_device(device.value), seed, finished,
                        resume)
    except KeyboardInterrupt:
        if done:              # what finished before Ctrl-C is kept: say so before "interrupted"
            render_train(state, done, interrupted=True)
        raise
    render_train(state, done)


