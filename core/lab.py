"""The lab's artefacts in one place: where each kind lives under the lab home,
how its name is read and written, the command that remakes it, and the one
freshness rule. `status`, eval/compare reuse, the replay, export and every
command's provenance ask here (as Datasette's `Urls` owns its URL layout).

Freshness is by content, as DVC's: an artefact is stale when the digest it
recorded of an input differs from that input's digest now, never because an
input was merely re-made with the same result; a missing or size-changed
file of an artefact makes it missing or stale. docs/notebook.md#status.

Light on purpose (no polars, numpy or torch): `cis490 status` imports it.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterator

from core.paths import INDEX_NAME, LabPaths, eval_settings, eval_settings_options

# -- modes -------------------------------------------------------------------
# The one list of modes; the option types below are made from it.
MODES = ("realistic", "oracle")
Mode = Enum("Mode", {m: m for m in MODES}, type=str)
ModeOrBoth = Enum("ModeOrBoth", {m: m for m in (*MODES, "both")}, type=str)


def modes_of(choice: str) -> list[str]:
    """The modes a `--mode` choice stands for (`both`: every mode)."""
    return list(MODES) if choice == "both" else [choice]


# -- file names ----------------------------------------------------------------
STAT = "validation_v1.stat.parquet"          # files' sizes and times at validation
FEATURE_SCHEMA = "feature_schema_v1.json"   # lists the extract's chunks, vouches for them and the episodes
EPISODES = "extract_episodes_v1.parquet"
CHUNKS = "extract_v2"                        # the extract's chunks (core.extract.chunks)
HEADER = "header.json"                       # a checkpoint's header
BUNDLE = "bundle.json"                       # an exported bundle's header
GRAPH = "model.onnx"                         # ... its ONNX graph
REFERENCE = "reference.npz"                  # ... or its kNN arrays
REPORT = "report.json"
PREDICT_RUN = "predict.json"
# Bumped when eval reports gain sections: an older report lacks them and is re-made.
REPORT_VERSION = 2
PREDICTIONS = "predictions.parquet"


# -- names of trained models ---------------------------------------------------

def split_dirname(name: str) -> tuple[str, str]:
    """`gru_realistic` -> (gru, realistic); `knn_semi_oracle` -> (knn_semi, oracle).
    A name without a mode suffix is a realistic model's."""
    for m in MODES:
        if name.endswith(f"_{m}"):
            return name[: -len(m) - 1], m
    return name, "realistic"


@dataclass(frozen=True)
class Ref:
    """One trained model: the split it was trained on, its name and mode."""
    split: str
    model: str
    mode: str

    @property
    def dirname(self) -> str:
        """Its folder's name under models/, eval/ and deploy/ (`gru_realistic`)."""
        return f"{self.model}_{self.mode}"

    @property
    def shown(self) -> str:
        """How a researcher names it: `gru` (realistic) or `gru_oracle`."""
        return self.model if self.mode == "realistic" else self.dirname

    @property
    def key(self) -> str:
        return f"{self.split}/{self.dirname}"

    @classmethod
    def of_dir(cls, directory: Path) -> "Ref":
        """The model a `<split>/<model>_<mode>` folder holds."""
        directory = Path(directory)
        return cls(directory.parent.name, *split_dirname(directory.name))

    @classmethod
    def of_shown(cls, split: str, name: str) -> "Ref":
        return cls(split, *split_dirname(name))


# -- where each artefact lives -------------------------------------------------

