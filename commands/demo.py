"""`cis490 demo`: the whole pipeline on a small synthetic lab of its own."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cis490cli import options as opt
from cis490cli.state import get_state
from cis490cli.render import (render_compare, render_eval, render_extract, render_split, render_synth, render_train,
                              render_validate)
from core.paths import INDEX_NAME, LabPaths, resolve_cli_path


# Train on two hosts, test on the two the models never saw.
DEMO_TRAIN_HOSTS = ("lab-thinkpad", "lab-desktop")
# The strongest cheap baseline first (docs/models.md), then a summary model and a neural one.
DEMO_MODELS = ("minirocket", "gbt", "cnn")


def demo(
    ctx: typer.Context,
    episodes: int = typer.Option(120, "--episodes", metavar="N", help="Episodes in the demo store."),
    duration: float = typer.Option(180.0, "--duration", metavar="SECONDS", help="Mean episode length in seconds."),
    seed: int = typer.Option(7, "--seed", metavar="N", help="Random seed."),
    workers: int = opt.WORKERS,
    lab_dir: Optional[Path] = typer.Option(None, "--dir", metavar="DIR",
                                           help="The demo's own lab home [default: demo/ in the lab home]."),
) -> None:
    """Run the pipeline end to end on a small synthetic lab of its own (synth, then each later stage).

    The demo works in a lab home of its own (demo/ under the lab home, or
    --dir): it never touches the store, index, features, splits, checkpoints
    or notebook of the lab it is started in.

    Examples:

    \b
        cis490 demo
        cis490 demo --episodes 200 --dir /tmp/demo-lab
    """
    from core.evaluate import EvalConfig
    from core.stages import (compare_stage, eval_stage, extract_stage, split_stage, synth_stage, train_stage,
                             validate_stage)
    from core.extract import ExtractConfig
    from core.registry import load_registry
    from core.split import SplitConfig
    from core.synth import SynthConfig, demo_home
    from core.validate.truth import check_against_truth
    state = get_state(ctx)
    term = state.terminal
    cfg = SynthConfig(episodes=episodes, duration_s=duration, seed=seed)
    cfg.check()
    # Only the demo's own directory is touched; the lab home's notebook is not either.
    target = resolve_cli_path(lab_dir, state.paths.home / "demo")
    paths = LabPaths(demo_home(target).resolve())
    state.use_paths(paths)
    store = paths.default_store
    term.print(f"Demo lab: [bold]{paths.home}[/] (explore it with `cis490 --home {paths.home} notebook list`)",
               wrap=False)
    with state.record("demo", {"episodes": episodes, "duration_s": duration, "seed": seed}) as run:
        term.rule("1. synth: a synthetic lab store")
        result = synth_stage(state, cfg, store, workers, force=True)
        if not term.json_mode:  # --json: one document at the end, not one per stage
            render_synth(state, result)
        run.metrics["episodes"] = result.episodes

        term.rule("2. validate: the acceptance index")
        index = paths.processed / INDEX_NAME
        summary = validate_stage(state, load_registry(), store, index, workers)
        if not term.json_mode:
            render_validate(state, summary)
        check = check_against_truth(index, result.truth, summary.in_flight)
        term.print(f"Agrees with synth's ground truth on {check.agree}/{check.total} episode directories.")
        run.metrics["validation_vs_truth"] = f"{check.agree}/{check.total}"

        term.rule("3. extract: windows, features, tensors")
        registry = load_registry()
        ext = extract_stage(state, registry, store, index, ExtractConfig(), workers)
        if not term.json_mode:
            render_extract(state, ext)
        run.metrics["windows"] = ext.windows

        term.rule("4. split: held-out hosts")
        sp = split_stage(state, registry, SplitConfig("host", DEMO_TRAIN_HOSTS, seed=seed))
        if not term.json_mode:
            render_split(state, sp)

        term.rule(f"5. train: {', '.join(DEMO_MODELS)}, realistic and oracle")
        trained = train_stage(state, registry, list(DEMO_MODELS), ["realistic", "oracle"], "host", {}, "cpu", seed)
        if not term.json_mode:
            render_train(state, trained)

        term.rule("6. eval: held-out hosts, bootstrap over episodes")
        ecfg = EvalConfig("host", "test", 1000, "episode", seed)
        evals = [eval_stage(state, registry, m, mode, ecfg) for m in DEMO_MODELS for mode in ("realistic", "oracle")]
        if not term.json_mode:
            render_eval(state, evals[:1])
        term.table("Every checkpoint on the held-out hosts", ["model", "macro-F1", "95% CI", "chosen on (*)"],
                   [(e.report["name"], f"{e.report['macro_f1']:.3f}",
                     f"{e.report['macro_f1_ci'][0]:.3f}-{e.report['macro_f1_ci'][1]:.3f}",
                     _chosen(e.report)) for e in evals])

        term.rule(f"7. compare: {' vs '.join(DEMO_MODELS)}, paired bootstrap")
        cmp = compare_stage(state, registry, [(m, "realistic") for m in DEMO_MODELS], ecfg)
        if not term.json_mode:
            render_compare(state, cmp)
        run.metrics.update(test_macro_f1={e.report["name"]: e.report["macro_f1"] for e in evals},
                           compare=cmp.report["pairs"][0])
    _explain(state, evals, cmp, paths)


def _chosen(rep: dict) -> str:
    """A checkpoint's selection score and what it was measured on (core.selection)."""
    from core.selection import SCORES
    ck = rep["checkpoint"]
    on = ck.get("score_on", "val")
    score = ck.get("val_macro_f1")
    return "-" if score is None or score != score else f"{score:.3f} {SCORES.get(on, (on,))[0]}"


