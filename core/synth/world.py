"""The synthetic lab's world: hosts, sample families, profile scripts, phase signatures.

Everything here is fixed by name (hosts, samples) so that a sample or host
means the same thing under every seed; the seed only drives episodes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

PHASES = ("idle", "execute", "persist", "beacon", "act", "dormant")
PROFILES = ("ransomware", "scan-and-dial", "exfil", "miner", "rat", "dropper")

# Each profile is a script of phases; durations are drawn per episode from
# these relative weights.
SCRIPTS: dict[str, tuple[tuple[str, float], ...]] = {
    "ransomware": (("idle", 0.8), ("execute", 0.8), ("persist", 0.7), ("beacon", 1.0), ("act", 2.0), ("dormant", 0.7)),
    "scan-and-dial": (("idle", 0.8), ("execute", 0.7), ("act", 1.8), ("beacon", 1.2), ("dormant", 0.8)),
    "exfil": (("idle", 0.8), ("execute", 0.8), ("persist", 0.8), ("beacon", 0.8), ("act", 1.8), ("dormant", 0.8)),
    "miner": (("idle", 0.8), ("execute", 0.8), ("persist", 0.8), ("act", 2.5)),
    "rat": (("idle", 0.7), ("execute", 0.7), ("persist", 0.7), ("beacon", 1.0), ("act", 1.4), ("beacon", 0.8), ("dormant", 0.8)),
    "dropper": (("idle", 0.8), ("execute", 0.8), ("act", 1.5), ("persist", 1.0), ("dormant", 1.0)),
}


@dataclass(frozen=True)
class Host:
    name: str
    cpu_speed: float      # work per core relative to the thinkpad
    vcpus: int
    disk_scale: float     # achievable disk throughput factor
    net_scale: float
    noise: float          # multiplicative noise (lognormal sigma) on rates
    jitter_s: float       # sampling jitter (std, seconds)
    base_mem_mb: float
    qmp_hz: float
    never_runs: tuple[str, ...] = ()


NAMED_HOSTS = (
    Host("lab-thinkpad", 1.00, 2, 1.00, 1.0, 0.10, 0.020, 620, 2.0),
    Host("lab-nuc", 1.30, 4, 1.60, 1.2, 0.14, 0.030, 700, 2.0),
    Host("lab-pi5", 0.45, 4, 0.35, 0.6, 0.22, 0.070, 480, 1.0, never_runs=("scan-and-dial",)),
    Host("lab-desktop", 1.80, 8, 2.20, 1.6, 0.08, 0.010, 820, 2.0),
)


def make_hosts(n: int) -> list[Host]:
    """The first `n` lab hosts: the four named ones, then generated extras."""
    hosts = list(NAMED_HOSTS[:n])
    for i in range(len(hosts), n):
        r = _name_rng(f"host-{i}")
        hosts.append(Host(
            f"lab-host{i + 1:02d}", float(r.uniform(0.5, 1.9)), int(r.choice([2, 4, 8])),
            float(r.uniform(0.4, 2.4)), float(r.uniform(0.6, 1.6)), float(r.uniform(0.06, 0.2)),
            float(r.uniform(0.01, 0.07)), float(r.uniform(450, 850)), 2.0))
    return hosts


def _name_rng(name: str) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


FAMILY_NAMES = ("alpha", "bravo", "charlie", "delta")


@dataclass(frozen=True)
class Sample:
    """A malware sample: a family variant with its own intensities."""
    name: str
    profile: str
    sha256: str
    intensity: float      # scales the act phase
    cpu_bias: float
    disk_bias: float
    net_bias: float
    beacon_period_s: float
    dormant_period_s: float
    c2_octets: tuple[int, int, int, int]
    c2_port: int
    duty: float           # fraction of act time the sample is busy
    stealth: float = 1.0  # scales every non-idle phase's activity (a drifting lab's samples grow quieter)


def make_samples() -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for profile in PROFILES:
        lst = []
        for fam in FAMILY_NAMES:
            name = f"{profile}.{fam}"
            r = _name_rng(name)
            lst.append(Sample(
                name=name, profile=profile,
                sha256=hashlib.sha256(f"sample:{name}".encode()).hexdigest(),
                intensity=float(r.lognormal(0, 0.35)),
                cpu_bias=float(r.lognormal(0, 0.25)),
                disk_bias=float(r.lognormal(0, 0.3)),
                net_bias=float(r.lognormal(0, 0.3)),
                beacon_period_s=float(r.uniform(3, 12)),
                dormant_period_s=float(r.uniform(25, 60)),
                c2_octets=(int(r.choice([45, 91, 185, 193])), int(r.integers(1, 255)),
                           int(r.integers(1, 255)), int(r.integers(1, 255))),
                c2_port=int(r.choice([443, 8080, 8443, 4444, 53])),
                duty=float(r.uniform(0.55, 1.0)),
            ))
        out[profile] = lst
    return out


LATE_FAMILY = "echo"     # the variant a drifting lab meets only late (synth --drift)


def late_variant(profile: str) -> Sample:
    """A family variant that appears only in the last stretch of a drifting
    lab, quieter than the four families a model trained on: little work in
    its act phase, beacons as slow as the others' dormant check-ins."""
    name = f"{profile}.{LATE_FAMILY}"
    r = _name_rng(name)
    return Sample(name=name, profile=profile, sha256=hashlib.sha256(f"sample:{name}".encode()).hexdigest(),
                  intensity=float(r.lognormal(-1.6, 0.2)), cpu_bias=float(r.lognormal(-0.5, 0.2)),
                  disk_bias=float(r.lognormal(-0.5, 0.2)), net_bias=float(r.lognormal(-0.5, 0.2)),
                  beacon_period_s=float(r.uniform(25, 45)), dormant_period_s=float(r.uniform(8, 14)),
                  c2_octets=(int(r.choice([23, 77, 103])), int(r.integers(1, 255)), int(r.integers(1, 255)),
                             int(r.integers(1, 255))),
                  c2_port=int(r.choice([80, 993, 2222])), duty=float(r.uniform(0.3, 0.5)), stealth=0.4)


