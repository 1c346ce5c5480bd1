"""`cis490 ingest`: the day's new runs in one command.

Validate what landed since the last index (`--since-last`), extract the new
runs (extract is incremental: new chunks only), and predict the unlabelled
ones with the lab's chosen model (`predict --unlabelled`: only the runs that
model has not read). Each step is the stage its own command runs, recorded
in the notebook under one `ingest` run; the result is one table. The model
is chosen once (`--model`) and remembered in artifacts/ingest.json.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from core.errors import ConfigError
from core.lab import Lab

CHOICE = "ingest.json"


@dataclass
class IngestStep:
    name: str            # validate, extract, predict
    said: str            # what it did, in words
    seconds: float
    detail: dict = field(default_factory=dict)


@dataclass
class IngestResult:
    store: Path
    steps: list[IngestStep]
    new: dict[str, int]              # status -> runs validate had not seen before
    model: dict | None               # {model, mode, split, engine} the unlabelled runs were predicted with
    notes: list[str] = field(default_factory=list)
    prediction_run: Path | None = None

    def to_json(self) -> dict:
        return {"store": str(self.store), "new": self.new, "model": self.model, "notes": self.notes,
                "prediction_run": str(self.prediction_run) if self.prediction_run else None,
                "steps": [{"name": s.name, "said": s.said, "seconds": s.seconds, **s.detail} for s in self.steps]}


def choice_path(lab: Lab) -> Path:
    return lab.artifacts / CHOICE


def chosen_model(lab: Lab, model: str | None, mode: str | None, split: str | None,
                 engine: str | None) -> dict | None:
    """The model ingest predicts with: the one given (remembered for the
    next ingest), else the one remembered, else None (nothing predicted)."""
    path = choice_path(lab)
    try:
        was = json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        raise ConfigError(f"{path}: damaged, not valid JSON: pass --model to choose the model again") from None
    if model is None:
        if was is None:
            return None
        if not isinstance(was, dict) or not isinstance(was.get("model"), str):
            raise ConfigError(f"{path}: damaged, it names no model: pass --model to choose the model again")
        return {"model": was["model"], "mode": mode or was.get("mode", "realistic"),
                "split": split or was.get("split", "host"), "engine": engine or was.get("engine", "auto")}
    return {"model": model, "mode": mode or "realistic", "split": split or "host", "engine": engine or "auto"}


def remember_model(lab: Lab, choice: dict) -> None:
    from core.paths import atomic_write_text, ensure_dir
    ensure_dir(lab.artifacts)
    atomic_write_text(choice_path(lab), json.dumps(choice, indent=1) + "\n")


def statuses(index: Path) -> dict[str, str]:
    """rel_path -> status of an acceptance index (empty when there is none)."""
    if not index.exists():
        return {}
    try:
        return dict(pl.read_parquet(index, columns=["rel_path", "status"]).iter_rows())
    except (OSError, pl.exceptions.PolarsError):
        return {}


def new_runs(before: dict[str, str], after: dict[str, str]) -> dict[str, int]:
    """status -> how many runs the index holds now that it did not, or held in another status."""
    out: dict[str, int] = {}
    for rel, status in after.items():
        if before.get(rel) != status:
            out[status] = out.get(status, 0) + 1
    return dict(sorted(out.items()))
