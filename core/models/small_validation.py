"""When the validation part is too small to choose by.

A model chooses things on its validation part: the epoch at which a neural
net stops, kNN's k, the boosting rounds. On a handful of windows every
choice scores alike (seven windows gave mlp, knn and cnn the same 0.841, and
then 0.46 to 0.58 on test), so the choice is noise. Below the thresholds
here, a model instead chooses by cross-validation on train + val (folds by
episode, stratified by phase) and is refitted on train + val with what the
folds chose; the rule, the folds' choices and the reason are recorded in
the checkpoint (`training.small_validation`).
"""
from __future__ import annotations

import warnings

import numpy as np

# Validation parts with fewer windows than this, or fewer than
# MIN_VAL_PER_PHASE windows of a phase, are too small to choose by. Measured
# by bench/train_small.py --val-windows N (docs/models.md): with 7 or 12
# validation windows the rule lifts cnn, gru and lstm by 0.03 to 0.10 test
# accuracy and costs gbt and knn 0.01 to 0.05.
MIN_VAL_WINDOWS = 50
MIN_VAL_PER_PHASE = 5
FOLDS = 3
RULE = f"{FOLDS}-fold cross-validation on train + val (folds by episode, stratified by phase), refitted on train + val"


def too_small(train, val, classes: list[str]) -> str | None:
    """Why `val` is too small to choose by, or None. Only phases train has
    count: a phase the split holds nowhere cannot be scored anyway."""
    n = len(val)
    if n < MIN_VAL_WINDOWS:
        return f"{n} validation windows (fewer than {MIN_VAL_WINDOWS})"
    counts = np.bincount(val.y, minlength=len(classes))
    present = np.flatnonzero(np.bincount(train.y, minlength=len(classes)))
    if len(present):
        low = int(present[np.argmin(counts[present])])
        if counts[low] < MIN_VAL_PER_PHASE:
            return (f"{int(counts[low])} validation windows of phase '{classes[low]}' "
                    f"(fewer than {MIN_VAL_PER_PHASE})")
    return None


def folds(pool, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) indices of each fold; an episode's windows stay together."""
    from sklearn.model_selection import StratifiedGroupKFold
    groups = pool.groups if pool.groups is not None else np.arange(len(pool))
    k = min(FOLDS, len(np.unique(groups)))
    if k < 2:
        return []
    with warnings.catch_warnings():
        # "The least populated class has fewer members than n_splits": expected on tiny parts.
        warnings.simplefilter("ignore", UserWarning)
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        return [(tr, te) for tr, te in cv.split(np.zeros(len(pool)), pool.y, groups) if len(tr) and len(te)]


def choose_small(model, train, val, pool, reason: str, progress) -> dict:
    """Cross-validation on train + val (`pool`) chooses; the model is then
    fitted on the pool. With too few episodes for two folds, the validation
    part chooses after all (and the record says so)."""
    info = cross_validate(model, pool, reason, progress)
    if info is None:
        info = model._fit(train, val, progress) or {}
        info["small_validation"] = {"reason": reason, "rule": "too few episodes for two folds: the validation "
                                                              "part chose"}
        info["choice_rule"] = f"the validation part ({len(val)} windows; too few episodes for folds)"
    return info


def cross_validate(model, pool, reason: str, progress) -> dict | None:
    """Fit a copy of `model` on each fold (choosing on the held-out fold as it
    would on val), let the model turn the folds' choices into fixed ones,
    then fit it on the whole pool with them; None when no fold can be made."""
    summaries = []
    for tr, te in folds(pool, model.seed):
        clone = type(model)(model.classes, _clone_settings(model), seed=model.seed, device=model.device)
        clone.pre, clone.scratch = model.pre, getattr(model, "scratch", None)
        if getattr(model, "unlabeled", None) is not None:
            clone.unlabeled, clone.unlabeled_source = model.unlabeled, model.unlabeled_source
        summaries.append(clone._cv_summary(clone._fit(pool.take(tr), pool.take(te), None)))
    if not summaries:
        return None
    model.fixed = model._cv_fix(summaries)
    info = model._fit(pool, None, progress) or {}
    scores = [s["score"] for s in summaries]
    info["val_macro_f1"] = float(np.mean(scores))
    for s in summaries:                 # the curves chose; the record keeps each fold's best
        s.pop("curve", None)
        s.pop("loss", None)
    info["small_validation"] = {"reason": reason, "rule": RULE, "folds": summaries, "chosen": model.fixed,
                                "val_macro_f1": "mean of the held-out folds' macro-F1"}
    return info


def _clone_settings(model):
    """The model's settings for a copy fitted on a fold: the ones it derives
    from its data back at their defaults (the copy derives them again), and
    its `cv_overrides`."""
    from dataclasses import fields, replace
    derived = {f.name: f.default for f in fields(model.settings) if f.metadata.get("derived")}
    return replace(model.cfg, **derived, **getattr(model, "cv_overrides", {}))
