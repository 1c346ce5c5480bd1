"""The one training loop of every neural model.

Class-weighted cross-entropy, AdamW, linear warm-up then cosine decay, gradient
clipping, bf16 autocast on CUDA, early stopping on validation macro-F1 with
patience, and the best-on-validation weights restored at the end.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from core.metrics import macro_f1


@dataclass(frozen=True)
class LoopConfig:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_frac: float = 0.1
    patience: int = 6
    clip: float = 1.0


def lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_loop(net, train_batches: Callable[[np.random.Generator], Iterator[tuple[np.ndarray, np.ndarray]]],
               n_train: int, val_batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
               weights: np.ndarray, cfg: LoopConfig, device: str, seed: int, progress=None) -> dict:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net.to(device)
    k = len(weights)
    steps_per_epoch = max(1, math.ceil(n_train / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    warmup = max(1, int(cfg.warmup_frac * total))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, total))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" else nullcontext

    best_f1, best_state, best_epoch, stale = -1.0, None, 0, 0
    history = []
    load_s = compute_s = 0.0
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        loss_sum, seen = 0.0, 0
        batches = train_batches(rng)
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
            loss_sum += float(loss.detach()) * len(y)
            seen += len(y)
            compute_s += time.perf_counter() - t1
        if seen == 0:
            # Not a result: a model that saw no sample must never replace a checkpoint.
            from core.models.base import TrainError
            raise TrainError(f"epoch {epoch} trained on no window: every batch was smaller than 2 windows "
                             f"({n_train} train windows, batch size {cfg.batch_size})")
        f1 = evaluate(net, val_batches, k, device, autocast)
        history.append({"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "val_macro_f1": f1,
                        "lr": opt.param_groups[0]["lr"]})
        if f1 > best_f1 + 1e-9:
            best_f1, best_epoch, stale = f1, epoch, 0
            best_state = {n: v.detach().to("cpu", copy=True) for n, v in net.state_dict().items()}
        else:
            stale += 1
        if progress:
            progress(epoch, cfg.epochs, loss=f"{loss_sum / max(seen, 1):.2f}", f1=f"{f1:.2f}",
                     best=f"{best_f1:.2f}@{best_epoch}")
        if stale >= cfg.patience:
            break
    net.load_state_dict(best_state)
    return {"best_epoch": best_epoch, "val_macro_f1": best_f1, "epochs_run": len(history), "history": history,
            "load_s": round(load_s, 3), "compute_s": round(compute_s, 3), "early_stopping": "validation macro-F1"}


def evaluate(net, val_batches, k: int, device: str, autocast=nullcontext) -> float:
    import torch
    net.eval()
    ys, ps = [], []
    with torch.no_grad():
        for x, y in val_batches():
            with autocast():
                logits = net(torch.from_numpy(x).to(device))
            ps.append(logits.float().argmax(1).cpu().numpy())
            ys.append(np.asarray(y))
    return macro_f1(np.concatenate(ys), np.concatenate(ps), k)
