"""What every command gets from the root callback: the terminal and the lab home."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

import typer

from cis490cli.terminal import Terminal
from core.notebook import Run, record_run
from core.paths import LabPaths, resolve_home


# Commands that make a lab, and so may create its home; every other command
# needs a lab there already (a mistyped --home is named, not created).
MAKES_LAB = ("synth", "validate", "demo", "serve")
# Commands that write the lab: one at a time (core.lablock); the others only
# read it (status, notebook) or only record their run (serve, publish).
WRITES_LAB = ("synth", "validate", "extract", "split", "train", "eval", "compare", "export", "predict", "demo",
              "ingest")


@dataclass
class AppState:
    home: Optional[str]
    terminal: Terminal
    _paths: LabPaths | None = field(default=None, repr=False)
    command: str | None = None
    wait: bool = False            # --wait: wait for the command writing the lab instead of stopping

    @property
    def paths(self) -> LabPaths:
        # Resolved on first use so that `--help` and bad options never touch the disk.
        if self._paths is None:
            self._paths = resolve_home(self.home, create=self.command in MAKES_LAB)
        return self._paths

    @property
    def read_paths(self) -> LabPaths:
        """The lab home for commands that only read it: it need not be writable."""
        return self._paths or resolve_home(self.home, writable=False, create=False)

    def use_paths(self, paths: LabPaths) -> None:
        self._paths = paths

    @contextmanager
    def record(self, command: str, config: dict, parent: str | None = None) -> Iterator[Run]:
        argv = pasteable_argv(["cis490", *sys.argv[1:]], self.paths.home)
        from core.notebook import current_run
        if command not in WRITES_LAB or current_run() is not None:      # a nested run: under its parent's lock
            with record_run(self.paths, command, config, argv=argv, parent=parent) as run:
                yield run
            return
        from core.lablock import lab_lock
        with lab_lock(self.paths.artifacts, command, " ".join(argv), self.wait,
                      lambda who: self.terminal.warn(f"waiting for {who} to finish writing this lab")):
            with record_run(self.paths, command, config, argv=argv, parent=parent) as run:
                yield run

    def progress(self, description: str, total: int | None = None, unit: str = ""):
        """A progress bar (core.stages.Session): the terminal's."""
        return self.terminal.progress(description, total=total, unit=unit)


def pasteable_argv(argv: list[str], home) -> list[str]:
    """The command line as recorded: its --home absolute (`--home .` could
    not be pasted back from anywhere else)."""
    out = list(argv)
    for i, a in enumerate(out):
        if a == "--home" and i + 1 < len(out):
            out[i + 1] = str(home)
        elif a.startswith("--home="):
            out[i] = f"--home={home}"
    return out


def get_state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState(None, Terminal())
    return root.obj
