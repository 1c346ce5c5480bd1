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


@dataclass
class AppState:
    home: Optional[str]
    terminal: Terminal
    _paths: LabPaths | None = field(default=None, repr=False)
    command: str | None = None

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
