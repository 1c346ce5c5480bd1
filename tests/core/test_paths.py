import os
import stat

import pytest

from core.paths import atomic_dir, atomic_path, atomic_write_text, resolve_cli_path


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_honour_the_umask(tmp_path, umask_022):
    """Regression: splits, checkpoints and reports were 0600 (mkstemp), so
    labmates in the group could not read them, while features were 0644."""
    atomic_write_text(tmp_path / "report.json", "{}")
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644
    with atomic_dir(tmp_path / "ck") as d:
        (d / "w").write_text("x")
    assert stat.S_IMODE((tmp_path / "ck").stat().st_mode) == 0o755
    os.umask(0o002)
    with atomic_path(tmp_path / "split.parquet") as t:
        t.write_text("x")
    assert stat.S_IMODE((tmp_path / "split.parquet").stat().st_mode) == 0o664


def test_atomic_dir_keeps_the_old_directory_on_failure(tmp_path):
    tmp_path = tmp_path / "models"
    target = tmp_path / "ck"
    target.mkdir(parents=True)
    (target / "header.json").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "header.json").write_text("new, half written")
            raise RuntimeError("training blew up")
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]
    assert (target / "header.json").read_text() == "old"
    with atomic_dir(target) as d:
        (d / "header.json").write_text("new")
    assert (target / "header.json").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_cli_paths_resolve_against_the_shell_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_cli_path("store", tmp_path / "default") == tmp_path / "store"
    assert resolve_cli_path(None, tmp_path / "default") == tmp_path / "default"
    assert str(resolve_cli_path("/abs/x", tmp_path)) == "/abs/x"


def test_a_dead_run_s_temporaries_are_removed_by_the_next_writer_of_the_same_output(tmp_path):
    """Regression: a run killed with -9 left empty `.confusion.png.*` files and
    `.gru_realistic.*/` folders (copied to the Pi by the README's rsync) that
    no later run removed. A live run's temporaries are left alone."""
    import subprocess
    import sys
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    figures, deploy = tmp_path / "eval", tmp_path / "deploy"
    figures.mkdir()
    deploy.mkdir()
    left = figures / f".confusion.png.~{dead.pid}~k2j3.png"
    left.write_bytes(b"")
    other = figures / f".per_profile.png.~{dead.pid}~a1.png"      # another output's: its own writer removes it
    other.write_bytes(b"")
    live = figures / f".confusion.png.~{os.getppid()}~x9.png"      # a running process's
    live.write_bytes(b"")
    bundle = deploy / f".gru_realistic.~{dead.pid}~q7"
    (bundle / "sub").mkdir(parents=True)
    with atomic_path(figures / "confusion.png", ".png") as tmp:
        tmp.write_bytes(b"png")
    with atomic_dir(deploy / "gru_realistic") as tmp:
        (tmp / "model.onnx").write_bytes(b"onnx")
    assert not left.exists() and not bundle.exists()
    assert other.exists() and live.exists()
    assert (figures / "confusion.png").read_bytes() == b"png"
    assert sorted(p.name for p in deploy.iterdir()) == ["gru_realistic"]