def _beyond(rep: dict) -> str:
    """Time to detect and calibration of one report, in a sentence each."""
    det = (rep.get("detection") or {}).get("per_phase") or []
    cal = rep.get("calibration") or {}
    out = ""
    caught = [d for d in det if d["median_s"] is not None]
    if caught:
        slow = max(caught, key=lambda d: d["median_s"])
        out += (f"- Time to detect ({rep['name']}): half of each phase's occurrences are caught within "
                f"{min(d['median_s'] for d in caught):.0f}-{slow['median_s']:.0f} s of the phase's start "
                f"(slowest: {slow['phase']}); a window is labelled by the phase at its centre and predicted once "
                "complete, so half a window (5 s) after a phase starts is the soonest it can be caught.\n")
    if cal.get("val_windows"):
        cf = cal["conformal"]
        out += (f"- Calibration ({rep['name']}): expected calibration error {cal['before']['ece']:.3f}, "
                f"{cal['after']['ece']:.3f} after temperature scaling; conformal sets cover "
                f"{cf['coverage']:.0%} of test windows for a {1 - cf['alpha']:.0%} target"
                + (": fitted on the training hosts' validation episodes, the guarantee does not carry over to "
                   "new hosts, which is itself a finding.\n" if cf["below_target"] else ".\n"))
    return out


def _explain(state, evals, cmp, paths) -> None:
    term = state.terminal
    if term.json_mode:
        term.json({"test_macro_f1": {e.report["name"]: e.report["macro_f1"] for e in evals},
                   "compare": cmp.report["pairs"][0], "notebook": str(paths.notebook)})
        return
    best = max(evals, key=lambda e: e.report["macro_f1"]).report
    pair = cmp.report["pairs"][0]
    term.rule("What the numbers mean")
    term.print(
        f"- The models were trained on {', '.join(DEMO_TRAIN_HOSTS)} and scored on hosts they never saw "
        "(the honest cross-device test).\n"
        "- macro-F1 is the mean over the six phases of each phase's F1 (1.0 = every window's phase right); "
        "the interval is a 95% bootstrap interval that resamples whole episodes, because windows of one "
        "episode are correlated.\n"
        "- (*) 'chosen on' is the score each checkpoint was selected by. 'val' is on held-out episodes of the "
        "training hosts: the gap to the test score is the price of a new device. 'LOO' (minirocket's ridge "
        "head) is leave-one-out on train + val, which that head was fitted on: no held-out figure, and "
        "optimistic.\n"
        "- realistic models see only what a deployment can see (guest agent + network flows); oracle models "
        "also see the hypervisor's view (proc, qmp).\n"
        + _beyond(best) +
        f"- Best here: {best['name']} at {best['macro_f1']:.3f}. {pair['a']} vs {pair['b']}: gap {pair['gap']:+.3f} "
        f"(95% CI {pair['gap_ci'][0]:+.3f} to {pair['gap_ci'][1]:+.3f}, p = {pair['p_value']:.3g}): "
        + (f"{pair['winner']} is better." if pair["winner"] != "n.s." else "no significant difference."))
    term.print(f"Reports and figures: {paths.artifacts / 'eval'}; comparison: {cmp.path}", wrap=False)
    term.print(f"Lab notebook: {paths.notebook} (`cis490 --home {paths.home} notebook list`, "
               f"`... notebook show RUN`).", wrap=False)
    from core.status import FRESH, lab_status
    rows = lab_status(paths)
    term.print(f"Status: {sum(r.state == FRESH for r in rows)} of {len(rows)} artefacts fresh "
               f"(`cis490 --home {paths.home} status` says what is stale, and why).")
