"""A neural fit's state after its last epoch, kept so that an interrupted
`cis490 train` continues where it stopped (`--resume`): the weights, the
optimiser's and the schedule's state, the epoch, every random generator and
the loop's bookkeeping (best weights so far, patience). Saved after every
epoch beside the checkpoints of its split, removed once the fit ends."""
from __future__ import annotations

import os
from pathlib import Path

from core.models.base import TrainError


class ResumeState:
    def __init__(self, path: Path, key: dict, use: bool):
        self.path, self.key, self.use = Path(path), key, use

    def load(self) -> dict | None:
        """The saved state, when `use` and there is one for this fit; one that
        another fit saved (other settings, split or data) is refused."""
        if not self.use or not self.path.exists():
            return None
        import torch
        try:
            saved = torch.load(self.path, weights_only=True)
            key, state = saved["key"], saved["state"]
        except Exception as exc:  # noqa: BLE001 - any unreadable state is the same one line
            raise TrainError(f"{self.path}: damaged, cannot be resumed from "
                             f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}): train "
                             "without --resume to start afresh") from None
        if key != self.key:
            what = next((k for k in self.key if key.get(k) != self.key[k]), "?")
            raise TrainError(f"{self.path}: saved by a fit with another {what} than this one: train without "
                             "--resume to start afresh")
        return state

    def save(self, state: dict) -> None:
        import torch
        from core.paths import temp_prefix
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{temp_prefix('resume')}{self.path.name}")
        torch.save({"key": self.key, "state": state}, tmp)
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()             # the folder goes with its last state
        except OSError:
            pass                                 # another fit's state is still there
