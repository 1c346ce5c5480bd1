"""Leave-one-host-out: one split per host, that host the test part, the
others train and validation (`cis490 split --recipe host --rotate`), and
the figure the lab cares most about: every device held out once, none
averaged away. A rotation is named (`host-rotation`); every command that
takes `--split` takes that name and runs over its folds, and eval adds a
report across them (docs/methods.md, "Leave-one-host-out").
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import Cis490Error
from core.lab import Lab
from core.paths import atomic_write_text, ensure_dir

ROTATION = "host-rotation"


class RotationError(Cis490Error):
    """A rotation cannot be made or read as asked."""


FOLD_PREFIX = "host-out-"


def fold_name(host: str) -> str:
    """The split holding out `host`: a split name whatever the store called
    the host (core.safenames.file_component: `../../evil` cannot name a path,
    and distinct hosts give distinct folds). The rotation's manifest keeps
    the host as the store gave it."""
    from core.safenames import file_component
    from core.splitparams import SPLIT_NAME_MAX
    return f"{FOLD_PREFIX}{file_component(host, SPLIT_NAME_MAX - len(FOLD_PREFIX))}"


def rotation_path(processed: Path, name: str = ROTATION) -> Path:
    return Lab(processed, Path()).splits / "rotations" / f"{name}.json"


def folds(processed: Path, name: str) -> list[str]:
    """The split names a --split NAME stands for: a rotation's folds, or the split itself."""
    return list(fold_hosts(processed, name)) or [name]


