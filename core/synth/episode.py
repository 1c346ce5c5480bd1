"""One synthetic episode: latent activity per 0.5 s step, then each source's rows.

The latent activity (CPU work, disk and file activity, memory, flows) follows
the phase script; every source observes it through the host's hardware, noise
and clocks. Host-only sources (proc, qmp) see the same activity from outside.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from core.synth.world import PHASES, SCRIPTS, Host, Sample, signature

STEP = 0.5
NS = 1_000_000_000
VM_IP = "10.0.2.15"
RESOLVER = (10 << 24) | (0 << 16) | (2 << 8) | 3


@dataclass
class EpisodeData:
    """What the writer needs: raw JSON-lines per file, labels, clocks, rates."""
    files: dict[str, bytes]           # file name (uncompressed) -> JSON lines
    rows: dict[str, int]
    labels: list[tuple[int, str]]     # (t_wall_ns, phase) transitions
    clocks: dict[str, dict]
    sampling_hz: dict[str, float]
    started_at_ns: int
    ended_at_ns: int


def plan_phases(rng: np.random.Generator, profile: str, duration_s: float) -> list[tuple[str, float, float]]:
    script = SCRIPTS[profile]
    w = np.array([wt for _, wt in script]) * rng.uniform(0.6, 1.4, len(script))
    min_len = min(12.0, duration_s / (len(script) * 1.5))
    lens = min_len + (duration_s - len(script) * min_len) * w / w.sum()
    bounds = np.round(np.concatenate([[0.0], np.cumsum(lens)]) / STEP) * STEP
    bounds[-1] = duration_s
    return [(ph, float(bounds[i]), float(bounds[i + 1])) for i, (ph, _) in enumerate(script)]


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return x
    pad = np.concatenate([np.full(k - 1, x[0]), x])
    return np.convolve(pad, np.ones(k) / k, mode="valid")


def _duty_mask(rng, n: int, duty: float) -> np.ndarray:
    """On/off blocks (mean 6 s) so that an act phase is intermittent."""
    out = np.empty(n)
    i = 0
    while i < n:
        blk = int(rng.geometric(1 / 12))
        out[i:i + blk] = 1.0 if rng.random() < duty else 0.25
        i += blk
    return out


class _Flows:
    """Accumulates flow records as parallel arrays."""

    def __init__(self) -> None:
        self.cols: dict[str, list[np.ndarray]] = {k: [] for k in (
            "t", "ip", "port", "udp", "bo", "bi", "po", "pi", "flags", "dur")}

    def add(self, t, ip, port, udp, bo, bi, flags, dur) -> None:
        m = len(t)
        if m == 0:
            return
        bcast = lambda v, dt: np.broadcast_to(np.asarray(v, dtype=dt), (m,)).copy()  # noqa: E731
        bo = np.maximum(bcast(bo, float), 40).round()
        bi = np.maximum(bcast(bi, float), 0).round()
        for key, val in (("t", np.asarray(t, float)), ("ip", bcast(ip, np.int64)), ("port", bcast(port, np.int64)),
                         ("udp", bcast(udp, bool)), ("bo", bo), ("bi", bi),
                         ("po", np.maximum(1, np.ceil(bo / 1200))), ("pi", np.ceil(bi / 1200)),
                         ("flags", bcast(flags, np.int64)), ("dur", np.maximum(bcast(dur, float), 0).round(1))):
            self.cols[key].append(val)

    def frame(self) -> dict[str, np.ndarray]:
        out = {k: (np.concatenate(v) if v else np.empty(0)) for k, v in self.cols.items()}
        order = np.argsort(out["t"], kind="stable")
        return {k: v[order] for k, v in out.items()}


def _poisson_times(rng, rate: np.ndarray) -> np.ndarray:
    counts = rng.poisson(np.clip(rate, 0, None) * STEP)
    steps = np.repeat(np.arange(len(rate)), counts)
    return (steps + rng.random(len(steps))) * STEP


def _periodic_times(rng, t0: float, t1: float, period: float) -> np.ndarray:
    t = np.arange(t0 + rng.uniform(0, period), t1, period)
    return np.clip(t + rng.normal(0, 0.08 * period, len(t)), t0, t1 - 1e-3)


def _ips(rng, m: int, first=(45, 91, 103, 185)) -> np.ndarray:
    a = rng.choice(first, m).astype(np.int64)
    return (a << 24) | rng.integers(0, 1 << 24, m, dtype=np.int64)


def generate_flows(rng, plan, duration_s: float, host: Host, sample: Sample, profile: str) -> dict[str, np.ndarray]:
    f = _Flows()
    n = int(round(duration_s / STEP))
    c2 = int(np.dot(sample.c2_octets, [1 << 24, 1 << 16, 1 << 8, 1]))
    tcp_full = 0x1B  # SYN|ACK|PSH|FIN: a completed exchange
    # OS background chatter in every phase: DNS and updates.
    t = _poisson_times(rng, np.full(n, 0.06))
    dns = rng.random(len(t)) < 0.5
    f.add(t[dns], RESOLVER, 53, True, rng.normal(70, 8, dns.sum()), rng.normal(160, 20, dns.sum()), 0, rng.uniform(5, 60, dns.sum()))
    f.add(t[~dns], _ips(rng, (~dns).sum(), (13, 20, 52)), 443, False, rng.lognormal(7, 0.6, (~dns).sum()),
          rng.lognormal(9, 0.8, (~dns).sum()), tcp_full, rng.uniform(50, 900, (~dns).sum()))
    net = host.net_scale
    k = sample.intensity
    for phase, t0, t1 in plan:
        if t1 - t0 <= 0:
            continue
        span = np.zeros(n)
        span[int(t0 / STEP):int(t1 / STEP)] = 1.0
        if phase in ("beacon", "dormant"):
            period = sample.beacon_period_s if phase == "beacon" else sample.dormant_period_s
            tb = _periodic_times(rng, t0, t1, period)
            f.add(tb, RESOLVER, 53, True, rng.normal(72, 6, len(tb)), rng.normal(150, 15, len(tb)), 0, rng.uniform(5, 40, len(tb)))
            f.add(tb + 0.05, c2, sample.c2_port, False, rng.normal(420, 60, len(tb)), rng.normal(1400, 250, len(tb)),
                  tcp_full, rng.uniform(80, 400, len(tb)))
        elif phase == "execute":
            te = _poisson_times(rng, span * 0.3)
            f.add(te, _ips(rng, len(te)), 443, False, rng.lognormal(7.5, 0.5, len(te)), rng.lognormal(11, 0.8, len(te)),
                  tcp_full, rng.uniform(100, 2000, len(te)))
        elif phase == "persist":
            tp = _poisson_times(rng, span * 0.08)
            f.add(tp, RESOLVER, 53, True, 70, 150, 0, 20)
        elif phase == "act":
            _act_flows(rng, f, profile, span, t0, t1, c2, sample, k, net, tcp_full)
    return f.frame()


def _act_flows(rng, f: _Flows, profile, span, t0, t1, c2, sample, k, net, tcp_full) -> None:
    if profile == "scan-and-dial":
        ts = _poisson_times(rng, span * 22 * k * np.sqrt(net))
        m = len(ts)
        ports = rng.choice([22, 23, 80, 443, 445, 3389, 5900, 8080], m)
        ports = np.where(rng.random(m) < 0.3, rng.integers(1, 65535, m), ports)
        ok = rng.random(m) < 0.04
        ips = (np.int64(10) << 24) | rng.integers(0, 1 << 24, m, dtype=np.int64)
        f.add(ts, ips, ports, False, np.where(ok, rng.lognormal(6, 0.5, m), 60), np.where(ok, rng.lognormal(6.5, 0.5, m), 0),
              np.where(ok, tcp_full, 0x02), np.where(ok, rng.uniform(20, 300, m), rng.uniform(1000, 3000, m)))
        td = _poisson_times(rng, span * 0.2)
        f.add(td, c2, sample.c2_port, False, rng.normal(600, 80, len(td)), rng.normal(900, 100, len(td)), tcp_full, 150)
    elif profile == "exfil":
        te = _poisson_times(rng, span * 0.4)
        m = len(te)
        f.add(te, c2 + rng.integers(0, 2, m), 443, False, rng.lognormal(np.log(2.5e6 * k * net), 0.5, m),
              rng.lognormal(8, 0.5, m), tcp_full, rng.uniform(2000, 15000, m))
    elif profile == "miner":
        tm = _poisson_times(rng, span * 0.25)
        f.add(tm, c2, 3333, False, rng.normal(520, 50, len(tm)), rng.normal(330, 40, len(tm)), 0x18, rng.uniform(1, 20, len(tm)))
    elif profile == "rat":
        tr = _poisson_times(rng, span * 1.5 * k)
        m = len(tr)
        f.add(tr, c2, sample.c2_port, False, rng.lognormal(np.log(2e4 * net), 1.0, m), rng.lognormal(np.log(1e4), 1.0, m),
              tcp_full, rng.uniform(50, 3000, m))
    elif profile == "dropper":
        td = _poisson_times(rng, span * 0.3)
        m = len(td)
        f.add(td, _ips(rng, m, (104, 151, 172)), rng.choice([80, 443], m), False, rng.lognormal(7, 0.4, m),
              rng.lognormal(np.log(4e6 * k * net), 0.6, m), tcp_full, rng.uniform(1500, 9000, m))
    elif profile == "ransomware":
        tr = _poisson_times(rng, span * 0.3)
        m = len(tr)
        f.add(tr, (np.int64(10) << 24) | rng.integers(0, 256, m, dtype=np.int64), 445, False,
              rng.lognormal(8, 0.7, m), rng.lognormal(8, 0.7, m), tcp_full, rng.uniform(50, 800, m))
