"""What eval reports beyond macro-F1, and what it costs, on the demo lab.

Per trained realistic model of the host split: macro-F1, median time to
detect per phase, ECE before and after temperature scaling, conformal
coverage and set size; then AUT under the time recipe on two small labs
made here, one still and one drifting (`synth --drift`), the same seed; and
the time the new sections (time to detect, calibration, abstention,
conformal sets, over time, pitfalls, the validation part's prediction they
need, and their figures) add to `eval`, as a share of the rest of eval's
time, measured in the same run by timing those functions inside it (goal:
under 20% at 1,000 resamples); once with figures in all three formats, once
in SVG only (CIS490_FIGURE_FORMATS=svg), once with none (=none), after a
warm-up, and what eval takes in each, as a ratio to none.

    cis490 demo --home /tmp/cis-demo
    .venv/bin/python bench/evaluation.py --home /tmp/cis-demo/demo [--resamples 1000]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import core.evaluate as evaluate  # noqa: E402
import core.evaluate.figures_sections as figs  # noqa: E402
from core.evaluate import EvalConfig, evaluate_model  # noqa: E402
from core.extract import features_registry  # noqa: E402
from core.lab import split_dirname  # noqa: E402
from core.paths import LabPaths  # noqa: E402
from core.train import trained_names  # noqa: E402

SPENT = {"sections": 0.0, "figures": 0.0}


def _timed(module, name: str, what: str) -> None:
    """Wrap module.name so every call adds its time to SPENT[what]."""
    inner = getattr(module, name)

    def wrapper(*args, **kw):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kw)
        finally:
            SPENT[what] += time.perf_counter() - t0
    setattr(module, name, wrapper)


def per_model(home: Path, resamples: int, formats: str) -> float:
    paths = LabPaths(home)
    registry = features_registry(paths.processed)
    os.environ["CIS490_FIGURE_FORMATS"] = formats
    cfg = EvalConfig(split="host", resamples=resamples)
    total_all = added_all = figures_all = 0.0
    print(f"\ndemo lab {home}: host split, test part, {resamples} resamples, figures as {formats}")
    print(f"{'model':<12} {'F1':>6} {'ECE':>6} {'ECE(T)':>7} {'T':>5} {'cover':>6} {'size':>5}  median delay per phase (s)")
    for name in trained_names(paths.artifacts, "host"):
        model, mode = split_dirname(name)
        if mode != "realistic":
            continue
        SPENT.update(sections=0.0, figures=0.0)
        t0 = time.perf_counter()
        r = evaluate_model(paths.processed, paths.artifacts, registry, model, mode, cfg)
        total = time.perf_counter() - t0
        added = SPENT["sections"] + SPENT["figures"]
        total_all, added_all, figures_all = total_all + total, added_all + added, figures_all + SPENT["figures"]
        rep = r.report
        c = rep["calibration"]
        delays = " ".join(f"{d['phase']}={d['median_s']:.1f}" if d["median_s"] is not None else f"{d['phase']}=-"
                          for d in rep["detection"]["per_phase"])
        print(f"{model:<12} {rep['macro_f1']:6.3f} {c['before']['ece']:6.3f} {c['after']['ece']:7.3f} "
              f"{c['temperature']:5.2f} {c['conformal']['coverage']:6.3f} {c['conformal']['mean_set_size']:5.2f}  "
              f"{delays}")
        print(f"{'':<12} eval {total:.2f} s, of which the new sections {SPENT['sections']:.2f} s to compute and "
              f"{SPENT['figures']:.2f} s to draw ({added / max(total - added, 1e-9):.0%} of the rest)")
    if total_all and formats != "none":
        rest = total_all - added_all
        print(f"all models: the new sections add {added_all - figures_all:.2f} s of computing and {figures_all:.2f} s "
              f"of figures to {rest:.2f} s of the rest of eval: "
              f"{(added_all - figures_all) / rest:.0%} and {figures_all / rest:.0%} (goal: under 20% in all)")
    return total_all


def aut_with_and_without_drift(episodes: int, resamples: int) -> None:
    """Two labs of the same seed, still and drifting, each split by time and
    scored by gbt: AUT and each slice's macro-F1."""
    from core.extract import ExtractConfig
    from core.extract.pipeline import run_extract
    from core.registry import load_registry
    from core.split import SplitConfig, make_split
    from core.synth import SynthConfig, generate_store
    from core.train import train_one
    from core.validate.pipeline import run_validation
    reg = load_registry()
    print(f"\nAUT under the time recipe ({episodes} episodes over 60 days, 7-day slices, gbt):")
    for drift in (0.0, 1.5):
        with tempfile.TemporaryDirectory() as tmp:
            p = LabPaths(Path(tmp))
            generate_store(SynthConfig(episodes=episodes, seed=0, drift=drift), p.default_store, workers=2)
            index = p.processed / "validation_v1.parquet"
            run_validation(p.default_store, index, reg, workers=2)
            run_extract(p.processed, index, p.default_store, reg, ExtractConfig(), workers=2)
            make_split(p.processed, SplitConfig("time"), reg)
            train_one(p.processed, p.artifacts, reg, "gbt", "realistic", "time", seed=0)
            rep = evaluate_model(p.processed, p.artifacts, reg, "gbt", "realistic",
                                 EvalConfig(split="time", resamples=resamples)).report
            t = rep["over_time"]
            slices = ", ".join(f"{s['macro_f1']:.3f}" for s in t["slices"])
            aut = "-" if t["aut"] is None else f"{t['aut']:.3f}"
            print(f"  drift {drift:g}: macro-F1 {rep['macro_f1']:.3f}, AUT {aut}, per slice {slices}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True, help="A lab with host-split checkpoints (the demo's).")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--drift-episodes", type=int, default=300)
    a = ap.parse_args()
    _timed(evaluate, "_sections", "sections")
    for name in ("detection_figure", "calibration_figure", "over_time_figure"):
        _timed(figs, name, "figures")
    # SVG first as a warm-up (imports, loading each checkpoint once), then measured.
    took = {f: per_model(a.home, a.resamples, f) for f in ("svg", "png,pdf,svg", "svg", "none")}
    print("\neval of every model, by figure formats: " + ", ".join(
        f"{f} {t:.2f} s ({t / took['none']:.2f}x none)" for f, t in took.items()))
    aut_with_and_without_drift(a.drift_episodes, a.resamples)


if __name__ == "__main__":
    main()
