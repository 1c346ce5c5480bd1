"""`cis490 eval`: score a checkpoint on a split's windows, with bootstrap CIs.

Reports live in `artifacts/eval/<split>/<model>_<mode>/<part>-<unit>-b<resamples>-s<seed>/`:
keyed by everything that changes them, so no setting overwrites another's
report. Each holds report.json, predictions.parquet and its figures (PNG, PDF, SVG). See
docs/methods.md#evaluation.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import Cis490Error, ConfigError
from core.calibrate import scale
from core.evaluate.bootstrap import bootstrap_scores, defined_ci, percentile_ci
from core.evaluate.detection import DetectRule
from core.evaluate.figures import formats
from core.evaluate.pitfalls import parse_slice
from core.extract import load_feature_schema, read_features
from core.metrics import confusion, macro_f1_from_confusion, per_class_prf
from core.models import MODELS
from core.paths import atomic_dir, eval_settings
from core.registry import Registry
from core.split import load_split
from core.store import file_digest
from core.lab import (HEADER, MODES, PREDICTIONS, REPORT, REPORT_VERSION, Inputs, Lab, Ref, checkpoint_problems, eval_problems,
                      split_dirname)
from core.train import load_split_checkpoint, load_split_data, trained_names

METHOD = "percentile bootstrap, 95% interval"
UNITS = ("episode", "window")


class EvalError(Cis490Error):
    """An evaluation cannot run as asked."""


@dataclass(frozen=True)
class EvalConfig:
    split: str = "host"
    part: str = "test"
    resamples: int = 1000
    unit: str = "episode"
    seed: int = 0
    confirm: int = 1                # time to detect: consecutive windows that confirm a phase
    min_trust: float = 0.0          # time to detect: a window counts from this trust
    alpha: float = 0.1              # conformal sets miss at most this share (exchangeable windows)
    slice: str | None = None        # performance over time: slice length (default 7d for the time recipe)

    def check(self) -> None:
        if self.part not in ("test", "val"):
            raise ConfigError(f"--part must be test or val, got '{self.part}'")
        if self.unit not in UNITS:
            raise ConfigError(f"--unit must be episode or window, got '{self.unit}'")
        if self.resamples < 10:
            raise ConfigError(f"--resamples must be at least 10, got {self.resamples}")
        self.rule.check()
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"--alpha must be between 0 and 1, got {self.alpha}")
        if self.slice is not None:
            parse_slice(self.slice)
        formats()                       # a mistyped $CIS490_FIGURE_FORMATS before any work

    @property
    def rule(self) -> DetectRule:
        return DetectRule(self.confirm, self.min_trust)

    @property
    def settings(self) -> str:
        """The name of these settings' report folder (core.lab)."""
        return eval_settings(self.part, self.unit, self.resamples, self.seed, self.confirm, self.min_trust,
                             self.alpha, self.slice)


def parse_model_name(name: str, mode: str | None = None) -> tuple[str, str]:
    """`gru` -> (gru, realistic: the deployment-relevant one); `gru_oracle` -> (gru, oracle)."""
    if name in MODELS:
        return name, mode or "realistic"
    for m in MODES:
        base = name.removesuffix(f"_{m}")
        if base != name and base in MODELS:
            if mode and mode != m:
                raise ConfigError(f"'{name}' names mode {m} but --mode says {mode}")
            return base, m
    raise ConfigError(f"unknown model '{name}' (models: {', '.join(MODELS)}; add _oracle or _realistic for a mode)")


def resolve_model_names(names: list[str], artifacts: Path, split: str, mode: str | None,
                        every_mode: bool) -> list[tuple[str, str]]:
    """Model names as given, or `all`: every checkpoint trained on the split
    (in `mode` if given; in every mode when `every_mode`, else realistic)."""
    if names != ["all"]:
        if "all" in names:
            raise ConfigError("'all' stands alone: give it, or model names, not both")
        return [parse_model_name(n, mode) for n in names]
    found = []
    for name in trained_names(artifacts, split):
        model, md = split_dirname(name)
        if model in MODELS and (md == mode if mode else (every_mode or md == "realistic")):
            found.append((model, md))
    if not found:
        raise EvalError(f"no checkpoint trained on split {split}"
                        + (f" in {mode} mode" if mode else "") + f" (run `cis490 train all --split {split}`)")
    order = list(MODELS)
    return sorted(found, key=lambda x: (order.index(x[0]), x[1] != "realistic"))


