"""Replay a lab's exported bundles on the Pi's architecture and compare with eval.

Builds (once, cached) a Debian bookworm arm64 root with `debootstrap`, run
through `qemu-user-static` (emulating a Cortex-A72, the Raspberry Pi 4's
CPU), installs cis490's base install there from the aarch64 wheels
`scripts/pi_wheels.py` resolves (no torch, no network inside the root), and
replays every exported bundle of the split over its held-out episodes one
window at a time, through the code path `cis490 serve --replay` takes on the
Pi. Every window's label must equal the one `cis490 eval` wrote in
predictions.parquet, and its probabilities be within 1e-5.

    sudo python scripts/pi_check.py --home <lab home> [--split host] [--cache ~/.cache/cis490-pi]

Needs root (debootstrap, chroot) and Debian's debootstrap, qemu-user-static
and binfmt-support (`apt-get install debootstrap qemu-user-static
binfmt-support`). Minutes to build the root the first time, a minute or two to
install; too slow for CI. Timings under emulation are not the Pi's.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CPU = "cortex-a72"
PROBABILITY_ATOL = 1e-5

# Runs inside the arm64 root with the base install: each bundle over the
# episodes of its split's test part that the copied store holds.
PI_SIDE = r"""
import json, sys
from pathlib import Path
import numpy as np
from core.deploy.bundle import bundle_registry, load_bundle
from core.extract.episode import episode_grid, window_id
from core.live.producers import _spec
from core.store import Episode
deploy, store, out = Path(sys.argv[1]), Path(sys.argv[2]), {}
for d in sorted(p for p in deploy.iterdir() if p.is_dir()):
    m = load_bundle(d)
    registry, spec = bundle_registry(d, m.header), _spec(m.header)
    rows = {}
    for episode_id, rel in m.header["test_episodes"]:
        if not (store / rel / "manifest.json").exists():
            continue
        grid = episode_grid(Episode.open(store / rel, rel), registry, spec)
        for k in range(grid.n):
            values, mask, features = grid.window_at(k)
            inputs = features[None] if m.input_kind == "summary" else (values[None], mask[None])
            p = np.asarray(m.predict_proba(inputs))[0]
            rows[window_id(grid.episode_id, float(grid.t_center_s(k)))] = [float(v) for v in p]
    out[d.name] = {"classes": list(m.classes), "windows": rows}
print(json.dumps(out))
"""


class CheckError(Exception):
    pass


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode:
        raise CheckError(f"{' '.join(cmd[:6])} ... failed ({done.returncode}):\n{done.stderr.strip()[-2000:]}")
    return done


def preflight() -> None:
    if os.geteuid() != 0:
        raise CheckError("needs root (debootstrap and chroot): run it with sudo")
    for tool in ("debootstrap", "qemu-aarch64-static", "chroot"):
        if not shutil.which(tool):
            raise CheckError(f"{tool} not found: apt-get install debootstrap qemu-user-static binfmt-support")
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        if not Path("/proc/sys/fs/binfmt_misc/register").exists():
            subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"])
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
        if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
            raise CheckError("binfmt_misc has no qemu-aarch64 handler: apt-get install binfmt-support "
                             "qemu-user-static, then update-binfmts --enable qemu-aarch64")


def arm64_root(cache: Path) -> Path:
    """Debian bookworm arm64 with Python 3.11 (what the Pi's OS ships), built once."""
    root = cache / "root"
    if (root / ".ready").exists():
        return root
    tmp = cache / "root.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"building the arm64 root in {root} (once, a few minutes) ...", flush=True)
    run(["debootstrap", "--arch=arm64", "--variant=minbase", "--include=python3,python3-venv",
         "bookworm", str(tmp), "http://deb.debian.org/debian"])
    (tmp / ".ready").write_text("debian bookworm arm64\n")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return root


def in_root(root: Path, *cmd: str) -> subprocess.CompletedProcess:
    # A clean environment (the host's PYTHONPATH or pip settings are not the
    # Pi's); QEMU_CPU makes qemu-user emulate the Pi 4's core. The root's
    # /sys stays unmounted: onnxruntime segfaulted on import under qemu with
    # the host's.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", "QEMU_CPU": CPU,
           "PYTHONDONTWRITEBYTECODE": "1"}
    return run([shutil.which("chroot") or "/usr/sbin/chroot", str(root), *cmd], env=env)


