"""Resolve cis490's base install (what the Pi serves bundles with) for the
Raspberry Pi: 64-bit Raspberry Pi OS (aarch64, glibc 2.36), Python 3.11. Binary
wheels only, as the Pi installs them; prints every wheel and the total.

    python scripts/pi_wheels.py [--python 3.11] [--glibc 2.36] [--keep DIR]

Needs the package registry (pip download), nothing else of the lab."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_package_source(dest: Path) -> Path:
    """What building cis490's wheel reads, copied to `dest` (a build in the
    checkout itself would leave build/ there)."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "cis490cli", "commands", "core"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(ROOT / name, dest / name)
    return dest


def platforms(glibc_minor: int) -> list[str]:
    """Every manylinux tag a glibc 2.<minor> aarch64 system accepts."""
    return ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, glibc_minor + 1)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default="3.11", help="Python version of the Pi [3.11].")
    ap.add_argument("--glibc", default="2.36", help="glibc of the Pi's OS [2.36: Raspberry Pi OS bookworm].")
    ap.add_argument("--keep", type=Path, help="Keep the wheels in this folder (e.g. to copy to an offline Pi).")
    args = ap.parse_args()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version",
               args.python, "--implementation", "cp", "--dest", str(out)]
        for p in platforms(int(args.glibc.split(".")[1])):
            cmd += ["--platform", p]
        done = subprocess.run(cmd + deps, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"pip download failed:\n{done.stderr.strip()}", file=sys.stderr)
            return 1
        # cis490 itself: a pure-Python wheel.
        src = copy_package_source(Path(tmp) / "src")
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
                                str(src)], capture_output=True, text=True)
        if built.returncode != 0:
            print(f"building cis490's wheel failed:\n{built.stderr.strip()}", file=sys.stderr)
            return 1
        wheels = sorted(out.glob("*.whl"), key=lambda p: -p.stat().st_size)
        total = sum(p.stat().st_size for p in wheels)
        print(f"Base install for aarch64 (glibc {args.glibc}), Python {args.python}: {len(wheels)} wheels")
        for p in wheels:
            print(f"  {p.stat().st_size / 1e6:8.2f} MB  {p.name}")
        print(f"  {total / 1e6:8.2f} MB  total")
        names = " ".join(p.name.lower() for p in wheels)
        heavy = [n for n in ("torch", "nvidia", "scikit_learn", "xgboost", "scipy") if n in names]
        if heavy:
            print(f"unexpected in the base install: {', '.join(heavy)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
