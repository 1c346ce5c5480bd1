"""`cis490 notebook list|show`: the lab notebook's run records."""
from __future__ import annotations

import json
from typing import Optional

import typer

from cis490cli.state import get_state

app = typer.Typer(help="List and show the lab notebook's run records.", no_args_is_help=True,
                  rich_markup_mode=None)


@app.command("list")
def list_runs(
    ctx: typer.Context,
    command: Optional[str] = typer.Option(None, "--command", "-c", metavar="COMMAND", help="Only runs of this command."),
    last: int = typer.Option(20, "--last", min=0, metavar="N", help="Show the newest N runs (0 for all)."),
) -> None:
    """List runs, newest last.

    Examples:

    \b
        cis490 notebook list
        cis490 notebook list -c train --last 5
    """
    from core.notebook import read_notebook
    state = get_state(ctx)
    listing = read_notebook(state.paths, command)
    records = listing.records[-last:] if last > 0 else listing.records
    term = state.terminal
    if listing.skipped_lines:
        term.warn(f"{state.paths.notebook}: skipped unreadable line(s) {listing.skipped_lines[:10]}")
    if term.json_mode:
        term.json([{k: r.get(k) for k in ("run_id", "command", "status", "started_at", "timings", "metrics",
                                          "parent_run", "git_commit")} for r in records])
        return
    if not records:
        term.print(f"No runs recorded in {state.paths.notebook} yet.")
        return
    term.table(f"Lab notebook ({state.paths.notebook})", ["run id", "command", "status", "seconds", "parent"],
               [(r["run_id"], r["command"], r["status"], r.get("timings", {}).get("total_s"),
                 r.get("parent_run") or "") for r in records],
               justify_right=[3], no_wrap=[0, 4])


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: str = typer.Argument("last", metavar="RUN", help="Run id, a unique prefix of one, or 'last'."),
) -> None:
    """Show one run record in full.

    Examples:

    \b
        cis490 notebook show last
        cis490 notebook show 20261121-2338
    """
    from core.notebook import get_record
    state = get_state(ctx)
    rec = get_record(state.paths, run_id)
    term = state.terminal
    if term.json_mode:
        term.json(rec)
        return
    term.rule(f"{rec['run_id']}  ({rec['status']})")
    dirty = " (dirty)" if rec.get("git_dirty") else ""
    for label, value in (("command", " ".join(rec.get("argv", []))), ("started", rec.get("started_at")),
                         ("ended", rec.get("ended_at")), ("git", f"{rec.get('git_commit')}{dirty}"),
                         ("config hash", rec.get("config_hash")), ("parent", rec.get("parent_run")),
                         ("error", rec.get("error"))):
        if value:
            term.print(f"[bold]{label}:[/] {value}")
    term.table("config", ["key", "value"], [(k, json.dumps(v)) for k, v in rec.get("config", {}).items()])
    for role in ("inputs", "outputs"):
        items = rec.get(role, [])
        if items:
            term.table(role, ["path", "role", "kind", "sha256"],
                       [(i["path"], i.get("role", ""), i.get("kind", ""), (i.get("sha256") or "")[:16]) for i in items])
    if rec.get("metrics"):
        term.table("metrics", ["metric", "value"], [(k, json.dumps(v)) for k, v in rec["metrics"].items()])
    if rec.get("timings"):
        term.table("timings", ["stage", "seconds"], list(rec["timings"].items()), justify_right=[1])
