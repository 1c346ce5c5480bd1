"""How an eval report's sections beyond macro-F1 are shown (time to detect,
trusting a probability, performance over time, the split's pitfalls), and
compare's paired detection delays. Within 80 columns."""
from __future__ import annotations

from cis490cli.terminal import Terminal


def _s(value, ci) -> str:
    """Seconds with their interval: `8.5 [7.5, 9.0]`."""
    if value is None:
        return "-"
    return f"{value:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")


def _pct(value, ci) -> str:
    return f"{value:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "")


def render_detection(term: Terminal, rep: dict) -> None:
    det = rep.get("detection")
    if not det:
        return
    if not det["per_phase"]:
        term.print("[yellow]Time to detect: this extract has no phase onsets (made by an older cis490); "
                   "re-run `cis490 extract`.[/]")
        return
    rule = f"{det['confirm']} window{'s' if det['confirm'] > 1 else ''} in a row" + \
        (f" with trust >= {det['min_trust']:g}" if det["min_trust"] else "")
    term.table(f"Time to detect (s from the labelled onset; caught at {rule})",
               ["phase", "seen", "median [95% CI]", "90th pct [95% CI]", "missed [95% CI]"],
               [(r["phase"], r["occurrences"], _s(r["median_s"], r["median_s_ci"]), _s(r["p90_s"], r["p90_s_ci"]),
                 _pct(r["miss_rate"], r["miss_rate_ci"])) for r in det["per_phase"]], justify_right=[1, 2, 3, 4])


def render_trust(term: Terminal, rep: dict) -> None:
    c = rep.get("calibration")
    if not c:
        return
    if not c["val_windows"]:
        term.print("Calibration: the split has no val windows to fit the temperature and conformal sets on.")
        return
    b, a = c["before"], c["after"]
    term.print(f"Calibration ({b['bins']} equal-width bins): ECE {b['ece']:.3f} -> {a['ece']:.3f}, Brier "
               f"{b['brier']:.3f} -> {a['brier']:.3f}, NLL {b['nll']:.3f} -> {a['nll']:.3f} after temperature "
               f"scaling (T = {c['temperature']:.2f}, {c.get('temperature_source', 'fitted on val')}).")
    ab = c["abstention"]
    at = ab["by_confidence"]["accuracy_at"]
    term.print(f"Abstention: keeping the 80% / 50% most confident windows gives accuracy {at['0.8']:.3f} / "
               f"{at['0.5']:.3f} (all: {at['1']:.3f}); area under risk-coverage {ab['by_confidence']['aurc']:.3f} "
               f"by confidence, {ab['by_trust']['aurc']:.3f} by trust (lower is better).")
    cf = c["conformal"]
    term.print(f"Conformal sets (alpha {cf['alpha']:g}, fitted on val): coverage {cf['coverage']:.3f}, "
               f"mean size {cf['mean_set_size']:.2f} phases; {cf['single_share']:.0%} of windows get one phase, "
               f"{cf['empty_share']:.0%} none (no phase plausible enough) and the rest several: windows to look at "
               "twice.")
    if cf["below_target"]:
        low = [p["phase"] for p in cf["per_phase"] if p["coverage"] < 1 - cf["alpha"]]
        term.print(f"[yellow]Coverage is below the {1 - cf['alpha']:.2f} target"
                   + (f" (below it: {', '.join(low)})" if low else "") + f": the {rep['part']} windows are not "
                   "exchangeable with val (another host, another time), so the conformal guarantee does not "
                   "carry over to them. That shift is itself the finding.[/]")


def render_over_time(term: Terminal, rep: dict) -> None:
    t = rep.get("over_time")
    if not t:
        return
    import datetime as dt
    rows = [(dt.datetime.fromtimestamp(r["start_ns"] / 1e9, dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
             f"{r['macro_f1']:.3f} [{r['macro_f1_ci'][0]:.3f}, {r['macro_f1_ci'][1]:.3f}]", r["windows"],
             r["episodes"]) for r in t["slices"]]
    days = t["slice_s"] / 86400
    length = f"{days:g} days" if days >= 1 else f"{t['slice_s'] / 3600:g} h"
    aut = "undefined with one slice" if t["aut"] is None else f"{t['aut']:.3f}"
    term.table(f"Performance over time ({length} slices of received_at; AUT {aut})",
               ["slice from (UTC)", "macro-F1 [95% CI]", "windows", "episodes"], rows, justify_right=[2, 3])


def render_pitfalls(term: Terminal, rep: dict) -> None:
    items = rep.get("pitfalls")
    if not items:
        return
    term.print(f"[bold]What this split can and cannot claim[/] ({rep['split']}/{rep['part']}):")
    for p in items:
        term.print(f"  - {p['finding']}" + (f" (to avoid it: `{p['avoid']}`)" if p["avoid"] else "") + ".")


def render_sections(term: Terminal, rep: dict) -> None:
    render_detection(term, rep)
    render_trust(term, rep)
    render_over_time(term, rep)
    render_pitfalls(term, rep)


def render_delay_gaps(term: Terminal, rep: dict) -> None:
    """compare's paired difference of median detection delays, per pair."""
    pairs = [p for p in rep["pairs"] if p.get("delay")]
    if not pairs:
        return
    holm = any("p_holm" in p["delay"] for p in pairs)
    term.table("Median time to detect, all phases pooled (paired episode bootstrap)",
               ["A - B", "gap in s [95% CI]", "p Holm" if holm else "p", "missed A / B"],
               [(f"{p['a']} - {p['b']}", "-" if p["delay"]["median_delay_gap_s"] is None else
                 f"{p['delay']['median_delay_gap_s']:+.1f}" + (
                     f" [{p['delay']['ci'][0]:+.1f}, {p['delay']['ci'][1]:+.1f}]" if p["delay"]["ci"] else ""),
                 "-" if p["delay"]["p_value"] is None else f"{p['delay'].get('p_holm', p['delay']['p_value']):.3g}",
                 f"{p['delay']['missed_a']} / {p['delay']['missed_b']} of {p['delay']['occurrences']}")
                for p in pairs], justify_right=[1, 2, 3])
    term.print("A negative gap: A catches phases sooner (medians over the occurrences each caught).")