def drifted(sample: Sample, amount: float) -> Sample:
    """The sample `amount` of the way through a drifting lab (0: as made).
    Samples are repacked to evade over the months, so they drift quieter:
    act intensity and every non-idle phase's activity scale by e^-amount,
    resource biases and busy share by e^(-amount/2), and the beacon period
    stretches by e^(amount/2)."""
    if amount == 0:
        return sample
    quieter = float(np.exp(-amount / 2))
    return replace(sample, intensity=sample.intensity * float(np.exp(-amount)),
                   cpu_bias=sample.cpu_bias * quieter, disk_bias=sample.disk_bias * quieter,
                   net_bias=sample.net_bias * quieter, duty=sample.duty * quieter,
                   beacon_period_s=sample.beacon_period_s / quieter,
                   stealth=sample.stealth * float(np.exp(-amount)))


@dataclass(frozen=True)
class Signature:
    """Latent activity of a phase, before host and sample scaling.

    cpu: cores of reference work; rd/wr: disk B/s; fc/fr/aut: files created,
    renamed, autorun writes per second; procs: extra guest processes;
    mem_mb: extra guest memory.
    """
    cpu: float
    rd: float
    wr: float
    fc: float = 0.0
    fr: float = 0.0
    aut: float = 0.0
    procs: float = 0.0
    mem_mb: float = 0.0


BASE = {
    "idle": Signature(0.05, 30e3, 60e3, 0.05, 0.0, 0.0, 0, 0),
    "execute": Signature(0.75, 4e6, 1.5e6, 3.0, 0.3, 0.1, 4, 150),
    "persist": Signature(0.25, 0.6e6, 1.0e6, 1.5, 0.6, 2.0, 2, 90),
    "beacon": Signature(0.09, 60e3, 80e3, 0.1, 0.0, 0.0, 1, 70),
    "dormant": Signature(0.04, 30e3, 50e3, 0.05, 0.0, 0.0, 1, 75),
}
ACT = {
    "ransomware": Signature(1.3, 30e6, 30e6, 8.0, 25.0, 0.0, 3, 300),
    "scan-and-dial": Signature(0.35, 0.1e6, 0.2e6, 0.2, 0.0, 0.0, 2, 120),
    "exfil": Signature(0.35, 6e6, 0.3e6, 0.3, 0.0, 0.0, 2, 160),
    "miner": Signature(1.9, 0.1e6, 0.2e6, 0.1, 0.0, 0.0, 2, 480),
    "rat": Signature(0.5, 1.5e6, 0.8e6, 1.0, 0.5, 0.2, 3, 200),
    "dropper": Signature(0.3, 0.3e6, 2.5e6, 4.0, 0.2, 0.0, 2, 140),
}


def signature(phase: str, profile: str) -> Signature:
    return ACT[profile] if phase == "act" else BASE[phase]
