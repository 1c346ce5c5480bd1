"""`cis490 split`: held-out host, sample or time splits."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cis490cli import options as opt
from cis490cli.render import render_rotation, render_split
from cis490cli.state import get_state


def split(
    ctx: typer.Context,
    recipe: Optional[opt.SplitName] = typer.Option(None, "--recipe", help="host: held-out hosts; sample: held-out "
                                                                        "samples; time: held-out latest episodes."),
    train_hosts: Optional[List[str]] = typer.Option(None, "--train-hosts", metavar="HOST[,HOST...]",
                                                    help="Hosts to train on (host recipe); repeat or comma-separate."),
    val_frac: float = typer.Option(0.2, "--val-frac", metavar="FRACTION", callback=opt.open_fraction,
                                   help="Fraction of the training pool kept for validation."),
    test_frac: Optional[float] = typer.Option(None, "--test-frac", metavar="FRACTION", callback=opt.open_fraction,
                                              help="Fraction held out for test (sample, time) [default: 0.2]."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Random seed."),
    max_share: float = typer.Option(0.1, "--max-episode-share", metavar="FRACTION", min=0.001, max=1.0,
                                    help="No episode weighs more than this share of the windows models fit and "
                                         "choose on (train, val): the rest of a longer one is left out."),
    name: Optional[str] = typer.Option(None, "--name", metavar="NAME", callback=opt.split_name,
                                       help="Keep it under this name, beside the others [default: the recipe's]; "
                                            "commands take it as --split NAME."),
    rotate: bool = typer.Option(False, "--rotate", help="Leave-one-host-out (host recipe): one split per host, "
                                                        "named host-out-HOST, together the rotation host-rotation."),
    force: bool = typer.Option(False, "--force", help="Replace a split of this name that holds other episodes "
                                                      "even though checkpoints, evaluations or bundles were made "
                                                      "on it (they go stale) [default: ask on a terminal, else "
                                                      "refuse]."),
    extend: Optional[str] = typer.Option(None, "--extend", metavar="NAME", callback=opt.split_name,
                                         help="Add the extracted episodes split NAME lacks, by its own recipe, "
                                              "as its next version: what was made on it stays usable."),
    channels: Optional[Path] = opt.CHANNELS,
) -> None:
    """Split extracted episodes into train/val/test, with every invariant checked.

    Examples:

    \b
        cis490 split --recipe host --train-hosts lab-thinkpad,lab-desktop
        cis490 split --recipe time --test-frac 0.25
        cis490 split --recipe host --train-hosts lab-nuc --name host-nuc
        cis490 split --recipe host --rotate
        cis490 split --extend host
    """
    state = get_state(ctx)
    if extend is not None:
        given = [o for o, v in (("--recipe", recipe), ("--train-hosts", train_hosts), ("--test-frac", test_frac),
                                ("--name", name)) if v] + (["--rotate"] if rotate else [])
        if given:
            raise typer.BadParameter(f"a split is extended by its own recipe and parameters: no {given[0]}.",
                                     param_hint="'--extend'")
        from core.extract import features_registry
        from core.stages import extend_stage
        registry = features_registry(state.paths.processed, channels)
        render_split(state, extend_stage(state, registry, extend))
        return
    if recipe is None:
        raise typer.BadParameter("name the recipe (host, sample or time), or pass --extend NAME to add new "
                                 "episodes to a split.", param_hint="'--recipe'")
    hosts = tuple(h.strip() for arg in (train_hosts or []) for h in arg.split(",") if h.strip())
    # An option the recipe would ignore is refused: the user meant something by it.
    if recipe != opt.SplitName.host and train_hosts:
        raise typer.BadParameter(f"the {recipe.value} recipe does not use it (only --recipe host does).",
                                 param_hint="'--train-hosts'")
    if recipe == opt.SplitName.host and not hosts and not rotate:
        raise typer.BadParameter("the host recipe trains on --train-hosts and tests on every other host: name them "
                                 "(e.g. --train-hosts lab-thinkpad), or pass --rotate to hold out each in turn.",
                                 param_hint="'--train-hosts'")
    if recipe == opt.SplitName.host and test_frac is not None:
        raise typer.BadParameter("the host recipe tests on every host not in --train-hosts; it takes no fraction.",
                                 param_hint="'--test-frac'")
    from core.extract import features_registry
    if rotate:
        if recipe != opt.SplitName.host or train_hosts or name:
            raise typer.BadParameter("--rotate is for --recipe host, which then holds out each host in turn: "
                                     "no --train-hosts or --name.", param_hint="'--rotate'")
        from core.stages import rotation_stage
        registry = features_registry(state.paths.processed, channels)
        render_rotation(state, _confirmed(state, force, lambda f: rotation_stage(state, registry, val_frac, seed,
                                                                                 max_share, f)))
        return
    from core.split import SplitConfig
    cfg = SplitConfig(recipe.value, hosts, val_frac, 0.2 if test_frac is None else test_frac, seed, max_share)
    cfg.check()
    from core.stages import split_stage
    registry = features_registry(state.paths.processed, channels)
    render_split(state, _confirmed(state, force, lambda f: split_stage(state, registry, cfg, name, f)))


def _confirmed(state, force: bool, make):
    """`make(force)`; a split in use is replaced once the user says so at a
    terminal (never under --json or without one: there it is refused, and
    --force decides)."""
    import sys

    from core.split import SplitInUse
    try:
        return make(force)
    except SplitInUse as exc:
        if force or state.terminal.json_mode or not sys.stdin.isatty():
            raise
        if not typer.confirm(f"{exc}. Replace it now?", default=False, err=True):
            raise
        return make(True)


