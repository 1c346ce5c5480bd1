import dataclasses
import tomllib

import pytest

from core.errors import RegistryError
from core.registry import DEFAULT_REGISTRY, load_registry, parse_registry


def _raw():
    return tomllib.loads(DEFAULT_REGISTRY.read_text())


def test_shipped_registry_shape():
    reg = load_registry()
    assert len(reg.channels) == 46
    assert reg.phases == ("idle", "execute", "persist", "beacon", "act", "dormant")
    assert set(reg.profiles) == {"ransomware", "scan-and-dial", "exfil", "miner", "rat", "dropper"}
    assert {c.source for c in reg.channels} == {"proc", "guest", "qmp", "netflow"}
    # Threat model: only what an endpoint agent or a network sensor sees is deployable.
    for c in reg.channels:
        assert c.deployable == (c.source in ("guest", "netflow")), c.name
    assert all(c.kind == "flow" for c in reg.channels_of("netflow"))
    assert {c.kind for c in reg.channels_of("proc")} == {"gauge", "counter"}


def test_hash_is_stable_and_ignores_layout(tmp_path):
    text = DEFAULT_REGISTRY.read_text()
    other = tmp_path / "c.toml"
    other.write_text("# a comment\n\n" + text)
    assert load_registry(other).schema_hash == load_registry().schema_hash


@pytest.mark.parametrize("attr,value", [("name", "guest.cpu_pct2"), ("kind", "counter"), ("unit", "ratio"),
                                        ("deployable", False), ("source", "proc")])
def test_changing_any_channel_attribute_changes_hash(attr, value):
    raw = _raw()
    base = parse_registry(raw).schema_hash
    ch = next(c for c in raw["channel"] if c["name"] == "guest.cpu_pct")
    ch[attr] = value
    if attr == "source":
        ch["name"] = "proc.cpu_pct"
    assert parse_registry(raw).schema_hash != base


def test_channel_order_changes_hash():
    raw = _raw()
    base = parse_registry(raw).schema_hash
    raw["channel"][0], raw["channel"][1] = raw["channel"][1], raw["channel"][0]
    assert parse_registry(raw).schema_hash != base


@pytest.mark.parametrize("edit,message", [
    (lambda r: r["channel"][3].update(kind="bogus"),
     "channel #4 'proc.vms_bytes': kind 'bogus' is not one of gauge, counter, flow"),
    (lambda r: r["channel"][0].pop("unit"), "channel #1 'proc.cpu_user_s': missing 'unit'"),
    (lambda r: r["channel"][0].update(deployable="yes"),
     "channel #1 'proc.cpu_user_s': 'deployable' must be bool, got 'yes'"),
    (lambda r: r["channel"][1].update(name="proc.cpu_user_s"), "channel #2 'proc.cpu_user_s': duplicate channel name"),
    (lambda r: r["channel"][0].update(source="disk"), "channel #1 'proc.cpu_user_s': unknown source 'disk'"),
    (lambda r: r["channel"][-1].update(agg="median"),
     "channel #46 'netflow.mean_duration_ms': agg 'median' is not one of count, sum, nunique, mean"),
    (lambda r: r.update(format=2), "'format' must be 1, got 2"),
])
def test_invalid_registry_names_entry_and_problem(edit, message):
    raw = _raw()
    edit(raw)
    with pytest.raises(RegistryError) as err:
        parse_registry(raw, "my.toml")
    assert str(err.value) == f"my.toml: {message}"


def test_unreadable_registry_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("format = [")
    with pytest.raises(RegistryError, match="bad.toml: not valid TOML"):
        load_registry(bad)
    with pytest.raises(RegistryError, match="channel registry not found"):
        load_registry(tmp_path / "missing.toml")
    # Regression: a 5,000-deep registry gave "unexpected RecursionError".
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(RegistryError, match=r"deep.toml: not a channel registry \(tables or arrays nested too deeply to read\)"):
        load_registry(deep)


def test_channels_command_shows_registry_and_rejects_bad_file(cli, tmp_path):
    ok = cli("channels")
    assert ok.exit_code == 0 and "schema hash" in ok.output
    bad = tmp_path / "c.toml"
    raw = DEFAULT_REGISTRY.read_text().replace('kind = "gauge"', 'kind = "gorge"', 1)
    bad.write_text(raw)
    result = cli("channels", "--channels", str(bad))
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {bad}: channel #3 'proc.rss_bytes': kind 'gorge' is not one of "
                                     "gauge, counter, flow")


def test_registry_is_frozen():
    reg = load_registry()
    with pytest.raises(dataclasses.FrozenInstanceError):
        reg.channels[0].unit = "x"
