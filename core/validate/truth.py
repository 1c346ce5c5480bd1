"""Compare an acceptance index with synth's ground truth."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl


@dataclass
class TruthCheck:
    total: int
    agree: int
    mismatches: list[dict]
    in_flight_expected: int


def check_against_truth(index: Path, truth: Path, in_flight: list[str]) -> TruthCheck:
    """Every truth row must have its status and, if any, its reason code."""
    idx = {r["rel_path"]: r for r in pl.read_parquet(index, columns=["rel_path", "status", "reasons"])
           .iter_rows(named=True)}
    rows = [json.loads(x) for x in Path(truth).read_text().splitlines() if x.strip()]
    mismatches, agree, total, flight = [], 0, 0, 0
    for t in rows:
        if t["expected_status"] == "in_flight":
            flight += 1
            ok = t["rel_path"] in in_flight
            got = {"status": "in_flight" if ok else (idx.get(t["rel_path"]) or {}).get("status"), "reasons": []}
        else:
            got = idx.get(t["rel_path"]) or {"status": None, "reasons": []}
            reason = t["expected_reason"]
            ok = got["status"] == t["expected_status"] and (
                reason is None and not got["reasons"]
                or reason is not None and any(r == reason or r.startswith(reason + ":") for r in got["reasons"]))
        total += 1
        agree += ok
        if not ok:
            mismatches.append({"rel_path": t["rel_path"], "expected": t["expected_status"],
                               "expected_reason": t["expected_reason"], "got": got["status"],
                               "reasons": got["reasons"]})
    return TruthCheck(total, agree, mismatches, flight)
