"""`cis490 export`: checkpoints become bundles the Pi serves without torch."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cis490cli import options as opt
from cis490cli.state import get_state


def export(
    ctx: typer.Context,
    models: List[str] = typer.Argument(..., metavar="MODEL", help="Models (or all): gru, or gru_oracle for one mode."),
    mode: opt.ModeOrBoth = typer.Option(opt.ModeOrBoth.realistic, "--mode",
                                        help="Mode of bare model names: realistic, oracle or both."),
    split: str = opt.SPLIT,
    channels: Optional[Path] = opt.CHANNELS,
) -> None:
    """Export checkpoints as deployable bundles (artifacts/deploy/SPLIT/MODEL_MODE/).

    Each bundle (an ONNX graph, or numpy arrays for knn and knn_semi, with the
    checkpoint's identity) is checked against its checkpoint on the split's
    test windows before it is written; `cis490 serve --replay` then runs it
    without torch (docs/models.md, "Export").

    Examples:

    \b
        cis490 export gru gbt
        cis490 export all --mode both --split sample
    """
    from core.deploy.export import export_model
    from core.lab import BUNDLE, Lab, Ref, modes_of
    from core.evaluate import parse_model_name, resolve_model_names
    from core.train import require_checkpoint
    from core.extract import features_registry
    state = get_state(ctx)
    paths, term = state.paths, state.terminal
    modes = modes_of(mode.value)
    if models == ["all"]:
        pairs = [p for p in resolve_model_names(models, paths.artifacts, split, None, every_mode=True)
                 if p[1] in modes]
    else:
        pairs = []
        for name in models:
            named = parse_model_name(name)
            pairs += [named] if name != named[0] else [(name, m) for m in modes]
        pairs = list(dict.fromkeys(pairs))
    for model, md in pairs:      # every checkpoint first: nothing exported when one is missing
        require_checkpoint(paths.artifacts, split, model, md)
    registry = features_registry(paths.processed, channels)
    results = []
    for model, md in pairs:
        with state.record("export", {"model": model, "mode": md, "split": split}) as run:
            with term.progress(f"Exporting {model} ({md})", total=1) as bar:
                r = export_model(paths.processed, paths.artifacts, registry, model, md, split)
                bar(1, 1)
            run.add_input(Lab.of(paths).header(Ref(split, model, md)), "checkpoint")
            run.add_output(r.directory / BUNDLE, "bundle")
            run.metrics.update(runtime=r.runtime, parity_max_abs_diff=r.parity["max_abs_diff"],
                               parity_windows=r.parity["windows"], bytes=r.bytes, seconds=round(r.seconds, 2))
        results.append(r)
    if term.json_mode:
        term.json([{"model": r.model, "mode": r.mode, "bundle": str(r.directory), "runtime": r.runtime,
                    "parity": r.parity, "bytes": r.bytes} for r in results])
        return
    term.table(f"Exported to {results[0].directory.parent}",
               ["model", "mode", "runtime", "max |p diff|", "windows", "size"],
               [(r.model, r.mode, r.runtime, f"{r.parity['max_abs_diff']:.1e}", f"{r.parity['windows']:,}",
                 f"{r.bytes / 1e6:.2f} MB") for r in results])
    term.print(f"Serve one: cis490 serve --dashboard --replay all --model {results[0].model}"
               + (f" --split {split}" if split != "host" else ""), wrap=False)
