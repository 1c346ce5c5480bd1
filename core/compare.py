"""`cis490 compare`: paired bootstrap between models scored on identical windows."""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import Cis490Error
from core.evaluate import EvalConfig
from core.evaluate.bootstrap import bootstrap_p_value, holm, paired_gap, percentile_ci
from core.evaluate.detection import paired_median_gap
from core.lab import Lab, Ref, eval_identity
from core.paths import atomic_write_text, ensure_dir

P_CONVENTION = ("two-sided bootstrap p-value: twice the smaller share of resampled gaps on either side of 0, "
                "each tail counted with +1 (smallest possible 2/(B+1)), capped at 1")


class CompareError(Cis490Error):
    """Models cannot be compared as asked."""


@dataclass
class CompareResult:
    path: Path
    report: dict
    figures: list[Path] = field(default_factory=list)     # the forest plot as PNG, PDF, SVG


def check_models(named: list[tuple[str, str]]) -> None:
    """Two or more distinct models, checked before any evaluation runs."""
    names = [Ref("", m, md).shown for m, md in named]
    if len(names) < 2:
        raise CompareError(f"compare needs at least two models, got {', '.join(names) or 'none'}")
    if len(set(names)) != len(names):
        raise CompareError(f"a model is named twice: {', '.join(names)}")


def pair_occurrences(groups: np.ndarray, truth: np.ndarray, preds: pl.DataFrame, code: dict, cfg: EvalConfig):
    """One model's phase occurrences and their detection delays, from its
    predictions file, by the rule its evaluation used (None: the file holds
    no onsets, an extract older than them)."""
    from core.evaluate.detection import occurrences
    onset = preds["onset_s"].to_numpy()
    if not np.isfinite(onset).any():
        return None
    order = np.lexsort((preds["t_end_s"].to_numpy(), groups))
    pred = preds["predicted"].replace_strict(code).to_numpy()
    hits = (pred == truth) & (preds["trust"].to_numpy() >= cfg.min_trust)
    return occurrences(groups[order], preds["t_end_s"].to_numpy()[order], onset[order], truth[order], hits[order],
                       cfg.confirm)