def window_index(processed: Path, recipe: str, view: tuple | None = None, schema: dict | None = None) -> pl.DataFrame:
    """Window metadata with its part, in the same order as the split data."""
    split, _ = view or load_split(processed, recipe, schema)
    meta = read_features(processed, ["window_id", "episode_id", "host_id", "profile", "sample_name", "t_center_s",
                                     "label_id"], schema)
    return meta.join(split, on="episode_id", how="inner", maintain_order="left")


@dataclass
class EvalResult:
    model: str
    mode: str
    directory: Path
    report: dict
    figures: list[Path] = field(default_factory=list)   # every figure written (PNG, PDF and SVG of each)


def _scores(truth, pred, groups, k, cfg: EvalConfig, rng) -> dict:
    boot = bootstrap_scores(truth, pred, groups, k, cfg.unit, cfg.resamples, rng)
    cm = confusion(truth, pred, k)
    return {"macro_f1": float(macro_f1_from_confusion(cm)), "macro_f1_ci": percentile_ci(boot["macro_f1"]),
            "accuracy": float(np.trace(cm) / max(cm.sum(), 1)), "accuracy_ci": percentile_ci(boot["accuracy"]),
            "boot": boot, "cm": cm}


def _profile_scores(truth, pred, groups, k, cfg: EvalConfig, rng) -> dict:
    """A profile's macro-F1 over the phases its episodes hold: a stray
    prediction of a phase the profile never has costs precision in the held
    phases, not a zero F1 of its own that pulled a 0.998-accurate profile to
    4/6 (docs/methods.md). One bootstrap call, as `_scores` makes: the draws
    of the scores after it are unchanged."""
    boot = bootstrap_scores(truth, pred, groups, k, cfg.unit, cfg.resamples, rng)
    cm = confusion(truth, pred, k)
    held = np.unique(truth)
    _, _, f1 = per_class_prf(cm)
    with np.errstate(all="ignore"):
        dist = np.nanmean(boot["per_class_f1"][:, held], axis=1)
    return {"macro_f1": float(f1[held].mean()), "macro_f1_ci": percentile_ci(dist[~np.isnan(dist)]),
            "accuracy": float(np.trace(cm) / max(cm.sum(), 1)), "accuracy_ci": percentile_ci(boot["accuracy"]),
            "held": held.tolist()}


def confusion_over_seen(cm: np.ndarray, phases: list[str]) -> dict:
    """The confusion restricted to labels seen in truth or in predictions (a
    phase only ever predicted keeps its column and row)."""
    seen = [c for c in range(len(phases)) if cm[c].sum() or cm[:, c].sum()]
    return {"labels": [phases[c] for c in seen], "matrix": cm[np.ix_(seen, seen)].tolist()}


