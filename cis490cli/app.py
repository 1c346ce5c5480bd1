"""The root Typer app: global options, command wiring and the error boundary."""
from __future__ import annotations

from typing import Optional

import typer

from cis490cli.state import AppState
from cis490cli.terminal import Terminal
from core.errors import Cis490Error


class BoundaryGroup(typer.core.TyperGroup):
    """Turns a Cis490Error into one red line and exit 1; anything unexpected
    into a short report (the traceback with --verbose)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):  # usage errors stay Typer's (exit 2)
            raise
        except Cis490Error as exc:
            _terminal(ctx).error(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _terminal(ctx).error("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the one place that catches everything
            term = _terminal(ctx)
            if term.verbose:
                term.traceback()
            hint = "" if term.verbose else " (run with --verbose for the traceback)"
            term.error(f"unexpected {type(exc).__name__}: {exc}{hint}")
            raise typer.Exit(1) from None


def _terminal(ctx) -> Terminal:
    obj = ctx.find_root().obj
    return obj.terminal if isinstance(obj, AppState) else Terminal()


app = typer.Typer(
    cls=BoundaryGroup,
    name="cis490",
    help="Lab notebook and engine: malware life-cycle phases from QEMU VM telemetry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    home: Optional[str] = typer.Option(None, "--home", envvar="CIS490_HOME",
                                       help="Lab home holding data/ and artifacts/ [default: current directory]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or status output."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks of unexpected errors."),
) -> None:
    ctx.obj = AppState(home, Terminal(quiet=quiet, json_mode=json_out, verbose=verbose))


def _register() -> None:
    from commands import (channels, compare, demo, eval, extract, notebook, serve, split, status, synth, train,
                          validate)

    app.command("synth")(synth.synth)
    app.command("validate")(validate.validate)
    app.command("extract")(extract.extract)
    app.command("split")(split.split)
    app.command("train")(train.train)
    app.command("eval")(eval.eval_cmd)
    app.command("compare")(compare.compare)
    app.command("channels")(channels.channels)
    app.add_typer(notebook.app, name="notebook")
    app.command("status")(status.status)
    app.command("serve")(serve.serve)
    app.command("demo")(demo.demo)


_register()


def main() -> None:
    app(prog_name="cis490")
