"""`cis490 extract`: windows, summary features and the tensor store."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cis490cli import options as opt
from cis490cli.render import render_extract
from cis490cli.state import get_state
from core.paths import INDEX_NAME, resolve_cli_path


def extract(
    ctx: typer.Context,
    store: Optional[Path] = typer.Option(None, "--store", metavar="DIR", help="Receiver store [default: the one the index was "
                                                                "validated from, else data/raw/store]."),
    index: Optional[Path] = typer.Option(None, "--index", metavar="FILE", help=f"Acceptance index [default: data/processed/{INDEX_NAME}]."),
    window: float = typer.Option(10.0, "--window", metavar="SECONDS", callback=opt.positive,
                                 help="Window length in seconds (x>0, a whole number of steps)."),
    hop: float = typer.Option(5.0, "--hop", metavar="SECONDS", callback=opt.positive,
                              help="Hop between windows in seconds (x>0, a whole number of steps)."),
    step: float = typer.Option(0.5, "--step", metavar="SECONDS", callback=opt.positive,
                               help="Grid step in seconds (x>0)."),
    workers: int = opt.WORKERS,
    channels: Optional[Path] = opt.CHANNELS,
    full: bool = typer.Option(False, "--full", help="Extract every episode again [default: only the ones no "
                                                   "earlier extract holds as they are]."),
) -> None:
    """Turn accepted and degraded episodes into windows: summary features and channel x time tensors.

    Incremental: episodes an earlier extract holds as they are (same manifest,
    files, registry and window) are kept; new runs are added in new chunks. An
    interrupted extract resumes where it stopped.

    Examples:

    \b
        cis490 extract
        cis490 extract --window 20 --hop 10 -j 4
        cis490 extract --full
    """
    from core.extract import ExtractConfig
    from core.extract.episode import WindowSpec
    from core.registry import resolve_registry
    from core.validate import indexed_registry, indexed_store
    cfg = ExtractConfig(WindowSpec(step_s=step, window_s=window, hop_s=hop))
    cfg.spec.check()                     # the arguments first, then the lab
    state = get_state(ctx)
    paths = state.paths
    index_path = resolve_cli_path(index, paths.processed / INDEX_NAME)
    default_store = indexed_store(index_path) or paths.default_store
    registry = resolve_registry(channels, indexed_registry(index_path), f"the acceptance index {index_path}",
                                "cis490 validate --channels FILE")
    from core.stages import extract_stage
    summary = extract_stage(state, registry, resolve_cli_path(store, default_store), index_path, cfg, workers, full)
    render_extract(state, summary)


