"""What a split can and cannot claim, and whether a model lasts.

Pitfalls: Arp et al., "Dos and Don'ts of Machine Learning in Computer
Security" (USENIX Security 2022), where the split itself can show them.
Performance over time: TESSERACT (Pendlebury et al., USENIX Security 2019),
macro-F1 per time slice of `received_at` and AUT, the normalised area under
that curve. docs/methods.md, "What a split can claim".
"""
from __future__ import annotations

import re

import numpy as np
import polars as pl

from core.errors import ConfigError
from core.evaluate.bootstrap import bootstrap_scores, percentile_ci
from core.metrics import confusion, macro_f1_from_confusion

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_SLICE = "7d"


def parse_slice(text: str) -> int:
    """'7d', '12h', '30m', '2w' -> seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text or "")
    if not m or int(m.group(1)) == 0:
        raise ConfigError(f"--slice must be a positive whole number of m, h, d or w (e.g. 7d), got '{text}'")
    return int(m.group(1)) * _UNITS[m.group(2)]


def pitfalls(windows: pl.DataFrame, episodes: pl.DataFrame, part: str, unit: str, recipe: str,
             phases: list[str]) -> list[dict]:
    """Findings from the split itself, each with its figure, a sentence a
    researcher reads under the table, and the recipe that avoids it.

    windows: every window of the split (episode_id, part, sample_name, label_id).
    episodes: one row per split episode (episode_id, part, host_id, profile,
    received_ns)."""
    out = []
    scored, train = windows.filter(pl.col("part") == part), windows.filter(pl.col("part") == "train")
    train_samples = set(train["sample_name"].unique().to_list())
    shared = scored["sample_name"].is_in(list(train_samples)) if train_samples else pl.Series([False] * scored.height)
    share = float(shared.mean()) if scored.height else 0.0
    out.append({"id": "sample_overlap", "value": share,
                "finding": (f"{share:.0%} of {part} windows come from samples also in train: this split measures "
                            "new devices or runs of known samples, not unseen samples" if share else
                            f"no {part} window comes from a sample seen in train"),
                "avoid": "cis490 split --recipe sample" if share else None})
    ep_scored, ep_train = episodes.filter(pl.col("part") == part), episodes.filter(pl.col("part") == "train")
    if ep_train.height and ep_scored.height:
        latest = int(ep_train["received_ns"].max())
        early = int((ep_scored["received_ns"] < latest).sum())
        out.append({"id": "temporal_snooping", "value": early / ep_scored.height,
                    "finding": (f"{early} of {ep_scored.height} {part} episodes were received before the latest "
                                "train episode: the model saw the future it is scored on" if early else
                                f"every {part} episode was received after the last train episode"),
                    "avoid": "cis490 split --recipe time" if early else None})
    k = len(phases)

    def proportions(df: pl.DataFrame) -> np.ndarray:
        c = np.bincount(df["label_id"].to_numpy().astype(np.int64), minlength=k).astype(np.float64)
        return c / max(c.sum(), 1)

    p_scored, p_train = proportions(scored), proportions(train)
    tv = float(0.5 * np.abs(p_scored - p_train).sum())
    out.append({"id": "phase_proportions", "value": tv,
                "train": {phases[i]: float(p_train[i]) for i in range(k)},
                part: {phases[i]: float(p_scored[i]) for i in range(k)},
                "finding": (f"phase proportions differ between train and {part} by {tv:.2f} (total variation"
                            "; 0 is identical): class-weighted training and macro-F1 absorb some of it" if tv >= 0.1
                            else f"phase proportions in {part} are close to train's (total variation {tv:.2f})"),
                "avoid": None})
    hosts = sorted(set(episodes["host_id"].to_list()) - set(ep_scored["host_id"].to_list()))
    shared_hosts = sorted(set(ep_scored["host_id"].to_list()) & set(ep_train["host_id"].to_list()))
    out.append({"id": "hosts", "value": len(shared_hosts), "absent": hosts, "shared_with_train": shared_hosts,
                "finding": ((f"{len(shared_hosts)} {part} host(s) are also in train ({', '.join(shared_hosts)}): "
                             "this score is not a cross-device figure" if shared_hosts else
                             f"no {part} host is in train: a cross-device figure")
                            + (f"; hosts absent from {part}: {', '.join(hosts)}" if hosts else "")),
                "avoid": "cis490 split --recipe host" if shared_hosts else None})
    absent = sorted(set(episodes["profile"].to_list()) - set(ep_scored["profile"].to_list()))
    out.append({"id": "profiles", "value": len(absent), "absent": absent,
                "finding": (f"profiles absent from {part}, untested: {', '.join(absent)}" if absent else
                            f"every profile is in {part}"), "avoid": None})
    out.append({"id": "resampling_unit", "value": unit,
                "finding": ("intervals resample whole episodes, whose windows are correlated" if unit == "episode"
                            else "intervals resample windows as if independent, though an episode's windows are "
                                 "correlated: they are too narrow"),
                "avoid": "--unit episode" if unit != "episode" else None})
    return out


def over_time(received_ns: np.ndarray, groups: np.ndarray, truth: np.ndarray, pred: np.ndarray, k: int,
              slice_s: int, unit: str, resamples: int, rng: np.random.Generator) -> dict:
    """Macro-F1 of each time slice of the scored episodes' `received_at`
    (slices of `slice_s` from the earliest), with its CI, and AUT: the
    trapezoid area under the slices' macro-F1, normalised by the N - 1 gaps
    between N slices (TESSERACT's AUT(f, N)); undefined with one slice."""
    t0 = int(received_ns.min()) if len(received_ns) else 0
    sl = ((received_ns - t0) // (slice_s * 10**9)).astype(np.int64)
    rows = []
    for s in np.unique(sl):
        sel = sl == s
        _, g = np.unique(groups[sel], return_inverse=True)
        boot = bootstrap_scores(truth[sel], pred[sel], g, k, unit, resamples, rng)
        cm = confusion(truth[sel], pred[sel], k)
        rows.append({"slice": int(s), "start_ns": t0 + int(s) * slice_s * 10**9,
                     "macro_f1": float(macro_f1_from_confusion(cm)), "macro_f1_ci": percentile_ci(boot["macro_f1"]),
                     "windows": int(sel.sum()), "episodes": int(g.max() + 1)})
    f = np.array([r["macro_f1"] for r in rows])
    aut = float(((f[1:] + f[:-1]) / 2).sum() / (len(f) - 1)) if len(f) > 1 else None
    return {"slice_s": slice_s, "slices": rows, "aut": aut}
