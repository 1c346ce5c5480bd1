"""Figures a paper can use: every one as PNG (300 dpi), PDF and SVG.

Titles say the model, its mode and the split it was trained and tested on;
every text is at least the size of the tick labels (one base size for all).
matplotlib, no display needed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.paths import atomic_path
from core.safenames import shown

FORMATS = ("png", "pdf", "svg")
FORMATS_ENV = "CIS490_FIGURE_FORMATS"


def formats() -> tuple[str, ...]:
    """The formats figures are written in: $CIS490_FIGURE_FORMATS (e.g. `svg`
    or `png,svg`), else all three; `none` draws no figure. A PNG at 300 dpi
    and a PDF each cost about a third of a second a figure; a sweep that reads
    SVG can skip them, and one that reads only the numbers (a rotation's
    folds, a bench) can skip drawing too."""
    import os

    from core.errors import ConfigError
    raw = os.environ.get(FORMATS_ENV, "").strip()
    if not raw:
        return FORMATS
    if raw.lower() == "none":
        return ()
    chosen = tuple(dict.fromkeys(x.strip().lower() for x in raw.split(",") if x.strip()))
    bad = [x for x in chosen if x not in FORMATS]
    if bad or not chosen:
        raise ConfigError(f"{FORMATS_ENV}={raw!r}: formats are {', '.join(FORMATS)} (comma-separated), or none")
    return chosen
BASE_PT = 9          # tick labels, and the smallest text anywhere


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": BASE_PT, "axes.titlesize": BASE_PT + 1, "axes.labelsize": BASE_PT,
                         "xtick.labelsize": BASE_PT, "ytick.labelsize": BASE_PT, "legend.fontsize": BASE_PT,
                         "figure.titlesize": BASE_PT + 1, "svg.fonttype": "none", "pdf.fonttype": 42,
                         # Host and episode names come from the store: a `$` in one is text, never mathtext.
                         "text.parse_math": False})
    return plt


def figure_paths(stem: Path) -> list[Path]:
    return [stem.with_name(f"{stem.name}.{ext}") for ext in formats()]


def _title(report: dict) -> str:
    """`gbt (realistic): trained on host split [lab-thinkpad, lab-desktop], tested on host/test [lab-nuc, lab-pi5]`."""
    ident = report.get("split_identity") or {}
    params = ident.get("params") or {}
    trained = f"{ident.get('recipe', report['split'])} split"
    if params.get("train_hosts"):
        trained += f" [{', '.join(shown(h, 40) for h in params['train_hosts'])}]"
    tested = f"{report['split']}/{report['part']}"
    hosts = [h["host"] for h in report.get("per_host", [])]
    if hosts and ident.get("recipe") == "host":
        tested += f" [{', '.join(shown(h, 40) for h in hosts)}]"
    note = report.get("part_note")
    tested = f"{tested} ({note.split(':')[0]})" if note else tested
    return f"{report['model']} ({report['mode']}): trained on {trained},\ntested on {tested}"


def confusion_figure(report: dict, stem: Path) -> list[Path]:
    """Counts in the cells; colour by the share of the true phase on a log
    scale, so a 1% confusion is as visible as it is worth (a linear scale left
    every off-diagonal cell white beside a 0.98 diagonal)."""
    from matplotlib.colors import LogNorm
    plt = _plt()
    labels = report["confusion"]["labels"]
    cm = np.array(report["confusion"]["matrix"], dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    floor = 1e-3
    fig, ax = plt.subplots(figsize=(5.8, 5.2))
    im = ax.imshow(np.where(norm > 0, np.maximum(norm, floor), np.nan), cmap="Blues", norm=LogNorm(floor, 1))
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, f"{int(cm[i, j])}\n{norm[i, j]:.0%}" if norm[i, j] >= 0.005 else f"{int(cm[i, j])}",
                        ha="center", va="center", fontsize=plt.rcParams["font.size"] - 1,
                        color="white" if norm[i, j] > 0.3 else "black")
    ax.set_xlabel("predicted phase")
    ax.set_ylabel("true phase")
    lo, hi = report["macro_f1_ci"]
    ax.set_title(f"{_title(report)}\nmacro-F1 {report['macro_f1']:.3f} [{lo:.3f}, {hi:.3f}], "
                 f"{report['windows']:,} windows")
    bar = fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true phase (log scale); blank: none")
    # Plain percentages: the log axis's own 10^k labels are mathtext, a third of the figure's time to lay out.
    bar.set_ticks([floor, 0.01, 0.1, 1.0], labels=["0.1%", "1%", "10%", "100%"])
    bar.minorticks_off()
    fig.tight_layout()
    return _save(fig, plt, stem)


def per_profile_figure(report: dict, stem: Path) -> list[Path]:
    plt = _plt()
    rows = report["per_profile"]
    names = [r["profile"] for r in rows] + [f"{p} (untested)" for p in report["untested_profiles"]]
    vals = [r["macro_f1"] for r in rows] + [np.nan] * len(report["untested_profiles"])
    lo = [r["macro_f1"] - r["macro_f1_ci"][0] for r in rows] + [0] * len(report["untested_profiles"])
    hi = [r["macro_f1_ci"][1] - r["macro_f1"] for r in rows] + [0] * len(report["untested_profiles"])
    fig, ax = plt.subplots(figsize=(6.4, 3.2 + 0.25 * len(names)))
    ax.barh(range(len(names)), vals, xerr=[lo, hi], color="#4a78b5", capsize=3)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(f"macro-F1 over the profile's phases, 95% CI ({report['unit']} bootstrap, "
                  f"{report['resamples']} resamples)")
    ax.set_title(f"{_title(report)}\nper profile")
    fig.tight_layout()
    return _save(fig, plt, stem)


def per_host_figure(report: dict, stem: Path) -> list[Path]:
    """Macro-F1 per scored host with its CI: the cross-device finding, one bar per device."""
    plt = _plt()
    rows = report["per_host"]
    fig, ax = plt.subplots(figsize=(6.4, 1.8 + 0.35 * len(rows)))
    vals = [r["macro_f1"] for r in rows]
    lo = [r["macro_f1"] - r["macro_f1_ci"][0] for r in rows]
    hi = [r["macro_f1_ci"][1] - r["macro_f1"] for r in rows]
    ax.barh(range(len(rows)), vals, xerr=[lo, hi], color="#4a78b5", capsize=3)
    for y, r in enumerate(rows):
        ax.annotate(f"{r['macro_f1']:.3f}  ({r['episodes']} episodes)", (r["macro_f1_ci"][1], y), xytext=(4, 0),
                    textcoords="offset points", va="center")
    ax.set_yticks(range(len(rows)), [shown(r["host"], 40) for r in rows])
    ax.set_xlim(0, 1.25)
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.invert_yaxis()
    ax.set_xlabel(f"macro-F1 on the host's windows, 95% CI ({report['unit']} bootstrap, "
                  f"{report['resamples']} resamples)")
    ax.set_title(f"{_title(report)}\nper host")
    fig.tight_layout()
    return _save(fig, plt, stem)


def training_figure(report: dict, header: dict, stem: Path) -> list[Path] | None:
    """The training curves the checkpoint header records: a neural model's
    train and validation loss and validation macro-F1 per epoch, gbt's
    validation loss per round; the best (kept) one marked. None for a model
    with no curve (kNN, the ROCKET heads' single fits)."""
    t = header.get("training") or {}
    history = t.get("history") or []
    if len(history) < 2:
        return None
    plt = _plt()
    step = "epoch" if "epoch" in history[0] else "round"
    x = [h[step] for h in history]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for key, colour, name in (("train_loss", "#7f8c8d", "train loss"), ("val_loss", "#4a78b5", "validation loss")):
        pts = [(h[step], h[key]) for h in history if h.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), color=colour, label=name)
    ax.set_xlabel(step)
    ax.set_ylabel("loss (cross-entropy)")
    best = t.get("best_epoch")
    if best:
        ax.axvline(best, color="#c0392b", ls="--", lw=1, label=f"kept: {step} {best}")
    f1 = [(h[step], h["val_macro_f1"]) for h in history if h.get("val_macro_f1") is not None]
    if f1:
        bx = ax.twinx()
        bx.plot(*zip(*f1), color="#27ae60", label="validation macro-F1")
        bx.set_ylabel("validation macro-F1")
        bx.set_ylim(0, 1.02)
        lines = ax.get_legend_handles_labels()
        more = bx.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="center right")
    else:
        ax.legend(loc="upper right")
    ax.set_xlim(min(x), max(x))
    ax.set_title(f"{report['model']} ({report['mode']}): training on the {header['split']['name']} split\n"
                 f"{len(history)} {step}s run; early stopping: {t.get('early_stopping') or 'on validation'}")
    fig.tight_layout()
    return _save(fig, plt, stem)


