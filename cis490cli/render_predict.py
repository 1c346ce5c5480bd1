"""How a `cis490 predict` run is shown: each episode's phase timeline as a
table (the first SHOWN episodes), the files written, or `--json`."""
from __future__ import annotations

from rich.markup import escape

from cis490cli.state import AppState
from cis490cli.terminal import shown_path
from core.safenames import shown

SHOWN = 10
_PART_ORDER = {"train": 0, "val": 1, "test": 2, "unseen": 3, "unknown": 4}


def render_predict(state: AppState, r) -> None:
    term = state.terminal
    m = r.manifest
    if term.json_mode:
        term.json({"directory": str(r.directory) if r.directory else None, **m, "segments": r.segments.to_dicts()})
        return
    name = m["model"] if m["mode"] == "realistic" else f"{m['model']}_{m['mode']}"
    if r.directory is None:
        runs = m["earlier_runs"]
        term.print(f"Nothing new: {name} ({m['engine']}) predicted every one of the {m['already_predicted']:,} "
                   f"unlabelled episode(s) already, in run{'s' * (len(runs) != 1)} {', '.join(runs[-3:])}"
                   f"{' and earlier' if len(runs) > 3 else ''} (--again predicts them again).")
        return
    term.print(f"{len(m['episodes']):,} episode(s), {m['windows']:,} windows, predicted by {name} "
               f"({m['engine']}, trained on the {m['split']} split) in {r.seconds:.1f} s; chosen from the "
               f"{m['chosen']}.")
    by_episode = {e: g for (e,), g in r.segments.group_by("episode_id", maintain_order=True)}
    for ep in m["episodes"][:SHOWN]:
        segs = by_episode.get(ep["episode_id"])
        title = f"{shown(ep['episode_id'])} ({ep['status']}, {ep.get('part', '?')}): {ep['windows']} windows"
        if segs is None:
            term.print(f"{escape(title)}: no window with data")
            continue
        term.table(title, ["from s", "to s", "phase", "windows", "mean trust"],
                   [(f"{s['start_s']:.1f}", f"{s['end_s']:.1f}", s["phase"], s["windows"], f"{s['mean_trust']:.2f}")
                    for s in segs.iter_rows(named=True)], justify_right=[0, 1, 3, 4])
    if len(m["episodes"]) > SHOWN:
        term.print(f"... and {len(m['episodes']) - SHOWN:,} more episode(s): segments.csv has every one.")
    if m.get("already_predicted"):
        term.print(f"{m['already_predicted']:,} unlabelled episode(s) this model predicted already were left out "
                   "(--again predicts them again).")
    if m.get("agreement"):
        from core.predict import PARTS_SAID
        term.print("Agreement with the labels, by part of the model's split (only test and unseen are held out): "
                   + "; ".join(f"{p} {a['accuracy']:.3f} of {a['windows']:,} windows ({PARTS_SAID.get(p, p)})"
                               for p, a in sorted(m["agreement"].items(), key=lambda kv: _PART_ORDER.get(kv[0], 9))))
    for f in m["failed"]:
        term.warn(f"{shown(f['episode_id'])}: not predicted: {f['error']}")
    figures = f"; {len(r.figures) // max(1, len({p.suffix for p in r.figures}))} timeline figure(s)" if r.figures \
        else f"; no figures ({m['figures_note']})" if m.get("figures_note") else ""
    term.print(f"Windows and segments (parquet, CSV){figures}, written to:")
    term.print(shown_path(r.directory), wrap=False)
