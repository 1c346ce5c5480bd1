"""`cis490 predict`: which phase is a run in, for runs nobody labelled.

Episodes are read from the store through the same on-demand window code live
inference uses (core.extract.episode.episode_grid): no extract needed, so a
Pi holding a bundle and some episodes can run it. A model runs as its
exported bundle (the base install, no torch) or its checkpoint (the lab).
Each run writes, under artifacts/predict/<split>/<model>_<mode>/<run>/, the
per-window predictions (windows/part-*.parquet, windows.csv) and each
episode's phase timeline (segments.parquet, segments.csv),
a timeline figure per episode (the first FIGURES), and predict.json: the
model it came from (by digest: `cis490 status` marks the run stale when the
model changes), the episodes and how they were chosen. README, "Reading
new runs".
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import Cis490Error
from core.safenames import csv_safe
from core.validate import READABLE

FIGURES = 20          # timeline figures per run: one per episode, the first twenty


class PredictError(Cis490Error):
    """A prediction cannot run as asked."""


@dataclass
class Engine:
    """A loaded model and what reading episodes for it needs."""
    model: object            # BaseModel (checkpoint) or BundleModel
    registry: object
    spec: object             # the WindowSpec it was trained on
    kind: str                # "bundle" or "checkpoint"
    source: Path             # its folder
    identity: str            # sha256 of its header (checkpoint) or bundle.json


@dataclass
class PredictResult:
    directory: Path | None       # None: nothing new to predict (manifest says why)
    manifest: dict
    segments: pl.DataFrame
    figures: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def load_engine(paths, model: str, mode: str, split: str, engine: str = "auto") -> Engine:
    """The bundle (engine `bundle`, or `auto` when there is one) or the checkpoint."""
    from core.deploy.bundle import bundle_registry, chosen_bundle, load_current_bundle
    from core.lab import BUNDLE, HEADER, Lab, Ref
    from core.live.producers import _spec
    from core.models import model_class
    from core.store import file_digest
    model_class(model)                            # an unknown name is "unknown model"
    ref = Ref(split, model, mode)
    bundle = chosen_bundle(Lab.of(paths), ref, engine, PredictError, ref.shown)
    if bundle is not None:
        m = load_current_bundle(bundle, paths.artifacts, split, mode, PredictError, "--engine checkpoint")
        return Engine(m, bundle_registry(bundle, m.header), _spec(m.header), "bundle", bundle,
                      file_digest(bundle / BUNDLE)[0])
    from core.extract import features_registry
    from core.train import load_split_checkpoint
    registry = features_registry(paths.processed)
    m, _, ck = load_split_checkpoint(paths.processed, paths.artifacts, registry, model, mode, split, PredictError)
    return Engine(m, registry, _spec(m.header), "checkpoint", ck, file_digest(ck / HEADER)[0])


def select_episodes(paths, store: Path, registry, ids: list[str], unlabelled: bool,
                    every: bool) -> tuple[list[dict], str]:
    """The episodes to predict, each {episode_id, rel_path, status}, and how
    they were chosen. From the acceptance index when the lab has one; else
    (a Pi with a store and no lab) each episode of the store is checked here
    by validate's own rules. Rejected and errored episodes are never read."""
    chosen = sum([bool(ids), unlabelled, every])
    if chosen != 1:
        raise PredictError("say which episodes: episode ids, --unlabelled or --all (one of them)")
    from core.lab import Lab
    index = Lab.of(paths).index
    if index.exists():
        rows = pl.read_parquet(index, columns=["episode_id", "rel_path", "status", "reasons",
                                               "manifest_sha256"]).to_dicts()
        how = f"acceptance index {index}"
    else:
        rows, how = _checked_here(store, registry), f"checked here by validate's rules ({store})"
    if ids:
        # An id's readable copy wins: a re-sent copy rejected as a duplicate
        # (duplicate_episode_id) must not hide the copy validate kept.
        by_id = {r["episode_id"]: r for r in sorted(rows, key=lambda r: r["status"] in READABLE) if r["episode_id"]}
        wanted = [_by_prefix(e, by_id, how, lambda: _landed_since(index, store)) for e in ids]
        bad = [by_id[e] for e in wanted if by_id[e]["status"] not in READABLE]
        if bad:
            raise PredictError(f"episode {bad[0]['episode_id']} was {bad[0]['status']} by validate "
                               f"({', '.join(bad[0]['reasons'] or [])}): its data cannot be read as it claims")
        picked = [by_id[e] for e in dict.fromkeys(wanted)]
    else:
        want = {"unlabelled"} if unlabelled else set(READABLE)
        picked = [r for r in rows if r["status"] in want]
        if not picked:
            landed = _landed_since(index, store)
            raise PredictError(f"no {'unlabelled ' if unlabelled else ''}episode to predict in the {how}"
                               + (f"; {landed} since validate: run `cis490 validate` first" if landed else ""))
    return [{**{k: r[k] for k in ("episode_id", "rel_path", "status")}, "manifest_sha256": r.get("manifest_sha256")}
            for r in picked], how


