"""The one training loop of every neural model.

Class-weighted cross-entropy, AdamW, a schedule counted in optimizer steps
(a short, capped linear warm-up, then cosine decay), a batch small enough for a
minimum number of steps per epoch, gradient clipping, bf16 autocast on CUDA,
early stopping on validation macro-F1 with patience counted after warm-up, and
the best-on-validation weights restored at the end.
"""
from __future__ import annotations

import itertools
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


# With a budget: the first validation interval is this many steps (it measures
# a step and a validation), and every later one is sized so that at least
# MIN_VALIDATIONS validations fit in what is left.
FIRST_STEPS = 10
MIN_VALIDATIONS = 10


class Budget:
    """A fit bounded in time (`budget_s`): validation intervals ("epochs")
    sized from the measured cost of a step and of a validation, the learning
    rate's schedule planned to end at the budget, and the fit stopped when the
    next interval would not fit in it."""

    def __init__(self, seconds: float, steps_per_pass: int, max_steps: int):
        self.seconds, self.spe, self.max_steps = seconds, steps_per_pass, max_steps
        self.start = time.monotonic()
        self.interval = min(steps_per_pass, FIRST_STEPS)
        self.t_step = self.t_val = 0.0
        self.stopped = False

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def over(self) -> bool:
        return self.elapsed() >= self.seconds

    def measured(self, steps: int, train_s: float, val_s: float, done_steps: int, validations: int) -> int:
        """After an interval: the next interval's length, and the total steps
        the schedule plans for (those run, and those that fit in what is left).
        What is left is shared among the validations still due (the first,
        measuring, interval aside); past them the interval stays as it is."""
        self.t_step = train_s / max(steps, 1)
        self.t_val = val_s
        left = max(self.seconds - self.elapsed(), 0.0)
        due = MIN_VALIDATIONS - (validations - 1)
        if due >= 1:
            per = left / due
            self.interval = int(min(self.spe, max(1, (per - self.t_val) / max(self.t_step, 1e-9))))
        share = self.interval * self.t_step / max(self.interval * self.t_step + self.t_val, 1e-9)
        return min(self.max_steps, done_steps + int(left * share / max(self.t_step, 1e-9)))

    def room_for_next(self) -> bool:
        return self.elapsed() + self.interval * self.t_step + self.t_val <= self.seconds


def _stream(train_batches, rng, size):
    """Passes over the train part one after another (a budget's intervals cut across them)."""
    while True:
        empty = True
        for batch in train_batches(rng, size):
            empty = False
            yield batch
        if empty:
            return


