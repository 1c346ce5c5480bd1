"""Which telemetry channels a replay charts, and with what units."""
import pytest

from core.live.producers import ReplayError, shown_channels
from core.live.replay import charted_channels
from core.registry import load_registry

REG = load_registry()


def test_the_default_takes_channels_in_turn_from_every_source_the_model_sees():
    """Regression (issue 22): the page charted the first eight channels in
    registry order, all of one source, and never netflow."""
    names = REG.channel_names
    seen = [n for n in names if n.split(".")[0] in ("guest", "netflow")]
    rows = charted_channels(names, [f"{n}:mean" for n in seen])
    sources = [names[i].split(".")[0] for i in rows]
    assert len(rows) == 8 and rows == sorted(rows)
    assert sources.count("guest") == 4 and sources.count("netflow") == 4
    assert all(names[i] in seen for i in rows)
    few = charted_channels(names, [names[0], names[1]])
    assert few == [0, 1]


def test_channels_shown_are_checked_against_the_registry():
    names = REG.channel_names
    netflow = [n for n in names if n.startswith("netflow.")][:2]
    assert shown_channels(REG, [*netflow, netflow[0]]) == netflow         # named once each, in order
    with pytest.raises(ReplayError, match="no channel 'netflow.nope' in the registry \\(e.g. netflow."):
        shown_channels(REG, ["netflow.nope"])
    with pytest.raises(ReplayError, match="at most 8 channels"):
        shown_channels(REG, names[:9])


def test_every_charted_channel_has_a_unit():
    assert all(isinstance(c.unit, str) and c.unit for c in REG.channels)
