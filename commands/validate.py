"""`cis490 validate`: sweep a store into the acceptance index."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from cis490cli import options as opt
from cis490cli.state import AppState, get_state
from core.paths import INDEX_NAME, resolve_cli_path

if TYPE_CHECKING:
    from core.registry import Registry
    from core.validate import ValidationSummary


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
    paths = state.paths
    registry = load_registry(channels)
    summary = run_validate(state, registry, resolve_cli_path(store, paths.default_store),
                           resolve_cli_path(out, paths.processed / INDEX_NAME), workers, since_last)
    render_validate(state, summary)
    gate(summary, fail_on.value if fail_on else None)


def run_validate(state: AppState, registry: Registry, store: Path, out: Path, workers: int,
                 since_last: bool = False) -> ValidationSummary:
    from core.validate import run_validation, sidecar_path
    from core.validate.checks import ValidateConfig
    cfg = ValidateConfig()
    with state.record("validate", {"store": str(store), "out": str(out), "since_last": since_last,
                                   "workers": workers, "channels": registry.path,
                                   "registry_hash": registry.schema_hash, **cfg.__dict__}) as run:
        summary = None
        try:
            with state.terminal.progress("Validating", unit="episodes") as bar:
                summary = run_validation(store, out, registry, cfg, workers=workers, since_last=since_last,
                                         progress=bar)
        finally:
            # The sweep took the store's manifest digest: recorded as it is, not taken twice.
            run.add_input(store, "store", summary.store_digest if summary else None)
        run.add_output(out, "acceptance_index")
        run.add_output(sidecar_path(out), "acceptance_summary")
        run.metrics.update(episodes=summary.episodes, status_counts=summary.counts, in_flight=len(summary.in_flight),
                           duplicates=len(summary.duplicates), reused=summary.reused)
        run.timings["sweep_s"] = round(summary.seconds, 3)
    return summary


def render_validate(state: AppState, s: ValidationSummary) -> None:
    from core.validate import STATUSES
    term = state.terminal
    if term.json_mode:
        term.json(s.to_json())
        return
    rate = s.episodes / max(s.seconds, 1e-9)
    term.print(f"Validated {s.episodes:,} episodes ({s.bytes / 1e6:,.1f} MB) in {s.seconds:.1f} s "
               f"[{rate:,.0f} episodes/s, {s.bytes / max(s.seconds, 1e-9) / 1e6:,.1f} MB/s, {s.workers} workers]"
               + (f", {s.reused:,} reused unchanged" if s.reused else ""))
    rows = [(h, *[c.get(st, 0) for st in STATUSES]) for h, c in s.per_host.items()]
    rows.append(("total", *[s.counts.get(st, 0) for st in STATUSES]))
    term.table("Status per host", ["host", *STATUSES], rows, justify_right=[1, 2, 3, 4])
    if s.top_reasons:
        term.table("Top reasons", ["reason", "episodes"], s.top_reasons, justify_right=[1])
    if s.in_flight:
        shown = ", ".join(s.in_flight[:5]) + (" ..." if len(s.in_flight) > 5 else "")
        term.print(f"{len(s.in_flight)} upload(s) in flight, skipped: {shown}")
    if s.duplicates:
        term.print(f"[yellow]{len(s.duplicates)} duplicated episode id(s), every copy rejected:[/] "
                   + ", ".join(s.duplicates[:5]))
    term.print(f"Index: {s.index}")
