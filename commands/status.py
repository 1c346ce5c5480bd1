"""`cis490 status`: what is fresh, stale (and why) or missing in this lab."""
from __future__ import annotations

import typer

from cis490cli.state import get_state


def status(
    ctx: typer.Context,
    fail_on_stale: bool = typer.Option(False, "--fail-on-stale",
                                       help="Exit 1 when any artefact is stale or missing (a gate for scripts)."),
) -> None:
    """Every artefact of the lab, fresh, stale (with the reason) or missing, and the command that updates it.

    Examples:

    \b
        cis490 status
        cis490 status --json --fail-on-stale
    """
    from rich.markup import escape

    from core.errors import Cis490Error
    from core.status import FRESH, lab_status

    state = get_state(ctx)
    term = state.terminal
    rows = lab_status(state.read_paths)
    bad = [r for r in rows if r.state != FRESH]
    from cis490cli.terminal import with_home
    for r in rows:
        r.command = with_home(r.command, term.home)
    if term.json_mode:
        term.json([r.to_json() for r in rows])
    else:
        style = {"fresh": "green", "stale": "yellow", "missing": "red"}
        # Two columns: the artefact's name whole, why and the command beneath it (fits 80 columns).
        term.table(f"Lab {state.read_paths.home}", ["state", "artifact: why, and the command that updates it"],
                   [(f"[{style[r.state]}]{r.state}[/]",
                     "\n".join([f"[bold]{escape(r.artifact)}[/]" + (f": {escape(r.reason)}" if r.reason else "")]
                               + ([f"[dim]$ {escape(r.command)}[/]"] if r.command else []))) for r in rows],
                   markup=True)
        term.print(f"{len(rows) - len(bad)} fresh, {sum(r.state == 'stale' for r in rows)} stale, "
                   f"{sum(r.state == 'missing' for r in rows)} missing.")
    if fail_on_stale and bad:
        raise Cis490Error(f"{len(bad)} artefact(s) stale or missing, first: {bad[0].artifact} "
                          f"({bad[0].reason}; run `{bad[0].command}`)")
