"""PNG figures of an evaluation report (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.paths import atomic_path


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def confusion_png(report: dict, path: Path) -> None:
    plt = _plt()
    labels = report["confusion"]["labels"]
    cm = np.array(report["confusion"]["matrix"], dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 4.8), dpi=120)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    lo, hi = report["macro_f1_ci"]
    ax.set_title(f"{report['name']} on {report['split']}/{report['part']}: macro-F1 {report['macro_f1']:.3f} "
                 f"[{lo:.3f}, {hi:.3f}]", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true phase")
    fig.tight_layout()
    _save(fig, plt, path)


def per_profile_png(report: dict, path: Path) -> None:
    plt = _plt()
    rows = report["per_profile"]
    names = [r["profile"] for r in rows] + [f"{p} (untested)" for p in report["untested_profiles"]]
    vals = [r["macro_f1"] for r in rows] + [np.nan] * len(report["untested_profiles"])
    lo = [r["macro_f1"] - r["macro_f1_ci"][0] for r in rows] + [0] * len(report["untested_profiles"])
    hi = [r["macro_f1_ci"][1] - r["macro_f1"] for r in rows] + [0] * len(report["untested_profiles"])
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.barh(range(len(names)), vals, xerr=[lo, hi], color="#4a78b5", capsize=3)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(f"macro-F1 with 95% CI ({report['unit']} bootstrap, {report['resamples']} resamples)")
    ax.set_title(f"{report['name']}: per profile on {report['split']}/{report['part']}", fontsize=9)
    fig.tight_layout()
    _save(fig, plt, path)


def _save(fig, plt, path: Path) -> None:
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
