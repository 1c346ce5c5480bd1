"""Reading what a command printed."""
import re

# A line that holds a path to copy whole ("Report: /...", or the path alone):
# printed unwrapped on purpose, so it may pass 80 columns (cis490cli.terminal.shown_path).
_PATH_LINE = re.compile(r"^(?:[A-Z][\w ()]*: )?/\S+$")


def lines_to_fit(output: str) -> list[str]:
    """The lines that must fit 80 columns: every line but a path's own."""
    return [line for line in output.splitlines() if not _PATH_LINE.match(line.strip())]
