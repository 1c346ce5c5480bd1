"""`cis490 extract`: windows, summary features and the tensor store."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from cis490cli import options as opt
from cis490cli.state import AppState, get_state
from core.paths import INDEX_NAME, resolve_cli_path

if TYPE_CHECKING:
    from core.extract import ExtractConfig, ExtractSummary
    from core.registry import Registry


def extract(
    ctx: typer.Context,
    store: Optional[Path] = typer.Option(None, "--store", metavar="DIR", help="Receiver store [default: the one the index was "
                                                                "validated from, else data/raw/store]."),
    index: Optional[Path] = typer.Option(None, "--index", metavar="FILE", help=f"Acceptance index [default: data/processed/{INDEX_NAME}]."),
    window: float = typer.Option(10.0, "--window", metavar="SECONDS", help="Window length in seconds."),
    hop: float = typer.Option(5.0, "--hop", metavar="SECONDS", help="Hop between windows in seconds."),
    step: float = typer.Option(0.5, "--step", metavar="SECONDS", help="Grid step in seconds."),
    workers: int = opt.WORKERS,
    channels: Optional[Path] = opt.CHANNELS,
) -> None:
    """Turn accepted and degraded episodes into windows: summary features and channel x time tensors.

    Examples:

    \b
        cis490 extract
        cis490 extract --window 20 --hop 10 -j 4
    """
    from core.extract import ExtractConfig
    from core.extract.episode import WindowSpec
    from core.registry import resolve_registry
    from core.validate import indexed_registry, indexed_store
    state = get_state(ctx)
    paths = state.paths
    cfg = ExtractConfig(WindowSpec(step_s=step, window_s=window, hop_s=hop))
    cfg.spec.check()
    index_path = resolve_cli_path(index, paths.processed / INDEX_NAME)
    default_store = indexed_store(index_path) or paths.default_store
    registry = resolve_registry(channels, indexed_registry(index_path), f"the acceptance index {index_path}",
                                "cis490 validate --channels FILE")
    summary = run_extract_cmd(state, registry, resolve_cli_path(store, default_store), index_path, cfg, workers)
    render_extract(state, summary)


def run_extract_cmd(state: AppState, registry: Registry, store: Path, index: Path, cfg: ExtractConfig,
                    workers: int) -> ExtractSummary:
    from core.extract import run_extract
    paths = state.paths
    config = {"store": str(store), "index": str(index), "window": cfg.spec.__dict__, "workers": workers,
              "part_windows": cfg.part_windows, "channels": registry.path, "registry_hash": registry.schema_hash}
    with state.record("extract", config) as run:
        run.add_input(index, "acceptance_index")
        with state.terminal.progress("Extracting", unit="episodes") as bar:
            summary = run_extract(paths.processed, index, store, registry, cfg, workers=workers, progress=bar)
        for role, p in summary.outputs.items():
            run.add_output(Path(p), role, summary.digests.get(role))
        run.metrics.update(episodes=summary.episodes, extracted=summary.extracted, reused=summary.reused,
                           failed=len(summary.failed), windows=summary.windows, coverage=summary.coverage,
                           windows_per_phase={k: sum(v.values()) for k, v in summary.per_phase_host.items()})
        run.timings["extract_s"] = round(summary.seconds, 3)
    return summary


def render_extract(state: AppState, s: ExtractSummary) -> None:
    term = state.terminal
    if term.json_mode:
        term.json(s.to_json())
        return
    term.print(f"Extracted {s.windows:,} windows from {s.episodes - len(s.failed):,} episodes in {s.seconds:.1f} s "
               f"({s.extracted:,} computed, {s.reused:,} unchanged and reused; "
               f"{s.bytes_on_disk / max(s.windows, 1) * 1000 / 1e6:.1f} MB per 1,000 windows on disk)")
    hosts = sorted({h for v in s.per_phase_host.values() for h in v})
    rows = [(phase, *[s.per_phase_host.get(phase, {}).get(h, 0) for h in hosts],
             sum(s.per_phase_host.get(phase, {}).values())) for phase in s.per_phase_host]
    term.table("Windows per phase and host", ["phase", *hosts, "total"], rows,
               justify_right=list(range(1, len(hosts) + 2)))
    term.table("Coverage per source (fraction of channel-steps present)", ["source", "coverage"],
               [(src, f"{c:.1%}") for src, c in s.coverage.items()], justify_right=[1])
    for rel, err in s.failed[:10]:
        term.print(f"[red]failed[/] {rel}: {err}")
    if len(s.failed) > 10:
        term.print(f"... and {len(s.failed) - 10} more failed episodes (see --json)")
    term.print(f"Features: {s.outputs.get('features')}\nTensors: {s.outputs.get('tensors')}")