class Lab:
    """The paths of a lab's artefacts. Core functions take `processed` and
    `artifacts` (a test may point them anywhere); commands pass a LabPaths."""

    def __init__(self, processed: Path, artifacts: Path):
        self.processed, self.artifacts = Path(processed), Path(artifacts)

    @classmethod
    def of(cls, paths: LabPaths) -> "Lab":
        return cls(paths.processed, paths.artifacts)

    # data/processed
    @property
    def index(self) -> Path:
        return self.processed / INDEX_NAME

    @property
    def index_sidecar(self) -> Path:
        return self.index.with_suffix(".json")

    @property
    def feature_schema(self) -> Path:
        return self.processed / FEATURE_SCHEMA

    @property
    def extracted_episodes(self) -> Path:
        return self.processed / EPISODES

    @property
    def chunks(self) -> Path:
        return self.processed / CHUNKS

    @property
    def splits(self) -> Path:
        return self.processed / "splits"

    def split_parquet(self, name: str) -> Path:
        return self.splits / f"{name}.parquet"

    def split_meta(self, name: str) -> Path:
        return self.splits / f"{name}.json"

    def split_names(self) -> list[str]:
        return sorted(p.stem for p in self.splits.glob("*.json"))

    # artifacts/models
    def checkpoint(self, ref: Ref) -> Path:
        return self.artifacts / "models" / ref.split / ref.dirname

    def header(self, ref: Ref) -> Path:
        return self.checkpoint(ref) / HEADER

    def checkpoints(self, split: str = "*") -> list[Ref]:
        """Every checkpoint with a header, in path order."""
        return [Ref.of_dir(h.parent) for h in sorted((self.artifacts / "models").glob(f"{split}/*/{HEADER}"))]

    # artifacts/eval
    def eval_dir(self, ref: Ref, settings: str) -> Path:
        return self.artifacts / "eval" / ref.split / ref.dirname / settings

    def report(self, ref: Ref, settings: str) -> Path:
        return self.eval_dir(ref, settings) / REPORT

    def predictions(self, ref: Ref, settings: str) -> Path:
        return self.eval_dir(ref, settings) / PREDICTIONS

    def rotation_report(self, ref: Ref, settings: str) -> Path:
        """A leave-one-host-out rotation's report across its folds (core.rotation)."""
        return self.artifacts / "eval" / ref.split / ref.dirname / f"rotation-{settings}.json"

    def eval_root(self, split: str) -> Path:
        return self.artifacts / "eval" / split

    def report_paths(self, split: str = "*", part: str = "*") -> list[Path]:
        """The report of every evaluation (of a split, of a part), in path order."""
        return sorted((self.artifacts / "eval").glob(f"{split}/*/{part}-*/{REPORT}"))

    def reports(self) -> Iterator[tuple[Ref, str, Path]]:
        """(model, settings, report path) of every evaluation, in path order."""
        for r in self.report_paths():
            yield Ref.of_dir(r.parent.parent), r.parent.name, r

    # artifacts/compare
    def comparison(self, split: str, shown: list[str], settings: str) -> Path:
        return self.artifacts / "compare" / split / f"{'_vs_'.join(shown)}-{settings}.json"

    def rotation_comparison(self, rotation: str, shown: list[str], settings: str) -> Path:
        """A rotation's comparison across its folds (each fold's own is a comparison of its split)."""
        return self.artifacts / "compare" / rotation / "rotation" / f"{'_vs_'.join(shown)}-{settings}.json"

    def comparisons(self) -> list[Path]:
        return sorted((self.artifacts / "compare").glob("*/*.json"))

    def rotation_reports(self) -> Iterator[tuple[Ref, str, Path]]:
        """(rotation and model, settings, path) of every report across a rotation's folds."""
        for r in sorted((self.artifacts / "eval").glob("*/*/rotation-*.json")):
            yield Ref.of_dir(r.parent), r.stem.removeprefix("rotation-"), r

    def rotation_comparisons(self) -> Iterator[tuple[str, list[str], str, Path]]:
        """(rotation, models shown, settings, path) of every comparison across a
        rotation's folds (named `A_vs_B-<settings>`: model names hold no dash)."""
        for c in sorted((self.artifacts / "compare").glob("*/rotation/*.json")):
            shown, _, settings = c.stem.partition("-")
            yield c.parent.parent.name, shown.split("_vs_"), settings, c

    # artifacts/deploy
    def bundle(self, ref: Ref) -> Path:
        return self.artifacts / "deploy" / ref.split / ref.dirname

    def bundles(self) -> list[Ref]:
        return [Ref.of_dir(b.parent) for b in sorted((self.artifacts / "deploy").glob(f"*/*/{BUNDLE}"))]

    # artifacts/predict: one folder per run of `cis490 predict`, never another model's
    def prediction_run(self, ref: Ref, run: str) -> Path:
        return self.artifacts / "predict" / ref.split / ref.dirname / run

    def prediction_runs(self) -> Iterator[tuple[Ref, str, Path]]:
        """(model, run, its PREDICT_RUN manifest) of every predict run, in path order."""
        for m in sorted((self.artifacts / "predict").glob(f"*/*/*/{PREDICT_RUN}")):
            yield Ref.of_dir(m.parent.parent), m.parent.name, m