def compare_reports(artifacts: Path, phases: list[str], reports: list[dict], cfg: EvalConfig,
                    paired: bool = True) -> CompareResult:
    """Every pair of models, on the windows their evaluations scored."""
    check_models([(r["model"], r["mode"]) for r in reports])
    names = [r["name"] for r in reports]
    for r in reports[1:]:
        if r["split_identity"]["membership_sha256"] != reports[0]["split_identity"]["membership_sha256"]:
            raise CompareError(f"{names[0]} and {r['name']} were trained on different splits "
                               f"({reports[0]['split_identity']['membership_sha256'][:12]} vs "
                               f"{r['split_identity']['membership_sha256'][:12]}); retrain both on split {cfg.split}")
    lab = Lab(Path(), artifacts)
    preds = [pl.read_parquet(lab.predictions(Ref(cfg.split, r["model"], r["mode"]), cfg.settings),
                             columns=["window_id", "episode_id", "truth", "predicted", "t_end_s", "onset_s", "trust"])
             for r in reports]
    base = preds[0]
    for name, p in zip(names[1:], preds[1:]):
        if p.height != base.height or not p["window_id"].equals(base["window_id"]):
            raise CompareError(f"{names[0]} and {name} were scored on different windows "
                               f"({base.height} vs {p.height}); evaluate both on the same split and part")
        if not p["truth"].equals(base["truth"]):
            raise CompareError(f"{names[0]} and {name} disagree on the truth of the same windows; re-run `cis490 eval`")
    code = {p: i for i, p in enumerate(phases)}
    truth = base["truth"].replace_strict(code).to_numpy()
    predicted = [p["predicted"].replace_strict(code).to_numpy() for p in preds]
    _, groups = np.unique(base["episode_id"].to_numpy(), return_inverse=True)
    k = len(phases)
    occ = [pair_occurrences(groups, truth, p, code, cfg) for p in preds]
    pairs = []
    for i, j in itertools.combinations(range(len(reports)), 2):
        # Each pair draws its own resamples from a seed fixed by the pair's position.
        rng = np.random.default_rng([cfg.seed, i, j])
        gaps = paired_gap(truth, predicted[i], predicted[j], groups, k, cfg.unit, cfg.resamples, rng, paired)
        gap = reports[i]["macro_f1"] - reports[j]["macro_f1"]
        lo, hi = percentile_ci(gaps)
        p = bootstrap_p_value(gaps)
        delay = paired_median_gap(occ[i], occ[j], int(groups.max()) + 1, cfg.resamples,
                                  np.random.default_rng([cfg.seed, i, j, 1])) if occ[i] is not None else None
        pairs.append({"a": names[i], "b": names[j], "macro_f1_a": reports[i]["macro_f1"],
                      "macro_f1_b": reports[j]["macro_f1"], "gap": gap, "gap_ci": [lo, hi], "p_value": p,
                      "delay": delay})
    if len(pairs) > 1:
        for pair, adj in zip(pairs, holm([x["p_value"] for x in pairs])):
            pair["p_holm"] = adj
        # The delay gaps are a second family of tests over the same pairs: Holm too,
        # so the table beside the macro-F1 one reads the same way.
        timed = [x for x in pairs if x["delay"] and x["delay"].get("p_value") is not None]
        for pair, adj in zip(timed, holm([x["delay"]["p_value"] for x in timed])):
            pair["delay"]["p_holm"] = adj
    floor = 2 / (cfg.resamples + 1)
    for pair in pairs:
        p = pair.get("p_holm", pair["p_value"])
        pair["winner"] = (pair["a"] if pair["gap"] > 0 else pair["b"]) if p < 0.05 else "n.s."
        # No resample crossed 0: the p-value says only "below the floor".
        pair["p_at_floor"] = bool(pair["p_value"] <= floor)
    transductive = [r["name"] for r in reports if r.get("transductive")]
    report = {"models": names, "split": cfg.split, "split_identity": reports[0]["split_identity"],
              "transductive": transductive,
              "transductive_note": ("learned from the inputs (never the labels) of the very windows they are "
                                    "scored on; their scores are not inductive generalisation") if transductive else None, "part": cfg.part, "windows": int(len(truth)),
              "episodes": int(groups.max() + 1), "unit": cfg.unit, "resamples": cfg.resamples, "seed": cfg.seed,
              "confirm": cfg.confirm, "min_trust": cfg.min_trust, "conformal_alpha": cfg.alpha, "slice": cfg.slice,
              "delay": "median time to detect of A minus B over every phase occurrence (detected ones), the "
                       "same episode resamples for both, p as for the macro-F1 gap (Holm over the pairs' delay "
                       "gaps when several)" if paired else None,
              "paired": paired, "method": "paired bootstrap of the macro-F1 gap (the same resamples score both "
                                          "models)" if paired else "independent bootstraps per model",
              "ci": "95% percentile interval", "p_value": P_CONVENTION, "p_floor": floor,
              "multiple_comparisons": "Holm (1979) over all pairs" if len(pairs) > 1 else "none (one pair)",
              "alpha": 0.05, "winner": "the better model where p (Holm-adjusted for several pairs) < alpha, "
                                       "else n.s. (no significant difference)", "pairs": pairs,
              # What each evaluation held (its predictions' digest): an identical re-run leaves this fresh.
              "evals": [eval_identity(r) for r in reports], "eval_runs": [r.get("eval_run_id") for r in reports]}
    out = lab.comparison(cfg.split, names, cfg.settings)
    ensure_dir(out.parent)
    atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    from core.evaluate.figures import forest_figure, formats
    figures = forest_figure(report, out.with_suffix("")) if formats() else []
    return CompareResult(out, report, figures)
