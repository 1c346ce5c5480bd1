"""`cis490 channels`: show (and so check) a channel registry."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cis490cli import options as opt
from cis490cli.state import get_state


def channels(
    ctx: typer.Context,
    channels_file: Optional[Path] = opt.CHANNELS,
) -> None:
    """List the channel registry: channels, kinds, units, deployability, and its schema hash.

    Examples:

    \b
        cis490 channels
        cis490 channels --channels lab.toml --json
    """
    from core.registry import load_registry
    term = get_state(ctx).terminal
    reg = load_registry(channels_file)
    if term.json_mode:
        term.json({"path": reg.path, "schema_hash": reg.schema_hash, "phases": list(reg.phases),
                   "profiles": list(reg.profiles),
                   "channels": [{"name": c.name, "source": c.source, "kind": c.kind, "unit": c.unit,
                                 "deployable": c.deployable} for c in reg.channels]})
        return
    term.table(f"{len(reg.channels)} channels ({reg.path})", ["channel", "source", "kind", "unit", "deployable"],
               [(c.name, c.source, c.kind + (f" {c.agg}" if c.agg else ""), c.unit,
                 "yes" if c.deployable else "host-only") for c in reg.channels])
    term.print(f"phases: {', '.join(reg.phases)}")
    term.print(f"profiles: {', '.join(reg.profiles)}")
    term.print(f"schema hash: {reg.schema_hash}")