def evaluate_model(processed: Path, artifacts: Path, registry: Registry, model: str, mode: str,
                   cfg: EvalConfig, run_id: str | None = None) -> EvalResult:
    cfg.check()
    # The split's identity is checked before any window is read: at the corpus's size that is gigabytes.
    # One view of the split and one feature schema, read once and handed on.
    schema = load_feature_schema(processed)
    view = load_split(processed, cfg.split, schema)
    m, _, ck = load_split_checkpoint(processed, artifacts, registry, model, mode, cfg.split, EvalError, view, schema)
    split_data = load_split_data(processed, cfg.split, m.input_kind, view, schema, capped=False)
    split_meta, data = split_data.meta, split_data.parts[cfg.part]
    every = window_index(processed, cfg.split, view, schema)
    idx = every.filter(pl.col("part") == cfg.part)
    if len(data) == 0:
        raise EvalError(f"split '{cfg.split}' has no {cfg.part} windows")
    if not np.array_equal(idx["label_id"].to_numpy(), data.y):
        raise EvalError(f"{processed}: the window index and the {m.input_kind} data disagree; re-run `cis490 extract`")
    # The model's own probabilities, then temperature-scaled as live inference scales them (core.calibrate).
    raw = m.predict_data(data, calibrated=False)
    proba = scale(raw, m.temperature)
    truth, pred = data.y, proba.argmax(1)
    k = len(registry.phases)
    phases = list(registry.phases)
    episodes, groups = np.unique(idx["episode_id"].to_numpy(), return_inverse=True)
    rng = np.random.default_rng(cfg.seed)
    overall = _scores(truth, pred, groups, k, cfg, rng)
    prec, rec, f1 = per_class_prf(overall["cm"])
    support = overall["cm"].sum(axis=1)
    per_class = []
    for c in range(k):
        if support[c] or overall["cm"][:, c].sum():
            ci, n_def = defined_ci(overall["boot"]["per_class_f1"][:, c])
            per_class.append({"label": phases[c], "precision": float(prec[c]), "recall": float(rec[c]),
                              "f1": float(f1[c]), "f1_ci": ci, "f1_ci_resamples": n_def, "support": int(support[c])})

    def breakdown(column: str) -> list[dict]:
        out = []
        values = idx[column].to_numpy()
        for v in sorted(set(values.tolist())):
            sel = values == v
            _, g = np.unique(groups[sel], return_inverse=True)
            if column == "profile":
                s = _profile_scores(truth[sel], pred[sel], g, k, cfg, rng)
                extra = {"phases": [phases[c] for c in s["held"]], "accuracy": s["accuracy"],
                         "accuracy_ci": s["accuracy_ci"]}
            else:
                s, extra = _scores(truth[sel], pred[sel], g, k, cfg, rng), {}
            out.append({column.removesuffix("_id"): v, "macro_f1": s["macro_f1"], "macro_f1_ci": s["macro_f1_ci"],
                        **extra, "windows": int(sel.sum()), "episodes": int(g.max() + 1)})
        return out

    extra = _sections(processed, schema, every, idx, groups, truth, pred, raw, proba, m, split_data.parts.get("val"),
                      cfg, phases, rng, split_meta["recipe"])
    out_dir = Lab(processed, artifacts).eval_dir(Ref(cfg.split, model, mode), cfg.settings)
    preds = pl.DataFrame({"window_id": idx["window_id"], "episode_id": idx["episode_id"], "host_id": idx["host_id"],
                          "profile": idx["profile"], "truth": [phases[i] for i in truth],
                          "predicted": [phases[i] for i in pred],
                          **{f"p_{p}": proba[:, i].astype(np.float32) for i, p in enumerate(phases)},
                          "t_end_s": extra.pop("t_end_s"), "onset_s": extra.pop("onset_s"),
                          "trust": extra.pop("trust").astype(np.float32)})
    # The report's folder is written whole in a temporary one and replaces the
    # old one only once every file is there: a full disk half-way leaves the
    # last report and its predictions exactly as they were, and no orphan folder.
    with atomic_dir(out_dir) as tmp:
        preds.write_parquet(tmp / PREDICTIONS)
        delays = extra.pop("_delays")
        header = m.header
        pool = header["training"].get("unlabeled_pool")
        report = {
            "model": model, "mode": mode, "name": model if mode == "realistic" else f"{model}_{mode}",
            "split": cfg.split, "part": cfg.part, "windows": int(len(truth)), "episodes": int(len(episodes)),
            "method": METHOD, "unit": cfg.unit, "resamples": cfg.resamples, "seed": cfg.seed,
            "confirm": cfg.confirm, "min_trust": cfg.min_trust, "conformal_alpha": cfg.alpha, "slice": cfg.slice,
            "macro_f1": overall["macro_f1"], "macro_f1_ci": overall["macro_f1_ci"],
            "accuracy": overall["accuracy"], "accuracy_ci": overall["accuracy_ci"],
            "per_class": per_class, "per_profile": breakdown("profile"), "per_host": breakdown("host_id"),
            "untested_profiles": split_meta.get("untested_profiles", []),
            "confusion": confusion_over_seen(overall["cm"], phases),
            "predictions_sha256": file_digest(tmp / PREDICTIONS)[0],
            "predictions_bytes": (tmp / PREDICTIONS).stat().st_size,
            "checkpoint": {"path": str(ck), "header_sha256": file_digest(ck / HEADER)[0],
                           "weights_sha256": header["weights"]["sha256"],
                           "val_macro_f1": header["training"].get("val_macro_f1"),
                           "score_on": header["training"].get("score_on", "val"),
                           "train_run_id": header["training"].get("run_id"), "unlabeled_pool": pool},
            # Transductive: the model learned from the inputs (never the labels) of the windows it is scored on.
            "transductive": bool(pool and pool.get("windows_used") and pool.get("part") == cfg.part),
            "split_identity": header["split"], "features_sha256": split_meta["features_sha256"],
            "split_membership_sha256": split_meta["membership_sha256"], "eval_run_id": run_id,
            "report_version": REPORT_VERSION, **part_held_out(cfg.part, header["training"]), **extra,
        }
        figures = _figures(report, header, delays, tmp) if formats() else []
        report["figures"] = [f.name for f in figures]       # part of the report: status checks they are there
        (tmp / REPORT).write_text(json.dumps(report, indent=1) + "\n")
    return EvalResult(model, mode, out_dir, report, [out_dir / f.name for f in figures])


