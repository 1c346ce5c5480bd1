"""The dashboard's seven event types: the one definition that producers, the
server, the page and docs/dashboard.md all follow.

An event is a JSON object whose `type` names one of the seven types. Each type
lists its fields: a kind (what JSON value it holds), whether it is required,
and a description (docs/dashboard.md is checked against these). Validation
names the first field that is wrong and how, so a producer's mistake is one
400 line, and nothing of a rejected request is published.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

def _finite(v: Any) -> bool:
    """A JSON number a float can hold: math.isfinite of a 401-digit integer
    raises OverflowError (a 500 where a 400 belongs)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return -FLOAT_MAX <= v <= FLOAT_MAX if isinstance(v, int) else math.isfinite(v)


FLOAT_MAX = 1.7976931348623157e308
# What the validator accepts for each kind of field.
_KINDS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str) and v != "",
    "number": _finite,
    "count": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 53,   # exact in JS too
    "unit": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0,
    "interval": lambda v: (isinstance(v, list) and len(v) == 2 and all(_KINDS["unit"](x) for x in v)
                           and v[0] <= v[1]),
    "probabilities": lambda v: (isinstance(v, dict) and len(v) > 0 and all(isinstance(k, str) for k in v)
                                and all(_KINDS["unit"](x) for x in v.values())
                                and abs(sum(v.values()) - 1.0) <= 1e-3),
    "values": lambda v: (isinstance(v, dict) and len(v) > 0 and all(isinstance(k, str) for k in v)
                         and all(x is None or _KINDS["number"](x) for x in v.values())),
    "names": lambda v: isinstance(v, list) and all(isinstance(x, str) and x for x in v),
    "profiles": lambda v: isinstance(v, list) and all(_profile_row(x) for x in v),
    "delays": lambda v: isinstance(v, list) and all(_delay_row(x) for x in v),
    "flag": lambda v: isinstance(v, bool),
    "labels": lambda v: (isinstance(v, dict) and all(isinstance(k, str) and k for k in v)
                         and all(isinstance(x, str) for x in v.values())),
}
_KIND_TEXT = {
    "string": "a non-empty string", "number": "a finite number", "count": "a whole number >= 0 (below 2**53)",
    "unit": "a number in [0, 1]", "interval": "[low, high] with 0 <= low <= high <= 1",
    "probabilities": "an object phase -> probability in [0, 1], summing to 1",
    "values": "an object channel -> number or null", "names": "a list of names",
    "profiles": "a list of {profile, macro_f1, macro_f1_ci, windows, episodes}",
    "delays": "a list of {phase, onset_s, delay_s (null: missed)}",
    "flag": "true or false", "labels": "an object name -> text",
}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    required: bool
    doc: str
    choices: tuple[str, ...] = ()
    nullable: bool = False


def _f(name, kind, doc, required=True, choices=(), nullable=False) -> Field:
    return Field(name, kind, required, doc, tuple(choices), nullable)


# Every type also takes `sent_at` (the producer's clock, Unix seconds), used
# to measure publish-to-receive latency.
COMMON = (_f("sent_at", "number", "When the producer sent it, Unix seconds (optional).", required=False),)

