"""Process pools that are safe next to polars and torch, and quiet on Ctrl-C.

Both start thread pools on first use; a forked child inherits their locks
in whatever state they were and can hang. Workers are therefore spawned.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator


WORKERS_ENV = "CIS490_WORKERS"


def default_workers() -> int:
    """Worker processes when `-j` is not given: $CIS490_WORKERS, else one
    per core, at most 4. (Read when the options are defined, so a value that
    is not a positive integer falls back rather than breaking `--help`.)"""
    raw = os.environ.get(WORKERS_ENV, "")
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    return max(1, min(4, os.cpu_count() or 1))


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    # Blocked, not ignored: a blocked signal stays pending and reaches the
    # parent when the block ends (an ignored one was lost, and a Ctrl-C during
    # the submission let the whole run go on), while a child inherits the
    # block across exec until its initializer ignores SIGINT.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def pool_map(pool: ProcessPoolExecutor, fn: Callable, jobs: Iterable, chunksize: int = 1) -> Iterator:
    """`pool.map`, whose workers never see Ctrl-C. Workers are spawned while
    the jobs are submitted, with SIGINT blocked: a child starts with it
    blocked and ignores it before unblocking, so even a worker still
    importing at Ctrl-C prints nothing. A Ctrl-C during the submission waits
    for its end, then interrupts the parent."""
    with _sigint_blocked():
        return pool.map(fn, jobs, chunksize=chunksize)


def _die_with(parent: int) -> None:
    # A parent killed with -9 cannot stop its workers, and a worker in the
    # middle of a long episode would run on for minutes (about 100 MB each):
    # a worker whose parent is gone (it was adopted) exits at once.
    while os.getppid() == parent:
        time.sleep(0.25)
    os._exit(1)


def _worker_init(parent: int, initializer: Callable | None, initargs: tuple) -> None:
    # Ctrl-C in a terminal reaches the whole process group. Workers ignore it:
    # the parent alone reacts (one line, "interrupted") and cancels them, instead
    # of every worker printing its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})     # blocked since the spawn: now ignored
    threading.Thread(target=_die_with, args=(parent,), daemon=True, name="die-with-parent").start()
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def process_pool(workers: int, initializer=None, initargs: tuple = ()) -> Iterator[ProcessPoolExecutor]:
    # Parallelism comes from the processes: a polars thread pool in each worker
    # only fights the others for the same cores. Spawned children read this at
    # import; the parent's own polars is already initialised and unaffected.
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
    except BaseException:
        stop_workers(pool)
        raise
    pool.shutdown(wait=True)


STOP_GRACE_S = 2.0     # a worker told to stop has this long before it is killed


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """After an error, Ctrl-C or SIGTERM: jobs not started are dropped and the
    running ones stopped where they are, not waited for. A worker busy for
    minutes on one episode, or blocked in a read that never returns, kept the
    parent from exiting (SIGTERM took 100 s, past systemd's 90 s stop timeout).
    Each gets SIGTERM, then SIGKILL after STOP_GRACE_S."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(1.0)