def install_base(root: Path) -> None:
    """The base install from the aarch64 wheels, offline, into /opt/cis490."""
    wheels = root / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    print("resolving the Pi's wheels (scripts/pi_wheels.py) ...", flush=True)
    run([sys.executable, str(ROOT / "scripts" / "pi_wheels.py"), "--keep", str(wheels)])
    if not (root / "opt" / "cis490" / "bin" / "python").exists():
        in_root(root, "/usr/bin/python3", "-m", "venv", "/opt/cis490")
    print("installing the base install in the arm64 root ...", flush=True)
    in_root(root, "/opt/cis490/bin/python", "-m", "pip", "install", "-q", "--no-index", "--find-links", "/wheels",
            "--force-reinstall", "cis490")
    done = in_root(root, "/opt/cis490/bin/python", "-c",
                   "import importlib.util as u, platform; print(platform.machine(), "
                   "[m for m in ('torch', 'xgboost', 'sklearn') if u.find_spec(m)])")
    machine = done.stdout.split()[0]
    if machine != "aarch64" or "[]" not in done.stdout:
        raise CheckError(f"the root is not an aarch64 base install: {done.stdout.strip()}")


def copy_lab(root: Path, home: Path, split: str) -> list[Path]:
    """The split's bundles and the store's copies of their test episodes, into /lab."""
    deploy = home / "artifacts" / "deploy" / split
    bundles = sorted(p for p in deploy.iterdir() if (p / "bundle.json").exists()) if deploy.is_dir() else []
    if not bundles:
        raise CheckError(f"{deploy}: no bundle (run `cis490 export all` first)")
    lab = root / "lab"
    shutil.rmtree(lab, ignore_errors=True)
    store = home / "data" / "raw" / "store"
    for b in bundles:
        shutil.copytree(b, lab / "deploy" / b.name)
        for _, rel in json.loads((b / "bundle.json").read_text())["test_episodes"]:
            if (store / rel).is_dir() and not (lab / "store" / rel).exists():
                shutil.copytree(store / rel, lab / "store" / rel)
    return bundles


def eval_predictions(home: Path, split: str, name: str):
    import polars as pl
    found = sorted((home / "artifacts" / "eval" / split / name).glob("test-*/predictions.parquet"),
                   key=lambda p: p.stat().st_mtime)
    if not found:
        raise CheckError(f"no eval of {name} on {split}/test: run `cis490 eval {name.replace('_', ' --mode ')}`")
    return pl.read_parquet(found[-1])


def compare(home: Path, split: str, pi: dict) -> list[dict]:
    import numpy as np
    out = []
    for name, got in pi.items():
        want = eval_predictions(home, split, name)
        classes = got["classes"]
        want = want.filter(want["window_id"].is_in(list(got["windows"])))
        p_want = want.select([f"p_{c}" for c in classes]).to_numpy()
        p_got = np.array([got["windows"][w] for w in want["window_id"].to_list()])
        labels = np.array(classes)[p_got.argmax(1)] if len(p_got) else np.array([])
        equal = int((labels == want["predicted"].to_numpy()).sum())
        out.append({"model": name, "windows": len(want), "pi_windows": len(got["windows"]), "labels_equal": equal,
                    "max_abs_diff": float(np.abs(p_got - p_want).max()) if len(p_got) else 0.0})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="The lab home (with artifacts/deploy and eval reports).")
    ap.add_argument("--split", default="host")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "cis490-pi")
    a = ap.parse_args()
    try:
        preflight()
        a.cache.mkdir(parents=True, exist_ok=True)
        root = arm64_root(a.cache)
        install_base(root)
        copy_lab(root, a.home.resolve(), a.split)
        with tempfile.NamedTemporaryFile("w", suffix=".py", dir=root, delete=False) as f:
            f.write(PI_SIDE)
        try:
            print(f"replaying every bundle on the held-out episodes under qemu ({CPU}) ...", flush=True)
            done = in_root(root, "/opt/cis490/bin/python", "/" + Path(f.name).name, "/lab/deploy", "/lab/store")
        finally:
            Path(f.name).unlink()
        rows = compare(a.home.resolve(), a.split, json.loads(done.stdout.strip().splitlines()[-1]))
    except CheckError as exc:
        print(f"pi_check: {exc}", file=sys.stderr)
        return 1
    print(f"\n{'bundle':<24}{'windows':>9}{'labels equal':>14}{'max |p diff|':>14}")
    ok = True
    for r in rows:
        good = r["labels_equal"] == r["windows"] == r["pi_windows"] and r["max_abs_diff"] <= PROBABILITY_ATOL
        ok &= good
        print(f"{r['model']:<24}{r['windows']:>9,}{r['labels_equal']:>14,}{r['max_abs_diff']:>14.1e}"
              f"{'' if good else '   DIFFERS'}")
    print(f"aarch64 ({CPU} under qemu-user) against eval on the workstation: "
          f"{'every label equal, probabilities within 1e-5' if ok else 'NOT equal'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