TYPES: dict[str, tuple[str, tuple[Field, ...]]] = {
    "episode": ("The start or end of an episode being shown.", (
        _f("event", "string", "`start` or `end`.", choices=("start", "end")),
        _f("episode_id", "string", "The episode (as in the window index)."),
        _f("host_id", "string", "The host that recorded it."),
        _f("profile", "string", "Its behaviour profile."),
        _f("sample_name", "string", "The malware sample."),
        _f("model", "string", "The model whose predictions follow."),
        _f("source", "string", "What shows it: `replay` (recorded, re-run in time) or `watch` (it just "
                               "landed in the store).", required=False, choices=("replay", "watch")),
        _f("mode", "string", "`realistic` or `oracle`.", choices=("realistic", "oracle")),
        _f("windows", "count", "At `end`: windows predicted.", required=False),
        _f("accuracy", "unit", "At `end`: the episode's window accuracy (absent for an episode nobody labelled).",
           required=False),
        _f("detection", "delays", "At `end`: each phase occurrence's labelled onset and time to detect, in "
                                  "seconds (docs/methods.md); `delay_s` null where it was missed.", required=False),
    )),
    "telemetry": ("A replay tick: the charted channels' values at one time.", (
        _f("episode_id", "string", "The episode being replayed."),
        _f("t_s", "number", "Seconds from the episode start."),
        _f("values", "values", "Channel name (`source.field`) -> value at that time, null where missing."),
        _f("units", "labels", "Channel name -> its unit, as the channel registry gives it (the page labels "
                              "its charts with them).", required=False),
    )),
    "prediction": ("One window's prediction (the same names as the window index and predictions.parquet).", (
        _f("episode_id", "string", "The episode."),
        _f("window_id", "string", "`<episode_id>:<centre in ms>`, as in the window index.", required=False),
        _f("t_center_s", "number", "The window centre, seconds from the episode start."),
        _f("predicted", "string", "The predicted phase."),
        _f("probabilities", "probabilities", "Every phase's probability."),
        _f("truth", "string", "The labelled phase, when known.", required=False, nullable=True),
        _f("trust", "unit", "How far the live prediction can be trusted, over recent windows."),
        _f("model", "string", "The model that predicted it.", required=False),
        _f("mode", "string", "`realistic` or `oracle`.", required=False, choices=("realistic", "oracle")),
    )),
    "model_metric": ("One evaluated checkpoint's headline numbers.", (
        _f("model", "string", "The model."),
        _f("mode", "string", "`realistic` or `oracle`.", choices=("realistic", "oracle")),
        _f("split", "string", "The split it was trained and tested on."),
        _f("part", "string", "The part scored (`test` or `val`).", required=False, choices=("test", "val")),
        _f("macro_f1", "unit", "Macro-F1."),
        _f("macro_f1_ci", "interval", "Its 95% bootstrap interval."),
        _f("accuracy", "unit", "Window accuracy."),
        _f("windows", "count", "Windows scored."),
        _f("episodes", "count", "Episodes scored."),
        _f("membership_sha256", "string", "The split's membership hash (its identity).", required=False),
        _f("transductive", "flag", "The model learned from the inputs (never the labels) of the windows it is "
                                   "scored on (`knn_semi`): not inductive generalisation.", required=False),
    )),
    "perf": ("The live inference and server figures.", (
        _f("latency_p50_ms", "number", "Per-window inference latency, median, ms."),
        _f("latency_p99_ms", "number", "Per-window inference latency, 99th percentile, ms."),
        _f("windows_per_s", "number", "Windows predicted per second."),
        _f("rss_mb", "number", "Server resident memory, MB."),
        _f("cpu_percent", "number", "Server CPU use, percent of one core."),
    )),
    "notice": ("A line for the page and the log: a watched store's new episode, or one it refused.", (
        _f("level", "string", "`info` or `refused` (an episode validate's rules refuse: never predicted).",
           choices=("info", "refused")),
        _f("text", "string", "What happened, in one line."),
        _f("episode_id", "string", "The episode it is about.", required=False),
    )),
    "profile_stats": ("Per-profile scores of one evaluated checkpoint.", (
        _f("model", "string", "The model."),
        _f("mode", "string", "`realistic` or `oracle`.", choices=("realistic", "oracle")),
        _f("split", "string", "The split."),
        _f("profiles", "profiles", "Per profile: `profile`, `macro_f1`, `macro_f1_ci`, `windows`, `episodes`."),
        _f("untested_profiles", "names", "Profiles absent from the scored part (never averaged away)."),
    )),
}
EVENT_TYPES = tuple(TYPES)


def _profile_row(x: Any) -> bool:
    return (isinstance(x, dict) and _KINDS["string"](x.get("profile")) and _KINDS["unit"](x.get("macro_f1"))
            and _KINDS["interval"](x.get("macro_f1_ci")) and _KINDS["count"](x.get("windows"))
            and _KINDS["count"](x.get("episodes")))


def _delay_row(x: Any) -> bool:
    return (isinstance(x, dict) and set(x) == {"phase", "onset_s", "delay_s"} and _KINDS["string"](x["phase"])
            and _KINDS["number"](x["onset_s"]) and (x["delay_s"] is None or _KINDS["number"](x["delay_s"])))


class EventError(ValueError):
    """An event that does not follow its type's schema."""


