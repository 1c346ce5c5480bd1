import gzip
import json
import zlib
from collections import Counter

import pytest

from core.errors import ConfigError
from core.store import Episode, file_digest, scan_store
from core.synth import SynthConfig, generate_store, plan_store
from core.synth.faults import FAULTS
from tests.conftest import TINY


def _manifest_bytes(store):
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.glob("*/*/manifest.json"))}


def test_same_seed_gives_byte_identical_store(tmp_path, tiny_store):
    again = tmp_path / "again"
    generate_store(TINY, again, workers=1)  # other worker count, same content
    assert _manifest_bytes(again) == _manifest_bytes(tiny_store)
    a = sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    b = sorted(p.relative_to(tiny_store).as_posix() for p in tiny_store.rglob("*") if p.is_file())
    assert a == b
    for rel in a:
        assert (again / rel).read_bytes() == (tiny_store / rel).read_bytes(), rel


def test_other_seed_gives_other_store(tmp_path):
    a = plan_store(SynthConfig(episodes=10, seed=1))
    b = plan_store(SynthConfig(episodes=10, seed=2))
    assert [s.episode_id for s in a] != [s.episode_id for s in b]


def test_truth_covers_every_status_and_fault(tiny_store):
    truth = [json.loads(x) for x in (tiny_store.parent / "store.truth.jsonl").read_text().splitlines()]
    assert {r["expected_status"] for r in truth} == {"accepted", "degraded", "rejected", "errored", "in_flight"}
    assert {r["fault"] for r in truth if r["fault"] and r["fault"] != "in_flight"} == set(FAULTS)
    # The truth lies beside the store, never inside an episode.
    assert not list(tiny_store.rglob("*truth*"))


def test_injected_faults_are_really_there(tiny_store):
    truth = [json.loads(x) for x in (tiny_store.parent / "store.truth.jsonl").read_text().splitlines()]
    by_fault = {r["fault"]: r for r in truth if r["fault"]}
    ep = lambda f: tiny_store / by_fault[f]["rel_path"]  # noqa: E731
    m = json.loads((ep("sha256_mismatch") / "manifest.json").read_text())
    assert file_digest(ep("sha256_mismatch") / "proc.jsonl.gz")[0] != m["files"]["proc.jsonl.gz"]["sha256"]
    m = json.loads((ep("file_missing") / "manifest.json").read_text())
    assert "qmp.jsonl.gz" in m["files"] and not (ep("file_missing") / "qmp.jsonl.gz").exists()
    with pytest.raises((EOFError, OSError, zlib.error)):
        gzip.decompress((ep("truncated_gzip") / "proc.jsonl.gz").read_bytes())
    with pytest.raises(json.JSONDecodeError):
        json.loads((ep("manifest_unparseable") / "manifest.json").read_text())
    assert "proc.jsonl.gz" not in json.loads((ep("missing_proc") / "manifest.json").read_text())["files"]
    phases = [json.loads(x)["phase"] for x in (ep("unknown_phase") / "labels.jsonl").read_text().splitlines()]
    assert "exfiltrate" in phases
    dup = [r for r in truth if r["fault"] == "duplicate_episode_id"]
    assert dup and set(Counter(r["episode_id"] for r in dup).values()) == {2}
    flight = [e for e in scan_store(tiny_store) if e.in_flight]
    assert flight and not (flight[0].path / "manifest.json").exists()


def test_one_host_never_runs_scan_and_dial(tiny_store):
    for e in scan_store(tiny_store):
        if not e.in_flight and e.rel.startswith("lab-pi5/"):
            try:
                assert Episode.open(e.path).manifest.get("profile") != "scan-and-dial"
            except Exception:  # noqa: BLE001 - the unparseable-manifest fault
                pass


def test_plan_balances_hosts_and_profiles():
    specs = plan_store(SynthConfig(episodes=600, seed=0))
    hosts = Counter(s.host for s in specs)
    profiles = Counter(s.profile for s in specs)
    assert len(hosts) == 4 and min(hosts.values()) > 100
    assert len(profiles) == 6 and min(profiles.values()) > 60
    assert len({s.sample for s in specs}) == 24
    received = [s.received_at for s in specs]
    assert received == sorted(received)


@pytest.mark.parametrize("kwargs,message", [
    ({"episodes": 0}, "--episodes must be at least 1, got 0"),
    ({"duration_s": 5}, "--duration must be at least 40 s, got 5"),
    ({"fault_rate": 1.5}, "--fault-rate must be between 0 and 1, got 1.5"),
    ({"hosts": 0}, "--hosts must be between 1 and 64, got 0"),
    ({"drift": 4}, "--drift must be between 0 and 3, got 4"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ConfigError) as err:
        SynthConfig(**kwargs).check()
    assert str(err.value) == message


def test_extra_hosts_are_generated(tmp_path):
    specs = plan_store(SynthConfig(episodes=40, hosts=6, seed=0))
    assert {s.host for s in specs} >= {"lab-host05", "lab-host06"}


def test_drift_leaves_a_still_lab_as_it_was_and_records_what_drifted(tmp_path):
    from core.synth import LATE_FROM
    from core.synth.world import LATE_FAMILY, drifted, late_variant, make_samples
    still = plan_store(SynthConfig(episodes=80, seed=3))
    moving = plan_store(SynthConfig(episodes=80, seed=3, drift=1.5))
    assert all(s.drift == 0 for s in still)
    # Same hosts, profiles and times; only the samples of the late stretch may change.
    assert [(s.host, s.profile, s.received_at) for s in still] == [(s.host, s.profile, s.received_at) for s in moving]
    late = [s for s in moving if s.sample.endswith(f".{LATE_FAMILY}")]
    assert late and all(s.drift >= 1.5 * LATE_FROM - 1e-6 for s in late)
    assert moving[0].drift == 0 and moving[-1].drift == 1.5
    assert [s.drift for s in moving] == sorted(s.drift for s in moving)
    sample = make_samples()["miner"][0]
    quiet = drifted(sample, 1.0)
    assert quiet.intensity < sample.intensity and quiet.stealth < 1 and drifted(sample, 0) == sample
    assert late_variant("miner").name == "miner.echo"
    out = tmp_path / "store"
    generate_store(SynthConfig(episodes=30, seed=3, drift=2.0, fault_rate=0, in_flight=0), out, workers=1)
    truth = [json.loads(x) for x in (tmp_path / "store.truth.jsonl").read_text().splitlines()]
    assert {"drift", "late_variant"} <= set(truth[0]) and max(t["drift"] for t in truth) == 2.0
    assert all(t["late_variant"] == t["sample_name"].endswith(".echo") for t in truth)
