"""The one training loop of every neural model.

Class-weighted cross-entropy, AdamW, a schedule counted in optimizer steps
(a short, capped linear warm-up, then cosine decay), a batch small enough for a
minimum number of steps per epoch, gradient clipping, bf16 autocast on CUDA,
early stopping on validation macro-F1 with patience counted after warm-up, and
the best-on-validation weights restored at the end.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import Callable, Iterator

import numpy as np

from core.metrics import macro_f1
from core.models.settings import LoopSettings


def schedule(n_train: int, cfg: LoopSettings) -> dict:
    """Batch size, steps and warm-up for a train part of n_train windows.

    The batch shrinks (to no fewer than 2 windows) until an epoch has at least
    `min_steps_per_epoch` optimizer steps: 32 windows at batch 256 would be one
    step per epoch. The warm-up is a share of all steps, capped, so that a long
    run does not spend tens of epochs warming up."""
    batch = max(2, min(cfg.batch_size, n_train // cfg.min_steps_per_epoch))
    steps_per_epoch = max(1, math.ceil(n_train / batch))
    total = cfg.epochs * steps_per_epoch
    warmup = min(cfg.warmup_max_steps, int(round(cfg.warmup_frac * total)))
    return {"batch_size": batch, "steps_per_epoch": steps_per_epoch, "total_steps": total, "warmup_steps": warmup}


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then a cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def train_loop(net, train_batches: Callable[[np.random.Generator, int], Iterator[tuple[np.ndarray, np.ndarray]]],
               n_train: int, val_batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]] | None,
               weights: np.ndarray, cfg: LoopSettings, device: str, seed: int, progress=None,
               stop_epoch: int | None = None, on_step: Callable[[int], None] | None = None) -> dict:
    """`stop_epoch` (with no validation part): end after that epoch, the
    schedule still planned for cfg.epochs, as it was when a cross-validation
    fold found that epoch best. `on_step(step)` after every optimiser step."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net.to(device)
    k = len(weights)
    plan = schedule(n_train, cfg)
    batch_size, total, warmup = plan["batch_size"], plan["total_steps"], plan["warmup_steps"]
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, total))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" else nullcontext

    best_f1, best_loss, best_state, best_epoch, stale, step = -1.0, math.inf, None, 0, 0, 0
    history = []
    load_s = compute_s = 0.0
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        loss_sum, seen = 0.0, 0
        batches = train_batches(rng, batch_size)
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            load_s += time.perf_counter() - t0
            if batch is None:
                break
            x, y = batch
            if len(y) < 2:  # batch norm needs two samples; a lone straggler teaches nothing
                continue
            t1 = time.perf_counter()
            xt = torch.from_numpy(x).to(device, non_blocking=True)
            yt = torch.from_numpy(np.asarray(y, np.int64)).to(device, non_blocking=True)
            with autocast():
                logits = net(xt)
            loss = loss_fn(logits.float(), yt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
            opt.step()
            sched.step()
            step += 1
            if on_step is not None:
                on_step(step)
            loss_sum += float(loss.detach()) * len(y)
            seen += len(y)
            compute_s += time.perf_counter() - t1
        if seen == 0:
            # Not a result: a model that saw no sample must never replace a checkpoint.
            from core.models.base import TrainError
            raise TrainError(f"epoch {epoch} trained on no window: every batch was smaller than 2 windows "
                             f"({n_train} train windows, batch size {batch_size})")
        if val_batches is None:
            # No validation part (chosen by cross-validation instead): the
            # epoch count is fixed, and the last epoch's weights are the model.
            f1 = val_loss = float("nan")
            best_f1, best_epoch = f1, epoch
            history.append({"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "lr": opt.param_groups[0]["lr"]})
            if progress:
                progress(epoch, cfg.epochs, loss=f"{loss_sum / max(seen, 1):.2f}")
            if stop_epoch is not None and epoch >= stop_epoch:
                break
            continue
        f1, val_loss = evaluate(net, val_batches, k, device, autocast)
        history.append({"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "val_macro_f1": f1,
                        "val_loss": val_loss, "lr": opt.param_groups[0]["lr"]})
        # A tie in macro-F1 (frequent on a small validation part) goes to the
        # lower validation loss, so that a model still improving is not stopped.
        if f1 > best_f1 + 1e-9 or (f1 > best_f1 - 1e-9 and val_loss < best_loss - 1e-4):
            best_f1, best_loss, best_epoch, stale = f1, val_loss, epoch, 0
            best_state = {n: v.detach().to("cpu", copy=True) for n, v in net.state_dict().items()}
        elif step > warmup:
            # Patience counts only once warm-up is over: a model still warming up
            # has not had its learning rate yet.
            stale += 1
        if progress:
            progress(epoch, cfg.epochs, loss=f"{loss_sum / max(seen, 1):.2f}", f1=f"{f1:.2f}",
                     best=f"{best_f1:.2f}@{best_epoch}")
        if stale >= cfg.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    return {"best_epoch": best_epoch, "val_macro_f1": best_f1, "epochs_run": len(history), "history": history,
            "schedule": {**plan, "steps_run": step},
            "load_s": round(load_s, 3), "compute_s": round(compute_s, 3),
            "early_stopping": "validation macro-F1" if val_batches is not None else "none (a fixed epoch count)"}


def evaluate(net, val_batches, k: int, device: str, autocast=nullcontext) -> tuple[float, float]:
    """Validation macro-F1 and mean cross-entropy."""
    import torch
    net.eval()
    ys, ps = [], []
    loss_sum, n = 0.0, 0
    with torch.no_grad():
        for x, y in val_batches():
            with autocast():
                logits = net(torch.from_numpy(x).to(device))
            yt = torch.from_numpy(np.asarray(y, np.int64)).to(device)
            loss_sum += float(torch.nn.functional.cross_entropy(logits.float(), yt, reduction="sum"))
            n += len(y)
            ps.append(logits.float().argmax(1).cpu().numpy())
            ys.append(np.asarray(y))
    return macro_f1(np.concatenate(ys), np.concatenate(ps), k), loss_sum / max(n, 1)
