"""Prepared labs shared by the command tests: build once per module, copy into
each test's own home."""
from __future__ import annotations

import shutil
from pathlib import Path

from core.paths import LabPaths


HOST_TRAIN = ("lab-thinkpad", "lab-nuc", "lab-desktop")


# The session's trained checkpoints, each trained once (host split, seed 0,
# default settings) and copied into every lab that asks for it: seven modules
# used to train their own gbt.
_SHARED: dict[str, Path] = {}


def _shared_root(extracted_lab, tmp_path_factory) -> Path:
    from core.registry import load_registry
    from core.split import SplitConfig, make_split
    if "root" not in _SHARED:
        paths, _ = extracted_lab
        root = tmp_path_factory.mktemp("shared_models")
        shutil.copytree(paths.processed, root / "data" / "processed")
        make_split(root / "data" / "processed", SplitConfig("host", HOST_TRAIN), load_registry())
        _SHARED["root"] = root
    return _SHARED["root"]


def trained_lab(extracted_lab, tmp_path_factory, name: str, models: list[tuple[str, str]],
                extra_splits: tuple = ()) -> Path:
    """A lab root (data/, artifacts/) with the extracted lab, a host split on
    HOST_TRAIN, any `extra_splits` (SplitConfig) and `models` ((name, mode))
    trained on the host split. Module fixtures build one; `install_lab` copies
    it into each test's own home."""
    from core.lab import Lab, Ref
    from core.registry import load_registry
    from core.split import make_split
    from core.train import train_one
    shared = _shared_root(extracted_lab, tmp_path_factory)
    source = Lab(shared / "data" / "processed", shared / "artifacts")
    root = tmp_path_factory.mktemp(name)
    processed = root / "data" / "processed"
    shutil.copytree(source.processed, processed)
    reg = load_registry()
    for cfg in extra_splits:
        make_split(processed, cfg, reg)
    target = Lab(processed, root / "artifacts")
    for model, mode in models:
        ref = Ref("host", model, mode)
        if not source.header(ref).exists():
            train_one(source.processed, source.artifacts, reg, model, mode, "host", seed=0)
        shutil.copytree(source.checkpoint(ref), target.checkpoint(ref))
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


def install_lab(root: Path, home: LabPaths, store_of: LabPaths | None = None) -> LabPaths:
    """The prepared lab `root` copied into `home`, and with `store_of` that
    lab's store too (what predict, the watch and replays read)."""
    shutil.copytree(root / "data", home.data, dirs_exist_ok=True)
    shutil.copytree(root / "artifacts", home.artifacts, dirs_exist_ok=True)
    if store_of is not None:
        shutil.copytree(store_of.default_store, home.default_store)
    return home
