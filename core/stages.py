"""The pipeline's stages, each owning its work: it records its run in the
notebook (inputs, outputs, metrics, timings), shows its progress, and
returns its result. Commands parse options, call one stage and render the
result; `cis490 demo` calls the stages in turn. Nothing here prints.

A stage is given a session: the lab home, the notebook recorder and a
progress bar factory (cis490cli.state.AppState is one).
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from core.errors import Cis490Error
from core.notebook import Run
from core.paths import LabPaths
from core.splitparams import MAX_EPISODE_SHARE

if TYPE_CHECKING:
    from core.compare import CompareResult
    from core.evaluate import EvalConfig, EvalResult
    from core.predict import PredictResult
    from core.extract import ExtractConfig, ExtractSummary
    from core.registry import Registry
    from core.split import SplitConfig, SplitResult
    from core.synth import SynthConfig, SynthResult
    from core.train import TrainResult
    from core.validate import ValidationSummary
    from core.ingest import IngestResult


class Session(Protocol):
    @property
    def paths(self) -> LabPaths: ...

    def record(self, command: str, config: dict) -> AbstractContextManager[Run]: ...

    def progress(self, description: str, total: int | None = None,
                 unit: str = "") -> AbstractContextManager[Callable]: ...


def synth_stage(session: Session, cfg: SynthConfig, out: Path, workers: int, force: bool) -> SynthResult:
    from core.synth import generate_store
    with session.record("synth", {**asdict(cfg), "out": str(out)}) as run:
        with session.progress("Generating", total=cfg.episodes, unit="episodes") as bar:
            result = generate_store(cfg, out, workers=workers, force=force, progress=bar)
        run.add_output(result.store, "store")
        run.add_output(result.truth, "ground_truth")
        run.metrics.update(episodes=result.episodes, in_flight=result.in_flight, bytes=result.bytes,
                           expected_status=result.expected, per_host=result.per_host)
        run.timings["generate_s"] = round(result.seconds, 3)
    return result


def validate_stage(session: Session, registry: Registry, store: Path, out: Path, workers: int,
                   since_last: bool = False) -> ValidationSummary:
    from core.validate import sidecar_path
    from core.validate.pipeline import run_validation
    from core.validate.checks import ValidateConfig
    cfg = ValidateConfig()
    with session.record("validate", {"store": str(store), "out": str(out), "since_last": since_last,
                                     "workers": workers, "channels": registry.path,
                                     "registry_hash": registry.schema_hash, **cfg.__dict__}) as run:
        summary = None
        try:
            with session.progress("Validating", unit="episodes") as bar:
                summary = run_validation(store, out, registry, cfg, workers=workers, since_last=since_last,
                                         progress=bar)
        finally:
            # The sweep took the store's manifest digest: recorded as it is, not taken twice.
            run.add_input(store, "store", summary.store_digest if summary else None)
        run.add_output(out, "acceptance_index")
        run.add_output(sidecar_path(out), "acceptance_summary")
        run.metrics.update(episodes=summary.episodes, status_counts=summary.counts, in_flight=len(summary.in_flight),
                           duplicates=len(summary.duplicates), reused=summary.reused)
        run.timings["sweep_s"] = round(summary.seconds, 3)
    return summary


def extract_stage(session: Session, registry: Registry, store: Path, index: Path, cfg: ExtractConfig,
                  workers: int, full: bool = False) -> ExtractSummary:
    from core.extract.pipeline import run_extract
    paths = session.paths
    config = {"store": str(store), "index": str(index), "window": cfg.spec.__dict__, "workers": workers,
              "part_windows": cfg.part_windows, "chunk_episodes": cfg.chunk_episodes, "full": full, "channels": registry.path, "registry_hash": registry.schema_hash}
    with session.record("extract", config) as run:
        run.add_input(index, "acceptance_index")
        with session.progress("Extracting", unit="episodes") as bar:
            summary = run_extract(paths.processed, index, store, registry, cfg, workers=workers, progress=bar,
                                  full=full)
        for role, p in summary.outputs.items():
            run.add_output(Path(p), role, summary.digests.get(role))
        run.metrics.update(episodes=summary.episodes, extracted=summary.extracted, reused=summary.reused,
                           failed=len(summary.failed), windows=summary.windows, coverage=summary.coverage,
                           windows_per_phase={k: sum(v.values()) for k, v in summary.per_phase_host.items()})
        run.timings["extract_s"] = round(summary.seconds, 3)
    return summary


def extend_stage(session: Session, registry: Registry, name: str) -> SplitResult:
    from core.lab import Lab
    from core.split import extend_split
    with session.record("split", {"extend": name, "registry_hash": registry.schema_hash}) as run:
        run.add_input(Lab.of(session.paths).extracted_episodes, "extracted_episodes")
        run.add_input(Lab.of(session.paths).split_meta(name), "split_meta")
        result = extend_split(session.paths.processed, name, registry)
        if any(result.meta["added"].values()):
            run.add_output(result.parquet, "split")
            run.add_output(result.meta_path, "split_meta")
        run.metrics.update(totals=result.meta["totals"], added=result.meta["added"],
                           version=result.meta.get("version", 1))
    return result


def split_stage(session: Session, registry: Registry, cfg: SplitConfig, name: str | None = None,
                force: bool = False) -> SplitResult:
    from core.lab import Lab
    from core.split import make_split
    with session.record("split", {**cfg.__dict__, "train_hosts": list(cfg.train_hosts), "name": name or cfg.recipe,
                                  "registry_hash": registry.schema_hash}) as run:
        run.add_input(Lab.of(session.paths).extracted_episodes, "extracted_episodes")
        result = make_split(session.paths.processed, cfg, registry, name, session.paths.artifacts, force)
        run.add_output(result.parquet, "split")
        run.add_output(result.meta_path, "split_meta")
        run.metrics.update(totals=result.meta["totals"], untested_profiles=result.meta["untested_profiles"])
    return result


def train_stage(session: Session, registry: Registry, names: list[str], modes: list[str], recipe: str,
                chosen: dict[str, object], device: str, seed: int,
                on_done: Callable[[TrainResult], None] | None = None, resume: bool = False) -> list[TrainResult]:
    """`chosen`: each model's settings object (core.train.model_settings),
    its defaults when absent. `on_done(result)` as each checkpoint is written."""
    from core.lab import HEADER, Lab
    from core.models.settings import given
    from core.train import load_split_data, model_class, train_one
    from core.lab import Ref
    from core.paths import require_writable
    paths = session.paths
    lab = Lab.of(paths)
    for name in names:                   # every checkpoint's folder, before any training
        for mode in modes:
            require_writable(lab.checkpoint(Ref(recipe, name, mode)), "train")
    results = []
    cache: dict[str, object] = {}
    for name in names:
        cls = model_class(name)
        settings = chosen.get(name) or cls.settings()
        for mode in modes:
            config = {"model": name, "mode": mode, "split": recipe, "seed": seed, "device": device,
                      "overrides": given(settings), "registry_hash": registry.schema_hash, "resume": resume}
            with session.record("train", config) as run:
                if cls.input_kind not in cache:
                    cache[cls.input_kind] = load_split_data(paths.processed, recipe, cls.input_kind)
                run.add_input(lab.split_parquet(recipe), "split")
                run.add_input(lab.split_meta(recipe), "split_meta")
                run.add_input(lab.feature_schema, "feature_schema")
                total = cls.progress_total(settings)
                unit = cls.progress_unit
                if getattr(settings, "budget_s", 0) > 0 and unit == "epoch":
                    # Validation intervals sized to the budget: the bar counts optimiser steps.
                    total, unit = None, "step"
                with session.progress(f"{name} {mode}", total=total, unit=unit) as bar:
                    r = train_one(paths.processed, paths.artifacts, registry, name, mode, recipe, settings, seed,
                                  device, run.run_id, bar, cache[cls.input_kind], resume)
                    t = r.header["training"]
                    ran = t.get("epochs_run") or t.get("rounds_run")
                    if (t.get("budget") or {}).get("stopped_by_budget"):
                        bar(1, 1, note=f"stopped by the budget ({t['budget']['budget_s']:g} s); best at "
                                       f"{'validation' if unit == 'step' else unit} {t['best_epoch']}")
                    elif ran is not None and total is not None and ran < total:
                        # The bar ends full and says why, instead of resting at 67%.
                        bar(ran, ran, note=f"stopped early at {cls.progress_unit} {ran} (best {t['best_epoch']})")
                run.add_output(r.checkpoint / HEADER, "checkpoint_header")
                run.add_output(r.checkpoint / r.header["weights"]["file"], "checkpoint_weights")
                t = r.header["training"]
                run.metrics.update(val_macro_f1=t["val_macro_f1"], score_on=t.get("score_on", "val"),
                                   best_epoch=t.get("best_epoch"),
                                   windows=t["windows"], unlabeled_pool=t.get("unlabeled_pool"))
                # What was chosen, not only what was asked: the full settings and
                # the choices made from data (kNN's k, the batch the schedule used).
                run.config["settings"] = r.header["config"]
                run.metrics.update({k: t[k] for k in ("k", "k_scores", "schedule") if k in t})
                run.timings.update(train_s=round(r.seconds, 3), load_s=t.get("load_s"), compute_s=t.get("compute_s"))
            results.append(r)
            if on_done is not None:
                on_done(r)
    return results


def eval_stage(session: Session, registry: Registry, model: str, mode: str, cfg: EvalConfig) -> EvalResult:
    from core.evaluate import evaluate_model
    from core.lab import HEADER, PREDICTIONS, REPORT
    from core.lab import Lab, Ref
    from core.paths import require_writable
    paths = session.paths
    require_writable(Lab.of(paths).eval_dir(Ref(cfg.split, model, mode), cfg.settings), "eval")
    with session.record("eval", {"model": model, "mode": mode, **cfg.__dict__}) as run:
        with session.progress(f"Evaluating {model} ({mode})", total=1) as bar:
            r = evaluate_model(paths.processed, paths.artifacts, registry, model, mode, cfg, run.run_id)
            bar(1, 1)
        run.add_input(Path(r.report["checkpoint"]["path"]) / HEADER, "checkpoint")
        for path in (r.directory / REPORT, r.directory / PREDICTIONS, *r.figures):
            run.add_output(path, path.name.replace(".", "_"))
        rep = r.report
        run.metrics.update(macro_f1=rep["macro_f1"], macro_f1_ci=rep["macro_f1_ci"], accuracy=rep["accuracy"],
                           ci_method=rep["method"], unit=rep["unit"], resamples=rep["resamples"], seed=rep["seed"],
                           windows=rep["windows"], episodes=rep["episodes"],
                           untested_profiles=rep["untested_profiles"], **headline(rep))
    return r


def headline(rep: dict) -> dict:
    """The figures beyond macro-F1 that a notebook row carries (the report holds the rest)."""
    out = {}
    det = (rep.get("detection") or {}).get("per_phase") or []
    if det:
        out["median_delay_s"] = {r["phase"]: r["median_s"] for r in det}
        out["miss_rate"] = {r["phase"]: round(r["miss_rate"], 4) for r in det}
    cal = rep.get("calibration")
    if cal and cal.get("val_windows"):
        out.update(ece=cal["before"]["ece"], ece_scaled=cal["after"]["ece"], temperature=cal["temperature"],
                   conformal_coverage=cal["conformal"]["coverage"], conformal_set_size=cal["conformal"]["mean_set_size"])
    if rep.get("over_time"):
        out["aut"] = rep["over_time"]["aut"]
    return out


def compare_stage(session: Session, registry: Registry, named: list[tuple[str, str]], cfg: EvalConfig,
                  paired: bool = True) -> CompareResult:
    from core.compare import check_models, compare_reports
    from core.evaluate import current_report
    check_models(named)                  # before any evaluation runs or any run is recorded
    paths = session.paths
    config = {"models": [f"{m}_{md}" for m, md in named], "paired": paired, **cfg.__dict__}
    with session.record("compare", config) as run:
        reports = []
        for model, md in named:
            rep = current_report(paths.artifacts, paths.processed, model, md, cfg)
            # An evaluation that is missing or no longer matches its checkpoint, features or split is redone.
            reports.append(rep if rep is not None else eval_stage(session, registry, model, md, cfg).report)
        run.parents = [r["eval_run_id"] for r in reports if r.get("eval_run_id")]
        result = compare_reports(paths.artifacts, list(registry.phases), reports, cfg, paired)
        run.add_output(result.path, "compare_report")
        for fig in result.figures:
            run.add_output(fig, f"forest_{fig.suffix[1:]}")
        run.metrics.update(pairs=[{k: p[k] for k in ("a", "b", "gap", "gap_ci", "p_value", "winner")} |
                                  ({"p_holm": p["p_holm"]} if "p_holm" in p else {}) for p in result.report["pairs"]],
                           unit=cfg.unit, resamples=cfg.resamples, seed=cfg.seed, ci_method="percentile bootstrap")
    return result


def predict_stage(session: Session, model: str, mode: str, split: str, store: Path | None, engine: str,
                  ids: list[str], unlabelled: bool, every: bool, again: bool = False) -> PredictResult:
    """`cis490 predict`: the model first (an unknown one before any episode is
    read), then the episodes, then the run's folder, recorded as one run.
    `--unlabelled` reads only the runs this model has not predicted yet,
    unless `again`."""
    from core.lab import Ref
    from core.live.producers import default_store
    from core.predict import PredictResult, load_engine, new_to_model, run_predict, select_episodes
    from core.lab import Lab
    from core.paths import require_writable
    paths = session.paths
    require_writable(Lab.of(paths).prediction_run(Ref(split, model, mode), "RUN"), "predict")
    eng = load_engine(paths, model, mode, split, engine)
    store = default_store(paths, store)
    episodes, how = select_episodes(paths, store, eng.registry, ids, unlabelled, every)
    skipped, earlier = 0, []
    if unlabelled and not again:
        episodes, skipped, earlier = new_to_model(paths, Ref(split, model, mode), eng, episodes)
        if not episodes:
            import polars as pl
            return PredictResult(None, {"model": model, "mode": mode, "split": split, "engine": eng.kind,
                                        "episodes": [], "already_predicted": skipped, "earlier_runs": earlier,
                                        "windows": 0, "failed": []}, pl.DataFrame())
    config = {"model": model, "mode": mode, "split": split, "engine": eng.kind, "store": str(store),
              "episodes": ids or ("unlabelled" if unlabelled else "all"), "chosen": how}
    with session.record("predict", config) as run:
        with session.progress(f"Predicting with {model} ({mode})", total=len(episodes), unit="episodes") as bar:
            asked = " ".join(ids) if ids else ("--unlabelled" if unlabelled else "--all")
            result = run_predict(paths, store, eng, Ref(split, model, mode), episodes, how, run.run_id, bar, asked,
                                 {"already_predicted": skipped, "earlier_runs": earlier} if skipped else None)
        run.add_input(eng.source, eng.kind)
        for name in ("predict.json", "windows.csv", "segments.parquet", "segments.csv"):
            run.add_output(result.directory / name, name.replace(".", "_"))
        for part in sorted((result.directory / "windows").glob("part-*.parquet")):
            run.add_output(part, "windows_part")
        for fig in result.figures:
            run.add_output(fig, "timeline")
        m = result.manifest
        run.metrics.update(episodes=len(m["episodes"]), windows=m["windows"], failed=len(m["failed"]),
                           segments=result.segments.height)
        run.timings["predict_s"] = round(result.seconds, 3)
    return result


def ingest_stage(session: Session, store: Path, index: Path, channels: Path | None, workers: int,
                 model: str | None, mode: str | None, split: str | None, engine: str | None) -> IngestResult:
    """`cis490 ingest`: validate what landed since the last index, extract the
    new runs, predict the unlabelled ones with the lab's chosen model; each
    step its own stage (and notebook run), under one `ingest` run."""
    import time
    from core.extract import SCHEMA, ExtractConfig, load_feature_schema
    from core.lab import EXTRACTED_STATUSES
    from core.extract.episode import WindowSpec
    from core.ingest import IngestResult, IngestStep, chosen_model, new_runs, remember_model, statuses
    from core.lab import Lab
    from core.registry import load_registry, resolve_registry
    from core.validate import indexed_registry
    lab = Lab.of(session.paths)
    choice = chosen_model(lab, model, mode, split, engine)      # a damaged choice: said before anything runs
    recorded = indexed_registry(index) if index.exists() else None
    registry = (resolve_registry(channels, recorded, f"the acceptance index {index}", "cis490 validate --channels FILE")
                if recorded else load_registry(channels))
    steps: list[IngestStep] = []
    with session.record("ingest", {"store": str(store), "index": str(index), "workers": workers,
                                   "model": choice}) as run:
        before = statuses(index)
        t0 = time.perf_counter()
        validate_stage(session, registry, store, index, workers, since_last=bool(before))
        new = new_runs(before, statuses(index))
        steps.append(IngestStep("validate", (f"{sum(new.values()):,} new or changed run(s): "
                                             + ", ".join(f"{n:,} {st}" for st, n in new.items()))
                                if new else "no new run", round(time.perf_counter() - t0, 3), {"new": new}))
        t0 = time.perf_counter()
        if any(st in EXTRACTED_STATUSES for st in statuses(index).values()):
            # The lab's own window and part sizes: another spec would extract every run again.
            cfg = ExtractConfig()
            if (session.paths.processed / SCHEMA).exists():
                try:
                    schema = load_feature_schema(session.paths.processed)
                    cfg = ExtractConfig(WindowSpec(**schema["window"]), schema["tensors"]["part_windows"])
                except (Cis490Error, KeyError, TypeError):
                    pass                       # an older or damaged extract: extract replaces it whole
            ext = extract_stage(session, registry, store, index, cfg, workers)
            failed = f"; {len(ext.failed):,} failed (`cis490 extract` lists them)" if ext.failed else ""
            steps.append(IngestStep("extract", f"{ext.extracted:,} run(s) extracted, {ext.reused:,} kept as they "
                                               f"were; {ext.windows:,} windows in {ext.chunks:,} chunk(s), "
                                               f"{ext.new_chunks:,} new{failed}",
                                    round(time.perf_counter() - t0, 3),
                                    {"extracted": ext.extracted, "reused": ext.reused, "windows": ext.windows}))
        else:
            steps.append(IngestStep("extract", "no accepted or degraded run to extract", 0.0))
        t0 = time.perf_counter()
        predicted = None
        if choice is None:
            steps.append(IngestStep("predict", "no model chosen: pass --model NAME once (it is remembered)", 0.0))
        elif "unlabelled" not in statuses(index).values():
            steps.append(IngestStep("predict", "no unlabelled run in the store", 0.0))
            if model is not None:
                remember_model(lab, choice)
        else:
            res = predict_stage(session, choice["model"], choice["mode"], choice["split"], store, choice["engine"],
                                [], True, False)
            m = res.manifest
            shown = choice["model"] if choice["mode"] == "realistic" else f"{choice['model']}_{choice['mode']}"
            said = (f"nothing new for {shown}: it predicted all {m['already_predicted']:,} unlabelled run(s) already"
                    if res.directory is None else
                    f"{len(m['episodes']):,} unlabelled run(s) predicted by {shown} ({m['windows']:,} windows)"
                    + (f", {len(m['failed']):,} could not be read" if m["failed"] else ""))
            steps.append(IngestStep("predict", said, round(time.perf_counter() - t0, 3),
                                    {"episodes": len(m["episodes"]), "windows": m["windows"]}))
            predicted = res.directory
            remember_model(lab, choice)
        notes = _waiting_notes(session.paths)
        run.metrics.update(new=new, steps={s.name: s.said for s in steps})
    return IngestResult(store, steps, new, choice, notes, predicted)


def _waiting_notes(paths: LabPaths) -> list[str]:
    """Each split's runs extracted since it was made, with the command that adds them."""
    import polars as pl
    from core.lab import Lab
    lab = Lab.of(paths)
    try:
        ok = (pl.read_parquet(lab.extracted_episodes, columns=["episode_id", "status", "n_windows"])
              .filter((pl.col("status") == "ok") & (pl.col("n_windows") > 0))["episode_id"])
    except (OSError, pl.exceptions.PolarsError):
        return []
    notes = []
    for name in lab.split_names():
        try:
            members = pl.read_parquet(lab.split_parquet(name), columns=["episode_id"])["episode_id"]
        except (OSError, pl.exceptions.PolarsError):
            continue
        n = int((~ok.is_in(members.implode())).sum())
        if n:
            notes.append(f"split {name}: {n:,} new episode{'s' * (n != 1)} not in it "
                         f"(`cis490 split --extend {name}` adds them)")
    return notes


