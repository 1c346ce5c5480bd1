"""A module imported on first use (pyarrow): the Pi's base install serves
bundles without it, yet the modules that write parquet with it are on the
serving path's imports (core.extract holds the window cut replays use)."""
from __future__ import annotations

import importlib


class LazyModule:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        # import_module is a dict lookup once the module is loaded.
        return getattr(importlib.import_module(self._name), attr)
