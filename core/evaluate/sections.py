"""The report's sections beyond macro-F1, each from the predictions eval
already makes: time to detect, trusting a probability, performance over time
and the split's pitfalls (docs/methods.md). evaluate_model calls these; the
functions they call are pure and tested on crafted data."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from core.evaluate import calibration as cal
from core.evaluate.detection import DetectRule, Occurrences, occurrences, summarise
from core.evaluate.pitfalls import DEFAULT_SLICE, over_time, parse_slice, pitfalls
from core.extract import read_extracted_episodes


@dataclass(frozen=True)
class WindowTimes:
    """Per scored window: when it completes and when its true phase began
    (seconds from its episode's start; NaN where the extract predates onsets)."""
    t_end_s: np.ndarray
    onset_s: np.ndarray


def episode_table(processed: Path) -> pl.DataFrame:
    """The extracted episodes with what these sections need, `received_at`
    parsed once (`received_ns`) for both the time slices and the pitfalls
    (onsets may be absent in an extract made before they were recorded)."""
    from core.split import received_ns
    eps = read_extracted_episodes(processed).filter(pl.col("status") == "ok")
    cols = [c for c in ("episode_id", "host_id", "profile", "sample_name", "received_at", "onset_s",
                        "onset_phase") if c in eps.columns]
    return received_ns(eps.select(cols))


def window_times(idx: pl.DataFrame, episodes: pl.DataFrame, window_s: float, phases: list[str]) -> WindowTimes:
    t_center = idx["t_center_s"].to_numpy()
    onset = np.full(len(t_center), np.nan)
    if "onset_s" in episodes.columns and len(t_center):
        code = {p: i for i, p in enumerate(phases)}
        onsets = {e: (np.asarray(t or [], np.float64), np.asarray([code.get(x, -1) for x in (p or [])], np.int64))
                  for e, t, p in episodes.select("episode_id", "onset_s", "onset_phase").iter_rows()}
        ep = idx["episode_id"].to_numpy()
        labels = idx["label_id"].to_numpy().astype(np.int64)
        edges = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1], True])
        for lo, hi in zip(edges[:-1], edges[1:]):     # one episode's windows at a time
            t, ph = onsets.get(ep[lo], (np.zeros(0), np.zeros(0, np.int64)))
            if not len(t):
                continue
            i = np.searchsorted(t, t_center[lo:hi], side="right") - 1
            ok = (i >= 0) & (ph[np.maximum(i, 0)] == labels[lo:hi])
            onset[lo:hi] = np.where(ok, t[np.maximum(i, 0)], np.nan)
    return WindowTimes(t_center + window_s / 2, onset)


def detection_section(groups, times: WindowTimes, truth, pred, trust, rule: DetectRule, phases, resamples,
                      rng) -> tuple[dict, Occurrences]:
    hits = (pred == truth) & (trust >= rule.min_trust)
    occ = occurrences(groups, times.t_end_s, times.onset_s, truth, hits, rule.confirm)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    known = int(np.isfinite(times.onset_s).sum())
    return ({"confirm": rule.confirm, "min_trust": rule.min_trust,
             "definition": "delay from the phase's labelled onset to the end of the first window completing the "
                           "rule; occurrences never detected are missed",
             "onsets_known": known == len(truth),
             "per_phase": summarise(occ, phases, n_groups, resamples, rng) if known else []}, occ)


def trust_section(raw, proba, truth, trust, val_raw, val_y, calibration: dict | None, alpha: float, phases,
                  in_sample: bool, seed: int = 0) -> dict:
    """Calibration of the model's own probabilities (`raw`) and after
    temperature scaling: by the checkpoint's temperature (fitted on val when
    it was trained, and applied live), or, for a checkpoint trained before
    calibration was, one eval fits on val for this report only. Then
    abstention (risk-coverage by confidence and by trust) and split-conformal
    sets fitted on val at `alpha`, both on the scaled probabilities."""
    if calibration:
        temperature = float(calibration["temperature"])
        source = ("fitted on val when trained, applied live" if calibration.get("fitted_on") == "val"
                  else f"not fitted: {str(calibration.get('fitted_on', 'unknown')).removeprefix('none: ')}")
    else:
        from core.calibrate import fit_checked
        temperature, why_not = fit_checked(val_raw, val_y)
        source = ("fitted by eval on val for this report; retrain to apply it live" if why_not is None
                  else f"not fitted: {why_not}")
    # With the checkpoint's temperature, eval's own probabilities (`proba`) are already scaled.
    scaled = proba if calibration else cal.scale(raw, temperature)
    before, after = cal.calibration(raw, truth), cal.calibration(scaled, truth)
    threshold = cal.conformal_threshold(cal.scale(val_raw, temperature), val_y, alpha, seed)
    conformal = cal.conformal_report(scaled, truth, threshold, alpha, phases, seed)
    return {"fitted_on": "val" + (" (the part scored: in-sample)" if in_sample else ""),
            "val_windows": int(len(val_y)), "temperature": temperature, "temperature_source": source,
            "before": before, "after": after,
            "abstention": {"by_confidence": cal.risk_coverage(scaled, truth),
                           "by_trust": cal.risk_coverage(scaled, truth, trust)},
            "conformal": conformal}


def time_section(idx: pl.DataFrame, episodes: pl.DataFrame, groups, truth, pred, k, recipe: str,
                 slice_text: str | None, unit: str, resamples: int, rng) -> dict | None:
    """Macro-F1 per slice of received_at and AUT: by default under the time
    recipe, under any recipe when --slice is given."""
    if slice_text is None and recipe != "time":
        return None
    slice_s = parse_slice(slice_text or DEFAULT_SLICE)
    per_window = idx.select("episode_id").join(episodes.select("episode_id", "received_ns"), on="episode_id",
                                               how="left", maintain_order="left")
    return over_time(per_window["received_ns"].to_numpy(), groups, truth, pred, k, slice_s, unit, resamples, rng)


def pitfalls_section(all_windows: pl.DataFrame, episodes: pl.DataFrame, part: str, unit: str, recipe: str,
                     phases: list[str]) -> list[dict]:
    parts = all_windows.select("episode_id", "part").unique("episode_id")
    eps = episodes.join(parts, on="episode_id", how="inner").select("episode_id", "part", "host_id", "profile",
                                                                    "received_ns")
    return pitfalls(all_windows, eps, part, unit, recipe, phases)
