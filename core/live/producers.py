"""The dashboard's producers: a replay of held-out episodes with live
inference, the eval reports' metrics, and the inference and server figures.
They post through a Publisher (core/live/publish.py), so the same code feeds
the dashboard beside it or one on another machine."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import Cis490Error
from core.live.publish import ProducerThread, Publisher, paced

PERF_EVERY_S = 5.0
WATCH_EVERY_S = 5.0


class ReplayError(Cis490Error):
    """A replay that cannot start: no checkpoint, no such episode, no store."""


def report_events(artifacts: Path, split: str) -> list[dict]:
    """`model_metric` and `profile_stats` of every evaluated model and mode on
    the split's test part (the newest report of each when several settings exist)."""
    from core.lab import Lab
    events: dict[tuple[str, str], list[dict]] = {}
    paths = sorted(Lab(Path(), artifacts).report_paths(split, "test"), key=lambda p: p.stat().st_mtime)
    for path in paths:
        try:
            r = json.loads(path.read_text())
            events[(r["model"], r["mode"])] = [
                {"type": "model_metric", "model": r["model"], "mode": r["mode"], "split": r["split"],
                 "part": r["part"], "macro_f1": r["macro_f1"], "macro_f1_ci": r["macro_f1_ci"],
                 "accuracy": r["accuracy"], "windows": r["windows"], "episodes": r["episodes"],
                 **({"membership_sha256": r["split_membership_sha256"]} if r.get("split_membership_sha256") else {}),
                 "transductive": bool(r.get("transductive"))},
                {"type": "profile_stats", "model": r["model"], "mode": r["mode"], "split": r["split"],
                 "profiles": [{k: p[k] for k in ("profile", "macro_f1", "macro_f1_ci", "windows", "episodes")}
                              for p in r["per_profile"]],
                 "untested_profiles": list(r.get("untested_profiles", []))}]
        except (OSError, ValueError, KeyError, TypeError):
            continue        # a report being rewritten or damaged: the next look picks it up
    return [ev for pair in events.values() for ev in pair]


class ReportWatch:
    """The split's eval reports as events: at the first look, and again at a
    look after one was written, rewritten or removed."""

    def __init__(self, artifacts: Path, split: str):
        self.artifacts, self.split = artifacts, split
        self._state: tuple | None = None

    def changed(self) -> list[dict] | None:
        """The events, if the reports changed since the last look; else None."""
        from core.lab import Lab
        state = tuple((str(p), p.stat().st_mtime_ns) for p in Lab(Path(), self.artifacts).report_paths(self.split,
                                                                                                         "test"))
        if state == self._state:
            return None
        self._state = state
        return report_events(self.artifacts, self.split)


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class PerfMeter:
    """Per-window inference latency (cut the window, preprocess, predict) and
    this process's memory and CPU, as `perf` events."""
    latencies_ms: list = field(default_factory=list)
    windows: int = 0
    _t0: float = field(default_factory=time.monotonic)
    _cpu0: float = field(default_factory=time.process_time)

    def add(self, seconds: float) -> None:
        self.latencies_ms.append(seconds * 1000)
        self.latencies_ms = self.latencies_ms[-2000:]
        self.windows += 1

    def event(self) -> dict | None:
        now, cpu = time.monotonic(), time.process_time()
        wall = max(now - self._t0, 1e-9)
        if not self.latencies_ms:
            return None
        lat = np.asarray(self.latencies_ms)
        ev = {"type": "perf", "latency_p50_ms": round(float(np.percentile(lat, 50)), 3),
              "latency_p99_ms": round(float(np.percentile(lat, 99)), 3),
              "windows_per_s": round(self.windows / wall, 3), "rss_mb": round(_rss_mb(), 1),
              "cpu_percent": round(100 * (cpu - self._cpu0) / wall, 1)}
        self._t0, self._cpu0, self.windows = now, cpu, 0
        return ev


