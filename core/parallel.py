"""Process pools that are safe next to polars and torch, and quiet on Ctrl-C.

Both start thread pools on first use; a forked child inherits their locks
in whatever state they were and can hang. Workers are therefore spawned.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _worker_init(initializer: Callable | None, initargs: tuple) -> None:
    # Ctrl-C in a terminal reaches the whole process group. Workers ignore it:
    # the parent alone reacts (one line, "interrupted") and cancels them, instead
    # of every worker printing its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def process_pool(workers: int, initializer=None, initargs: tuple = ()) -> Iterator[ProcessPoolExecutor]:
    # Parallelism comes from the processes: a polars thread pool in each worker
    # only fights the others for the same cores. Spawned children read this at
    # import; the parent's own polars is already initialised and unaffected.
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(initializer, initargs))
    try:
        yield pool
    except BaseException:
        # Jobs not yet started are dropped, not run to completion after an error or Ctrl-C.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
