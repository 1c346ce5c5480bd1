"""`cis490 synth`: a realistic synthetic receiver store with a ground-truth file.

The plan (who runs what, when, with which fault) is drawn in one process from
the seed, so the store is identical whatever the number of workers; each
worker then generates and writes whole episodes.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import ConfigError, StoreError
from core.parallel import pool_map, process_pool
from core.paths import atomic_write_text, ensure_dir, remove_dead_temps, temp_prefix
from core.store import FORMAT_TAG, LABELS, MANIFEST
from core.synth.faults import FAULTS, IN_FLIGHT, Draft
from core.synth.world import LATE_FAMILY, PROFILES, drifted, late_variant, make_hosts, make_samples

NS = 1_000_000_000
LAB_EPOCH = datetime(2026, 9, 1, tzinfo=timezone.utc)
TOO_SHORT_S = 8.0
MIN_DURATION_S = 40.0
MAX_DRIFT = 3.0
LATE_FROM = 0.6      # a drifting lab's late variants appear from this share of its span on


@dataclass(frozen=True)
class SynthConfig:
    episodes: int = 200
    hosts: int = 4
    duration_s: float = 300.0
    seed: int = 0
    fault_rate: float = 0.1
    in_flight: int = 2
    span_days: float = 60.0
    drift: float = 0.0          # how far samples evolve over the span (0: not at all; see plan_store)

    def check(self) -> None:
        if self.episodes < 1:
            raise ConfigError(f"--episodes must be at least 1, got {self.episodes}")
        if not 1 <= self.hosts <= 64:
            raise ConfigError(f"--hosts must be between 1 and 64, got {self.hosts}")
        if self.duration_s < MIN_DURATION_S:
            raise ConfigError(f"--duration must be at least {MIN_DURATION_S:g} s, got {self.duration_s:g}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ConfigError(f"--fault-rate must be between 0 and 1, got {self.fault_rate}")
        if self.in_flight < 0:
            raise ConfigError(f"--in-flight must be >= 0, got {self.in_flight}")
        if not 0.0 <= self.drift <= MAX_DRIFT:
            raise ConfigError(f"--drift must be between 0 and {MAX_DRIFT:g}, got {self.drift:g}")


@dataclass(frozen=True)
class EpisodeSpec:
    index: int
    episode_id: str
    host: str
    profile: str
    sample: str
    duration_s: float
    started_at_ns: int
    received_at: str
    fault: str | None
    drift: float = 0.0           # how far this episode's sample has drifted (world.drifted)

    @property
    def rel(self) -> str:
        return f"{self.host}/{self.episode_id}"


@dataclass
class SynthResult:
    store: Path
    truth: Path
    episodes: int
    in_flight: int
    bytes: int
    seconds: float
    expected: dict[str, int]
    per_host: dict[str, int]
    config: SynthConfig


def truth_path(store: Path) -> Path:
    """The ground truth lives beside the store, never inside an episode."""
    return store.with_name(store.name + ".truth.jsonl")


def plan_store(cfg: SynthConfig) -> list[EpisodeSpec]:
    cfg.check()
    rng = np.random.default_rng(cfg.seed)
    hosts = make_hosts(cfg.hosts)
    samples = make_samples()
    n = cfg.episodes
    faults = [None] * n
    if cfg.fault_rate > 0:
        n_faulty = min(n, max(min(n, len(FAULTS)), round(cfg.fault_rate * n)))
        kinds = list(FAULTS)
        rng.shuffle(kinds)
        for j, idx in enumerate(rng.permutation(n)[:n_faulty]):
            faults[idx] = kinds[j % len(kinds)]
    gaps = rng.exponential(cfg.span_days * 86400 / n, n)
    received = LAB_EPOCH.timestamp() + np.cumsum(gaps)
    # Drift draws from its own generator, so a lab without drift is the one it always was.
    late_rng = np.random.default_rng([cfg.seed, 7])
    frac = (received - received[0]) / max(received[-1] - received[0], 1.0)
    specs = []
    for i in range(n):
        host = hosts[int(rng.integers(len(hosts)))]
        allowed = [p for p in PROFILES if p not in host.never_runs]
        profile = allowed[int(rng.integers(len(allowed)))]
        sample = samples[profile][int(rng.integers(len(samples[profile])))]
        if cfg.drift and frac[i] >= LATE_FROM and late_rng.random() < 0.5:
            sample = late_variant(profile)
        dur = float(np.round(cfg.duration_s * rng.uniform(0.8, 1.2) * 2) / 2)
        if faults[i] == "too_short":
            dur = TOO_SHORT_S
        recv_ns = int(received[i] * NS)
        started = recv_ns - int((dur + rng.uniform(5, 120)) * NS)
        tag = hashlib.sha256(f"{cfg.seed}:{i}".encode()).hexdigest()[:8]
        specs.append(EpisodeSpec(
            i, f"ep{i:06d}-{tag}", host.name, profile, sample.name, dur, started,
            datetime.fromtimestamp(recv_ns / NS, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            faults[i], round(cfg.drift * float(frac[i]), 4)))
    return specs


def _write_episode(args: tuple[EpisodeSpec, SynthConfig, str]) -> tuple[list[dict], int]:
    from core.synth.telemetry import generate_episode

    spec, cfg, root = args
    rng = np.random.default_rng([cfg.seed, spec.index])
    host = {h.name: h for h in make_hosts(cfg.hosts)}[spec.host]
    sample = drifted(next(s for s in [*make_samples()[spec.profile], late_variant(spec.profile)]
                          if s.name == spec.sample), spec.drift)
    ep = generate_episode(rng, host, sample, spec.profile, spec.duration_s, spec.started_at_ns)
    fault = FAULTS.get(spec.fault) if spec.fault else None
    manifest = {
        "format": FORMAT_TAG,
        "episode_id": spec.episode_id,
        "host_id": spec.host,
        "profile": spec.profile,
        "sample_name": sample.name,
        "sample_sha256": sample.sha256,
        "started_at_ns": ep.started_at_ns,
        "ended_at_ns": ep.ended_at_ns,
        "received_at": spec.received_at,
        "sampling_hz": ep.sampling_hz,
        "clocks": ep.clocks,
        "files": {},
    }
    d = Draft(raw=dict(ep.files), manifest=manifest)

    def stage(name: str) -> None:
        if fault is not None and fault.stage == name and fault.apply is not None:
            fault.apply(d, rng)

    stage("raw")
    stage("fields")
    for name, raw in d.raw.items():
        if name == LABELS:
            d.blobs[name] = raw
        else:
            d.blobs[name + ".gz"] = gzip.compress(raw, compresslevel=6, mtime=0)
    stage("gzip")
    for name, blob in d.blobs.items():
        raw_name = name.removesuffix(".gz")
        d.manifest["files"][name] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
                                     "rows": d.raw[raw_name].count(b"\n")}
    stage("hashed")
    d.manifest_bytes = json.dumps(d.manifest, indent=2).encode()
    stage("manifest")

    out = Path(root) / spec.rel
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, blob in d.blobs.items():
        if name not in d.delete_after_listing:
            (out / name).write_bytes(blob)
            total += len(blob)
    # The receiver writes the manifest last; so do we.
    (out / MANIFEST).write_bytes(d.manifest_bytes)
    total += len(d.manifest_bytes)
    duplicated = spec.fault == "duplicate_episode_id"
    # A resent copy: the original (received first) stays accepted, the copy is rejected.
    truth = [_truth_row(spec, spec.rel, fault.name if fault else None,
                        fault.status if fault and not duplicated else "accepted",
                        fault.reason if fault and not duplicated else None)]
    if duplicated:
        resent = f"{spec.rel}-resent"
        shutil.copytree(out, Path(root) / resent)
        total *= 2
        truth.append(_truth_row(spec, resent, fault.name, fault.status, fault.reason))
    return truth, total


def _truth_row(spec: EpisodeSpec, rel: str, fault: str | None, status: str, reason: str | None) -> dict:
    return {"rel_path": rel, "episode_id": spec.episode_id, "host_id": spec.host, "profile": spec.profile,
            "sample_name": spec.sample, "fault": fault, "expected_status": status, "expected_reason": reason,
            # What drifted: how far its sample evolved, and whether it is a variant only a drifting lab has late.
            "drift": spec.drift, "late_variant": spec.sample.endswith(f".{LATE_FAMILY}")}


def _write_in_flight(root: Path, specs: list[EpisodeSpec], k: int) -> list[dict]:
    """Uploads still arriving: files but no manifest yet."""
    rows = []
    for j in range(k):
        spec = specs[j % len(specs)]
        rel = f"{spec.host}/upload-{spec.episode_id}-{j}"
        d = root / rel
        d.mkdir(parents=True)
        (d / LABELS).write_text(json.dumps({"t_wall_ns": spec.started_at_ns, "phase": "idle"}) + "\n")
        (d / "proc.jsonl.gz.part").write_bytes(gzip.compress(b'{"t_wall_ns": 1}\n', mtime=0)[:10])
        rows.append({**_truth_row(spec, rel, IN_FLIGHT, IN_FLIGHT, None), "episode_id": None})
    return rows


def generate_store(cfg: SynthConfig, out: Path, *, workers: int = 1, force: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> SynthResult:
    """Write the store to a temporary sibling, then rename it into place."""
    t0 = time.perf_counter()
    specs = plan_store(cfg)
    out = Path(out)
    occupied = out.is_file() or (out.is_dir() and any(out.iterdir()))
    if occupied and not force:
        raise StoreError(f"{out}: already exists and is not empty (pass --force to replace it)")
    ensure_dir(out.parent)
    remove_dead_temps(out.parent, out.name)
    tmp = out.with_name(f"{temp_prefix(out.name)}tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    truth: list[dict] = []
    total = 0
    try:
        jobs = [(s, cfg, str(tmp)) for s in specs]
        if workers <= 1:
            results = map(_write_episode, jobs)
            for i, (rows, nbytes) in enumerate(results, 1):
                truth += rows
                total += nbytes
                if progress:
                    progress(i, len(jobs))
        else:
            with process_pool(workers) as pool:
                for i, (rows, nbytes) in enumerate(pool_map(pool, _write_episode, jobs, chunksize=4), 1):
                    truth += rows
                    total += nbytes
                    if progress:
                        progress(i, len(jobs))
        truth += _write_in_flight(tmp, specs, cfg.in_flight)
        if out.exists():
            trash = out.with_name(f"{temp_prefix(out.name)}old")
            os.replace(out, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tpath = truth_path(out)
    atomic_write_text(tpath, "".join(json.dumps(r, sort_keys=True) + "\n" for r in truth))
    expected: dict[str, int] = {}
    per_host: dict[str, int] = {}
    for r in truth:
        expected[r["expected_status"]] = expected.get(r["expected_status"], 0) + 1
        if r["expected_status"] != IN_FLIGHT:
            per_host[r["host_id"]] = per_host.get(r["host_id"], 0) + 1
    return SynthResult(out, tpath, sum(per_host.values()), cfg.in_flight, total,
                       time.perf_counter() - t0, expected, per_host, cfg)


DEMO_MARKER = ".cis490-demo"


def demo_home(target: Path) -> Path:
    """The demo's own lab home: `target`, made and marked by the demo. A
    directory there that the demo did not make (no marker) is refused, so the
    demo never replaces a lab's store, index, features, splits or checkpoints."""
    target = Path(target)
    if target.exists():
        if not target.is_dir():
            raise StoreError(f"{target}: exists and is not a directory; pass --dir for the demo lab")
        if not (target / DEMO_MARKER).exists() and any(target.iterdir()):
            raise StoreError(f"{target}: holds files the demo did not make; the demo never touches a lab it "
                             "did not make: pass --dir with a new directory for the demo lab")
    ensure_dir(target)
    (target / DEMO_MARKER).write_text("A lab made by `cis490 demo`; the next demo replaces its contents.\n")
    return target
