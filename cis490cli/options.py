"""Options several commands share, defined once so their names, choices,
ranges and help agree. Out-of-range values are usage errors (exit 2)."""
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

import typer

from core.lab import Mode, ModeOrBoth  # noqa: F401 (the one mode type, for every command's --mode)
from core.parallel import default_workers

if TYPE_CHECKING:
    from core.evaluate import EvalConfig


class SplitName(str, Enum):
    host = "host"
    sample = "sample"
    time = "time"


class EngineName(str, Enum):
    auto = "auto"
    bundle = "bundle"
    checkpoint = "checkpoint"


class PartName(str, Enum):
    test = "test"
    val = "val"


class UnitName(str, Enum):
    episode = "episode"
    window = "window"


class DeviceName(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


CHANNELS = typer.Option(None, "--channels", metavar="FILE",
                        help="Channel registry [default: the one the lab was validated with].")
WORKERS = typer.Option(default_workers(), "--workers", "-j", min=1, metavar="N", help="Worker processes.")
MODE = typer.Option(None, "--mode", help="Mode of bare model names [default: realistic].")
def duration(value: str | None) -> float | None:
    """Callback of --budget: `30m`, `1h30m`, `90s`, `2h` or plain seconds, as seconds."""
    import re
    if value is None:
        return None
    text = value.strip().lower()
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text)
    if not text or m is None or not any(m.groups()):
        raise typer.BadParameter(f"'{value}' is not a duration: write it as 30m, 1h30m, 90s or 45 (seconds).")
    h, mins, s = (float(g) if g else 0.0 for g in m.groups())
    seconds = 3600 * h + 60 * mins + s
    if seconds <= 0:
        raise typer.BadParameter(f"'{value}': a budget is longer than 0 s.")
    return seconds


def split_name(value: str | None) -> str | None:
    """Callback of --split: a split's name (a recipe's, or the --name it was made with)."""
    from core.splitparams import SPLIT_NAME, SPLIT_NAME_RULE
    if value is not None and not SPLIT_NAME.fullmatch(value):
        raise typer.BadParameter(f"'{value}' is not a split name: {SPLIT_NAME_RULE}.")
    return value


SPLIT = typer.Option("host", "--split", metavar="NAME", callback=split_name,
                     help="The split the checkpoints were trained on, by name: host, sample, time, or the --name "
                          "one was made with.")
PART = typer.Option(PartName.test, "--part", help="Part of the split to score.")
RESAMPLES = typer.Option(1000, "--resamples", min=10, metavar="N", help="Bootstrap resamples.")
UNIT = typer.Option(UnitName.episode, "--unit", help="Resampling unit: episode (cluster bootstrap) or window.")
# A replay's options (serve --replay, publish replay).
REPLAY_MODE = typer.Option(Mode.realistic, "--mode", help="The checkpoint's mode.")
REPLAY_SPLIT = typer.Option("host", "--split", metavar="NAME", callback=split_name,
                            help="The split the model was trained on, by name.")
SPEED = typer.Option(10.0, "--speed", min=0.01, metavar="X",
                     help="Replay at X times real time (a 5 s hop every 0.5 s at 10).")
STORE = typer.Option(None, "--store", metavar="DIR", help="Receiver store [default: the one the lab was validated "
                                                          "from].")
ENGINE = typer.Option(EngineName.auto, "--engine",
                      help="What runs the replay's model: its exported bundle (`cis490 export`; no torch), its "
                           "checkpoint, or auto: the bundle when there is one.")
CHANNELS_SHOWN = typer.Option(None, "--channels-shown", metavar="CH[,CH...]",
                              help="Telemetry channels the page charts (registry names, e.g. guest.cpu_percent,"
                                   "netflow.new_flows; at most 8) [default: those the model sees, taken in turn "
                                   "from each source].")
BOOT_SEED = typer.Option(0, "--seed", metavar="N", help="Bootstrap seed.")


def open_fraction(value: float | None) -> float | None:
    """Callback of fraction options: strictly between 0 and 1."""
    if value is not None and not 0 < value < 1:
        raise typer.BadParameter(f"{value:g} is not a fraction strictly between 0 and 1.")
    return value


def positive(value: float | None) -> float | None:
    """Callback of options that must be above 0 (their help says `x>0`)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value:g} is not above 0.")
    return value


# What eval reports beyond macro-F1 (docs/methods.md).
CONFIRM = typer.Option(1, "--confirm", min=1, metavar="N",
                       help="Time to detect: a phase is caught after N consecutive windows predict it.")
MIN_TRUST = typer.Option(0.0, "--min-trust", min=0.0, max=1.0, metavar="T",
                         help="Time to detect: a window counts only with at least this trust.")
ALPHA = typer.Option(0.1, "--alpha", metavar="A", callback=open_fraction,
                     help="Conformal prediction sets miss the truth at most this often (fitted on val).")
def slice_length(value: str | None) -> str | None:
    """Callback of --slice: a length such as 7d (a usage error otherwise)."""
    if value is not None:
        from core.errors import ConfigError
        from core.evaluate.pitfalls import parse_slice
        try:
            parse_slice(value)
        except ConfigError as e:
            raise typer.BadParameter(str(e).removeprefix("--slice ")) from None
    return value


SLICE = typer.Option(None, "--slice", metavar="LEN", callback=slice_length,
                     help="Macro-F1 per slice of received_at and AUT, e.g. 7d, 12h [default: 7d for the time "
                          "split, none for the others].")


def eval_config(split: str, part: PartName, resamples: int, unit: UnitName, seed: int, confirm: int = 1,
                min_trust: float = 0.0, alpha: float = 0.1, slice: str | None = None) -> EvalConfig:
    """eval's and compare's options as one checked configuration."""
    from core.evaluate import EvalConfig
    cfg = EvalConfig(split, part.value, resamples, unit.value, seed, confirm, min_trust, alpha, slice)
    cfg.check()
    return cfg
