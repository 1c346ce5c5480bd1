"""A straightforward pandas implementation of one episode's windowing: the
baseline bench/extract.py compares core.extract.episode against."""
from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd


def pandas_episode_windows(ep_dir: Path, registry, step_s=0.5, window_s=10.0, hop_s=5.0) -> np.ndarray:
    m = json.loads((ep_dir / "manifest.json").read_text())
    start, end = m["started_at_ns"], m["ended_at_ns"]
    n = int((end - start) // int(step_s * 1e9))
    grid_index = pd.RangeIndex(n)
    columns = {}
    for src in registry.source_names():
        fname = f"{src}.jsonl.gz"
        if fname not in m["files"] or not (ep_dir / fname).exists():
            continue
        df = pd.read_json(io.BytesIO(gzip.decompress((ep_dir / fname).read_bytes())), lines=True)
        if df.empty:
            continue
        df = df.sort_values("t_wall_ns")
        df["step"] = (df["t_wall_ns"] - start) // int(step_s * 1e9)
        for ch in registry.channels_of(src):
            if ch.kind == "flow":
                d = df[(df["step"] >= 0) & (df["step"] < n)]
                if ch.where == "syn_only":
                    d = d[(d["proto"] == "tcp") & ((d["tcp_flags"] & 0x12) == 0x02)]
                elif ch.where == "dns":
                    d = d[(d["proto"] == "udp") & (d["dst_port"] == 53)]
                elif ch.where == "tcp":
                    d = d[d["proto"] == "tcp"]
                g = d.groupby("step")
                if ch.agg == "count":
                    s = g.size().reindex(grid_index, fill_value=0)
                elif ch.agg == "sum":
                    s = g[ch.field].sum().reindex(grid_index, fill_value=0)
                elif ch.agg == "nunique":
                    s = g[ch.field].nunique().reindex(grid_index, fill_value=0)
                else:
                    s = g[ch.field].mean().reindex(grid_index)
            else:
                v = df[ch.row_field].astype(float)
                if ch.kind == "counter":
                    rate = v.diff() / (df["t_wall_ns"].diff() / 1e9)
                    v = rate.where(rate >= 0)
                s = pd.Series(v.values, index=df["step"].values).groupby(level=0).last().reindex(grid_index)
                s = s.fillna(s.shift(1).where(~pd.Series(grid_index.isin(df["step"]), index=grid_index)))
            columns[ch.name] = s
    grid = pd.DataFrame(columns, index=grid_index).reindex(columns=registry.channel_names)
    T, hop = int(window_s / step_s), int(hop_s / step_s)
    feats = []
    for w0 in range(0, n - T + 1, hop):
        win = grid.iloc[w0:w0 + T]
        first = win.apply(lambda c: c.dropna().iloc[0] if c.notna().any() else np.nan)
        last = win.apply(lambda c: c.dropna().iloc[-1] if c.notna().any() else np.nan)
        feats.append(np.stack([win.mean(), win.std(ddof=0), win.min(), win.max(), last - first,
                               win.notna().mean()], axis=1).ravel())
    return np.array(feats)
