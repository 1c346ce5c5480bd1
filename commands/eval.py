"""`cis490 eval`: score checkpoints with bootstrap confidence intervals."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from cis490cli import options as opt
from cis490cli.state import AppState, get_state

if TYPE_CHECKING:
    from core.evaluate import EvalConfig, EvalResult
    from core.registry import Registry


def _ci(v: float, ci) -> str:
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci is not None else f"{v:.3f} [undefined]"


def eval_config(split: opt.SplitName, part: opt.PartName, resamples: int, unit: opt.UnitName,
                seed: int) -> EvalConfig:
    from core.evaluate import EvalConfig
    cfg = EvalConfig(split.value, part.value, resamples, unit.value, seed)
    cfg.check()
    return cfg


def eval_cmd(
    ctx: typer.Context,
    models: List[str] = typer.Argument(..., metavar="MODEL", help="Models (or all): a bare name (gru) is its realistic checkpoint; "
                                                 "gru_oracle the other."),
    mode: Optional[opt.ModeName] = opt.MODE,
    split: opt.SplitName = opt.SPLIT,
    part: opt.PartName = opt.PART,
    resamples: int = opt.RESAMPLES,
    unit: opt.UnitName = opt.UNIT,
    seed: int = opt.BOOT_SEED,
    channels: Optional[Path] = opt.CHANNELS,
) -> None:
    """Score checkpoints on a split: macro-F1 with a bootstrap CI, per class, profile and host.

    Examples:

    \b
        cis490 eval gru gbt_oracle
        cis490 eval all --split sample --unit window
    """
    from core.evaluate import resolve_model_names
    from core.extract import features_registry
    state = get_state(ctx)
    cfg = eval_config(split, part, resamples, unit, seed)
    named = resolve_model_names(models, state.paths.artifacts, cfg.split, mode.value if mode else None,
                                every_mode=True)
    registry = features_registry(state.paths.processed, channels)
    results = [run_eval(state, registry, model, md, cfg) for model, md in named]
    render_eval(state, results)


def run_eval(state: AppState, registry: Registry, model: str, mode: str, cfg: EvalConfig) -> EvalResult:
    from core.evaluate import evaluate_model
    paths = state.paths
    with state.record("eval", {"model": model, "mode": mode, **cfg.__dict__}) as run:
        with state.terminal.progress(f"Evaluating {model} ({mode})", total=1) as bar:
            r = evaluate_model(paths.processed, paths.artifacts, registry, model, mode, cfg, run.run_id)
            bar(1, 1)
        run.add_input(Path(r.report["checkpoint"]["path"]) / "header.json", "checkpoint")
        for name in ("report.json", "predictions.parquet", *(f"{fig}.{ext}" for fig in ("confusion", "per_profile")
                                                             for ext in ("png", "pdf", "svg"))):
            run.add_output(r.directory / name, name.replace(".", "_"))
        rep = r.report
        run.metrics.update(macro_f1=rep["macro_f1"], macro_f1_ci=rep["macro_f1_ci"], accuracy=rep["accuracy"],
                           ci_method=rep["method"], unit=rep["unit"], resamples=rep["resamples"], seed=rep["seed"],
                           windows=rep["windows"], episodes=rep["episodes"],
                           untested_profiles=rep["untested_profiles"])
    return r


def render_eval(state: AppState, results: list[EvalResult]) -> None:
    term = state.terminal
    if term.json_mode:
        term.json([r.report for r in results])
        return
    for r in results:
        rep = r.report
        term.rule(f"{rep['name']} on {rep['split']}/{rep['part']}")
        term.print(f"macro-F1 [bold]{_ci(rep['macro_f1'], rep['macro_f1_ci'])}[/], accuracy "
                   f"{_ci(rep['accuracy'], rep['accuracy_ci'])} over {rep['windows']:,} windows of "
                   f"{rep['episodes']:,} episodes ({rep['method']}, {rep['unit']} unit, {rep['resamples']} "
                   f"resamples, seed {rep['seed']})")
        term.table("Per phase", ["phase", "precision", "recall", "F1 [95% CI]", "windows"],
                   [(c["label"], f"{c['precision']:.3f}", f"{c['recall']:.3f}", _ci(c["f1"], c["f1_ci"]),
                     c["support"]) for c in rep["per_class"]], justify_right=[1, 2, 4])
        partial = [c for c in rep["per_class"] if c["f1_ci_resamples"] < rep["resamples"]]
        if partial:
            term.print("Phase F1 intervals are over the resamples that hold the phase: " + ", ".join(
                f"{c['label']} {c['f1_ci_resamples']}/{rep['resamples']}" for c in partial) + ".")
        term.table("Per profile", ["profile", "macro-F1 [95% CI]", "windows", "episodes"],
                   [(p["profile"], _ci(p["macro_f1"], p["macro_f1_ci"]), p["windows"], p["episodes"])
                    for p in rep["per_profile"]], justify_right=[2, 3])
        term.table("Per host", ["host", "macro-F1 [95% CI]", "windows", "episodes"],
                   [(h["host"], _ci(h["macro_f1"], h["macro_f1_ci"]), h["windows"], h["episodes"])
                    for h in rep["per_host"]], justify_right=[2, 3])
        if rep["untested_profiles"]:
            term.print(f"[yellow]Untested profiles (absent from {rep['part']}, not in any average):[/] "
                       f"{', '.join(rep['untested_profiles'])}")
        labels = rep["confusion"]["labels"]
        term.table("Confusion (rows: truth, columns: predicted)", ["", *labels],
                   [(lab, *row) for lab, row in zip(labels, rep["confusion"]["matrix"])],
                   justify_right=list(range(1, len(labels) + 1)))
        pool = rep["checkpoint"].get("unlabeled_pool")
        if pool:
            term.print(f"Note: this model also learned from {pool['windows_used']:,} unlabeled windows: {pool['source']}"
                       + (" - the windows scored here, so this score is transductive." if rep["transductive"] else ""))
        term.print(f"Report: {r.directory / 'report.json'} (figures and predictions beside it)")