def part_held_out(part: str, training: dict) -> dict:
    """Whether the part scored was held out from the model, and if not, in
    words every report, figure and listing carries: a val score beside a
    test score must never read as another held-out figure."""
    if part == "test":
        return {"held_out": True, "part_note": None}
    if training.get("score_on", "val") == "val":
        return {"held_out": False, "part_note": "not held out: the model was chosen on these windows "
                                                "(early stopping, k, rounds); test is the held-out score"}
    return {"held_out": False, "part_note": "in-sample: the model was fitted on these windows; test is the "
                                            "held-out score"}


def _figures(report: dict, header: dict, delays, out_dir: Path) -> list[Path]:
    from core.evaluate.figures import confusion_figure, per_host_figure, per_profile_figure, training_figure
    from core.evaluate.figures_sections import calibration_figure, detection_figure, over_time_figure
    figures = (confusion_figure(report, out_dir / "confusion") + per_profile_figure(report, out_dir / "per_profile")
               + per_host_figure(report, out_dir / "per_host")
               + (training_figure(report, header, out_dir / "training") or []))
    if report["detection"]["per_phase"]:
        figures += detection_figure(report, delays, out_dir / "detection")
    if report["calibration"]["val_windows"]:
        figures += calibration_figure(report, out_dir / "calibration")
    if report["over_time"]:
        figures += over_time_figure(report, out_dir / "over_time")
    return figures


def _sections(processed, schema, every, idx, groups, truth, pred, raw, proba, m, val, cfg: EvalConfig, phases,
              rng, recipe: str) -> dict:
    """Time to detect, trusting a probability, performance over time and the
    split's pitfalls (core.evaluate.sections), plus the per-window columns
    they add to the predictions (t_end_s, onset_s, trust)."""
    from core.evaluate import sections as sec
    # The validation part's own probabilities: what the temperature (for a checkpoint without one) and the
    # conformal threshold are fitted on.
    val_raw, val_y = (raw, truth) if cfg.part == "val" else \
        (m.predict_data(val, calibrated=False), val.y) if val is not None and len(val) else (raw[:0], truth[:0])
    from core.live.trust import trust_of_episodes
    episodes = sec.episode_table(processed)
    # Sections read windows grouped by episode in time order; the arrays stay in the index's order.
    order = np.lexsort((idx["t_center_s"].to_numpy(), groups))
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    times = sec.window_times(idx[order], episodes, float(schema["window"]["window_s"]), phases)
    trust = trust_of_episodes(proba[order], groups[order])
    detection, occ = sec.detection_section(groups[order], times, truth[order], pred[order], trust, cfg.rule, phases,
                                         cfg.resamples, rng)
    return {"detection": detection,
            "calibration": sec.trust_section(raw, proba, truth, trust[back], val_raw, val_y, m.calibration, cfg.alpha,
                                             phases, cfg.part == "val", cfg.seed),
            "over_time": sec.time_section(idx, episodes, groups, truth, pred, len(phases), recipe, cfg.slice,
                                          cfg.unit, cfg.resamples, rng),
            "pitfalls": sec.pitfalls_section(every, episodes, cfg.part, cfg.unit, recipe, phases),
            "t_end_s": times.t_end_s[back], "onset_s": times.onset_s[back], "trust": trust[back],
            "_delays": {phases[c]: occ.delay_s[(occ.phase == c) & np.isfinite(occ.delay_s)]
                        for c in np.unique(occ.phase)}}


def current_report(artifacts: Path, processed: Path, model: str, mode: str, cfg: EvalConfig) -> dict | None:
    """The stored report if it is fresh by the lab's one rule (core.lab:
    the rule `cis490 status` applies); None means evaluate again."""
    lab, ref = Lab(processed, artifacts), Ref(cfg.split, model, mode)
    try:
        rep = json.loads(lab.report(ref, cfg.settings).read_text())
        schema = load_feature_schema(processed)
        _, meta = load_split(processed, cfg.split, schema)
        header = lab.header(ref).read_bytes()       # once: its digest and its content
        # load_split refused a split whose windows changed: its digest is the current one.
        now = Inputs(hashlib.sha256(header).hexdigest(), meta["features_sha256"], meta["membership_sha256"])
        missing, reasons = eval_problems(rep, lab.predictions(ref, cfg.settings), now)
        ck_missing, ck_reasons = checkpoint_problems(json.loads(header), lab.checkpoint(ref))
        missing, reasons = missing or ck_missing, reasons + ck_reasons
    except (OSError, ValueError, KeyError, TypeError, Cis490Error):
        return None
    return rep if isinstance(rep, dict) and not missing and not reasons else None
