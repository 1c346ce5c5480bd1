"""Third-party browser code is exactly what the pinned fetch script vouches for."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fetch_script():
    spec = importlib.util.spec_from_file_location("fetch_uplot", ROOT / "scripts" / "fetch_uplot.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_vendored_uplot_matches_its_pins():
    mod = _fetch_script()
    assert mod.check() == []
    assert mod.VERSION == "1.6.32" and mod.INTEGRITY.startswith("sha512-")
    names = {name for name, _ in mod.FILES.values()}
    assert names == {p.name for p in mod.VENDOR.iterdir()}          # nothing else in the vendor folder
    assert "MIT License" in (mod.VENDOR / "uPlot.LICENSE").read_text()


def test_a_changed_vendor_file_is_caught(tmp_path, monkeypatch):
    mod = _fetch_script()
    for name, _ in mod.FILES.values():
        (tmp_path / name).write_bytes((mod.VENDOR / name).read_bytes())
    (tmp_path / "uPlot.iife.min.js").write_bytes(b"/* edited */" + (mod.VENDOR / "uPlot.iife.min.js").read_bytes())
    monkeypatch.setattr(mod, "VENDOR", tmp_path)
    problems = mod.check()
    assert len(problems) == 1 and "uPlot.iife.min.js: sha256" in problems[0]
