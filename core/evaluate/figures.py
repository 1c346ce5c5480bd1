"""Figures a paper can use: every one as PNG (300 dpi), PDF and SVG.

Titles say the model, its mode and the split it was trained and tested on;
every text is at least the size of the tick labels (one base size for all).
matplotlib, no display needed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.paths import atomic_path

FORMATS = ("png", "pdf", "svg")
BASE_PT = 9          # tick labels, and the smallest text anywhere


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": BASE_PT, "axes.titlesize": BASE_PT + 1, "axes.labelsize": BASE_PT,
                         "xtick.labelsize": BASE_PT, "ytick.labelsize": BASE_PT, "legend.fontsize": BASE_PT,
                         "figure.titlesize": BASE_PT + 1, "svg.fonttype": "none", "pdf.fonttype": 42})
    return plt


def figure_paths(stem: Path) -> list[Path]:
    return [stem.with_name(f"{stem.name}.{ext}") for ext in FORMATS]


def _title(report: dict) -> str:
    """`gbt (realistic): trained on host split [lab-thinkpad, lab-desktop], tested on host/test [lab-nuc, lab-pi5]`."""
    ident = report.get("split_identity") or {}
    params = ident.get("params") or {}
    trained = f"{ident.get('recipe', report['split'])} split"
    if params.get("train_hosts"):
        trained += f" [{', '.join(params['train_hosts'])}]"
    tested = f"{report['split']}/{report['part']}"
    hosts = [h["host"] for h in report.get("per_host", [])]
    if hosts and ident.get("recipe") == "host":
        tested += f" [{', '.join(hosts)}]"
    return f"{report['model']} ({report['mode']}): trained on {trained},\ntested on {tested}"


def confusion_figure(report: dict, stem: Path) -> list[Path]:
    plt = _plt()
    labels = report["confusion"]["labels"]
    cm = np.array(report["confusion"]["matrix"], dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.8, 5.2))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted phase")
    ax.set_ylabel("true phase")
    lo, hi = report["macro_f1_ci"]
    ax.set_title(f"{_title(report)}\nmacro-F1 {report['macro_f1']:.3f} [{lo:.3f}, {hi:.3f}], "
                 f"{report['windows']:,} windows")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true phase")
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
                 + (f", trained on [{', '.join(hosts)}]" if hosts else "") + f"\n{report['windows']:,} windows, "
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