@dataclass
class Replay:
    """What to replay: episodes (id, path in the store), and how."""
    store: Path
    episodes: list[tuple[str, str]]
    registry: object
    model: object            # a loaded checkpoint (BaseModel) or exported bundle (BundleModel)
    mode: str
    artifacts: Path
    split: str
    speed: float = 10.0
    loop: bool = True
    spec: object = None      # the WindowSpec the model was trained on (prepare_replay, bundle_replay set it)
    source: str = ""         # what runs the model: the checkpoint's or the bundle's folder
    held: int = 0            # test episodes of the split (`all`), of which `episodes` are in the store
    shown: list[str] | None = None   # telemetry channels to chart (--channels-shown); None: chosen for the model

    def describe(self) -> str:
        """'3 episode(s) of the 44 held out (the store holds those) with gru (realistic) at 10x, run by DIR'."""
        of = f" of the {self.held} held out (the store holds those)" if self.held > len(self.episodes) else ""
        return (f"{len(self.episodes)} episode(s){of} with {self.model.name} ({self.mode}) at {self.speed:g}x, "
                f"run by {self.source}")


def run_replay(replay: Replay, publisher: Publisher) -> None:
    """Publish the metrics, then replay the episodes (looping until stopped),
    re-publishing metrics when a report changes and perf every few seconds."""
    from core.extract.episode import episode_grid
    from core.live.replay import ModelInfo, charted_channels, episode_events
    from core.store import Episode
    m = replay.model
    info = ModelInfo(m.name, replay.mode, m.input_kind, list(m.classes))
    channels = replay.registry.channel_names
    charted = ([channels.index(c) for c in replay.shown] if replay.shown
               else charted_channels(channels, m.header.get("keep_names", [])))
    units = {channels[i]: replay.registry.channels[i].unit for i in charted}
    reports = ReportWatch(replay.artifacts, replay.split)
    metrics = reports.changed()
    if metrics and not publisher.send(metrics):
        return
    perf, last_perf, last_watch = PerfMeter(), time.monotonic(), time.monotonic()
    while not publisher.stop.is_set():
        for episode_id, rel in replay.episodes:
            grid = episode_grid(Episode.open(replay.store / rel, rel), replay.registry, replay.spec)
            for event, took in paced(publisher, episode_events(grid, m.predict_proba, info, channels, charted,
                                                                    units=units),
                                     replay.speed):
                if event["type"] == "prediction":
                    perf.add(took)
                now = time.monotonic()
                if now - last_perf >= PERF_EVERY_S:
                    last_perf = now
                    ev = perf.event()
                    if ev and not publisher.send([ev]):
                        return
                if now - last_watch >= WATCH_EVERY_S:
                    last_watch = now
                    metrics = reports.changed()
                    if metrics and not publisher.send(metrics):
                        return
            if publisher.stop.is_set():
                return
        if not replay.loop:
            ev = perf.event()
            if ev:
                publisher.send([ev])
            return


class ReplayThread(ProducerThread):
    """run_replay in a daemon thread, stopped (and joined) on exit."""

    def __init__(self, replay: Replay, url: str, token: str | None = None):
        super().__init__(url, token, "replay", lambda publisher: run_replay(replay, publisher))


def publish_metrics(artifacts: Path, split: str, url: str, token: str | None = None, watch: bool = False,
                    stop: threading.Event | None = None, retry_for_s: float | None = None,
                    on_retry=None) -> int:
    """Post the split's metrics once (or, watching, again whenever a report
    changes, until stopped); the number of events posted."""
    from core.lab import Lab
    publisher = Publisher(url, token, stop, retry_for_s=retry_for_s, on_retry=on_retry)
    reports = ReportWatch(artifacts, split)
    events = reports.changed()
    if not events and not watch:
        trained = [ref.shown for ref in Lab(Path(), artifacts).checkpoints(split)]
        what = (f"`cis490 eval {' '.join(trained)} --split {split}`" if trained
                else f"`cis490 train MODEL --split {split}`, then `cis490 eval MODEL --split {split}`")
        raise ReplayError(f"no eval report of split {split} under {Lab(Path(), artifacts).eval_root(split)}: run "
                          f"{what} first")
    sent = 0
    while True:
        if events and publisher.send(events):
            sent += len(events)
        if not watch or publisher.wait_s(WATCH_EVERY_S):
            return sent
        events = reports.changed()


