"""`cis490 synth`: generate a realistic synthetic lab store."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from cis490cli import options as opt
from cis490cli.state import AppState, get_state
from core.paths import resolve_cli_path

if TYPE_CHECKING:
    from core.synth import SynthConfig, SynthResult


def synth(
    ctx: typer.Context,
    episodes: int = typer.Option(200, "--episodes", "-n", min=1, metavar="N", help="Episodes to generate."),
    hosts: int = typer.Option(4, "--hosts", min=1, metavar="N", help="Lab hosts (the first four are named; more are generated)."),
    duration: float = typer.Option(300.0, "--duration", metavar="SECONDS", help="Mean episode length in seconds (each varies +-20%)."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Random seed: the same seed gives the same store."),
    fault_rate: float = typer.Option(0.1, "--fault-rate", min=0.0, max=1.0, metavar="FRACTION", help="Fraction of episodes with an injected fault."),
    in_flight: int = typer.Option(2, "--in-flight", min=0, metavar="N", help="Uploads in flight (directories without a manifest)."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DIR", help="Store directory [default: data/raw/store]."),
    workers: int = opt.WORKERS,
    force: bool = typer.Option(False, "--force", help="Replace an existing store at --out."),
) -> None:
    """Generate a synthetic receiver store (hosts, profiles, samples, faults) and its ground truth.

    Examples:

    \b
        cis490 synth --episodes 200 --seed 1
        cis490 synth -n 50 --out /tmp/store --json
    """
    from core.synth import SynthConfig
    state = get_state(ctx)
    cfg = SynthConfig(episodes=episodes, hosts=hosts, duration_s=duration, seed=seed,
                      fault_rate=fault_rate, in_flight=in_flight)
    cfg.check()
    result = run_synth(state, cfg, resolve_cli_path(out, state.paths.default_store), workers, force)
    render_synth(state, result)


def run_synth(state: AppState, cfg: SynthConfig, out: Path, workers: int, force: bool) -> SynthResult:
    from core.synth import generate_store
    with state.record("synth", {**asdict(cfg), "out": str(out)}) as run:
        with state.terminal.progress("Generating", total=cfg.episodes, unit="episodes") as bar:
            result = generate_store(cfg, out, workers=workers, force=force, progress=bar)
        run.add_output(result.store, "store")
        run.add_output(result.truth, "ground_truth")
        run.metrics.update(episodes=result.episodes, in_flight=result.in_flight, bytes=result.bytes,
                           expected_status=result.expected, per_host=result.per_host)
        run.timings["generate_s"] = round(result.seconds, 3)
    return result


def render_synth(state: AppState, r: SynthResult) -> None:
    term = state.terminal
    if term.json_mode:
        term.json({"store": str(r.store), "ground_truth": str(r.truth), "episodes": r.episodes,
                   "in_flight": r.in_flight, "bytes": r.bytes, "seconds": round(r.seconds, 3),
                   "expected_status": r.expected, "per_host": r.per_host})
        return
    term.print(f"Wrote {r.episodes:,} episodes ({r.bytes / 1e6:,.1f} MB, "
               f"{r.bytes / max(r.episodes, 1) / 1e3:,.0f} kB/episode) to [bold]{r.store}[/] in {r.seconds:.1f} s")
    term.table("Episodes per host", ["host", "episodes"], sorted(r.per_host.items()), justify_right=[1])
    order = ["accepted", "degraded", "rejected", "errored", "in_flight"]
    term.table("Expected validation status (ground truth)", ["status", "count"],
               [(s, r.expected.get(s, 0)) for s in order], justify_right=[1])
    term.print(f"Ground truth: {r.truth}")
