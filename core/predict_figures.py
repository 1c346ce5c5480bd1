"""The phase timeline of one predicted episode, as a figure for a report:
the predicted phases as bands (and the labelled ones under them, where the
episode has labels), then every phase's probability and the trust score."""
from __future__ import annotations

from pathlib import Path

import polars as pl

from core.evaluate.figures import _plt, _save
from core.safenames import shown

PHASE_COLORS = {"idle": "#9aa5b1", "execute": "#e67e22", "persist": "#8e44ad", "beacon": "#2e86c1",
                "act": "#c0392b", "dormant": "#27ae60"}     # as the dashboard colours them


def timeline_figure(windows: pl.DataFrame, timeline: pl.DataFrame, ref, classes: list[str], stem: Path,
                    hop_s: float) -> list[Path]:
    plt = _plt()
    episode = windows["episode_id"][0]
    labelled = windows["truth"].drop_nulls().len() > 0
    fig, (bands, lines) = plt.subplots(2, 1, figsize=(7.2, 3.8), sharex=True,
                                       gridspec_kw={"height_ratios": [1, 2.4]})
    rows = [("predicted", timeline.iter_rows(named=True))]
    if labelled:
        truth = windows.select("t_start_s", "t_end_s", pl.col("truth").alias("predicted"), "trust",
                               "episode_id").drop_nulls("predicted")
        from core.predict import segments
        rows.append(("labelled", segments(truth, hop_s).iter_rows(named=True)))
    for y, (_, segs) in enumerate(rows):
        for s in segs:
            bands.barh(y, s["end_s"] - s["start_s"], left=s["start_s"], height=0.8,
                       color=PHASE_COLORS.get(s["phase"], "#7f8c8d"), edgecolor="white", linewidth=0.5)
    bands.set_yticks(range(len(rows)), [name for name, _ in rows])
    bands.invert_yaxis()
    centre = (windows["t_start_s"] + windows["t_end_s"]) / 2
    for c in classes:
        lines.plot(centre, windows[f"p_{c}"], color=PHASE_COLORS.get(c, "#7f8c8d"), lw=1.2, label=c)
    lines.plot(centre, windows["trust"], color="#1d2330", lw=1.4, ls="--", label="trust")
    lines.set_ylim(0, 1.02)
    lines.set_ylabel("probability, trust")
    lines.set_xlabel(f"seconds from the episode start (each window at its centre;\n"
                     f"a band spans its windows' centres +- half a {hop_s:g} s hop)")
    lines.legend(ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.55), frameon=False)
    name = ref.model if ref.mode == "realistic" else f"{ref.model}_{ref.mode}"
    from core.predict import PARTS_SAID
    part = windows["part"][0] if "part" in windows.columns else None
    said = f", this episode {PARTS_SAID.get(part, part)}" if part else ""
    bands.set_title(f"{shown(episode, 40)} ({shown(windows['host_id'][0], 30)}): phases by {name}\n"
                    f"split {ref.split}{said}{'' if labelled else '; unlabelled'}")
    fig.tight_layout()
    return _save(fig, plt, stem)