def validate(event: Any, where: str = "event") -> dict:
    """The event if it follows its schema; else EventError naming the field
    and the problem. Unknown fields are refused: a typo is not silently dropped."""
    if not isinstance(event, dict):
        raise EventError(f"{where}: must be a JSON object")
    kind = event.get("type")
    if kind not in TYPES:
        raise EventError(f"{where}.type: must be one of {', '.join(EVENT_TYPES)}, got {kind!r}")
    fields = {f.name: f for f in (*TYPES[kind][1], *COMMON)}
    for name in event:
        if name != "type" and name not in fields:
            raise EventError(f"{where}.{name}: not a field of '{kind}' (fields: {', '.join(fields)})")
    for f in fields.values():
        if f.name not in event:
            if f.required:
                raise EventError(f"{where}.{f.name}: required for '{kind}'")
            continue
        value = event[f.name]
        if value is None and f.nullable:
            continue
        if not _KINDS[f.kind](value):
            raise EventError(f"{where}.{f.name}: must be {_KIND_TEXT[f.kind]}, got {_short(value)}")
        if f.choices and value not in f.choices:
            raise EventError(f"{where}.{f.name}: must be one of {', '.join(f.choices)}, got {value!r}")
    if kind == "prediction" and event["predicted"] not in event["probabilities"]:
        raise EventError(f"{where}.predicted: '{event['predicted']}' is not among the probabilities' phases")
    return event


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def snapshot_key(event: dict) -> str:
    """Where an event sits in the snapshot (the latest state per type): one
    slot per type, except one per checkpoint for the per-model types, so a
    browser opening late sees every model's bars, not only the last one's."""
    if event["type"] in ("model_metric", "profile_stats"):
        return f"{event['model']}_{event['mode']}@{event['split']}"
    return "latest"


# One complete example per type, accepted as published (tests check it, and
# docs/dashboard.md shows the same ones).
EXAMPLES: dict[str, dict] = {
    "episode": {"type": "episode", "event": "end", "episode_id": "ep000042-1a2b3c4d", "host_id": "lab-pi5",
                "profile": "ransomware", "sample_name": "lockbit.v3", "model": "gru", "mode": "realistic",
                "windows": 57, "accuracy": 0.912,
                "detection": [{"phase": "idle", "onset_s": 0.0, "delay_s": 10.0},
                              {"phase": "execute", "onset_s": 31.5, "delay_s": 8.5},
                              {"phase": "act", "onset_s": 60.2, "delay_s": None}]},
    "telemetry": {"type": "telemetry", "episode_id": "ep000042-1a2b3c4d", "t_s": 12.5,
                  "values": {"guest.cpu_percent": 87.5, "netflow.new_flows": 3.0, "guest.mem_used_mb": None},
                  "units": {"guest.cpu_percent": "%", "netflow.new_flows": "count", "guest.mem_used_mb": "MB"}},
    "prediction": {"type": "prediction", "episode_id": "ep000042-1a2b3c4d", "window_id": "ep000042-1a2b3c4d:00015000",
                   "t_center_s": 15.0, "predicted": "execute",
                   "probabilities": {"idle": 0.02, "execute": 0.9, "persist": 0.05, "beacon": 0.01, "act": 0.01,
                                     "dormant": 0.01},
                   "truth": "execute", "trust": 0.84, "model": "gru", "mode": "realistic"},
    "model_metric": {"type": "model_metric", "model": "gru", "mode": "realistic", "split": "host", "part": "test",
                     "macro_f1": 0.905, "macro_f1_ci": [0.854, 0.947], "accuracy": 0.93, "windows": 1526,
                     "episodes": 44, "transductive": False},
    "perf": {"type": "perf", "latency_p50_ms": 1.8, "latency_p99_ms": 6.2, "windows_per_s": 0.2, "rss_mb": 96.0,
             "cpu_percent": 3.5},
    "notice": {"type": "notice", "level": "refused", "episode_id": "ep000051-9c1d2e3f",
               "text": "lab-pi5/ep000051-9c1d2e3f: rejected (too_few_rows:proc:12<60): not predicted"},
    "profile_stats": {"type": "profile_stats", "model": "gru", "mode": "realistic", "split": "host",
                      "profiles": [{"profile": "ransomware", "macro_f1": 0.93, "macro_f1_ci": [0.88, 0.97],
                                    "windows": 347, "episodes": 10}],
                      "untested_profiles": ["scan-and-dial"]},
}