# -- the commands that remake each artefact --------------------------------------

def validate_command(registry_path: Path | str | None = None, store: Path | str | None = None) -> str:
    """`cis490 validate`, naming the store when it is not the lab's own
    (data/raw/store): the bare command would look for the store there."""
    import shlex
    return ("cis490 validate" + (f" --store {shlex.quote(str(store))}" if store else "")
            + (f" --channels {shlex.quote(str(registry_path))}" if registry_path else ""))


EXTRACT_COMMAND = "cis490 extract"


def split_command(params: dict, name: str | None = None) -> str:
    from core.splitparams import describe_params
    return f"cis490 split {describe_params(params, name)}"


def train_command(ref: Ref) -> str:
    return f"cis490 train {ref.model} --split {ref.split} --mode {ref.mode}"


def export_command(ref: Ref) -> str:
    return f"cis490 export {ref.model} --split {ref.split} --mode {ref.mode}"


def predict_command(ref: Ref, episodes: str) -> str:
    return f"cis490 predict {ref.model} --split {ref.split} --mode {ref.mode} {episodes}"


def eval_command(ref: Ref, settings: str) -> str:
    return f"cis490 eval {ref.model} --mode {ref.mode} --split {ref.split} {eval_settings_options(settings)}"


def compare_command(split: str, shown: list[str], settings: str) -> str:
    return f"cis490 compare {' '.join(shown)} --split {split} {eval_settings_options(settings)}"


# -- the one freshness rule ------------------------------------------------------

@dataclass(frozen=True)
class Inputs:
    """The current digests of what evaluations are made from: what status
    and compare's reuse both check a report against."""
    header_sha256: str | None           # the checkpoint's header now (None: gone)
    features_sha256: str | None
    membership_sha256: str | None       # the split's membership now (None: not known)
    earlier: tuple[str, ...] = ()       # ... of its earlier versions (`split --extend`)


def checkpoint_problems(header: dict, directory: Path) -> tuple[bool, list[str]]:
    """(missing, reasons) of a checkpoint's own files: its weights gone, or
    of another size than the header recorded when it was written."""
    w = header.get("weights") if isinstance(header.get("weights"), dict) else {}
    name = w.get("file")
    if not isinstance(name, str) or not (Path(directory) / name).is_file():
        return True, [f"its {name or 'weights file'} is gone"]
    if w.get("bytes") is not None and (Path(directory) / name).stat().st_size != w["bytes"]:
        return False, [f"its {name} changed since training"]
    return False, []


def eval_problems(report: dict, predictions: Path, now: Inputs) -> tuple[bool, list[str]]:
    """(missing, reasons) of an evaluation: missing when its predictions are
    gone; stale for each recorded input whose digest is not the current one,
    or for predictions whose size is not the one recorded at write time."""
    if not predictions.is_file():
        return True, [f"its {PREDICTIONS} is gone"]
    reasons = []
    gone = [f for f in report.get("figures", []) if not (predictions.parent / f).is_file()]
    if gone:
        reasons.append(f"its figure{'s' if len(gone) > 1 else ''} {', '.join(gone[:3])}"
                       + (f" and {len(gone) - 3} more" if len(gone) > 3 else "") + " gone")
    if report.get("report_version", 1) != REPORT_VERSION:
        reasons.append(f"made by an older cis490 (report version {report.get('report_version', 1)}, "
                       f"now {REPORT_VERSION})")
    recorded = report.get("predictions_bytes")
    if recorded is not None and predictions.stat().st_size != recorded:
        reasons.append(f"its {PREDICTIONS} changed since this eval")
    if now.header_sha256 is None:
        reasons.append("its checkpoint is gone")
    elif (report.get("checkpoint") or {}).get("header_sha256") != now.header_sha256:
        reasons.append("checkpoint retrained after this eval")
    if report.get("split_membership_sha256") in now.earlier:
        # An earlier version of the split: its windows digest is that version's, and the split says why.
        reasons.append(f"split {report.get('split')} extended since this eval (its new episodes are unscored)")
        return False, reasons
    if report.get("features_sha256") != now.features_sha256:
        reasons.append("features re-extracted since this eval")
    if now.membership_sha256 is not None and report.get("split_membership_sha256") != now.membership_sha256:
        reasons.append(f"split {report.get('split')} re-made since this eval")
    return False, reasons


