"""The one output module: progress, tables, status lines, errors, JSON.

Human output goes quiet under --quiet; progress shows only on a terminal;
--json prints machine output (one JSON document on stdout) and nothing else.
Errors always reach stderr.
"""
from __future__ import annotations

import json
import re
import shlex
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

from rich.console import Console
from rich.progress import (BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn,
                           TimeRemainingColumn)
from rich.table import Column, Table
from rich.text import Text


class _Bar:
    """What core's progress callbacks call: update(done, total, **fields)."""

    def __init__(self, progress: Progress | None, task: int | None, fixed: int = 0, width: int = 10**6):
        self._p, self._t = progress, task
        self._fixed, self._width, self._total = fixed, width, None
        self.notes: list[str] = []      # how the stage ended, when it does not fit beside the bar

    def __call__(self, done: int, total: int | None = None, **fields: Any) -> None:
        self.update(done, total, **fields)

    def update(self, done: int, total: int | None = None, **fields: Any) -> None:
        if self._p is None:
            return
        kwargs: dict[str, Any] = {"completed": done}
        if total is not None:
            kwargs["total"] = self._total = total
        if fields:
            # `rate` and `note` carry their own words ("2.5 MB/s", "stopped early at ..."); others are named.
            extra = "  ".join(str(v) if k in ("rate", "note") else f"{k} {v}" for k, v in fields.items())
            # The figures are cropped first: the count and the ETA always show.
            finished = self._total is not None and done >= self._total
            count = f"{done:,}/{self._total:,}" if self._total is not None else f"{done:,}"
            room = self._width - self._fixed - len(count) - 1 - (1 if finished else 11)
            if len(extra) > room and "note" in fields:
                # A note is a sentence: cut, it would mislead ("stopped early at epoch 28 (bes").
                # It gets a line of its own under the bar instead.
                self.notes.append(str(fields["note"]))
                extra = "  ".join(str(v) if k == "rate" else f"{k} {v}" for k, v in fields.items() if k != "note")
            kwargs["extra"] = extra[:max(0, room)]
        self._p.update(self._t, **kwargs)


class _EtaColumn(TimeRemainingColumn):
    """`eta 01:02` while running; nothing once finished (room for the note that says how it ended)."""

    def __init__(self):
        super().__init__(compact=True, table_column=Column(no_wrap=True))

    def render(self, task) -> Text:
        return Text("") if task.finished else Text("eta ") + super().render(task)


class _CountColumn(ProgressColumn):
    """`epoch 3/30`, `round 120/400`, `episodes 1,204/2,000`: what is counted, named."""

    def __init__(self, label: str):
        super().__init__(table_column=Column(no_wrap=True))
        self.label = label

    def render(self, task) -> Text:
        done = f"{int(task.completed):,}"
        shown = f"{done}/{int(task.total):,}" if task.total is not None else done
        return Text(f"{self.label} {shown}".strip())


# A command a hint names: `cis490 X` not already given a home.
_COMMAND = re.compile(r"(?<![\w/.-])cis490 (?!--home\b)")


def with_home(text: str, home: str | None) -> str:
    """Every `cis490 ...` a hint names, given the --home the command ran
    with, so that it can be pasted and run from anywhere."""
    return text if not home else _COMMAND.sub(f"cis490 --home {shlex.quote(home)} ", text)


def shown_path(path) -> str:
    """A path as every line shows it: absolute, so the same file reads the
    same wherever the command ran and can be pasted anywhere; the line that
    holds it is printed unwrapped, never broken mid-name."""
    import os
    return os.path.abspath(path) if path is not None else ""


class Terminal:
    def __init__(self, quiet: bool = False, json_mode: bool = False, verbose: bool = False,
                 home: str | None = None):
        self.quiet = quiet
        self.json_mode = json_mode
        self.verbose = verbose
        self.home = home        # the lab home hints must name (None: the current directory)

    # Consoles are made per call: sys.stdout/stderr may be swapped (tests, pagers).
    @property
    def out(self) -> Console:
        return Console(file=sys.stdout, highlight=False)

    @property
    def err(self) -> Console:
        return Console(file=sys.stderr, highlight=False)

    @property
    def human(self) -> bool:
        return not (self.quiet or self.json_mode)

    def print(self, message: str | Text = "", style: str | None = None, wrap: bool = True) -> None:
        """Prose, wrapped at spaces to the width (80 columns when it cannot be
        told): left to the terminal, a long line broke mid-word ("resampl/es").
        `wrap=False` for a line to copy whole (a command, a URL, a token)."""
        if self.human:
            message = with_home(message, self.home) if isinstance(message, str) else message
            self.out.print(message, style=style, soft_wrap=not wrap, markup=isinstance(message, str))

    def rule(self, title: str) -> None:
        if self.human:
            self.out.rule(title)

    def warn(self, message: str) -> None:
        if not self.json_mode and not self.quiet:
            self.err.print(Text(f"Warning: {with_home(message, self.home)}", style="yellow"), soft_wrap=True)

    def error(self, message: str) -> None:
        self.err.print(Text(f"Error: {with_home(message, self.home)}", style="red"), soft_wrap=True)

    def traceback(self) -> None:
        self.err.print_exception()

    def json(self, payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")

    def table(self, title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              justify_right: Sequence[int] = (), no_wrap: Sequence[int] = (), min_width: int | None = None,
              listing: bool = False, markup: bool = False) -> None:
        """A Rich table; `min_width` renders it at least that wide (a `--wide`
        view asked for), instead of squeezing it to the terminal. A `listing`
        (one row per record, as `notebook list`) has no box, so a row keeps
        to one line at 80 columns. Cells are plain text unless `markup` (whose
        caller escapes what it did not write): a host named `[/x]` from a
        store is shown, not parsed."""
        if not self.human:
            return
        t = Table(title=title if markup or title is None else Text(title), title_justify="left",
                  header_style="bold underline",
                  **({"box": None, "pad_edge": False} if listing else {}))
        for i, c in enumerate(columns):
            # Fold, never an ellipsis: a table must not hide part of a name or a number.
            t.add_column(c if markup else Text(c), justify="right" if i in justify_right else "left", no_wrap=i in no_wrap,
                         overflow="fold")
        for r in rows:
            cells = [with_home(_cell(v), self.home) for v in r]
            t.add_row(*(cells if markup else [Text(c) for c in cells]))
        out = self.out
        if min_width is not None and out.width < min_width:
            out = Console(file=sys.stdout, highlight=False, width=min_width)
        out.print(t)

    @contextmanager
    def progress(self, description: str, total: int | None = None, unit: str = "") -> Iterator[_Bar]:
        """A bar that keeps what matters within 80 columns: what, how far
        (`epoch 3/30`), the ETA, then the stage's own figures."""
        console = self.err
        if not self.human or not console.is_terminal:
            yield _Bar(None, None)
            return
        fixed = Column(no_wrap=True)
        cols = [SpinnerColumn(table_column=fixed), TextColumn("[bold]{task.description}", table_column=fixed),
                BarColumn(bar_width=12), _CountColumn(unit), _EtaColumn(),
                TextColumn("{task.fields[extra]}", table_column=Column(no_wrap=True, overflow="crop"))]
        with Progress(*cols, console=console, transient=False) as p:
            task = p.add_task(description, total=total, extra="")
            # Spinner, description and bar, then the count: the figures get the rest.
            bar = _Bar(p, task, fixed=2 + len(description) + 1 + 13 + len(unit) + 1, width=console.width)
            yield bar
        for note in bar.notes:
            console.print(f"  {note}", highlight=False)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)