def fold_hosts(processed: Path, name: str) -> dict[str, str]:
    """A rotation's folds and the host each holds out, in order; empty when
    `name` is no rotation."""
    path = rotation_path(processed, name)
    if not path.exists():
        return {}
    try:
        return {f["split"]: f["host"] for f in json.loads(path.read_text())["folds"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RotationError(f"{path}: damaged ({exc}); re-run `cis490 split --recipe host --rotate`") from None


def single(processed: Path, name: str, command: str) -> str:
    """`name` itself, for a command that runs on one split; a rotation's name is refused with its folds."""
    fs = folds(processed, name)
    if fs != [name]:
        raise RotationError(f"{name} is a rotation of {len(fs)} splits; `cis490 {command}` takes one of them "
                            f"(e.g. --split {fs[0]})")
    return name


def make_rotation(processed: Path, registry, val_frac: float, seed: int, max_share: float, make) -> dict:
    """One host split per host (`make(cfg, name)` makes and saves one), and
    the rotation's manifest: which split holds out which host."""
    from core.extract import read_extracted_episodes
    from core.split import SplitConfig, SplitError
    eps = read_extracted_episodes(processed).filter((pl.col("status") == "ok") & (pl.col("n_windows") > 0))
    hosts = sorted(eps["host_id"].unique().to_list())
    if len(hosts) < 2:
        raise RotationError(f"a rotation needs at least two hosts; the extracted episodes have {len(hosts)}")
    out = []
    for host in hosts:
        cfg = SplitConfig("host", tuple(h for h in hosts if h != host), val_frac, 0.2, seed, max_share)
        try:
            result = make(cfg, fold_name(host))
        except SplitError as exc:
            raise RotationError(f"holding out {host}: {exc}") from None
        out.append({"host": host, "split": result.recipe, "meta": result.meta})
    manifest = {"name": ROTATION, "recipe": "host", "val_frac": val_frac, "seed": seed,
                "folds": [{"host": f["host"], "split": f["split"],
                           "membership_sha256": f["meta"]["membership_sha256"]} for f in out]}
    path = rotation_path(processed)
    ensure_dir(path.parent)
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
    return {**manifest, "fold_meta": [f["meta"] for f in out]}


def rotation_report(artifacts: Path, processed: Path, name: str, reports: list[dict], phases: list[str],
                    resamples: int, seed: int) -> dict:
    """Per held-out host its macro-F1 with its CI (from its fold's own
    report), and the mean over hosts with a 95% CI that accounts for the
    rotation: each fold's test episodes are resampled on their own (the
    folds' test parts are disjoint), and each resample's mean over the
    folds gives the interval."""
    from core.evaluate.bootstrap import bootstrap_scores, percentile_ci
    from core.lab import Ref, eval_identity, settings_of
    rng = np.random.default_rng(seed)
    code = {p: i for i, p in enumerate(phases)}
    k = len(phases)
    per_fold, draws = [], []
    lab = Lab(processed, artifacts)
    fold_names = folds(processed, name)
    for rep, split in zip(reports, fold_names):
        preds = pl.read_parquet(lab.predictions(Ref(split, rep["model"], rep["mode"]), settings_of(rep)),
                                columns=["episode_id", "truth", "predicted"])
        _, groups = np.unique(preds["episode_id"].to_numpy(), return_inverse=True)
        boot = bootstrap_scores(preds["truth"].replace_strict(code).to_numpy(),
                                preds["predicted"].replace_strict(code).to_numpy(), groups, k, rep["unit"],
                                resamples, rng)
        draws.append(boot["macro_f1"])
        host = [h["host"] for h in rep["per_host"]]
        per_fold.append({"host": host[0] if len(host) == 1 else ",".join(host), "split": split,
                         "macro_f1": rep["macro_f1"], "macro_f1_ci": rep["macro_f1_ci"],
                         "windows": rep["windows"], "episodes": rep["episodes"]})
    mean_draws = np.mean(np.vstack(draws), axis=0)
    f1 = [f["macro_f1"] for f in per_fold]
    worst = min(per_fold, key=lambda f: f["macro_f1"])
    return {"rotation": name, "model": reports[0]["model"], "mode": reports[0]["mode"], "folds": per_fold,
            # What status checks it against: each fold's evaluation, by the content of its predictions.
            "evals": [{**eval_identity(rep), "name": Ref(split, rep["model"], rep["mode"]).key}
                      for rep, split in zip(reports, fold_names)],
            "mean_macro_f1": float(np.mean(f1)), "mean_macro_f1_ci": percentile_ci(mean_draws),
            "worst": {"host": worst["host"], "macro_f1": worst["macro_f1"]},
            "method": "mean over the held-out hosts of each fold's macro-F1; CI: percentile interval of the mean "
                      "over resamples drawn within each fold's test episodes", "resamples": resamples, "seed": seed}


def across_hosts(pair: dict) -> dict:
    """The spread between held-out hosts, beside the within-host resampling
    (which holds the hosts fixed and so says nothing of another device):
    how many hosts each model wins, a 95% t interval of the mean gap with the
    host as the unit (wide with few hosts, as it should be), the exact
    sign-flip p over hosts (2^n flips: with 4 hosts it cannot go below
    0.125), and the verdict in words."""
    from scipy import stats
    gaps = np.array([h["gap"] for h in pair["per_host"]], dtype=float)
    n = len(gaps)
    wins = {pair["a"]: int((gaps > 0).sum()), pair["b"]: int((gaps < 0).sum())}
    mean = float(gaps.mean())
    if n >= 2 and gaps.std(ddof=1) > 0:
        half = float(stats.t.ppf(0.975, n - 1) * gaps.std(ddof=1) / np.sqrt(n))
        interval = [mean - half, mean + half]
    else:
        interval = [mean, mean] if n >= 2 else [float("-inf"), float("inf")]
    signs = np.array(np.meshgrid(*[[-1, 1]] * n)).reshape(n, -1).T if n else np.zeros((1, 0))
    flipped = np.abs((signs * gaps).mean(axis=1))
    p_hosts = float((flipped >= abs(mean) - 1e-12).mean()) if n else 1.0
    leader = pair["a"] if mean > 0 else pair["b"]
    within = (f"{pair['winner']} is better on these {n} hosts' episodes" if pair["winner"] != "n.s."
              else f"no difference on these {n} hosts' episodes")
    crossed = interval[0] > 0 or interval[1] < 0
    across = (f"across hosts, {leader} wins {wins[leader]} of {n} and the host-unit interval excludes 0"
              if crossed else f"across hosts, {leader} wins {wins[leader]} of {n}, and with {n} hosts the "
                              f"host-unit interval includes 0: not established for another device")
    return {"hosts_won": wins, "host_interval": interval, "p_hosts": p_hosts,
            "host_method": f"t interval of the mean gap over the {n} held-out hosts (host = unit); p: exact "
                           f"sign-flip over hosts ({2 ** n} flips)",
            "verdict": f"{within} (resampling episodes within each held-out host); {across}"}


def write_rotation_report(artifacts: Path, report: dict, settings: str) -> Path:
    from core.lab import Ref
    out = Lab(Path(), artifacts).rotation_report(Ref(report["rotation"], report["model"], report["mode"]), settings)
    ensure_dir(out.parent)
    atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    return out


def rotation_compare(artifacts: Path, processed: Path, name: str, fold_reports: list[dict], cfg,
                     phases: list[str]) -> dict:
    """Every pair of models over a rotation: each held-out host's paired
    macro-F1 gap (from its fold's comparison), and the mean gap over hosts
    with its 95% CI and p-value from the same resampling as the mean's
    macro-F1 (each fold's test episodes on their own, both models scored on
    the same draws), Holm-adjusted over the pairs."""
    import itertools

    from core.evaluate.bootstrap import bootstrap_p_value, holm, paired_gap, percentile_ci
    from core.lab import Ref
    lab = Lab(processed, artifacts)
    code = {p: i for i, p in enumerate(phases)}
    k = len(phases)
    models = fold_reports[0]["models"]
    fold_names = folds(processed, name)
    preds = []
    for split in fold_names:
        frames = [pl.read_parquet(lab.predictions(Ref.of_shown(split, m), cfg.settings),
                                  columns=["episode_id", "truth", "predicted"]) for m in models]
        preds.append(frames)
    pairs = []
    for i, j in itertools.combinations(range(len(models)), 2):
        draws, per_host = [], []
        for f, (split, rep) in enumerate(zip(fold_names, fold_reports)):
            a, b = preds[f][i], preds[f][j]
            _, groups = np.unique(a["episode_id"].to_numpy(), return_inverse=True)
            rng = np.random.default_rng([cfg.seed, i, j, f])
            draws.append(paired_gap(a["truth"].replace_strict(code).to_numpy(),
                                    a["predicted"].replace_strict(code).to_numpy(),
                                    b["predicted"].replace_strict(code).to_numpy(), groups, k, cfg.unit,
                                    cfg.resamples, rng))
            pair = next(p for p in rep["pairs"] if p["a"] == models[i] and p["b"] == models[j])
            per_host.append({"split": split, "gap": pair["gap"], "gap_ci": pair["gap_ci"]})
        mean = np.mean(np.vstack(draws), axis=0)
        gap = float(np.mean([h["gap"] for h in per_host]))
        pairs.append({"a": models[i], "b": models[j], "mean_gap": gap, "mean_gap_ci": percentile_ci(mean),
                      "p_value": bootstrap_p_value(mean), "per_host": per_host})
    if len(pairs) > 1:
        for pair, adj in zip(pairs, holm([p["p_value"] for p in pairs])):
            pair["p_holm"] = adj
    for pair in pairs:
        p = pair.get("p_holm", pair["p_value"])
        pair["winner"] = (pair["a"] if pair["mean_gap"] > 0 else pair["b"]) if p < 0.05 else "n.s."
    hosts = fold_hosts(processed, name)
    for pair in pairs:
        for h in pair["per_host"]:
            h["host"] = hosts[h["split"]]
        pair.update(across_hosts(pair))
    evals = [{**e, "name": Ref.of_shown(split, e["name"]).key}
             for split, rep in zip(fold_names, fold_reports) for e in rep.get("evals", [])]
    return {"rotation": name, "models": models, "pairs": pairs, "evals": evals, "unit": cfg.unit,
            "resamples": cfg.resamples,
            "seed": cfg.seed, "method": "mean over the held-out hosts of each fold's paired macro-F1 gap; CI and "
                                        "p from resamples drawn within each fold's test episodes, the same draws "
                                        "for both models; Holm over pairs"}
