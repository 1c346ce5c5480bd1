"""Process pools that are safe next to polars and torch.

Both start thread pools on first use; a forked child inherits their locks
in whatever state they were and can hang. Workers are therefore spawned.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def process_pool(workers: int, initializer=None, initargs: tuple = ()) -> ProcessPoolExecutor:
    # Parallelism comes from the processes: a polars thread pool in each worker
    # only fights the others for the same cores. Spawned children read this at
    # import; the parent's own polars is already initialised and unaffected.
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=initializer, initargs=initargs)