def rotation_stage(session: Session, registry: Registry, val_frac: float, seed: int,
                   max_share: float = MAX_EPISODE_SHARE, force: bool = False) -> dict:
    """`cis490 split --recipe host --rotate`: one split per host, recorded as one run."""
    from core.lab import Lab
    from core.rotation import make_rotation, rotation_path
    from core.split import make_split
    paths = session.paths
    with session.record("split", {"recipe": "host", "rotate": True, "val_frac": val_frac, "seed": seed,
                                  "max_episode_share": max_share, "registry_hash": registry.schema_hash}) as run:
        run.add_input(Lab.of(paths).extracted_episodes, "extracted_episodes")
        result = make_rotation(paths.processed, registry, val_frac, seed, max_share,
                               lambda cfg, name: make_split(paths.processed, cfg, registry, name,
                                                            paths.artifacts, force))
        run.add_output(rotation_path(paths.processed), "rotation")
        run.metrics.update(folds=[f["split"] for f in result["folds"]])
    return result


def rotation_eval_stage(session: Session, registry: Registry, model: str, mode: str, cfg: EvalConfig,
                        fold_names: list[str]) -> dict:
    """eval over a rotation: each fold's own eval (a notebook run each),
    then the report across the held-out hosts."""
    from dataclasses import replace

    from core.rotation import rotation_report, write_rotation_report
    results = [eval_stage(session, registry, model, mode, replace(cfg, split=fold)) for fold in fold_names]
    report = rotation_report(session.paths.artifacts, session.paths.processed, cfg.split,
                             [r.report for r in results], list(registry.phases), cfg.resamples, cfg.seed)
    report["path"] = str(write_rotation_report(session.paths.artifacts, report, cfg.settings))
    return report


def rotation_compare_stage(session: Session, registry: Registry, named: list[tuple[str, str]], cfg: EvalConfig,
                           fold_names: list[str]) -> dict:
    """compare over a rotation: each fold's own comparison, then the pairs' gaps across the held-out hosts."""
    import json
    from dataclasses import replace

    from core.lab import Lab
    from core.paths import atomic_write_text, ensure_dir
    from core.rotation import rotation_compare
    fold_reports = [compare_stage(session, registry, named, replace(cfg, split=fold)).report for fold in fold_names]
    report = rotation_compare(session.paths.artifacts, session.paths.processed, cfg.split, fold_reports, cfg,
                              list(registry.phases))
    out = Lab.of(session.paths).rotation_comparison(cfg.split, report["models"], cfg.settings)
    ensure_dir(out.parent)
    from core.evaluate.figures import formats, rotation_gap_figure
    report["figures"] = [f.name for f in rotation_gap_figure(report, out.with_suffix(""))] if formats() else []
    atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    report["path"] = str(out)
    return report
