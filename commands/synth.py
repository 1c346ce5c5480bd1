"""`cis490 synth`: generate a realistic synthetic lab store."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cis490cli import options as opt
from cis490cli.render import render_synth
from cis490cli.state import get_state
from core.paths import resolve_cli_path

# core.synth.MIN_DURATION_S, which SynthConfig checks (core.synth imports numpy:
# not at `--help`; tests/commands/test_boundary.py keeps the two equal).
MIN_DURATION_S = 40.0
MAX_DRIFT = 3.0      # core.synth.MAX_DRIFT, kept equal by the same test


def synth(
    ctx: typer.Context,
    episodes: int = typer.Option(200, "--episodes", "-n", min=1, metavar="N",
                                 help="Episodes to generate; the duplicate-id fault adds a re-sent copy of one "
                                      "(so -n 200 can write 201), and --in-flight uploads without a manifest."),
    hosts: int = typer.Option(4, "--hosts", min=1, max=64, metavar="N", help="Lab hosts (the first four are named; more are generated)."),
    duration: float = typer.Option(300.0, "--duration", metavar="SECONDS", min=MIN_DURATION_S,
                                   help="Mean episode length in seconds (each varies +-20%)."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Random seed: the same seed gives the same store."),
    fault_rate: float = typer.Option(0.1, "--fault-rate", min=0.0, max=1.0, metavar="FRACTION", help="Fraction of episodes with an injected fault."),
    in_flight: int = typer.Option(2, "--in-flight", min=0, metavar="N", help="Uploads in flight (directories without a manifest)."),
    drift: float = typer.Option(0.0, "--drift", min=0.0, max=MAX_DRIFT, metavar="X",
                                help="Let samples evolve over the recorded span: they grow quieter (act intensity x e^-X by "
                                     "the end) and a quiet new variant of each family appears in the last 40%."),
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
                      fault_rate=fault_rate, in_flight=in_flight, drift=drift)
    cfg.check()
    from core.stages import synth_stage
    result = synth_stage(state, cfg, resolve_cli_path(out, state.paths.default_store), workers, force)
    render_synth(state, result)


