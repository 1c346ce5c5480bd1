"""The six event schemas (core/dashboard/events.py) and their documentation."""
import json
import re
from pathlib import Path

import pytest

from core.dashboard.events import EVENT_TYPES, EXAMPLES, TYPES, EventError, validate

DOC = Path(__file__).resolve().parents[2] / "docs" / "dashboard.md"


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_every_example_is_accepted(kind):
    assert validate(EXAMPLES[kind]) is EXAMPLES[kind]


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_every_required_field_is_required(kind):
    for f in TYPES[kind][1]:
        if f.required:
            ev = {k: v for k, v in EXAMPLES[kind].items() if k != f.name}
            with pytest.raises(EventError, match=rf"^event\.{f.name}: required for '{kind}'$"):
                validate(ev)


@pytest.mark.parametrize("event, message", [
    ("not an object", "event: must be a JSON object"),
    ({"type": "weather"}, "event.type: must be one of episode, telemetry, prediction, model_metric, perf, notice, "
                          "profile_stats, got 'weather'"),
    ({**EXAMPLES["perf"], "latency_p99": 3}, "event.latency_p99: not a field of 'perf'"),
    ({**EXAMPLES["perf"], "rss_mb": "96"}, "event.rss_mb: must be a finite number, got '96'"),
    ({**EXAMPLES["perf"], "cpu_percent": True}, "event.cpu_percent: must be a finite number, got True"),
    ({**EXAMPLES["model_metric"], "macro_f1_ci": [0.9, 0.8]}, r"event.macro_f1_ci: must be \[low, high\]"),
    ({**EXAMPLES["model_metric"], "mode": "both"}, "event.mode: must be one of realistic, oracle, got 'both'"),
    ({**EXAMPLES["model_metric"], "windows": -1}, r"event.windows: must be a whole number >= 0 \(below 2\*\*53\)"),
    # Regression (issue 32): a 401-digit integer raised OverflowError (a 500), not this.
    ({**EXAMPLES["perf"], "rss_mb": 10 ** 400}, "event.rss_mb: must be a finite number"),
    ({**EXAMPLES["model_metric"], "windows": 10 ** 400}, "event.windows: must be a whole number"),
    ({**EXAMPLES["prediction"], "trust": 1.5}, r"event.trust: must be a number in \[0, 1\]"),
    ({**EXAMPLES["prediction"], "probabilities": {"idle": 0.5, "act": 0.4}}, "summing to 1"),
    ({**EXAMPLES["prediction"], "predicted": "persist", "probabilities": {"idle": 0.5, "execute": 0.5}},
     "event.predicted: 'persist' is not among the probabilities' phases"),
    ({**EXAMPLES["episode"], "accuracy": None}, "event.accuracy: must be a number in"),
    ({**EXAMPLES["episode"], "source": "radio"}, "event.source: must be one of replay, watch, got 'radio'"),
    ({**EXAMPLES["notice"], "level": "warning"}, "event.level: must be one of info, refused, got 'warning'"),
    ({**EXAMPLES["telemetry"], "values": {"guest.cpu_percent": "high"}}, "event.values: must be an object channel"),
    ({**EXAMPLES["profile_stats"], "profiles": [{"profile": "rat"}]}, "event.profiles: must be a list of"),
])
def test_each_problem_names_the_field(event, message):
    with pytest.raises(EventError, match=message):
        validate(event)


def test_truth_may_be_null_and_sent_at_is_common():
    assert validate({**EXAMPLES["prediction"], "truth": None, "sent_at": 1.5e9})
    for kind in EVENT_TYPES:
        assert validate({**EXAMPLES[kind], "sent_at": 1700000000.25})


def test_docs_document_every_field_with_an_accepted_example():
    text = DOC.read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", text, re.S)]
    documented = {b["type"]: b for b in blocks if isinstance(b, dict) and b.get("type") in TYPES}
    assert set(documented) == set(EVENT_TYPES)
    for kind, example in documented.items():
        validate(example)
        section = text.split(f"### `{kind}`", 1)[1].split("\n### ", 1)[0]
        for f in TYPES[kind][1]:
            assert f"`{f.name}`" in section, f"docs/dashboard.md does not document {kind}.{f.name}"
