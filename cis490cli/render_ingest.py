"""How `cis490 ingest` is shown: one table of what each step did."""
from __future__ import annotations

from cis490cli.state import AppState
from cis490cli.terminal import shown_path


def render_ingest(state: AppState, r) -> None:
    term = state.terminal
    if term.json_mode:
        term.json(r.to_json())
        return
    term.table(f"Ingest of {r.store}", ["step", "what it did", "seconds"],
               [(s.name, s.said, f"{s.seconds:.1f}") for s in r.steps], justify_right=[2])
    for note in r.notes:
        term.print(note)
    if r.prediction_run is not None:
        term.print("Predictions (windows, segments, figures):")
        term.print(shown_path(r.prediction_run), wrap=False)