EXTRACTED_STATUSES = ("accepted", "degraded")


def extractable_digest(index: Path) -> str:
    """The content of an acceptance index that extract reads: its accepted
    and degraded rows (path, manifest, id, arrival, status), by content. An
    index re-made with unlabelled, rejected or errored episodes added, and
    nothing else changed, leaves the features fresh: they would be the same."""
    import hashlib

    import polars as pl
    rows = (pl.read_parquet(index, columns=["rel_path", "manifest_sha256", "episode_id", "received_at", "status"])
            .filter(pl.col("status").is_in(list(EXTRACTED_STATUSES))).sort("rel_path"))
    h = hashlib.sha256()
    for row in rows.iter_rows():
        h.update(("\t".join("" if v is None else str(v) for v in row) + "\n").encode())
    return h.hexdigest()


def settings_of(report: dict) -> str:
    """The settings name of an eval report or a comparison, from what it records."""
    return eval_settings(report["part"], report["unit"], report["resamples"], report["seed"],
                         report.get("confirm", 1), report.get("min_trust", 0.0), report.get("conformal_alpha", 0.1),
                         report.get("slice"))


def eval_identity(report: dict) -> dict:
    """What a comparison records of an evaluation it was made from: the
    content of its predictions, so an identical re-run keeps it fresh."""
    return {"name": report["name"], "predictions_sha256": report.get("predictions_sha256"),
            "eval_run_id": report.get("eval_run_id")}


def comparison_problems(report: dict, evals: dict[str, dict | None], what: str = "comparison") -> list[str]:
    """Reasons a comparison (or a rotation's report: `what`) is stale, given
    the current report of each of its evaluations by recorded name (None:
    gone). By content: an eval re-run with the same predictions leaves it
    fresh. Comparisons written before the content was recorded fall back to
    the run ids they recorded."""
    recorded = report.get("evals")
    if recorded is None:
        recorded = [{"name": n, "eval_run_id": r} for n, r in zip(report["models"], report.get("eval_runs", []))]
    reasons = []
    for rec in recorded:
        shown, now = rec["name"], evals.get(rec["name"])
        if now is None:
            reasons.append(f"eval of {shown} is gone")
        elif "predictions_sha256" in rec:
            if now.get("predictions_sha256") != rec["predictions_sha256"]:
                reasons.append(f"eval of {shown} changed since this {what}")
        elif now.get("eval_run_id") != rec.get("eval_run_id"):
            reasons.append(f"eval of {shown} re-run since this {what}")
    return reasons


__all__ = ["BUNDLE", "GRAPH", "REPORT_VERSION", "EXTRACTED_STATUSES", "extractable_digest", "PREDICT_RUN", "predict_command", "REFERENCE", "EPISODES", "EXTRACT_COMMAND", "CHUNKS", "FEATURE_SCHEMA", "HEADER", "Inputs", "Lab", "MODES",
           "Mode", "ModeOrBoth", "PREDICTIONS", "REPORT", "Ref", "STAT", "checkpoint_problems", "compare_command",
           "comparison_problems", "settings_of", "eval_command", "eval_identity", "eval_problems", "eval_settings",
           "export_command", "modes_of", "split_command", "split_dirname", "train_command", "validate_command"]
