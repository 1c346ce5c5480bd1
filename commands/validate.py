"""`cis490 validate`: sweep a store into the acceptance index."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from cis490cli import options as opt
from cis490cli.render import render_validate
from cis490cli.state import get_state
from core.paths import INDEX_NAME, resolve_cli_path


class FailOn(str, Enum):
    degraded = "degraded"
    rejected = "rejected"
    errored = "errored"


def validate(
    ctx: typer.Context,
    store: Optional[Path] = typer.Option(None, "--store", metavar="DIR", help="Receiver store [default: data/raw/store]."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="FILE", help=f"Index parquet [default: data/processed/{INDEX_NAME}]."),
    workers: int = opt.WORKERS,
    since_last: bool = typer.Option(False, "--since-last",
                                    help="Re-validate only episodes whose manifest changed since the last index."),
    fail_on: Optional[FailOn] = typer.Option(None, "--fail-on",
                                             help="Exit 1 if any episode is this bad or worse (a gate for scripts)."),
    channels: Optional[Path] = opt.CHANNELS,
) -> None:
    """Check every episode of a store; write the acceptance index (one row per episode).

    Examples:

    \b
        cis490 validate --store /srv/receiver
        cis490 validate --since-last --fail-on rejected
    """
    from core.registry import load_registry
    from core.validate import gate
    state = get_state(ctx)
    if store is not None:
        # Checked before the lab is touched: a mistyped --store in an empty
        # folder must not leave artifacts/ there, turning it into a lab.
        given = resolve_cli_path(store, store)
        if given.is_file():
            raise typer.BadParameter(f"{given} is a file; a store is a folder of <host>/<episode>/ folders, each "
                                     "with its manifest.json", param_hint="'--store'")
        if not given.is_dir():
            raise typer.BadParameter(f"{given}: no such folder", param_hint="'--store'")
    paths = state.paths
    registry = load_registry(channels)
    from core.stages import validate_stage
    summary = validate_stage(state, registry, resolve_cli_path(store, paths.default_store),
                           resolve_cli_path(out, paths.processed / INDEX_NAME), workers, since_last)
    render_validate(state, summary)
    gate(summary, fail_on.value if fail_on else None)


