"""Fetch uPlot (the dashboard's charts) from the npm registry, pinned and checksummed.

    python scripts/fetch_uplot.py            # fetch, verify, write the vendor files
    python scripts/fetch_uplot.py --check    # verify the vendored files only (no network)

The tarball comes through the npm client (`npm pack`, so the registry npm is
configured with), must match the registry's published sha512 integrity, and
each file kept must match its pinned sha256. The files go, with uPlot's
licence, to core/dashboard/static/vendor/; they are third-party code, never
edited by hand (tests/core/test_dashboard_vendor.py checks the pins).
"""
from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "uplot"
VERSION = "1.6.32"
# `npm view uplot@1.6.32 dist.integrity`
INTEGRITY = "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
# path in the tarball -> (name in the vendor folder, sha256 of its bytes)
FILES = {
    "package/dist/uPlot.iife.min.js": ("uPlot.iife.min.js", "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"),
    "package/dist/uPlot.min.css": ("uPlot.min.css", "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"),
    "package/LICENSE": ("uPlot.LICENSE", "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd"),
}
VENDOR = Path(__file__).resolve().parent.parent / "core" / "dashboard" / "static" / "vendor"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check() -> list[str]:
    """Problems with the vendored files (empty when every pin holds)."""
    problems = []
    for name, digest in FILES.values():
        path = VENDOR / name
        if not path.exists():
            problems.append(f"{path}: missing (run `python scripts/fetch_uplot.py`)")
        elif sha256(path.read_bytes()) != digest:
            problems.append(f"{path}: sha256 {sha256(path.read_bytes())} is not the pinned {digest}")
    return problems


def fetch() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent"],
                       check=True, stdout=subprocess.DEVNULL)
        tgz = next(Path(tmp).glob("*.tgz"))
        blob = tgz.read_bytes()
        algo, want = INTEGRITY.split("-", 1)
        got = base64.b64encode(hashlib.new(algo, blob).digest()).decode()
        if got != want:
            sys.exit(f"{tgz.name}: {algo} {got} is not the registry's {want}; not vendoring it")
        VENDOR.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tgz) as tar:
            for member, (name, digest) in FILES.items():
                data = tar.extractfile(member).read()
                if sha256(data) != digest:
                    sys.exit(f"{member}: sha256 {sha256(data)} is not the pinned {digest}")
                (VENDOR / name).write_bytes(data)
                print(f"{name}: {len(data):,} bytes, sha256 {sha256(data)}")


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        issues = check()
        print("\n".join(issues) if issues else f"uPlot {VERSION}: every vendored file matches its pin")
        sys.exit(1 if issues else 0)
    fetch()