def publish_replay(replay: Replay, url: str, token: str | None = None, stop: threading.Event | None = None,
                   retry_for_s: float | None = None, on_retry=None) -> int:
    """run_replay against a remote dashboard, in this thread; events posted."""
    publisher = Publisher(url, token, stop, retry_for_s=retry_for_s, on_retry=on_retry)
    run_replay(replay, publisher)
    return publisher.sent


def shown_channels(registry, names: list[str]) -> list[str]:
    """The channels `--channels-shown` names, checked against the registry
    (at most the page's eight sparklines)."""
    from core.live.replay import CHARTED
    known = registry.channel_names
    unknown = [n for n in names if n not in known]
    if unknown:
        near = [c for c in known if c.split(".")[0] == unknown[0].split(".")[0]][:6] or known[:6]
        raise ReplayError(f"--channels-shown: no channel '{unknown[0]}' in the registry (e.g. {', '.join(near)}; "
                          f"all {len(known)} are in {registry.path})")
    if len(names) > CHARTED:
        raise ReplayError(f"--channels-shown: at most {CHARTED} channels (the page's sparklines), got {len(names)}")
    return list(dict.fromkeys(names))


def prepare_replay(processed: Path, artifacts: Path, registry, model: str, mode: str, split: str,
                   episodes: list[str], store: Path, speed: float) -> Replay:
    """Everything a replay needs, checked before the server starts: the
    checkpoint (trained on this split, loadable), the episodes (the split's
    test part by default: held-out work; ids given must be extracted), the store."""
    import polars as pl

    from core.extract import read_extracted_episodes
    from core.train import load_split_checkpoint
    if speed <= 0:
        raise ReplayError(f"--speed must be above 0, got {speed}")
    m, split_frame, ck = load_split_checkpoint(processed, artifacts, registry, model, mode, split, ReplayError)
    if episodes == ["all"]:
        from core.split import held_out_episodes
        rows = held_out_episodes(processed, split_frame)
        if not rows:
            raise ReplayError(f"split {split} has no test episode with windows to replay")
    else:
        eps = read_extracted_episodes(processed).filter(pl.col("n_windows") > 0)
        known = set(eps["episode_id"].to_list())
        unknown = [e for e in episodes if e not in known]
        if unknown:
            raise ReplayError(f"episode {unknown[0]} is not in the extracted lab ({processed}); "
                              f"`--replay all` replays the {split} split's test part")
        order = {e: i for i, e in enumerate(episodes)}
        rows = eps.filter(pl.col("episode_id").is_in(episodes)).sort(
            pl.col("episode_id").replace_strict(order, return_dtype=pl.Int64)).select("episode_id", "rel_path").rows()
    rows, held = _in_store(store, rows, episodes == ["all"], split)
    spec = _spec(m.header)
    warm_up(m, spec, len(registry.channels))
    return Replay(store, rows, registry, m, mode, artifacts, split, speed, spec=spec, source=str(ck), held=held)


def warm_up(model, spec, channels: int) -> None:
    """One prediction on an empty window before the replay starts: first calls
    allocate (ONNX Runtime's arena, BLAS buffers, scikit-learn's neighbour
    index), and the first live window should not pay for them."""
    from core.extract.episode import STATS
    if model.input_kind == "summary":
        model.predict_proba(np.full((1, channels * len(STATS)), np.nan, np.float32))
    else:
        model.predict_proba((np.full((1, channels, spec.steps), np.nan, np.float32),
                             np.zeros((1, channels, spec.steps), np.uint8)))


def _spec(header: dict):
    """The window spec a model was trained on (its header's; extract's default for one without)."""
    from core.extract.episode import WindowSpec
    return WindowSpec(**header["window"]) if header.get("window") else WindowSpec()


