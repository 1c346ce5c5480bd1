"""What a model's selection score (its training record's `val_macro_f1`)
was measured on, as every report says it: only "val" is held out from the
fit. Light (no numpy): the notebook's listing reads it."""
from __future__ import annotations

SCORES = {
    "val": ("val", "the validation part, held out from the fit"),
    "loo": ("LOO", "leave-one-out on train + val, which the model was fitted on (windows of one episode stay in "
                   "the fit: optimistic)"),
    "cv": ("CV", "cross-validation folds of train + val by episode (val too small to choose by)"),
    "train+val": ("fit", "train + val, which the model was fitted on (too few episodes for folds)"),
}


def selection_score(training: dict) -> tuple[float | None, str, str]:
    """(score, short label, what it was measured on) of a checkpoint's training record."""
    on = training.get("score_on", "val")
    short, long = SCORES.get(on, (on, on))
    score = training.get("val_macro_f1")
    return (float(score) if isinstance(score, (int, float)) else None), short, long
