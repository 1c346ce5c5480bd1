"""Figures of the report's sections beyond macro-F1 (core.evaluate.sections):
time to detect, calibration and abstention, performance over time. As
core.evaluate.figures: PNG, PDF and SVG, titled with the model and split."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.evaluate.figures import _plt, _save, _title

RIGHT, WRONG, MUTED = "#4a78b5", "#c0392b", "#7f8c8d"


def detection_figure(report: dict, delays: dict[str, np.ndarray], stem: Path) -> list[Path]:
    """Per phase, the delays of the detected occurrences (a box over the
    points) and the share missed beside it."""
    plt = _plt()
    det = report["detection"]
    rows = det["per_phase"]
    fig, ax = plt.subplots(figsize=(6.4, 1.6 + 0.42 * max(len(rows), 1)))
    rng = np.random.default_rng(0)          # jitter only: the figure is the same every run
    for y, r in enumerate(rows):
        d = delays.get(r["phase"], np.zeros(0))
        if len(d):
            ax.boxplot([d], positions=[y], orientation="horizontal", widths=0.5, showfliers=False,
                       medianprops={"color": WRONG}, whis=(10, 90))
            ax.plot(d, y + rng.uniform(-0.18, 0.18, len(d)), ".", color=RIGHT, alpha=0.35, ms=3)
        ax.annotate(f"missed {r['occurrences'] - r['detected']}/{r['occurrences']}", (1.0, y),
                    xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points", va="center")
    ax.set_yticks(range(len(rows)), [r["phase"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    rule = f"{det['confirm']} window{'s' if det['confirm'] > 1 else ''} in a row" + \
        (f", trust >= {det['min_trust']:g}" if det["min_trust"] else "")
    ax.set_xlabel(f"seconds from the phase's labelled onset to its detection ({rule})\n"
                  "box: median and quartiles; whiskers: 10th-90th percentile")
    ax.set_title(f"{_title(report)}\ntime to detect")
    fig.tight_layout()
    return _save(fig, plt, stem)


def calibration_figure(report: dict, stem: Path) -> list[Path]:
    """Left: the reliability diagram before and after temperature scaling.
    Right: accuracy of the windows kept as coverage falls (risk-coverage)."""
    plt = _plt()
    c = report["calibration"]
    fig = plt.figure(figsize=(8.6, 4.8))
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1])
    ax, counts, bx = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[:, 1])
    ax.plot([0, 1], [0, 1], "--", color=MUTED, lw=1, label="perfect calibration")
    fitted = not str(c.get("temperature_source", "")).startswith("not fitted")
    scaled = f"T = {c['temperature']:.2f}" + (" (fitted on val)" if fitted else " (not fitted)")
    for key, colour, name in (("before", MUTED, "as trained"), ("after", RIGHT, scaled)):
        bins = c[key]["reliability"]
        # A point's area is its bin's windows: a bin of two windows must not weigh as one of thousands.
        most = max([b["windows"] for b in bins] or [1])
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", color=colour, lw=1.2, ms=3,
                label=f"{name}: ECE {c[key]['ece']:.3f}")
        ax.scatter([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=colour, zorder=3,
                   alpha=0.55, s=[6 + 150 * b["windows"] / most for b in bins])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy of the windows in the bin")
    ax.legend(loc="best")               # where it hides the fewest points
    ax.set_title("reliability (point area: windows in the bin)")
    after = c["after"]["reliability"]
    counts.bar([(b["lo"] + b["hi"]) / 2 for b in after], [b["windows"] for b in after],
               width=[b["hi"] - b["lo"] for b in after], color=RIGHT, edgecolor="white")
    counts.set_yscale("log")
    # Plain numbers: the log axis's own 10^k labels are mathtext, which the figures do not parse (store names).
    from matplotlib.ticker import FuncFormatter, NullFormatter
    counts.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    counts.yaxis.set_minor_formatter(NullFormatter())
    counts.set_xlim(0, 1)
    counts.set_ylabel("windows")
    counts.set_xlabel(f"confidence (top probability, {c['before']['bins']} equal bins; bars: after scaling)")
    for key, colour, name in (("by_confidence", RIGHT, "by confidence"), ("by_trust", WRONG, "by trust")):
        curve = c["abstention"][key]["curve"]
        bx.plot([x for x, _ in curve], [a for _, a in curve], "o-", color=colour, ms=3,
                label=f"{name}: AURC {c['abstention'][key]['aurc']:.3f}")
    conf = c["conformal"]
    bx.set_xlabel("share of windows kept (the most confident first)\n"
                  f"conformal sets, alpha {conf['alpha']:g}: coverage {conf['coverage']:.2f}\n"
                  f"(target {1 - conf['alpha']:.2f}), {conf['mean_set_size']:.2f} phases")
    bx.set_ylabel("accuracy of the windows kept")
    bx.set_xlim(0, 1.02)
    bx.legend(loc="lower left")
    bx.set_title("abstention (calibrated probabilities)")
    fig.suptitle(_title(report).replace("\n", " "))
    fig.tight_layout()
    return _save(fig, plt, stem)


def over_time_figure(report: dict, stem: Path) -> list[Path]:
    """Macro-F1 per time slice of received_at with its CI; AUT in the title."""
    plt = _plt()
    t = report["over_time"]
    rows = t["slices"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    x = [r["slice"] for r in rows]
    y = [r["macro_f1"] for r in rows]
    lo = [r["macro_f1"] - r["macro_f1_ci"][0] for r in rows]
    hi = [r["macro_f1_ci"][1] - r["macro_f1"] for r in rows]
    ax.errorbar(x, y, yerr=[lo, hi], fmt="o-", color=RIGHT, capsize=3)
    ax.set_ylim(0, 1.02)
    import datetime as dt
    ax.set_xticks(x, [dt.datetime.fromtimestamp(r["start_ns"] / 1e9, dt.timezone.utc).strftime("%Y-%m-%d\n%H:%M")
                      for r in rows], rotation=0)
    days = t["slice_s"] / 86400
    ax.set_xlabel(f"start of each time slice of received_at (UTC; {days:g} days each)"
                  if days >= 1 else f"start of each time slice of received_at (UTC; {t['slice_s'] / 3600:g} h each)")
    ax.set_ylabel("macro-F1, 95% CI")
    aut = "undefined (one slice)" if t["aut"] is None else f"{t['aut']:.3f}"
    ax.set_title(f"{_title(report)}\nperformance over time: AUT {aut}")
    fig.tight_layout()
    return _save(fig, plt, stem)