def _in_store(store: Path, rows: list, every: bool, split: str) -> tuple[list, int]:
    """The episodes to replay: with `all`, those of the test part the store
    holds (a Pi may hold a copy of some); ids given must all be there."""
    present = [r for r in rows if (store / r[1] / "manifest.json").exists()]
    if every:
        if not present:
            raise ReplayError(f"{store}: holds none of the {len(rows)} test episodes of split {split} (pass --store "
                              "with the receiver store the lab was extracted from, or a copy of some of its episodes)")
        return present, len(rows)
    missing = [rel for _, rel in rows if not (store / rel / "manifest.json").exists()]
    if missing:
        raise ReplayError(f"{store / missing[0]}: episode not in the store (pass --store with the receiver store "
                          "the lab was extracted from)")
    return rows, len(rows)


def bundle_replay(directory: Path, artifacts: Path, mode: str, split: str, episodes: list[str], store: Path,
                  speed: float) -> Replay:
    """A replay run by an exported bundle (`cis490 export`): everything it
    needs is in the bundle (registry, window spec, the split's test episodes),
    so a Pi with the bundle and a store (or a copy of some episodes) replays
    held-out work without the lab's processed data, and without torch. Beside
    a checkpoint retrained since the export, it would replay an older model
    than the lab's: refused."""
    from core.deploy.bundle import bundle_registry, load_current_bundle
    m = load_current_bundle(directory, artifacts, split, mode, ReplayError, "replay the checkpoint: --engine checkpoint")
    registry = bundle_registry(directory, m.header)
    test = [tuple(r) for r in m.header["test_episodes"]]
    if episodes == ["all"]:
        if not test:
            raise ReplayError(f"split {split} has no test episode with windows to replay")
        rows = test
    else:
        known = dict(test)
        unknown = [e for e in episodes if e not in known]
        if unknown:
            raise ReplayError(f"episode {unknown[0]} is not in the {split} split's test part, the held-out "
                              f"episodes the bundle {directory} replays (`--replay all` replays them all)")
        rows = [(e, known[e]) for e in dict.fromkeys(episodes)]
    rows, held = _in_store(store, rows, episodes == ["all"], split)
    spec = _spec(m.header)
    warm_up(m, spec, len(registry.channels))
    return Replay(store, rows, registry, m, mode, artifacts, split, speed, spec=spec, source=str(directory),
                  held=held)


def default_store(paths, store: Path | None) -> Path:
    """--store as given (relative to the shell), else the store the lab was validated from."""
    from core.lab import Lab
    from core.paths import resolve_cli_path
    from core.validate import indexed_store
    index = Lab.of(paths).index
    return resolve_cli_path(store, (indexed_store(index) if index.exists() else None) or paths.default_store)


def lab_replay(paths, episodes: str, model: str, mode: str, split: str, store: Path | None, speed: float,
               engine: str = "auto", shown: str | None = None) -> Replay:
    """A replay for a lab home: `all` or comma-separated ids, the store it was
    validated from unless --store names another, run by the model's exported
    bundle (engine `bundle`, or `auto` when there is one) or its checkpoint;
    `shown`: the telemetry channels to chart, comma-separated."""
    replay = _lab_replay(paths, episodes, model, mode, split, store, speed, engine)
    if shown:
        replay.shown = shown_channels(replay.registry, [c.strip() for c in shown.split(",") if c.strip()])
    return replay


def _lab_replay(paths, episodes: str, model: str, mode: str, split: str, store: Path | None, speed: float,
                engine: str) -> Replay:
    from core.deploy.bundle import chosen_bundle
    from core.lab import Lab, Ref
    from core.models import model_class
    model_class(model)                   # a mistyped name is "unknown model", not "train gbtt"
    chosen = ["all"] if episodes.strip() == "all" else [e.strip() for e in episodes.split(",") if e.strip()]
    store = default_store(paths, store)
    bundle = chosen_bundle(Lab.of(paths), Ref(split, model, mode), engine, ReplayError, f"{model} in {mode} mode")
    if bundle is not None:
        return bundle_replay(bundle, paths.artifacts, mode, split, chosen, store, speed)
    from core.extract import features_registry
    registry = features_registry(paths.processed)
    return prepare_replay(paths.processed, paths.artifacts, registry, model, mode, split, chosen, store, speed)

