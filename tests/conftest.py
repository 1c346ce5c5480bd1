"""Shared fixtures: every test runs in its own lab home under tmp_path."""
from __future__ import annotations

import os
from pathlib import Path

# Worker pools cost a second of CPU each to start; the tests' stores are small
# enough that one process is faster. Tests of parallel behaviour pass workers.
os.environ.setdefault("CIS490_WORKERS", "1")
# One thread per library: the tests' batches are tiny, and a second OpenMP
# thread (torch) spins for its share of work it is never given.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# aeon (the dev extra's reference implementations, tests/core/test_rocket.py)
# compiles its numba kernels on first use: 70 CPU-seconds on every fresh venv,
# as CI's is, against a few seconds to run them as Python on a dozen series.
os.environ.setdefault("NUMBA_DISABLE_JIT", "1")
# No figures: drawing them is two thirds of an eval's time in SVG
# (bench/evaluation.py), and eval runs in most slow modules. The
# tests that read figures ask for them (the `figures` fixture: SVG, the text
# they read); tests of the formats set all three.
os.environ.setdefault("CIS490_FIGURE_FORMATS", "none")


def _keep_freed_memory() -> None:
    """glibc hands a large freed block back to the kernel and faults it in
    again, page by page, at the next allocation of its size (test_models: 1.3
    million page faults, 0.3 million with this; system time is a sixth of the
    suite's CPU time). Kept instead (blocks up to 32 MiB from the heap, the
    heap never trimmed), in this process (mallopt) and in the ones it starts
    (the environment)."""
    import ctypes
    import ctypes.util
    settings = {"MALLOC_MMAP_THRESHOLD_": (-3, 32 << 20), "MALLOC_TRIM_THRESHOLD_": (-1, (1 << 31) - 1),
                "MALLOC_TOP_PAD_": (-2, 256 << 20)}
    for name, (_, value) in settings.items():
        os.environ.setdefault(name, str(value))
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):       # not glibc: nothing to tune
        return
    for option, value in settings.values():
        mallopt(option, value)


_keep_freed_memory()

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from cis490cli.app import app  # noqa: E402
from core.paths import LabPaths  # noqa: E402
from core.synth import SynthConfig, generate_store  # noqa: E402

TINY = SynthConfig(episodes=48, hosts=4, duration_s=60.0, seed=3, fault_rate=0.45, in_flight=1)


_base_install = None


def pytest_collection_modifyitems(session, config, items):
    """Start building the base-install venv as soon as a selected test needs it."""
    global _base_install
    if any("base_install" in getattr(item, "fixturenames", ()) for item in items):
        from tests.serving import BaseInstall
        _base_install = BaseInstall()


def pytest_sessionfinish(session, exitstatus):
    if _base_install is not None:
        _base_install.remove()


@pytest.fixture
def base_install() -> Path:
    """The python of a venv holding only cis490's base install (no torch)."""
    import os
    try:
        return _base_install.wait()
    except (RuntimeError, TimeoutError) as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(autouse=True)
def lab_home(tmp_path, monkeypatch) -> LabPaths:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CIS490_HOME", str(home))
    # A researcher stands in the lab: relative paths on the command line
    # resolve against the shell's directory (tests/commands/test_paths.py
    # covers a shell elsewhere).
    monkeypatch.chdir(home)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    return LabPaths(home)


@pytest.fixture
def figures(monkeypatch):
    """Figures drawn, as SVG, for the tests that read them."""
    monkeypatch.setenv("CIS490_FIGURE_FORMATS", "svg")


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)
    return invoke


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A small store with every fault kind; shared read-only by the session."""
    out = tmp_path_factory.mktemp("lab") / "store"
    generate_store(TINY, out, workers=1)
    return out


def _small_chunks():
    from core.extract import ExtractConfig
    return ExtractConfig(part_windows=256, chunk_episodes=32)


SMALL_CHUNKS = _small_chunks()
LAB = SynthConfig(episodes=100, hosts=4, duration_s=60.0, seed=5, fault_rate=0.05, in_flight=0)


@pytest.fixture(scope="session")
def extracted_lab(tmp_path_factory):
    """A validated and extracted lab (small chunks and tensor parts, so several of each)."""
    from core.extract import ExtractConfig
    from core.extract.pipeline import run_extract
    from core.registry import load_registry
    from core.validate.pipeline import run_validation

    root = tmp_path_factory.mktemp("xlab")
    paths = LabPaths(root)
    generate_store(LAB, paths.default_store, workers=1)
    reg = load_registry()
    index = paths.processed / "validation_v1.parquet"
    run_validation(paths.default_store, index, reg, workers=1)
    summary = run_extract(paths.processed, index, paths.default_store, reg, SMALL_CHUNKS, workers=1)
    return paths, summary

