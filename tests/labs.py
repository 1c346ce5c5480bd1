"""Prepared labs shared by the command tests: build once per module, copy into
each test's own home."""
from __future__ import annotations

import shutil
from pathlib import Path

from core.paths import LabPaths


HOST_TRAIN = ("lab-thinkpad", "lab-nuc", "lab-desktop")


def trained_lab(extracted_lab, tmp_path_factory, name: str, models: list[tuple[str, str]],
                extra_splits: tuple = ()) -> Path:
    """A lab root (data/, artifacts/) with the extracted lab, a host split on
    HOST_TRAIN, any `extra_splits` (SplitConfig) and `models` ((name, mode))
    trained on the host split. Module fixtures build one; `install_lab` copies
    it into each test's own home."""
    from core.registry import load_registry
    from core.split import SplitConfig, make_split
    from core.train import train_one
    paths, _ = extracted_lab
    root = tmp_path_factory.mktemp(name)
    processed = root / "data" / "processed"
    shutil.copytree(paths.processed, processed)
    reg = load_registry()
    for cfg in (SplitConfig("host", HOST_TRAIN), *extra_splits):
        make_split(processed, cfg, reg)
    for model, mode in models:
        train_one(processed, root / "artifacts", reg, model, mode, "host", seed=0)
    return root


def host_split_copy(extracted_lab, tmp_path_factory, name: str) -> Path:
    """A copy of the extracted lab's processed folder, with a host split on
    HOST_TRAIN: what module fixtures that train or read split data start from."""
    from core.registry import load_registry
    from core.split import SplitConfig, make_split
    paths, _ = extracted_lab
    processed = tmp_path_factory.mktemp(name) / "processed"
    shutil.copytree(paths.processed, processed)
    make_split(processed, SplitConfig("host", HOST_TRAIN, seed=0), load_registry())
    return processed


def install_lab(root: Path, home: LabPaths) -> LabPaths:
    shutil.copytree(root / "data", home.data, dirs_exist_ok=True)
    shutil.copytree(root / "artifacts", home.artifacts, dirs_exist_ok=True)
    return home
