"""Options several commands share, defined once so their names and help agree."""
from __future__ import annotations

import typer

from core.parallel import default_workers

CHANNELS = typer.Option(None, "--channels", help="Channel registry [default: the shipped one].")
WORKERS = typer.Option(default_workers(), "--workers", "-j", help="Worker processes.")
MODE = typer.Option(None, "--mode", help="realistic or oracle for bare names [default: realistic].")
SPLIT = typer.Option("host", "--split", help="Split recipe.")
PART = typer.Option("test", "--part", help="test or val.")
RESAMPLES = typer.Option(1000, "--resamples", help="Bootstrap resamples.")
UNIT = typer.Option("episode", "--unit", help="Resampling unit: episode (cluster bootstrap) or window.")
BOOT_SEED = typer.Option(0, "--seed", help="Bootstrap seed.")