def train_loop(net, train_batches: Callable[[np.random.Generator, int], Iterator[tuple[np.ndarray, np.ndarray]]],
               n_train: int, val_batches: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]] | None,
               weights: np.ndarray, cfg: LoopSettings, device: str, seed: int, progress=None,
               stop_epoch: int | None = None, on_step: Callable[[int], None] | None = None,
               resume=None) -> dict:
    """`stop_epoch` (with no validation part): end after that epoch, the
    schedule still planned for cfg.epochs, as it was when a cross-validation
    fold found that epoch best. `on_step(step)` after every optimiser step.
    `cfg.budget_s` > 0: validation intervals sized to the budget (Budget),
    an interval being an "epoch" of the history. `resume`
    (core.models.resume.ResumeState): the state saved after every epoch, and
    loaded first when it holds one."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net.to(device)
    k = len(weights)
    plan = schedule(n_train, cfg)
    batch_size = plan["batch_size"]
    budget = Budget(cfg.budget_s, plan["steps_per_epoch"], plan["total_steps"]) if cfg.budget_s > 0 else None
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Read at every step: a budget re-plans the total once it has measured a step.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, plan["warmup_steps"], plan["total_steps"]))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device == "cuda" else nullcontext

    st = {"best_f1": -1.0, "best_loss": math.inf, "best_state": None, "best_epoch": 0, "stale": 0, "step": 0,
          "history": [], "epoch": 0}
    resumed = None
    if resume is not None:
        saved = resume.load()
        if saved is not None:
            net.load_state_dict(saved["net"])
            opt.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"])
            rng.bit_generator.state = saved["rng"]
            torch.set_rng_state(saved["torch_rng"])
            plan.update(saved["plan"])
            st.update(saved["loop"])
            resumed = {"from_epoch": st["epoch"], "steps": st["step"]}
    load_s = compute_s = 0.0
    stream = _stream(train_batches, rng, batch_size) if budget is not None else None
    stopped_by = "epochs"
    epoch = st["epoch"]
    while True:
        epoch += 1
        if budget is None and epoch > cfg.epochs:
            break
        net.train()
        loss_sum, seen, steps, t_train = 0.0, 0, 0, time.monotonic()
        batches = train_batches(rng, batch_size) if budget is None else itertools.islice(stream, budget.interval)
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
            st["step"] += 1
            steps += 1
            if on_step is not None:
                on_step(st["step"])
            loss_sum += float(loss.detach()) * len(y)
            seen += len(y)
            compute_s += time.perf_counter() - t1
            if budget is not None and budget.over():
                break                  # a step slower than measured: validate what there is, and stop
        t_train = time.monotonic() - t_train
        if seen == 0:
            # Not a result: a model that saw no sample must never replace a checkpoint.
            from core.models.base import TrainError
            raise TrainError(f"epoch {epoch} trained on no window: every batch was smaller than 2 windows "
                             f"({n_train} train windows, batch size {batch_size})")
        row = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "lr": opt.param_groups[0]["lr"],
               **({"steps": st["step"]} if budget is not None else {})}
        if val_batches is None:
            # No validation part (chosen by cross-validation instead): the
            # epoch count is fixed, and the last epoch's weights are the model.
            st["best_f1"], st["best_epoch"] = float("nan"), epoch
            st["history"].append(row)
            fields = {"loss": f"{row['train_loss']:.2f}"}
            done = stop_epoch is not None and epoch >= stop_epoch
        else:
            t_val = time.monotonic()
            f1, val_loss = evaluate(net, val_batches, k, device, autocast)
            t_val = time.monotonic() - t_val
            st["history"].append({**row, "val_macro_f1": f1, "val_loss": val_loss})
            # A tie in macro-F1 (frequent on a small validation part) goes to the
            # lower validation loss, so that a model still improving is not stopped.
            if f1 > st["best_f1"] + 1e-9 or (f1 > st["best_f1"] - 1e-9 and val_loss < st["best_loss"] - 1e-4):
                st.update(best_f1=f1, best_loss=val_loss, best_epoch=epoch, stale=0,
                          best_state={n: v.detach().to("cpu", copy=True) for n, v in net.state_dict().items()})
            elif st["step"] > plan["warmup_steps"]:
                # Patience counts only once warm-up is over: a model still warming up
                # has not had its learning rate yet.
                st["stale"] += 1
            fields = {"loss": f"{row['train_loss']:.2f}", "f1": f"{f1:.2f}",
                      "best": f"{st['best_f1']:.2f}@{st['best_epoch']}"}
            done = st["stale"] >= cfg.patience
            if done:
                stopped_by = "patience"
        if budget is not None:
            total = budget.measured(steps, t_train, t_val if val_batches is not None else 0.0, st["step"],
                                    len(st["history"]))
            plan.update(total_steps=max(total, st["step"] + 1),
                        warmup_steps=min(cfg.warmup_max_steps, int(round(cfg.warmup_frac * total))))
            if not done and (st["step"] >= budget.max_steps):
                done, stopped_by = True, "epochs"
            elif not done and not budget.room_for_next():
                done, stopped_by = True, "budget"
        st["epoch"] = epoch
        if resume is not None and not done:
            resume.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                         "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "plan": dict(plan),
                         "loop": st})
        if progress:
            progress(epoch if budget is None else min(st["step"], plan["total_steps"]),
                     cfg.epochs if budget is None else plan["total_steps"], **fields)
        if done:
            break
    if st["best_state"] is not None:
        net.load_state_dict(st["best_state"])
    out = {"best_epoch": st["best_epoch"], "val_macro_f1": st["best_f1"], "epochs_run": len(st["history"]),
           "history": st["history"], "schedule": {**plan, "steps_run": st["step"]},
           "load_s": round(load_s, 3), "compute_s": round(compute_s, 3),
           "early_stopping": "validation macro-F1" if val_batches is not None else "none (a fixed epoch count)",
           "stopped_by": stopped_by if val_batches is not None or budget is not None else "epochs"}
    if budget is not None:
        out["budget"] = {"budget_s": cfg.budget_s, "seconds": round(budget.elapsed(), 3),
                         "stopped_by_budget": stopped_by == "budget", "validations": len(st["history"]),
                         "last_interval_steps": budget.interval,
                         "steps_per_pass": plan["steps_per_epoch"]}
    if resumed is not None:
        out["resumed"] = resumed
    return out


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
