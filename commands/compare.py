"""`cis490 compare`: paired bootstrap comparison of models on identical windows."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from cis490cli import options as opt
from cis490cli.state import AppState, get_state
from commands.eval import eval_config, run_eval

if TYPE_CHECKING:
    from core.compare import CompareResult
    from core.evaluate import EvalConfig
    from core.registry import Registry


def compare(
    ctx: typer.Context,
    models: List[str] = typer.Argument(..., metavar="MODEL", help="Two or more models, or all: gru (its realistic checkpoint), gbt_oracle, ..."),
    paired_bootstrap: bool = typer.Option(True, "--paired-bootstrap/--unpaired",
                                          help="Score both models on the same resamples (default) or independently."),
    wide: bool = typer.Option(False, "--wide", help="One table with every figure per pair (wider than 80 columns)."),
    mode: Optional[opt.ModeName] = opt.MODE,
    split: opt.SplitName = opt.SPLIT,
    part: opt.PartName = opt.PART,
    resamples: int = opt.RESAMPLES,
    unit: opt.UnitName = opt.UNIT,
    seed: int = opt.BOOT_SEED,
    channels: Optional[Path] = opt.CHANNELS,
) -> None:
    """Compare models pairwise: macro-F1 gap, its 95% CI and p-value (Holm-adjusted for several pairs).

    Examples:

    \b
        cis490 compare gru gbt --paired-bootstrap
        cis490 compare gru gbt cnn gru_oracle --unit window --wide
    """
    from core.evaluate import resolve_model_names
    from core.extract import features_registry
    state = get_state(ctx)
    cfg = eval_config(split, part, resamples, unit, seed)
    # `all`: every realistic checkpoint of the split (the deployment-relevant ones), or those of --mode.
    named = resolve_model_names(models, state.paths.artifacts, cfg.split, mode.value if mode else None,
                                every_mode=False)
    registry = features_registry(state.paths.processed, channels)
    render_compare(state, run_compare(state, registry, named, cfg, paired_bootstrap), wide)


def run_compare(state: AppState, registry: Registry, named: list[tuple[str, str]], cfg: EvalConfig,
                paired: bool = True) -> CompareResult:
    from core.compare import compare_reports
    from core.evaluate import current_report
    paths = state.paths
    config = {"models": [f"{m}_{md}" for m, md in named], "paired": paired, **cfg.__dict__}
    with state.record("compare", config) as run:
        reports = []
        for model, md in named:
            rep = current_report(paths.artifacts, paths.processed, model, md, cfg)
            # An evaluation that is missing or no longer matches its checkpoint, features or split is redone.
            reports.append(rep if rep is not None else run_eval(state, registry, model, md, cfg).report)
        run.parents = [r["eval_run_id"] for r in reports if r.get("eval_run_id")]
        result = compare_reports(paths.artifacts, list(registry.phases), reports, cfg, paired)
        run.add_output(result.path, "compare_report")
        for fig in result.figures:
            run.add_output(fig, f"forest_{fig.suffix[1:]}")
        run.metrics.update(pairs=[{k: p[k] for k in ("a", "b", "gap", "gap_ci", "p_value", "winner")} |
                                  ({"p_holm": p["p_holm"]} if "p_holm" in p else {}) for p in result.report["pairs"]],
                           unit=cfg.unit, resamples=cfg.resamples, seed=cfg.seed, ci_method="percentile bootstrap")
    return result


def render_compare(state: AppState, r: CompareResult, wide: bool = False) -> None:
    term = state.terminal
    rep = r.report
    if term.json_mode:
        term.json({**rep, "path": str(r.path)})
        return
    holm = "p_holm" in rep["pairs"][0]
    mark = {n: f"{n}*" for n in rep["transductive"]}
    title = (f"Paired comparison on {rep['split']}/{rep['part']} ({rep['windows']:,} windows, "
             f"{rep['episodes']:,} episodes)")
    if wide:
        cols = ["A", "B", "F1 A", "F1 B", "gap", "95% CI", "p", *(["p Holm"] if holm else []), "winner"]
        rows = [(mark.get(p["a"], p["a"]), mark.get(p["b"], p["b"]), f"{p['macro_f1_a']:.3f}",
                 f"{p['macro_f1_b']:.3f}", f"{p['gap']:+.3f}", f"{p['gap_ci'][0]:+.3f},{p['gap_ci'][1]:+.3f}",
                 f"{p['p_value']:.3g}", *([f"{p['p_holm']:.3g}"] if holm else []), p["winner"])
                for p in rep["pairs"]]
        term.table(title, cols, rows, no_wrap=list(range(len(cols))), min_width=140)
    else:
        # 80 columns whatever the number of models: each model's score once, then one row per pair.
        scores = {p["a"]: p["macro_f1_a"] for p in rep["pairs"]} | {p["b"]: p["macro_f1_b"] for p in rep["pairs"]}
        term.print(title)
        term.table(None, ["model", "macro-F1"], [(mark.get(m, m), f"{scores[m]:.3f}") for m in rep["models"]],
                   justify_right=[1])
        cols = ["A - B", "gap [95% CI]", "p Holm" if holm else "p", "winner"]
        rows = [(f"{mark.get(p['a'], p['a'])} - {mark.get(p['b'], p['b'])}",
                 f"{p['gap']:+.3f} [{p['gap_ci'][0]:+.3f}, {p['gap_ci'][1]:+.3f}]",
                 f"{p['p_holm'] if holm else p['p_value']:.3g}", p["winner"]) for p in rep["pairs"]]
        term.table(None, cols, rows, justify_right=[1, 2])
    term.print(f"{rep['method']}; {rep['unit']} unit, {rep['resamples']} resamples, seed {rep['seed']}; "
               f"{rep['ci']}; {rep['multiple_comparisons']}; winner at alpha {rep['alpha']}.")
    term.print(f"p-value: {rep['p_value']}.")
    if rep["transductive"]:
        term.print(f"[yellow]* transductive:[/] {', '.join(rep['transductive'])} {rep['transductive_note']}.")
    term.print(f"Report: {r.path}; forest plot: {r.path.with_suffix('')}.{{png,pdf,svg}}")
