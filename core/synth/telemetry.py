"""Latent activity and its observation by the sample sources (proc, guest, qmp)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl

from core.synth.episode import (NS, STEP, VM_IP, EpisodeData, _duty_mask, _smooth,
                                generate_flows, plan_phases)
from core.synth.world import Host, Sample, signature

GUEST_HZ = 1.0
PROC_HZ = 2.0


def latent_activity(rng, plan, duration_s: float, host: Host, sample: Sample, profile: str) -> dict[str, np.ndarray]:
    """Per-step latent levels (length n = duration / 0.5 s)."""
    n = int(round(duration_s / STEP))
    keys = ("cpu", "rd", "wr", "fc", "fr", "aut", "procs", "mem_mb")
    lat = {k: np.zeros(n) for k in keys}
    for phase, t0, t1 in plan:
        a, b = int(t0 / STEP), int(t1 / STEP)
        if b <= a:
            continue
        sig = signature(phase, profile)
        scale = dict.fromkeys(keys, 1.0 if phase == "idle" else sample.stealth)
        if phase == "act":
            duty = _duty_mask(rng, b - a, sample.duty)
            k = sample.intensity
            q = sample.stealth
            scale.update(cpu=q * k * sample.cpu_bias * duty, rd=q * k * sample.disk_bias * duty,
                         wr=q * k * sample.disk_bias * duty, fc=q * k * duty, fr=q * k * duty)
        for key in keys:
            lat[key][a:b] = getattr(sig, key) * scale[key]
        if phase == "act" and profile == "miner":
            # A miner takes every core it finds, whatever the host.
            lat["cpu"][a:b] = 0.92 * host.vcpus * host.cpu_speed * duty
    # User and OS background (updates, antivirus): bursts in any phase.
    n_bursts = rng.poisson(duration_s / 90)
    for _ in range(n_bursts):
        s = int(rng.integers(0, n))
        e = min(n, s + int(rng.integers(4, 12)))
        lat["cpu"][s:e] += rng.uniform(0.2, 0.7)
        lat["rd"][s:e] += rng.uniform(1e6, 8e6)
    noise = lambda: rng.lognormal(0, host.noise, n)  # noqa: E731
    for key in ("cpu", "rd", "wr"):
        lat[key] = _smooth(lat[key], 3) * noise()
    lat["mem_mb"] = _smooth(lat["mem_mb"], 20)
    lat["procs"] = np.round(_smooth(lat["procs"], 6))
    lat["cpu_used"] = np.minimum(lat["cpu"] / host.cpu_speed, host.vcpus)
    ds = host.disk_scale ** 0.8
    lat["rd"] *= ds
    lat["wr"] *= ds
    return lat


def _sample_times(rng, duration_s: float, hz: float, jitter: float) -> np.ndarray:
    k = int(np.floor(duration_s * hz))
    base = (np.arange(k) + 0.1) / hz
    return base + np.clip(rng.normal(0, jitter, k), -0.2 / hz, 0.2 / hz)


def _cum(rate: np.ndarray, t: np.ndarray, start: float) -> np.ndarray:
    """A cumulative counter sampled at times t, given a per-step rate."""
    edges = np.arange(len(rate) + 1) * STEP
    cum = np.concatenate([[0.0], np.cumsum(rate * STEP)])
    return start + np.interp(t, edges, cum)


def _at(level: np.ndarray, t: np.ndarray) -> np.ndarray:
    return level[np.minimum((t / STEP).astype(int), len(level) - 1)]


def _per_step(t: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    idx = np.minimum((t / STEP).astype(int), n - 1)
    return np.bincount(idx, weights=w, minlength=n) / STEP


def _jsonl(columns: dict[str, np.ndarray], ints: set[str]) -> bytes:
    # Byte counts are whole numbers in real telemetry; keep them so.
    df = pl.DataFrame({k: (v.astype(np.int64) if k in ints else np.round(v, 0 if "bytes" in k else 4))
                       for k, v in columns.items()})
    return df.write_ndjson().encode()


def generate_episode(rng: np.random.Generator, host: Host, sample: Sample, profile: str,
                     duration_s: float, start_ns: int) -> EpisodeData:
    plan = plan_phases(rng, profile, duration_s)
    lat = latent_activity(rng, plan, duration_s, host, sample, profile)
    flows = generate_flows(rng, plan, duration_s, host, sample, profile)
    n = len(lat["cpu"])
    net_out = _per_step(flows["t"], flows["bo"], n) + 150
    net_in = _per_step(flows["t"], flows["bi"], n) + 300
    pk_out = _per_step(flows["t"], flows["po"], n) + 2
    pk_in = _per_step(flows["t"], flows["pi"], n) + 3
    conns = np.zeros(n + 1)
    tcp = ~flows["udp"].astype(bool)
    s_idx = np.minimum((flows["t"][tcp] / STEP).astype(int), n - 1)
    e_idx = np.minimum(((flows["t"][tcp] + flows["dur"][tcp] / 1000) / STEP).astype(int) + 1, n)
    np.add.at(conns, s_idx, 1)
    np.add.at(conns, e_idx, -1)
    conns = 4 + np.cumsum(conns)[:n]

    clocks = {
        "proc": {"native_field": "t_mono_ns", "base": "host-monotonic", "unit_ns": 1,
                 "offset_ns": start_ns - int(rng.uniform(3600, 30 * 86400) * NS)},
        "guest": {"native_field": "t_guest_ns", "base": "guest-realtime", "unit_ns": 1,
                  "offset_ns": int(rng.normal(0, 2) * NS)},
        "qmp": {"native_field": "t_host_ns", "base": "host-realtime", "unit_ns": 1, "offset_ns": 0},
        # The exporter stamps flows in its own uptime (ms): not wall time.
        "netflow": {"native_field": "t_exporter_ms", "base": "exporter-uptime", "unit_ns": 1_000_000,
                    "offset_ns": start_ns - int(rng.uniform(86400, 60 * 86400) * NS)},
    }
    files: dict[str, bytes] = {}
    rows: dict[str, int] = {}
    hz = {"proc": PROC_HZ, "guest": GUEST_HZ, "qmp": host.qmp_hz}

    def stamp(src: str, t: np.ndarray) -> dict[str, np.ndarray]:
        wall = start_ns + np.round(t * NS).astype(np.int64)
        c = clocks[src]
        return {"t_wall_ns": wall, c["native_field"]: (wall - c["offset_ns"]) // c["unit_ns"]}

    cpu, io = lat["cpu_used"], lat["rd"] + lat["wr"]
    gn = lambda m, s=0.02: rng.normal(1, s, m)  # noqa: E731  gauge noise

    t = _sample_times(rng, duration_s, hz["proc"], host.jitter_s)
    m = len(t)
    proc = stamp("proc", t)
    proc.update({
        "cpu_user_s": _cum(cpu * 0.82 + 0.04, t, rng.uniform(10, 5000)),
        "cpu_system_s": _cum(cpu * 0.18 + io / 1.5e8 + 0.015, t, rng.uniform(5, 2000)),
        "rss_bytes": (host.base_mem_mb + 700 + 0.9 * _at(lat["mem_mb"], t)) * 2**20 * gn(m, 0.003),
        "vms_bytes": np.full(m, 3.6e9 + host.vcpus * 1.3e8) * gn(m, 0.0005),
        "num_threads": 6 + host.vcpus + (_at(io, t) > 1e6) * 4.0,
        "io_read_bytes": _cum(lat["rd"] * 0.92, t, rng.uniform(1e8, 1e10)),
        "io_write_bytes": _cum(lat["wr"] * 1.02, t, rng.uniform(1e8, 1e10)),
        "ctx_vol": _cum(250 + 1800 * cpu + io / 6e4, t, rng.uniform(1e5, 1e7)),
        "ctx_invol": _cum(15 + 400 * cpu / host.vcpus / host.cpu_speed, t, rng.uniform(1e4, 1e6)),
        "minflt": _cum(80 + 5 * np.abs(np.gradient(lat["mem_mb"])) * 256 / STEP + 30 * cpu, t, rng.uniform(1e5, 1e7)),
        "majflt": _cum(0.2 + lat["rd"] / 4e7, t, rng.uniform(10, 1e4)),
        "num_fds": 38 + host.vcpus * 2 + _at(conns, t),
    })
    files["proc.jsonl"], rows["proc"] = _jsonl(proc, {"t_wall_ns", "t_mono_ns", "num_threads", "num_fds"}), m

    t = _sample_times(rng, duration_s, hz["guest"], host.jitter_s)
    m = len(t)
    guest = stamp("guest", t)
    guest.update({
        "cpu_pct": np.clip(100 * _at(cpu, t) / host.vcpus * gn(m, 0.05) + rng.normal(0, 0.5, m), 0, 100),
        "mem_used_bytes": (host.base_mem_mb + _at(lat["mem_mb"], t)) * 2**20 * gn(m, 0.004),
        "num_procs": 44 + _at(lat["procs"], t),
        "num_threads": 510 + 7 * _at(lat["procs"], t) + np.round(rng.normal(0, 3, m)),
        "disk_read_bytes": _cum(lat["rd"], t, rng.uniform(1e8, 5e9)),
        "disk_write_bytes": _cum(lat["wr"], t, rng.uniform(1e8, 5e9)),
        "net_sent_bytes": _cum(net_out, t, rng.uniform(1e6, 1e8)),
        "net_recv_bytes": _cum(net_in, t, rng.uniform(1e6, 1e9)),
        "files_created": _cum(lat["fc"] * rng.lognormal(0, 0.3, n), t, rng.uniform(1e3, 1e5)).round(),
        "files_renamed": _cum(lat["fr"] * rng.lognormal(0, 0.3, n), t, rng.uniform(1e2, 1e4)).round(),
        "autorun_writes": _cum(lat["aut"] * rng.lognormal(0, 0.3, n), t, rng.uniform(10, 500)).round(),
        "tcp_conns": _at(conns, t),
    })
    files["guest.jsonl"], rows["guest"] = _jsonl(guest, {"t_wall_ns", "t_guest_ns", "num_procs", "num_threads", "tcp_conns"}), m

    t = _sample_times(rng, duration_s, hz["qmp"], host.jitter_s)
    m = len(t)
    qmp = stamp("qmp", t)
    counters = {
        "blk_rd_bytes": _cum(lat["rd"] * 0.97, t, rng.uniform(1e8, 5e9)),
        "blk_wr_bytes": _cum(lat["wr"] * 1.01, t, rng.uniform(1e8, 5e9)),
        "blk_rd_ops": _cum(lat["rd"] / 65536 + 1, t, rng.uniform(1e4, 1e6)).round(),
        "blk_wr_ops": _cum(lat["wr"] / 65536 + 1, t, rng.uniform(1e4, 1e6)).round(),
        "net_rx_bytes": _cum(net_in * 1.04, t, rng.uniform(1e6, 1e9)),
        "net_tx_bytes": _cum(net_out * 1.04, t, rng.uniform(1e6, 1e8)),
        "net_rx_pkts": _cum(pk_in, t, rng.uniform(1e4, 1e6)).round(),
        "net_tx_pkts": _cum(pk_out, t, rng.uniform(1e4, 1e6)).round(),
        "vcpu_time_s": _cum(cpu, t, rng.uniform(10, 5000)),
    }
    if rng.random() < 0.2:
        # A QMP reconnect restarts every qmp counter from zero mid-episode.
        cut = int(rng.integers(m // 4, max(m // 4 + 1, 3 * m // 4)))
        for key, v in counters.items():
            v[cut:] -= v[cut] - rng.uniform(0, 10)
    qmp.update(counters)
    qmp["dirty_rate_mbps"] = np.maximum(0, _at(lat["wr"], t) / 2e6 + 4 * _at(cpu, t) * gn(m, 0.1) + rng.normal(0.5, 0.1, m))
    qmp["balloon_bytes"] = np.full(m, 2.0 * 2**30)
    files["qmp.jsonl"], rows["qmp"] = _jsonl(qmp, {"t_wall_ns", "t_host_ns"}), m

    files["netflow.jsonl"], rows["netflow"] = _netflow_jsonl(flows, start_ns, clocks["netflow"], rng), len(flows["t"])
    labels = [(start_ns + int(t0 * NS), phase) for phase, t0, _ in plan]
    files["labels.jsonl"] = "".join(json.dumps({"t_wall_ns": t, "phase": p}) + "\n" for t, p in labels).encode()
    rows["labels"] = len(labels)
    return EpisodeData(files, rows, labels, clocks, hz, start_ns, start_ns + int(duration_s * NS))


def _netflow_jsonl(fl: dict[str, np.ndarray], start_ns: int, clock: dict, rng) -> bytes:
    m = len(fl["t"])
    wall = start_ns + np.round(fl["t"] * NS).astype(np.int64)
    ip = fl["ip"].astype(np.int64)
    df = pl.DataFrame({
        "t_wall_ns": wall,
        "t_exporter_ms": (wall - clock["offset_ns"]) // clock["unit_ns"],
        "duration_ms": fl["dur"],
        "src_ip": np.full(m, VM_IP),
        "dst_ip": ip,
        "src_port": rng.integers(32768, 61000, m),
        "dst_port": fl["port"].astype(np.int64),
        "proto": np.where(fl["udp"].astype(bool), "udp", "tcp"),
        "bytes_out": fl["bo"].astype(np.int64),
        "bytes_in": fl["bi"].astype(np.int64),
        "packets_out": fl["po"].astype(np.int64),
        "packets_in": fl["pi"].astype(np.int64),
        "tcp_flags": np.where(fl["udp"].astype(bool), 0, fl["flags"]).astype(np.int64),
    })
    octet = lambda s: ((pl.col("dst_ip") // (1 << s)) % 256).cast(pl.Utf8)  # noqa: E731
    df = df.with_columns(pl.concat_str([octet(24), octet(16), octet(8), octet(0)], separator=".").alias("dst_ip"))
    return df.write_ndjson().encode() if m else b""
