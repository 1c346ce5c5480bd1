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


def _score_bars(ax, fig, names: list[str], rows: list[dict | None], unit: str) -> None:
    """Horizontal bars of macro-F1 with their 95% CIs, 0 to 1, and each bar's
    figures in a column right of the axes: never past the axes or over a
    bar. A None row (an untested profile) has no bar and says so."""
    vals = [r["macro_f1"] if r else np.nan for r in rows]
    lo = [r["macro_f1"] - r["macro_f1_ci"][0] if r else 0 for r in rows]
    hi = [r["macro_f1_ci"][1] - r["macro_f1"] if r else 0 for r in rows]
    ax.barh(range(len(names)), vals, xerr=[lo, hi], color="#4a78b5", capsize=3)
    for y, r in enumerate(rows):
        text = (f"{r['macro_f1']:.3f} [{r['macro_f1_ci'][0]:.3f}, {r['macro_f1_ci'][1]:.3f}], "
                f"{r['episodes']:,} {unit}" if r else "untested: not in any average")
        ax.annotate(text, (1.02, y), xycoords=("axes fraction", "data"), va="center", ha="left",
                    annotation_clip=False)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 1)
    ax.set_ylim(len(names) - 0.5, -0.5)


def per_profile_figure(report: dict, stem: Path) -> list[Path]:
    """Macro-F1 per profile (over the phases its episodes hold) with its CI
    and its figures beside it; untested profiles listed, never averaged."""
    plt = _plt()
    rows = report["per_profile"] + [None] * len(report["untested_profiles"])
    names = [r["profile"] for r in report["per_profile"]] + [f"{p} (untested)" for p in report["untested_profiles"]]
    fig, ax = plt.subplots(figsize=(8.0, 2.2 + 0.32 * len(names)))
    _score_bars(ax, fig, names, rows, "episodes")
    ax.set_xlabel(f"macro-F1 over the profile's phases, 95% CI ({report['unit']} bootstrap, "
                  f"{report['resamples']} resamples)")
    ax.set_title(_wrapped(f"{_title(report)}\nper profile", 80), loc="left")
    fig.tight_layout()
    fig.subplots_adjust(right=0.66)
    return _save(fig, plt, stem)


def per_host_figure(report: dict, stem: Path) -> list[Path]:
    """Macro-F1 per scored host with its CI: the cross-device finding, one bar per device."""
    plt = _plt()
    rows = report["per_host"]
    fig, ax = plt.subplots(figsize=(8.0, 2.0 + 0.35 * len(rows)))
    _score_bars(ax, fig, [shown(r["host"], 40) for r in rows], rows, "episodes")
    ax.set_xlabel(f"macro-F1 on the host's windows, 95% CI ({report['unit']} bootstrap, "
                  f"{report['resamples']} resamples)")
    ax.set_title(_wrapped(f"{_title(report)}\nper host", 80), loc="left")
    fig.tight_layout()
    fig.subplots_adjust(right=0.66)
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


