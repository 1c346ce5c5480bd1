"""`cis490 train`: fit models in realistic and/or oracle mode and checkpoint them."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from cis490cli import options as opt
from cis490cli.state import AppState, get_state
from core.models import MODELS

if TYPE_CHECKING:
    from core.registry import Registry
    from core.train import TrainResult


class Mode(str, Enum):
    realistic = "realistic"
    oracle = "oracle"
    both = "both"


def train(
    ctx: typer.Context,
    models: List[str] = typer.Argument(..., metavar="MODEL", help=f"Models to train, or 'all' ({', '.join(MODELS)})."),
    mode: Mode = typer.Option(Mode.both, "--mode", help="realistic: deployable channels only; oracle: all; both."),
    split: opt.SplitName = typer.Option(opt.SplitName.host, "--split",
                                        help="Split to train on (see `cis490 split`); checkpoints are kept per split."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, metavar="N",
                                         help="Maximum epochs for neural models [default: 30]."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=2, metavar="N",
                                             help="Largest batch for neural models [default: 256; smaller on a "
                                                  "small train part, for enough steps per epoch]."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, metavar="X",
                                       help="Peak learning rate: neural models [default: 0.002], gbt's "
                                            "learning_rate [default: 0.1]."),
    patience: Optional[int] = typer.Option(None, "--patience", min=1, metavar="N",
                                           help="Neural models: epochs without a better validation score, counted "
                                                "after warm-up [default: 10]."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", min=0.0, metavar="X",
                                                 help="AdamW weight decay for neural models [default: 0.01]; gbt's "
                                                      "L2 reg_lambda [default: 1]."),
    settings: List[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                       help="A model setting, repeatable: --set k=5, --set hidden=128, "
                                            "--set max_depth=8 (docs/models.md lists them)."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="auto, cpu or cuda (mixed precision on CUDA)."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Random seed: same seed, same validation score on CPU."),
    channels: Optional[Path] = opt.CHANNELS,
) -> None:
    """Train models on a split; each model and mode gets a checkpoint and a notebook record.

    Examples:

    \b
        cis490 train gru gbt --mode both
        cis490 train all --split sample --epochs 50
        cis490 train knn --set k=5 --mode realistic
        cis490 train cnn --lr 0.001 --set hidden=128
    """
    from core.extract import features_registry
    from core.train import MODES, model_settings, resolve_device
    state = get_state(ctx)
    names = list(MODELS) if models == ["all"] else models
    overrides = model_settings(names, {"epochs": epochs, "batch_size": batch_size, "lr": lr, "patience": patience,
                                       "weight_decay": weight_decay}, settings)
    modes = list(MODES) if mode == Mode.both else [mode.value]
    registry = features_registry(state.paths.processed, channels)
    results = run_train(state, registry, names, modes, split.value, overrides, resolve_device(device), seed)
    render_train(state, results)


def run_train(state: AppState, registry: Registry, names: list[str], modes: list[str], recipe: str,
              overrides: dict[str, dict], device: str, seed: int) -> list[TrainResult]:
    from core.train import load_split_data, model_class, train_one
    paths = state.paths
    results = []
    cache: dict[str, object] = {}
    for name in names:
        cls = model_class(name)
        settings = overrides.get(name, {})
        for mode in modes:
            config = {"model": name, "mode": mode, "split": recipe, "seed": seed, "device": device,
                      "overrides": settings, "registry_hash": registry.schema_hash}
            with state.record("train", config) as run:
                if cls.input_kind not in cache:
                    cache[cls.input_kind] = load_split_data(paths.processed, recipe, cls.input_kind)
                run.add_input(paths.processed / "splits" / f"{recipe}.parquet", "split")
                run.add_input(paths.processed / "splits" / f"{recipe}.json", "split_meta")
                run.add_input(paths.processed / "feature_schema_v1.json", "feature_schema")
                total = cls.progress_total({**cls.default_config, **settings})
                with state.terminal.progress(f"{name} {mode}", total=total, unit=cls.progress_unit) as bar:
                    r = train_one(paths.processed, paths.artifacts, registry, name, mode, recipe, settings, seed,
                                  device, run.run_id, bar, cache[cls.input_kind])
                    t = r.header["training"]
                    ran = t.get("epochs_run") or t.get("rounds_run")
                    if ran is not None and total is not None and ran < total:
                        # The bar ends full and says why, instead of resting at 67%.
                        bar(ran, ran, note=f"stopped early at {cls.progress_unit} {ran} (best {t['best_epoch']})")
                run.add_output(r.checkpoint / "header.json", "checkpoint_header")
                run.add_output(r.checkpoint / r.header["weights"]["file"], "checkpoint_weights")
                t = r.header["training"]
                run.metrics.update(val_macro_f1=t["val_macro_f1"], best_epoch=t.get("best_epoch"),
                                   windows=t["windows"], unlabeled_pool=t.get("unlabeled_pool"))
                # What was chosen, not only what was asked: the full settings and
                # the choices made from data (kNN's k, the batch the schedule used).
                run.config["settings"] = r.header["config"]
                run.metrics.update({k: t[k] for k in ("k", "k_scores", "schedule") if k in t})
                run.timings.update(train_s=round(r.seconds, 3), load_s=t.get("load_s"), compute_s=t.get("compute_s"))
            results.append(r)
    return results


def render_train(state: AppState, results: list[TrainResult]) -> None:
    term = state.terminal
    rows = []
    for r in results:
        t = r.header["training"]
        rows.append({"model": r.model, "mode": r.mode, "best_epoch": t.get("best_epoch"),
                     "val_macro_f1": round(t["val_macro_f1"], 4), "train_windows": t["windows"]["train"],
                     "seconds": round(r.seconds, 1), "checkpoint": str(r.checkpoint),
                     "unlabeled_pool": t.get("unlabeled_pool"), "k": t.get("k"), "k_choice": t.get("k_choice"),
                     "settings": r.header["config"]})
    if term.json_mode:
        term.json(rows)
        return
    term.table("Best validation scores", ["model", "mode", "best epoch", "val macro-F1", "train windows", "s"],
               [(r["model"], r["mode"], r["best_epoch"], f"{r['val_macro_f1']:.3f}", r["train_windows"], r["seconds"])
                for r in rows], justify_right=[2, 3, 4, 5])
    for r in rows:
        if r["k"] is not None:
            how = "set" if r["k_choice"] == "set" else f"chosen by {r['k_choice']}"
            term.print(f"{r['model']} ({r['mode']}): k = {r['k']} ({how})")
        if r["unlabeled_pool"]:
            u = r["unlabeled_pool"]
            term.print(f"{r['model']} ({r['mode']}) also learned from {u['windows_used']:,} unlabeled windows: "
                       f"{u['source']}")
    term.print(f"Checkpoints: {Path(rows[0]['checkpoint']).parent}" if rows else "")
