"""How each stage's result is shown (a table, lines, or `--json`), shared by
its command and by `cis490 demo`: commands never import each other."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from cis490cli.render_sections import render_delay_gaps, render_sections
from cis490cli.state import AppState
from cis490cli.terminal import shown_path
from core.safenames import shown

if TYPE_CHECKING:
    from core.compare import CompareResult
    from core.evaluate import EvalResult
    from core.extract import ExtractSummary
    from core.split import SplitResult
    from core.synth import SynthResult
    from core.train import TrainResult
    from core.validate import ValidationSummary


def render_synth(state: AppState, r: SynthResult) -> None:
    term = state.terminal
    if term.json_mode:
        term.json({"store": str(r.store), "ground_truth": str(r.truth), "episodes": r.episodes,
                   "in_flight": r.in_flight, "bytes": r.bytes, "seconds": round(r.seconds, 3),
                   "expected_status": r.expected, "per_host": r.per_host})
        return
    term.print(f"Wrote {r.episodes:,} episodes ({r.bytes / 1e6:,.1f} MB, "
               f"{r.bytes / max(r.episodes, 1) / 1e3:,.0f} kB/episode) to [bold]{r.store}[/] in {r.seconds:.1f} s")
    term.table("Episodes per host", ["host", "episodes"], sorted(r.per_host.items()), justify_right=[1])
    order = ["accepted", "degraded", "rejected", "errored", "in_flight"]
    term.table("Expected validation status (ground truth)", ["status", "count"],
               [(s, r.expected.get(s, 0)) for s in order], justify_right=[1])
    term.print(f"Ground truth: {shown_path(r.truth)}", wrap=False)


REFUSED_SHOWN = 10


def render_validate(state: AppState, s: ValidationSummary) -> None:
    from core.validate import STATUSES
    term = state.terminal
    if term.json_mode:
        term.json(s.to_json())
        return
    rate = s.episodes / max(s.seconds, 1e-9)
    term.print(f"Validated {s.episodes:,} episodes ({s.bytes / 1e6:,.1f} MB) in {s.seconds:.1f} s "
               f"[{rate:,.0f} episodes/s, {s.bytes / max(s.seconds, 1e-9) / 1e6:,.1f} MB/s, {s.workers} workers]"
               + (f", {s.reused:,} reused unchanged" if s.reused else ""))
    rows = [(h, *[c.get(st, 0) for st in STATUSES]) for h, c in s.per_host.items()]
    rows.append(("total", *[s.counts.get(st, 0) for st in STATUSES]))
    term.table("Status per host", ["host", *STATUSES], rows, justify_right=list(range(1, len(STATUSES) + 1)))
    if s.top_reasons:
        term.table("Top reasons", ["reason", "episodes"], s.top_reasons, justify_right=[1])
    if s.refused:
        first = s.refused[:REFUSED_SHOWN]
        more = f" (the first {len(first)} of {len(s.refused):,}; every one with --json)" \
            if len(s.refused) > len(first) else ""
        term.table(f"Rejected and errored episodes{more}", ["episode", "status", "reasons"],
                   [(shown(r["rel_path"]), r["status"], shown(", ".join(r["reasons"]), 240)) for r in first])
    if s.in_flight:
        flight = ", ".join(shown(f) for f in s.in_flight[:5]) + (" ..." if len(s.in_flight) > 5 else "")
        term.print(f"{len(s.in_flight)} upload(s) in flight, skipped: {escape(flight)}")
    if s.duplicates:
        term.print(f"[yellow]{len(s.duplicates)} duplicated episode id(s), the first-received copy kept:[/] "
                   + escape(", ".join(shown(d) for d in s.duplicates[:5])))
    term.print(f"Index: {shown_path(s.index)}", wrap=False)


def render_extract(state: AppState, s: ExtractSummary) -> None:
    term = state.terminal
    if term.json_mode:
        term.json(s.to_json())
        return
    term.print(f"Extracted {s.windows:,} windows from {s.episodes - len(s.failed):,} episodes in {s.seconds:.1f} s "
               f"({s.extracted:,} computed, {s.reused:,} unchanged and reused; "
               f"{s.bytes_on_disk / max(s.windows, 1) * 1000 / 1e6:.1f} MB per 1,000 windows on disk)")
    hosts = sorted({h for v in s.per_phase_host.values() for h in v})
    rows = [(phase, *[s.per_phase_host.get(phase, {}).get(h, 0) for h in hosts],
             sum(s.per_phase_host.get(phase, {}).values())) for phase in s.per_phase_host]
    term.table("Windows per phase and host", ["phase", *hosts, "total"], rows,
               justify_right=list(range(1, len(hosts) + 2)))
    term.table("Coverage per source (fraction of channel-steps present)", ["source", "coverage"],
               [(src, f"{c:.1%}") for src, c in s.coverage.items()], justify_right=[1])
    for rel, err in s.failed[:10]:
        term.print(f"[red]failed[/] {escape(shown(rel))}: {escape(err)}")
    if len(s.failed) > 10:
        term.print(f"... and {len(s.failed) - 10} more failed episodes (see --json)")
    term.print(f"Features and tensors: {s.chunks:,} chunk{'s' * (s.chunks != 1)}, {s.new_chunks:,} written by this "
               "run, in", wrap=False)
    term.print(shown_path(s.outputs.get("chunks")), wrap=False)


def render_split(state: AppState, r: SplitResult) -> None:
    from core.split import PARTS
    term = state.terminal
    m = r.meta
    if term.json_mode:
        term.json({**m, "parquet": str(r.parquet), "meta": str(r.meta_path)})
        return
    if "added" in m and not any(m["added"].values()):
        term.print(f"Split '{r.recipe}' holds every extracted episode already: nothing to add "
                   f"(version {m.get('version', 1)}).")
        return
    rows = []
    for profile, parts in m["counts"].items():
        rows.append((profile, *[f"{parts.get(p, {}).get('episodes', 0)} ({parts.get(p, {}).get('windows', 0):,})"
                                for p in PARTS]))
    rows.append(("total", *[f"{m['totals'][p]['episodes']} ({m['totals'][p]['windows']:,})" for p in PARTS]))
    term.table(f"Split '{r.recipe}': episodes (windows)", ["profile", *PARTS], rows)
    for p in PARTS:
        term.print(escape(f"{p} hosts: {', '.join(shown(h, 40) for h in m['hosts'][p])}"))
    if m["untested_profiles"]:
        term.print(f"[yellow]untested profiles (absent from test, never averaged away):[/] "
                   f"{', '.join(m['untested_profiles'])}")
    render_episode_shares(term, m)
    if (m.get("realised") or {}).get("note"):
        term.warn(m["realised"]["note"])
    if m.get("unlabelled_left_out"):
        term.print(f"{m['unlabelled_left_out']:,} unlabelled episode(s) left out: never split, trained or scored "
                   "on (`cis490 predict --unlabelled` reads them).")
    if "added" in m:
        term.print(f"Extended to version {m['version']}: "
                   + ", ".join(f"+{m['added'][p]:,} {p}" for p in PARTS)
                   + " episodes; every earlier episode kept its part, and models trained on an earlier version "
                     "stay usable.")
    term.print(f"Split: {r.parquet}")


def render_episode_shares(term, m: dict) -> None:
    """Each part's largest episode, and a warning for one over the split's
    bound (the windows models fit and choose on leave the rest of it out)."""
    shares, bound = m.get("episode_shares"), m["params"].get("max_episode_share")
    if not shares:
        return
    for p, s in shares.items():
        if not s["largest"]:
            continue
        top = s["largest"][0]
        line = f"{p}: largest episode {shown(top['episode_id'], 40)} holds {top['share']:.1%} of {s['windows']:,} windows"
        term.print(escape(line))
        if s["cap"] is not None:
            term.warn(f"{p}: {s['episodes_capped']:,} episode(s) over the {bound:.0%} "
                      f"bound (--max-episode-share): models fit on at most {s['cap']:,} windows of each, "
                      f"{s['windows'] - s['windows_kept']:,} windows left out")


def render_rotation(state: AppState, r: dict) -> None:
    term = state.terminal
    if term.json_mode:
        term.json({k: v for k, v in r.items() if k != "fold_meta"})
        return
    term.table(f"Rotation '{r['name']}': each host held out once", ["split", "test host", "train", "val", "test"],
               [(f["split"], f["host"], *[m["totals"][p]["episodes"] for p in ("train", "val", "test")])
                for f, m in zip(r["folds"], r["fold_meta"])], justify_right=[2, 3, 4])
    term.print(f"Train, eval and compare take `--split {r['name']}` (every fold) or one fold's name.")


def render_rotation_eval(state: AppState, reports: list[dict]) -> None:
    term = state.terminal
    if term.json_mode:
        term.json(reports)
        return
    for r in reports:
        name = r["model"] if r["mode"] == "realistic" else f"{r['model']}_{r['mode']}"
        term.table(f"{name} on {r['rotation']}: each host held out once",
                   ["held-out host", "macro-F1 [95% CI]", "windows", "episodes"],
                   [(f["host"], _ci(f["macro_f1"], f["macro_f1_ci"]), f["windows"], f["episodes"])
                    for f in r["folds"]] + [("mean over hosts", _ci(r["mean_macro_f1"], r["mean_macro_f1_ci"]), "", "")],
                   justify_right=[2, 3])
        term.print(f"Worst held-out host: {escape(shown(r['worst']['host']))} at {r['worst']['macro_f1']:.3f}. The mean's interval "
                   "resamples each fold's test episodes; every device counts once.")
        term.print(f"Report: {shown_path(r['path'])}", wrap=False)


def render_rotation_compare(state: AppState, r: dict) -> None:
    term = state.terminal
    if term.json_mode:
        term.json(r)
        return
    holm = "p_holm" in r["pairs"][0]
    term.table(f"{r['rotation']}: paired gaps, mean over held-out hosts",
               ["A - B", "mean gap [95% CI]", "p Holm" if holm else "p", "within hosts"],
               [(f"{p['a']} - {p['b']}", f"{p['mean_gap']:+.3f} [{p['mean_gap_ci'][0]:+.3f}, {p['mean_gap_ci'][1]:+.3f}]",
                 f"{p['p_holm'] if holm else p['p_value']:.3g}", p["winner"]) for p in r["pairs"]], justify_right=[1, 2])
    hosts = [h["host"] for h in r["pairs"][0]["per_host"]]
    first = r["pairs"][:3]
    term.table("Gap per held-out host", ["host", *[f"{p['a']} - {p['b']}" for p in first]],
               [(shown(host), *[f"{p['per_host'][n]['gap']:+.3f}" for p in first]) for n, host in enumerate(hosts)]
               + [("hosts won", *[" / ".join(f"{m} {k}" for m, k in p["hosts_won"].items()) for p in first]),
                  ("host-unit 95% CI", *[f"[{p['host_interval'][0]:+.3f}, {p['host_interval'][1]:+.3f}]"
                                         for p in first]),
                  ("sign-flip p", *[f"{p['p_hosts']:.3f}" for p in first])],
               justify_right=list(range(1, len(first) + 1)))
    for p in r["pairs"]:
        term.print(f"{p['a']} - {p['b']}: {p['verdict']}.")
    term.print(f"{r['method']}; {r['unit']} unit, {r['resamples']} resamples. Across hosts: "
               f"{r['pairs'][0]['host_method']}.")
    term.print(f"Report: {shown_path(r['path'])}", wrap=False)


def _trained(r: TrainResult) -> dict:
    from core.selection import selection_score
    t = r.header["training"]
    score, short, on = selection_score(t)
    return {"model": r.model, "mode": r.mode, "split": r.header["split"]["name"], "best_epoch": t.get("best_epoch"),
            "val_macro_f1": None if score is None or score != score else round(score, 4),
            "score_on": t.get("score_on", "val"), "score_label": short, "score_means": on,
            "fit_windows": t.get("fit_windows", t["windows"]["train"]), "train_windows": t["windows"]["train"],
            "seconds": round(r.seconds, 1), "checkpoint": str(r.checkpoint), "head": t.get("head_choice"),
            "unlabeled_pool": t.get("unlabeled_pool"), "k": t.get("k"), "k_choice": t.get("k_choice"),
            "budget": t.get("budget"), "resumed": t.get("resumed"), "settings": r.header["config"]}


def render_trained_line(state: AppState, r: TrainResult) -> None:
    """One model finished: a line (what piped output shows as training goes)."""
    if state.terminal.json_mode:
        return
    t = _trained(r)
    score = "no score" if t["val_macro_f1"] is None else f"{t['score_label']} macro-F1 {t['val_macro_f1']:.3f}"
    state.terminal.print(f"trained {t['model']} ({t['mode']}) on split {t['split']}: {score}, "
                         f"{t['fit_windows']:,} windows fitted, {t['seconds']:.1f} s", wrap=False)


def render_train(state: AppState, results: list[TrainResult], interrupted: bool = False) -> None:
    """The trained models: a table (a split column when they span several,
    as a rotation's folds do), what each score was measured on, and for
    the ROCKET heads which head and why. `interrupted`: the ones finished
    before Ctrl-C (never under --json: stdout holds one document)."""
    term = state.terminal
    rows = [_trained(r) for r in results]
    if term.json_mode:
        if not interrupted:
            term.json(rows)
        return
    splits = list(dict.fromkeys(r["split"] for r in rows))
    cols = ["model", "mode", *(["split"] if len(splits) > 1 else []), "best", "macro-F1 (on)", "fitted", "s"]
    title = "Finished before the interrupt" if interrupted else "Chosen checkpoints"
    term.table(title, cols,
               [(r["model"], r["mode"], *([r["split"]] if len(splits) > 1 else []), r["best_epoch"],
                 "-" if r["val_macro_f1"] is None else f"{r['val_macro_f1']:.3f} ({r['score_label']})",
                 r["fit_windows"], f"{r['seconds']:.1f}") for r in rows],
               justify_right=list(range(len(cols) - 4, len(cols))))
    for label, means in dict.fromkeys((r["score_label"], r["score_means"]) for r in rows):
        term.print(f"({label}): {means}.")
    for r in rows:
        if r["head"]:
            term.print(f"{r['model']} ({r['mode']}): {r['head']}")
        if r["k"] is not None:
            how = "set" if r["k_choice"] == "set" else f"chosen by {r['k_choice']}"
            term.print(f"{r['model']} ({r['mode']}): k = {r['k']} ({how})")
        if r["budget"]:
            b = r["budget"]
            term.print(f"{r['model']} ({r['mode']}): "
                       + (f"stopped by its budget of {b['budget_s']:g} s" if b["stopped_by_budget"] else
                          f"ended within its budget of {b['budget_s']:g} s")
                       + (f", {b['validations']} validations" if "validations" in b else "")
                       + (f", {b['windows_transformed']:,} of {b['windows']:,} windows fitted"
                          if "windows_transformed" in b else "")
                       + "; the best so far is the checkpoint")
        if isinstance(r["resumed"], dict):
            term.print(f"{r['model']} ({r['mode']}): resumed after epoch {r['resumed']['from_epoch']} of an "
                       "interrupted fit")
        elif r["resumed"]:
            term.print(f"{r['model']} ({r['mode']}): {r['resumed']}")
        if r["unlabeled_pool"]:
            u = r["unlabeled_pool"]
            term.print(f"{r['model']} ({r['mode']}) also learned from {u['windows_used']:,} unlabeled windows: "
                       f"{u['source']}")
    if rows and not interrupted:
        for where in sorted({shown_path(Path(r["checkpoint"]).parent) for r in rows}):
            term.print(f"Checkpoints: {where}", wrap=False)


def _ci(v: float, ci) -> str:
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci is not None else f"{v:.3f} [undefined]"


def render_eval(state: AppState, results: list[EvalResult]) -> None:
    term = state.terminal
    if term.json_mode:
        term.json([r.report for r in results])
        return
    for r in results:
        rep = r.report
        term.rule(f"{rep['name']} on {rep['split']}/{rep['part']}")
        if rep.get("part_note"):
            term.print(f"[yellow]{rep['part']} is {rep['part_note']}.[/]")
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
        term.table("Per profile (macro-F1 over the phases its episodes hold)",
                   ["profile", "macro-F1 [95% CI]", "accuracy", "windows"],
                   [(p["profile"], _ci(p["macro_f1"], p["macro_f1_ci"]),
                     f"{p['accuracy']:.3f}" if "accuracy" in p else "-", p["windows"])
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
        render_sections(term, rep)
        term.print("Report (figures and predictions beside it):")
        term.print(shown_path(r.directory / "report.json"), wrap=False)
    if len(results) > 1:
        _eval_summary(state, results)


def _eval_summary(state: AppState, results: list[EvalResult]) -> None:
    """After several reports, one table of every model and mode: what to read first."""
    rows = []
    for r in results:
        rep = r.report
        worst = min(rep["per_host"], key=lambda h: h["macro_f1"]) if rep["per_host"] else None
        rows.append((rep["name"] + ("*" if rep.get("transductive") else ""), _ci(rep["macro_f1"], rep["macro_f1_ci"]),
                     f"{rep['accuracy']:.3f}", f"{worst['macro_f1']:.3f} {worst['host']}" if worst else "-"))
    first = results[0].report
    state.terminal.rule(f"Every model on {first['split']}/{first['part']}")
    state.terminal.table(None, ["model", "macro-F1 [95% CI]", "accuracy", "worst host"], rows, justify_right=[2])
    if any(r.report.get("transductive") for r in results):
        state.terminal.print("* transductive: learned from the inputs (not labels) of the windows scored.")


def render_compare(state: AppState, r: CompareResult, wide: bool = False) -> None:
    term = state.terminal
    rep = r.report
    if term.json_mode:
        term.json({**rep, "path": str(r.path)})
        return
    holm = "p_holm" in rep["pairs"][0]
    mark = {n: f"{n}*" for n in rep["transductive"]}
    title = (f"Paired comparison on {rep['split']}/{rep['part']} ({rep['windows']:,} windows, "
             f"{rep['episodes']:,} episodes)")
    if wide:
        cols = ["A", "B", "F1 A", "F1 B", "gap", "95% CI", "p", *(["p Holm"] if holm else []), "winner"]
        rows = [(mark.get(p["a"], p["a"]), mark.get(p["b"], p["b"]), f"{p['macro_f1_a']:.3f}",
                 f"{p['macro_f1_b']:.3f}", f"{p['gap']:+.3f}", f"{p['gap_ci'][0]:+.3f},{p['gap_ci'][1]:+.3f}",
                 f"{p['p_value']:.3g}", *([f"{p['p_holm']:.3g}"] if holm else []), p["winner"])
                for p in rep["pairs"]]
        term.table(title, cols, rows, no_wrap=list(range(len(cols))), min_width=140)
    else:
        # 80 columns whatever the number of models: each model's score once, then one row per pair.
        scores = {p["a"]: p["macro_f1_a"] for p in rep["pairs"]} | {p["b"]: p["macro_f1_b"] for p in rep["pairs"]}
        term.print(title)
        term.table(None, ["model", "macro-F1"], [(mark.get(m, m), f"{scores[m]:.3f}") for m in rep["models"]],
                   justify_right=[1])
        cols = ["A - B", "gap [95% CI]", "p Holm" if holm else "p", "winner"]
        rows = [(f"{mark.get(p['a'], p['a'])} - {mark.get(p['b'], p['b'])}",
                 f"{p['gap']:+.3f} [{p['gap_ci'][0]:+.3f}, {p['gap_ci'][1]:+.3f}]",
                 f"{p['p_holm'] if holm else p['p_value']:.3g}", p["winner"]) for p in rep["pairs"]]
        term.table(None, cols, rows, justify_right=[1, 2])
    render_delay_gaps(term, rep)
    term.print(f"{rep['method']}; {rep['unit']} unit, {rep['resamples']} resamples, seed {rep['seed']}; "
               f"{rep['ci']}; {rep['multiple_comparisons']}; winner at alpha {rep['alpha']}.")
    term.print(f"p-value: {rep['p_value']}.")
    at_floor = [p for p in rep["pairs"] if p.get("p_at_floor")]
    if at_floor:
        which = "every pair's" if len(at_floor) == len(rep["pairs"]) else \
            f"{len(at_floor)} of {len(rep['pairs'])} pairs'"
        term.print(f"[yellow]{which} p is the smallest {rep['resamples']} resamples allow (2/(B+1) = "
                   f"{rep['p_floor']:.2g}"
                   + (", and Holm multiplies it" if "p_holm" in rep["pairs"][0] else "")
                   + "): no resample reached a gap of 0, so they cannot be told apart by p; more "
                   "--resamples would.[/]")
    if rep["transductive"]:
        term.print(f"[yellow]* transductive:[/] {', '.join(rep['transductive'])} {rep['transductive_note']}.")
    term.print(f"Report: {shown_path(r.path)}", wrap=False)
    term.print(f"Forest plot: {shown_path(r.path.with_suffix(''))}.{{png,pdf,svg}}", wrap=False)