def p_text(p: float) -> str:
    """A p-value as every figure writes it: three decimals, or `< 0.001`."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _wrapped(text: str, width: int = 78) -> str:
    import textwrap
    return "\n".join(textwrap.fill(line, width, break_on_hyphens=False, break_long_words=False)
                     for line in text.split("\n"))


def _gap_rows(ax, rows: list[tuple[str, float, list[float], str, str]]) -> None:
    """One row per (label, gap, [lo, hi], colour, right-hand text): its CI, its
    point, and its text in a column right of the axes (never on the data or
    the zero line)."""
    for y, (_, gap, (lo, hi), colour, text) in enumerate(rows):
        ax.plot([lo, hi], [y, y], color="#1d2330", lw=1.5)
        ax.plot([gap], [y], "o", color=colour, ms=6)
        ax.annotate(text, (1.02, y), xycoords=("axes fraction", "data"), va="center", ha="left",
                    annotation_clip=False)
    ax.axvline(0, color="#6b7385", lw=1, ls="--", zorder=0)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    lo = min(min(r[2][0], r[1]) for r in rows)
    hi = max(max(r[2][1], r[1]) for r in rows)
    pad = 0.08 * max(hi - lo, 0.01)
    ax.set_xlim(min(lo, 0) - pad, max(hi, 0) + pad)


def forest_figure(report: dict, stem: Path) -> list[Path]:
    """The pairwise macro-F1 gaps with their 95% CIs (a forest plot), p Holm-adjusted where several;
    a transductive model marked * (it learned from the inputs of the windows scored)."""
    plt = _plt()
    pairs = report["pairs"]
    holm = "p_holm" in pairs[0]
    marked = set(report.get("transductive") or [])

    def name(m):
        return f"{m}*" if m in marked else m
    fig, ax = plt.subplots(figsize=(7.4, 1.9 + 0.45 * len(pairs)))
    _gap_rows(ax, [(f"{name(p['a'])} - {name(p['b'])}", p["gap"], p["gap_ci"],
                    "#c0392b" if p["winner"] != "n.s." else "#7f8c8d",
                    f"p{' Holm' if holm else ''} {p_text(p['p_holm' if holm else 'p_value'])}") for p in pairs])
    ax.set_xlabel(f"macro-F1 gap (A - B), 95% CI ({report['unit']} {'paired ' if report['paired'] else ''}"
                  f"bootstrap, {report['resamples']} resamples)")
    ident = report.get("split_identity") or {}
    hosts = ident.get("params", {}).get("train_hosts")
    title = (f"Pairwise comparison on {report['split']}/{report['part']}"
             + (f", trained on [{', '.join(shown(h, 40) for h in hosts)}]" if hosts else "")
             + f"\n{report['windows']:,} windows, {report['episodes']:,} episodes; red: significant at alpha "
               f"{report['alpha']}" + ("; * transductive" if marked else ""))
    ax.set_title(_wrapped(title, 80), loc="left")
    fig.tight_layout()
    fig.subplots_adjust(right=0.8)                          # the p column
    return _save(fig, plt, stem)


def rotation_gap_figure(report: dict, stem: Path) -> list[Path]:
    """A rotation's comparison per held-out host: each host's paired gap
    with its CI (resampling that host's episodes), the mean over hosts with
    the within-host interval, and the host-unit interval beside it: the
    spread a verdict for another device has to live with."""
    plt = _plt()
    pairs = report["pairs"]
    fig, axes = plt.subplots(len(pairs), 1, figsize=(7.4, 0.6 + 0.42 * sum(len(p["per_host"]) + 2 for p in pairs)),
                             squeeze=False)
    for ax, p in zip(axes[:, 0], pairs):
        rows = [(shown(h["host"], 30), h["gap"], h["gap_ci"], "#4a78b5", f"{h['gap']:+.3f}") for h in p["per_host"]]
        rows.append(("mean, within hosts", p["mean_gap"], p["mean_gap_ci"],
                     "#c0392b" if p["winner"] != "n.s." else "#7f8c8d", f"p {p_text(p.get('p_holm', p['p_value']))}"))
        rows.append(("mean, host = unit", p["mean_gap"], p["host_interval"], "#1d2330",
                     f"p {p_text(p['p_hosts'])}"))
        _gap_rows(ax, rows)
        won = ", ".join(f"{m} {k}" for m, k in p["hosts_won"].items())
        ax.set_title(f"{p['a']} - {p['b']}: hosts won {won}", loc="left")
        ax.set_xlabel("macro-F1 gap (A - B), 95% CI")
    fig.suptitle(_wrapped(f"{report['rotation']}: each device held out once ({report['unit']} unit, "
                          f"{report['resamples']} resamples)", 80), x=0.02, ha="left")
    fig.tight_layout()
    fig.subplots_adjust(right=0.8)
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
