"""The root Typer app: global options, command wiring and the error boundary."""
from __future__ import annotations

from typing import Optional

import typer

from cis490cli.state import AppState
from cis490cli.terminal import Terminal
from core.errors import Cis490Error


GLOBAL_FLAGS = ("--json", "--quiet", "-q", "--verbose", "-v", "--wait")
# Import name -> package of the `lab` extra (pyproject.toml): what training,
# evaluation and export need and the Pi's base install leaves out.
LAB_PACKAGES = {"torch": "torch", "sklearn": "scikit-learn", "scipy": "scipy", "matplotlib": "matplotlib",
                "xgboost": "xgboost-cpu", "onnx": "onnx", "onnxmltools": "onnxmltools", "onnxscript": "onnxscript",
                "pyarrow": "pyarrow"}


def hoist_global_options(args: list[str]) -> list[str]:
    """Global options may also come after the subcommand (`cis490 compare gru
    gbt --json` is what people type): they are moved before it. Nothing after
    a `--` is touched, and `--home` keeps its value."""
    front, rest = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest.extend(args[i:])
            break
        if a in GLOBAL_FLAGS or a.startswith("--home="):
            front.append(a)
        elif a == "--home" and i + 1 < len(args):
            front.extend(args[i:i + 2])
            i += 1
        else:
            rest.append(a)
        i += 1
    return front + rest


def lab_package(exc: BaseException) -> str | None:
    """The `lab` extra's package whose absence raised `exc`, if that is what it is."""
    if isinstance(exc, ModuleNotFoundError):
        return LAB_PACKAGES.get((exc.name or "").split(".")[0])
    return None


class BoundaryGroup(typer.core.TyperGroup):
    """Turns a Cis490Error into one red line and exit 1; anything unexpected
    into a short report (the traceback with --verbose)."""

    def main(self, args=None, *rest, **kwargs):
        import sys
        return super().main(hoist_global_options(list(sys.argv[1:] if args is None else args)), *rest, **kwargs)

    def invoke(self, ctx):
        import signal
        import threading

        from core.errors import Terminated
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _terminate)
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):  # usage errors stay Typer's (exit 2)
            raise
        except Cis490Error as exc:
            _terminal(ctx).error(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt as exc:
            # 128 + the signal's number, as a shell reports it.
            terminated = isinstance(exc, Terminated)
            _terminal(ctx).error("terminated" if terminated else "interrupted")
            raise typer.Exit(143 if terminated else 130) from None
        except Exception as exc:  # noqa: BLE001 - the one place that catches everything
            term = _terminal(ctx)
            missing = lab_package(exc)
            if missing:
                # The base install (what the Pi runs) leaves out the lab's heavy packages.
                term.error(f"`cis490 {ctx.invoked_subcommand or ''}` needs the lab extra ({missing} is not "
                           "installed): pip install 'cis490[lab]'")
                raise typer.Exit(1) from None
            if term.verbose:
                term.traceback()
            full = _disk_full_line(exc)
            if full:
                term.error(full)
                raise typer.Exit(1) from None
            hint = "" if term.verbose else " (run with --verbose for the traceback)"
            term.error(f"unexpected {type(exc).__name__}: {exc}{hint}")
            raise typer.Exit(1) from None


def _disk_full_line(exc: Exception) -> str | None:
    """A full disk outside the atomic writers (which name their file
    themselves): one line, never a library's C++ backtrace."""
    from pathlib import Path

    from core.paths import disk_full, free_bytes, is_disk_full
    if not is_disk_full(exc):
        return None
    name = getattr(exc, "filename", None)
    if name:
        return str(disk_full(Path(name)))
    # A library's message (XGBoost's runs to a 13-line backtrace): its first line.
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    free = free_bytes(Path.cwd())
    where = f"{free / 1e6:,.1f} MB free in {Path.cwd()}" if free is not None else "free space unknown"
    return f"disk full ({where}): {first}"


def _terminate(signum, frame) -> None:
    from core.errors import Terminated
    raise Terminated()


def _terminal(ctx) -> Terminal:
    obj = ctx.find_root().obj
    return obj.terminal if isinstance(obj, AppState) else Terminal()


app = typer.Typer(
    cls=BoundaryGroup,
    name="cis490",
    help="Lab notebook and engine: malware life-cycle phases from QEMU VM telemetry.\n\n"
         "Global options (--home, --json, --quiet, --verbose, --wait) go before or after the command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version
        try:
            v = version("cis490")
        except PackageNotFoundError:
            v = "unknown (not installed)"
        typer.echo(f"cis490 {v}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Optional[str] = typer.Option(None, "--home", envvar="CIS490_HOME",
                                       help="Lab home holding data/ and artifacts/ [default: current directory]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or status output."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON only."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks of unexpected errors."),
    wait: bool = typer.Option(False, "--wait", envvar="CIS490_WAIT",
                              help="When another command is writing the lab, wait for it instead of stopping."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
) -> None:
    ctx.obj = AppState(home, Terminal(quiet=quiet, json_mode=json_out, verbose=verbose, home=_hint_home(home)),
                       command=ctx.invoked_subcommand, wait=wait)


def _hint_home(home: str | None) -> str | None:
    """The home printed hints must name: the one given (absolute), unless it
    is the current directory, where a bare `cis490 ...` already works."""
    import os
    from pathlib import Path
    if home in (None, ""):
        return None
    path = Path(home).expanduser().absolute()
    return None if path == Path(os.getcwd()).absolute() else str(path)


def _register() -> None:
    from commands import (channels, compare, demo, eval, export, extract, ingest, notebook, predict, publish, serve,
                          split, status, synth, train, validate)

    app.command("synth")(synth.synth)
    app.command("validate")(validate.validate)
    app.command("extract")(extract.extract)
    app.command("split")(split.split)
    app.command("train")(train.train)
    app.command("eval")(eval.eval_cmd)
    app.command("compare")(compare.compare)
    app.command("export")(export.export)
    app.command("predict")(predict.predict)
    app.command("ingest")(ingest.ingest)
    app.command("channels")(channels.channels)
    app.add_typer(notebook.app, name="notebook")
    app.command("status")(status.status)
    app.command("serve")(serve.serve)
    app.add_typer(publish.app, name="publish")
    app.command("demo")(demo.demo)


_register()


def main() -> None:
    app(prog_name="cis490")
