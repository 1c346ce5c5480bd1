"""`cis490 notebook list|show`: the lab notebook's run records."""
from __future__ import annotations

import json
from typing import Optional

import typer

from cis490cli.state import get_state

app = typer.Typer(help="List, show and diff the lab notebook's run records.", no_args_is_help=True,
                  rich_markup_mode=None)


def _show(value) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def _seconds(s: float) -> str:
    """A run's length in at most four characters: 4, 930, 16m, 2.5h."""
    return f"{s:.0f}" if s < 1000 else f"{s / 60:.0f}m" if s < 5940 else f"{s / 3600:.1f}h"


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
    from rich.markup import escape

    from core.notebook import read_notebook, run_headline, run_subject, short_id
    state = get_state(ctx)
    paths = state.read_paths                      # reading works on a read-only lab
    listing = read_notebook(paths, command)
    records = listing.records[-last:] if last > 0 else listing.records
    term = state.terminal
    if listing.skipped_lines:
        n = len(listing.skipped_lines)
        more = ", ..." if n > 10 else ""
        term.warn(f"{paths.notebook}: skipped {n} line(s) that are not run records "
                  f"(line {', '.join(map(str, listing.skipped_lines[:10]))}{more})")
    if term.json_mode:
        term.json([{k: r.get(k) for k in ("run_id", "command", "status", "started_at", "timings", "metrics",
                                          "parent_run", "git_commit")} | {"subject": run_subject(r),
                                                                          "headline": run_headline(r)}
                   for r in records])
        return
    if not records:
        if command is not None and read_notebook(paths).records:
            term.print(f"No runs match --command {command}.")
        else:
            term.print(f"No runs recorded in {paths.notebook} yet.")
        return
    def result(r: dict) -> str:
        # The status shows only when the run did not end well: a failed run says why, in red.
        if r["status"] != "ok":
            error = str(r.get("error") or "")
            error = error if len(error) <= 60 else error[:59] + "…"     # `notebook show RUN` has it whole
            return f"[red]{escape(r['status'])}: {escape(error)}[/]"
        return escape(run_headline(r))
    term.table(f"Lab notebook: {len(records)} of {len(listing.records)} runs",
               ["run", "command", "what", "result (macro-F1)", "s", "from"],
               [(short_id(r["run_id"]), r["command"], escape(run_subject(r)), result(r),
                 _seconds(r.get("timings", {}).get("total_s", 0)), short_id(r.get("parent_run"))[-4:])
                for r in records], justify_right=[4], no_wrap=[0], listing=True, markup=True)


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
    from core.notebook import get_record, relative_to_home
    state = get_state(ctx)
    paths = state.read_paths
    # Paths inside the lab home print relative to it (older records kept them absolute).
    rec = relative_to_home(get_record(paths, run_id), paths.home)
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
        term.table("timings", ["stage", "seconds"],
                   [(k, f"{v:.1f}" if isinstance(v, (int, float)) else v) for k, v in rec["timings"].items()],
                   justify_right=[1])


@app.command("diff")
def diff(
    ctx: typer.Context,
    run_a: str = typer.Argument(..., metavar="RUN_A", help="A run id (or any unique part of one), or 'last'."),
    run_b: str = typer.Argument(..., metavar="RUN_B", help="The other run."),
    everything: bool = typer.Option(False, "--all", help="Every key, not only those that differ."),
) -> None:
    """What differs between two runs: config, inputs by digest, code, libraries, metrics.

    Examples:

    \b
        cis490 notebook diff 1121-2338 last
        cis490 notebook diff 233845-a7f4 234102-0c1e --all
    """
    from core.notebook import diff_records, get_record, relative_to_home
    state = get_state(ctx)
    paths = state.read_paths
    a, b = (relative_to_home(get_record(paths, r), paths.home) for r in (run_a, run_b))
    rows = diff_records(a, b, everything)
    term = state.terminal
    if term.json_mode:
        term.json({"a": a["run_id"], "b": b["run_id"], "differences": [{"key": k, "a": va, "b": vb}
                                                                       for k, va, vb in rows]})
        return
    if not rows:
        term.print(f"{a['run_id']} and {b['run_id']} do not differ.")
        return
    term.table(f"{'All of' if everything else 'What differs between'} {a['run_id']} (A) and {b['run_id']} (B)",
               ["key", "A", "B"], [(k, _show(va), _show(vb)) for k, va, vb in rows])