def forest_figure(report: dict, stem: Path) -> list[Path]:
    """The pairwise macro-F1 gaps with their 95% CIs (a forest plot), p Holm-adjusted where several."""
    plt = _plt()
    pairs = report["pairs"]
    holm = "p_holm" in pairs[0]
    fig, ax = plt.subplots(figsize=(6.4, 1.6 + 0.45 * len(pairs)))
    for y, p in enumerate(pairs):
        lo, hi = p["gap_ci"]
        significant = p["winner"] != "n.s."
        ax.plot([lo, hi], [y, y], color="#1d2330", lw=1.5)
        ax.plot([p["gap"]], [y], "o", color="#c0392b" if significant else "#7f8c8d", ms=6)
        ax.annotate(f"p{' Holm' if holm else ''} = {p['p_holm' if holm else 'p_value']:.3g}", (hi, y),
                    xytext=(6, 0), textcoords="offset points", va="center")
    ax.axvline(0, color="#6b7385", lw=1, ls="--")
    ax.set_yticks(range(len(pairs)), [f"{p['a']} - {p['b']}" for p in pairs])
    ax.invert_yaxis()
    ax.set_xlabel(f"macro-F1 gap (A - B), 95% CI ({report['unit']} {'paired ' if report['paired'] else ''}"
                  f"bootstrap, {report['resamples']} resamples)")
    ident = report.get("split_identity") or {}
    hosts = ident.get("params", {}).get("train_hosts")
    ax.set_title(f"Pairwise comparison on {report['split']}/{report['part']}"
                 + (f", trained on [{', '.join(shown(h, 40) for h in hosts)}]" if hosts else "") + f"\n{report['windows']:,} windows, "
                 f"{report['episodes']:,} episodes; red: significant at alpha {report['alpha']}")
    xmin, xmax = ax.get_xlim()
    ax.set_xlim(xmin, xmax + 0.25 * (xmax - xmin))          # room for the p-values
    fig.tight_layout()
    return _save(fig, plt, stem)


def _save(fig, plt, stem: Path) -> list[Path]:
    out = []
    for path in figure_paths(stem):
        ext = path.suffix[1:]
        with atomic_path(path, f".{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=300 if ext == "png" else None)
        out.append(path)
    plt.close(fig)
    return out