def new_to_model(paths, ref, engine: Engine, episodes: list[dict]) -> tuple[list[dict], int, list[str]]:
    """The episodes no earlier predict run of this model (the same checkpoint
    or bundle, by digest) read as they are now (by id and manifest digest);
    how many it leaves out, and the runs that read them. An episode an
    earlier run failed to read is tried again."""
    from core.lab import Lab
    done: set[tuple[str, str | None]] = set()
    runs = []
    for r, run_name, mpath in Lab.of(paths).prediction_runs():
        if r != ref:
            continue
        try:
            m = json.loads(mpath.read_text())
            if m.get("model_sha256") != engine.identity:
                continue
            failed = {f["episode_id"] for f in m.get("failed", [])}
            seen = {(e["episode_id"], e.get("manifest_sha256")) for e in m.get("episodes", [])
                    if e["episode_id"] not in failed}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue                         # a damaged run vouches for nothing: its episodes are predicted again
        if seen:
            done |= seen
            runs.append(run_name)
    fresh = [e for e in episodes if (e["episode_id"], e.get("manifest_sha256")) not in done]
    return fresh, len(episodes) - len(fresh), runs


def _by_prefix(given: str, by_id: dict[str, dict], how: str, landed) -> str:
    """The episode id `given` names: itself, or the one id it begins (as
    `notebook show` takes a run id's prefix). `landed()`: how the store
    changed since validate, asked only when the id is not there."""
    if given in by_id:
        return given
    matches = [e for e in by_id if e.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise PredictError(f"episode {given} is the start of {len(matches)} ids ({', '.join(sorted(matches)[:3])}"
                           f"{', ...' if len(matches) > 3 else ''}): give more of it")
    since = landed()
    hint = f"{since} since validate: run `cis490 validate` first" if since else \
        "run `cis490 validate` after it lands (or check the id)"
    raise PredictError(f"episode {given} is not in the store's {how.split(' (')[0]}: {hint}")


def _landed_since(index: Path, store: Path) -> str | None:
    """How the store changed since the index was made ("3 episode(s) landed"),
    from the digest validate recorded beside it; None when it did not (or
    there is no index to compare with)."""
    from core.storescan import store_digest
    from core.validate import index_sidecar
    side = index_sidecar(index) if index.exists() else {}
    if not side.get("store_sha256"):
        return None
    try:
        sha, episodes, _ = store_digest(store)
    except Exception:  # noqa: BLE001 - no store to compare with: nothing to say
        return None
    if sha == side["store_sha256"]:
        return None
    before = side.get("store_episodes")
    more = episodes - before if isinstance(before, int) else 0
    return f"{more:,} episode(s) landed" if more > 0 else "the store changed"


def _checked_here(store: Path, registry) -> list[dict]:
    from core.store import scan_store
    from core.validate.checks import ValidateConfig, validate_episode
    rows = []
    for entry in scan_store(store):
        if not entry.in_flight:
            row = validate_episode(entry.path, entry.rel, registry, ValidateConfig(), root=store)
            rows.append({"episode_id": row.get("episode_id"), "rel_path": entry.rel, "status": row["status"],
                         "reasons": row["reasons"], "manifest_sha256": row.get("manifest_sha256")})
    return rows


def predict_episode(engine: Engine, store: Path, rel: str) -> pl.DataFrame:
    """Every window of one episode that holds data: its prediction, every
    phase's probability, trust (as live computes it) and, where the episode
    is labelled, the truth (never used)."""
    from core.extract.episode import episode_grid, window_id
    from core.live.trust import trust_series
    from core.store import Episode
    grid = episode_grid(Episode.open(store / rel, rel), engine.registry, engine.spec, labelled=False)
    m, classes = engine.model, list(engine.model.classes)
    values, mask, features = grid.windows()
    proba = m.predict_proba(features if m.input_kind == "summary" else (values, mask)) if grid.n else \
        np.zeros((0, len(classes)), np.float32)
    centre = grid.t_center_s()
    half = engine.spec.window_s / 2
    return pl.DataFrame({
        "episode_id": [grid.episode_id] * grid.n, "window_id": [window_id(grid.episode_id, c) for c in centre],
        "host_id": [grid.host_id] * grid.n, "t_start_s": centre - half, "t_end_s": centre + half,
        "predicted": [classes[i] for i in proba.argmax(axis=1)] if grid.n else [],
        **{f"p_{c}": proba[:, i].astype(np.float32) for i, c in enumerate(classes)},
        "trust": trust_series(proba).astype(np.float32) if grid.n else np.zeros(0, np.float32),
        "truth": pl.Series(grid.labels, dtype=pl.Utf8),
    }, schema_overrides={"predicted": pl.Utf8})


# Where an episode stands to the model that predicts it, as every table, CSV
# and figure of a predict run says it.
PARTS_SAID = {"train": "in train: the model was fitted on it", "val": "in val: the model was chosen on it",
              "test": "in test: held out", "unseen": "not in the split: new to the model",
              "unknown": "part unknown here (no split)"}


def split_parts(paths, engine: Engine, split: str):
    """episode id -> its part of the model's split: train, val, test, or
    unseen (not in the split: a run that landed since, or nobody labelled).
    On a Pi without the lab's split, the bundle's own test episodes are
    known and every other is "unknown"."""
    from core.lab import Lab
    path = Lab.of(paths).split_parquet(split)
    if path.exists():
        try:
            parts = dict(pl.read_parquet(path, columns=["episode_id", "part"]).iter_rows())
        except Exception:  # noqa: BLE001 - a split that cannot be read says nothing of parts
            parts = None
        if parts is not None:
            return lambda e: parts.get(e, "unseen")
    test = {e for e, _ in (engine.model.header.get("test_episodes") or [])}
    return lambda e: "test" if e in test else "unknown"


def segments(windows: pl.DataFrame, hop_s: float) -> pl.DataFrame:
    """The phase timeline of each episode: maximal runs of windows predicted
    as one phase, with the time they stand for and their mean trust. A window
    stands for half a hop either side of its centre (windows overlap by half,
    so their own starts and ends would make each run overlap the next): a
    run is from its first window's centre minus half a hop to its last's
    plus half, and the runs of an episode tile it, as the figure draws them."""
    if windows.height == 0:
        return pl.DataFrame(schema={"episode_id": pl.Utf8, **({"part": pl.Utf8} if "part" in windows.columns else {}),
                                    "phase": pl.Utf8, "start_s": pl.Float64, "end_s": pl.Float64,
                                    "windows": pl.UInt32, "mean_trust": pl.Float64})
    run = ((pl.col("predicted") != pl.col("predicted").shift(1)) |
           (pl.col("episode_id") != pl.col("episode_id").shift(1))).fill_null(True).cum_sum()
    centre = (pl.col("t_start_s") + pl.col("t_end_s")) / 2
    return (windows.with_columns(run.alias("run"), centre.alias("centre"))
            .group_by("run", maintain_order=True)
            .agg(pl.col("episode_id").first(), *([pl.col("part").first()] if "part" in windows.columns else []),
                 pl.col("predicted").first().alias("phase"),
                 (pl.col("centre").first() - hop_s / 2).alias("start_s"),
                 (pl.col("centre").last() + hop_s / 2).alias("end_s"),
                 pl.len().alias("windows"), pl.col("trust").cast(pl.Float64).mean().alias("mean_trust"))
            .drop("run"))


def run_predict(paths, store: Path, engine: Engine, ref, episodes: list[dict], how: str, run_id: str,
                progress=None, asked: str = "--all", skipped: dict | None = None) -> PredictResult:
    """Predict every chosen episode, one at a time, and write the run's
    folder whole or not at all. Memory stays bounded at any store size: the
    windows go out in parts of PART_WINDOWS (windows/part-NNNNN.parquet, and
    one CSV appended to); only the segments (a handful per episode) and the
    windows of the episodes drawn are kept."""
    from core.lab import PREDICT_RUN, Lab
    from core.paths import atomic_dir
    t0 = time.perf_counter()
    out = Lab.of(paths).prediction_run(ref, run_id)
    part_of = split_parts(paths, engine, ref.split)
    episodes = [{**ep, "part": part_of(ep["episode_id"])} for ep in episodes]
    failed, counts, seg_frames, drawn = [], {}, [], []
    agree: dict[str, list[int]] = {}         # part -> [labelled windows, of them predicted as labelled]
    total = 0
    with atomic_dir(out) as tmp:
        parts = _PartWriter(tmp, predict_episode_schema(engine))
        for done, ep in enumerate(episodes, 1):
            try:
                frame = predict_episode(engine, store, ep["rel_path"]).with_columns(
                    pl.lit(ep["part"], pl.Utf8).alias("part"))
            except (Cis490Error, OSError, ValueError) as exc:
                # One episode that cannot be aligned (a source on another clock) is named, not fatal.
                failed.append({"episode_id": ep["episode_id"], "error": str(exc)})
                frame = None
            if frame is not None:
                counts[ep["episode_id"]] = frame.height
                total += frame.height
                labelled = frame.filter(pl.col("truth").is_not_null())
                seen = agree.setdefault(ep["part"], [0, 0])
                seen[0] += labelled.height
                seen[1] += int((labelled["predicted"] == labelled["truth"]).sum())
                seg_frames.append(segments(frame, engine.spec.hop_s))
                if len(drawn) < FIGURES and frame.height:
                    drawn.append(frame)
                parts.add(frame)
            if progress:
                progress(done, len(episodes))
        parts.close()
        if failed and not counts:
            # Nothing read: an error, and nothing written (not a run of zero windows that looks complete).
            more = f" (and {len(failed) - 1} more episode(s))" if len(failed) > 1 else ""
            raise PredictError(f"no episode could be read: {failed[0]['episode_id']}: {failed[0]['error']}{more}; "
                               "--store names the store they are in")
        timeline = pl.concat(seg_frames, how="vertical") if seg_frames else segments(parts.empty, engine.spec.hop_s)
        timeline.write_parquet(tmp / "segments.parquet")
        csv_safe(timeline).write_csv(tmp / "segments.csv")
        figures, figures_note = _figures(pl.concat(drawn) if drawn else parts.empty, timeline, engine, ref, tmp)
        manifest = {
            "run_id": run_id, "model": ref.model, "mode": ref.mode, "split": ref.split, "engine": engine.kind,
            "source": str(engine.source), "model_sha256": engine.identity, "chosen": how, "asked": asked,
            "episodes": [{**ep, "windows": counts.get(ep["episode_id"], 0)} for ep in episodes],
            "failed": failed, "windows": total, "window_parts": parts.count, "classes": list(engine.model.classes),
            # Agreement with the labels, per part of the model's split: only "test" and "unseen" windows
            # are held out from the model (PARTS_SAID).
            "agreement": {p: {"windows": n, "accuracy": right / n} for p, (n, right) in agree.items() if n},
            "figures": [f.name for f in figures], "figures_note": figures_note, "seconds": round(time.perf_counter() - t0, 3),
            # `--unlabelled` left out what this model predicted already (core.predict.new_to_model).
            **(skipped or {}),
        }
        (tmp / PREDICT_RUN).write_text(json.dumps(manifest, indent=1) + "\n")
    return PredictResult(out, manifest, timeline, [out / f.name for f in figures], time.perf_counter() - t0)


PART_WINDOWS = 200_000      # windows per parquet part (about 30 MB in memory at most)


class _PartWriter:
    """windows/part-NNNNN.parquet and windows.csv, written a part at a time."""

    def __init__(self, directory: Path, empty: pl.DataFrame):
        self.dir = directory / "windows"
        self.dir.mkdir()
        self.csv = open(directory / "windows.csv", "w", newline="")
        self.empty, self.buffer, self.rows, self.count = empty, [], 0, 0

    def add(self, frame: pl.DataFrame) -> None:
        self.buffer.append(frame)
        self.rows += frame.height
        if self.rows >= PART_WINDOWS:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer and self.count:
            return
        frame = pl.concat(self.buffer, how="vertical") if self.buffer else self.empty
        frame.write_parquet(self.dir / f"part-{self.count:05d}.parquet")
        csv_safe(frame).write_csv(self.csv, include_header=self.count == 0)
        self.buffer, self.rows, self.count = [], 0, self.count + 1

    def close(self) -> None:
        self._flush()
        self.csv.close()


def read_windows(run: Path) -> pl.DataFrame:
    """Every predicted window of a predict run (its parts, in order)."""
    return pl.read_parquet(sorted((run / "windows").glob("part-*.parquet")))


def predict_episode_schema(engine: Engine) -> pl.DataFrame:
    classes = list(engine.model.classes)
    return pl.DataFrame(schema={"episode_id": pl.Utf8, "window_id": pl.Utf8, "host_id": pl.Utf8,
                                "t_start_s": pl.Float64, "t_end_s": pl.Float64, "predicted": pl.Utf8,
                                **{f"p_{c}": pl.Float32 for c in classes}, "trust": pl.Float32, "truth": pl.Utf8,
                                "part": pl.Utf8})


def _figures(windows: pl.DataFrame, timeline: pl.DataFrame, engine: Engine, ref,
             directory: Path) -> tuple[list[Path], str | None]:
    """A timeline figure per episode with windows (the first FIGURES), and
    when there is none, why: no window had data, the base install has no
    matplotlib, or CIS490_FIGURE_FORMATS=none."""
    import importlib.util
    if windows.height == 0:
        return [], "no window with data to draw"
    if importlib.util.find_spec("matplotlib") is None:
        return [], "this install has no matplotlib"
    from core.evaluate.figures import FORMATS_ENV, formats
    if not formats():
        return [], f"{FORMATS_ENV}=none"
    from core.predict_figures import timeline_figure
    from core.safenames import file_component
    out = []
    for episode_id in list(dict.fromkeys(windows["episode_id"].to_list()))[:FIGURES]:
        out += timeline_figure(windows.filter(pl.col("episode_id") == episode_id),
                               timeline.filter(pl.col("episode_id") == episode_id), ref,
                               list(engine.model.classes), directory / f"timeline-{file_component(episode_id)}",
                               engine.spec.hop_s)
    return out, None
