"""The training loop reports every optimiser step to whoever asks (issue 35:
the ROCKET softmax head's bar said "batch 0" with no ETA for minutes, as it
moved once an epoch)."""
import numpy as np

from core.models.loop import train_loop
from core.models.settings import LoopSettings


def test_every_step_is_reported_as_it_is_taken():
    import torch
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = rng.integers(0, 3, 64)

    def batches(r, size):
        order = r.permutation(len(y))
        for i in range(0, len(y), size):
            yield x[order[i:i + size]], y[order[i:i + size]]
    steps = []
    cfg = LoopSettings(epochs=2, batch_size=16, patience=5, min_steps_per_epoch=1)
    info = train_loop(torch.nn.Linear(4, 3), batches, len(y), None, np.ones(3, np.float32), cfg, "cpu", 0,
                      on_step=steps.append)
    assert steps == list(range(1, info["schedule"]["steps_run"] + 1)) and len(steps) >= 8
