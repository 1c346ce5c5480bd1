"""Model settings: one frozen dataclass per model is the single truth for its
defaults, for what `cis490 train --set key=value` may change, and for what a
checkpoint header records (every field, chosen or default)."""
from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field, fields

from core.errors import ConfigError


def _derived(default):
    """A field the model fills in itself (e.g. the window length): recorded, never set."""
    return field(default=default, metadata={"derived": True})


def _check(ok: bool, model: str, key: str, value, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{model}: setting {key}={value} is out of range ({key} must be {rule})")


@dataclass(frozen=True)
class LoopSettings:
    """The training loop of every neural model. The schedule counts optimizer
    steps, not epochs, so that its shape does not depend on the data's size."""
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-2
    # Linear warm-up over this share of all steps, never more than the cap.
    warmup_frac: float = 0.05
    warmup_max_steps: int = 300
    # A tiny train part still gets this many optimizer steps per epoch: the
    # batch shrinks (to no fewer than 2 windows) instead of one step per epoch.
    min_steps_per_epoch: int = 8
    # Epochs without a better validation score, counted once warm-up is over.
    patience: int = 10
    clip: float = 1.0
    # Seconds the fit may take (0: no bound; `train --budget 30m`): it stops
    # with the best weights so far, validating at least ~10 times within it.
    budget_s: float = 0.0

    def _validate(self, model: str) -> None:
        _check(self.epochs >= 1, model, "epochs", self.epochs, ">= 1")
        _check(self.budget_s >= 0, model, "budget_s", self.budget_s, ">= 0 (0: no budget)")
        _check(self.batch_size >= 2, model, "batch_size", self.batch_size, ">= 2")
        _check(self.lr > 0, model, "lr", self.lr, "> 0")
        _check(self.weight_decay >= 0, model, "weight_decay", self.weight_decay, ">= 0")
        _check(0 <= self.warmup_frac < 1, model, "warmup_frac", self.warmup_frac, "in [0, 1)")
        _check(self.warmup_max_steps >= 0, model, "warmup_max_steps", self.warmup_max_steps, ">= 0")
        _check(self.min_steps_per_epoch >= 1, model, "min_steps_per_epoch", self.min_steps_per_epoch, ">= 1")
        _check(self.patience >= 1, model, "patience", self.patience, ">= 1")
        _check(self.clip > 0, model, "clip", self.clip, "> 0")


@dataclass(frozen=True)
class MLPSettings(LoopSettings):
    hidden: int = 128
    dropout: float = 0.1

    def _validate(self, model: str) -> None:
        super()._validate(model)
        _check(self.hidden >= 2, model, "hidden", self.hidden, ">= 2")
        _check(0 <= self.dropout < 1, model, "dropout", self.dropout, "in [0, 1)")


@dataclass(frozen=True)
class SequenceSettings(MLPSettings):
    hidden: int = 64
    steps: int = _derived(0)       # time steps per window, from the tensor store


@dataclass(frozen=True)
class RecurrentSettings(SequenceSettings):
    # A window longer than this many steps is cut into this many tokens of
    # consecutive steps (gru, lstm, transformer).
    max_tokens: int = 16
    # How a token is made from its steps when a window is longer: `conv`
    # (a convolution at full resolution, then a strided one) or `patch`
    # (the steps' values side by side).
    stem: str = "conv"

    def _validate(self, model: str) -> None:
        super()._validate(model)
        _check(self.max_tokens >= 1, model, "max_tokens", self.max_tokens, ">= 1")
        _check(self.stem in ("conv", "patch"), model, "stem", self.stem, "conv or patch")


@dataclass(frozen=True)
class TransformerSettings(RecurrentSettings):
    hidden: int = 48
    d_model: int = 48
    heads: int = 4
    layers: int = 2

    def _validate(self, model: str) -> None:
        super()._validate(model)
        _check(self.heads >= 1 and self.d_model % self.heads == 0 and self.d_model % 2 == 0, model, "d_model",
               self.d_model, f"even and a multiple of heads={self.heads}")
        _check(self.layers >= 1, model, "layers", self.layers, ">= 1")


@dataclass(frozen=True)
class GBTSettings:
    n_estimators: int = 400
    max_depth: int = 6
    learning_rate: float = 0.1
    subsample: float = 0.9
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    max_bin: int = 256
    early_stopping_rounds: int = 25
    n_jobs: int = 2
    # Above this size the binned train matrix is paged to disk (XGBoost external
    # memory) instead of held in memory; 1 byte per kept value and window.
    memory_budget_mb: int = 1024
    # Seconds the boosting may take (0: no bound): it stops after the round
    # that reaches it, with the best round so far.
    budget_s: float = 0.0

    def _validate(self, model: str) -> None:
        _check(self.n_estimators >= 1, model, "n_estimators", self.n_estimators, ">= 1")
        _check(self.max_depth >= 1, model, "max_depth", self.max_depth, ">= 1")
        _check(self.learning_rate > 0, model, "learning_rate", self.learning_rate, "> 0")
        _check(0 < self.subsample <= 1, model, "subsample", self.subsample, "in (0, 1]")
        _check(0 < self.colsample_bytree <= 1, model, "colsample_bytree", self.colsample_bytree, "in (0, 1]")
        _check(self.reg_lambda >= 0, model, "reg_lambda", self.reg_lambda, ">= 0")
        _check(2 <= self.max_bin <= 256, model, "max_bin", self.max_bin, "in [2, 256]")
        _check(self.early_stopping_rounds >= 1, model, "early_stopping_rounds", self.early_stopping_rounds, ">= 1")
        _check(self.n_jobs >= 1, model, "n_jobs", self.n_jobs, ">= 1")
        _check(self.memory_budget_mb >= 0, model, "memory_budget_mb", self.memory_budget_mb, ">= 0")
        _check(self.budget_s >= 0, model, "budget_s", self.budget_s, ">= 0 (0: no budget)")


@dataclass(frozen=True)
class RocketSettings(LoopSettings):
    """The ROCKET family: a fixed transform, then a linear head. The loop's
    settings apply to the softmax head only (train's features above the budget)."""
    lr: float = 1e-3
    # Which head: ridge regression with its penalty chosen by leave-one-out
    # (train's features held in memory), a softmax trained by the loop on
    # features computed batch by batch, or auto: ridge when it fits the budget.
    head: str = "auto"
    memory_budget_mb: int = 2048
    max_dilations: int = 32
    steps: int = _derived(0)

    def _validate(self, model: str) -> None:
        super()._validate(model)
        _check(self.head in ("auto", "ridge", "softmax"), model, "head", self.head, "auto, ridge or softmax")
        _check(self.memory_budget_mb >= 0, model, "memory_budget_mb", self.memory_budget_mb, ">= 0")
        _check(self.max_dilations >= 1, model, "max_dilations", self.max_dilations, ">= 1")


@dataclass(frozen=True)
class MiniRocketSettings(RocketSettings):
    # Rounded down to a multiple of 84 (9,996): MiniRocket's default.
    n_features: int = 10000

    def _validate(self, model: str) -> None:
        super()._validate(model)
        _check(self.n_features >= 84, model, "n_features", self.n_features, ">= 84")


@dataclass(frozen=True)
class MRHydraSettings(RocketSettings):
    # MultiRocket: kernels per representation (6,216 after rounding to 84s),
    # four poolings each, on the series and its difference: 49,728 features.
    n_kernels: int = 6250
    # Hydra: groups of competing kernels, kernels per group, channels summed per group.
    hydra_groups: int = 64
    hydra_kernels: int = 8
    hydra_channels: int = 8

    def _validate(self, model: str) -> None:
        super()._validate(model)
        _check(self.n_kernels >= 84, model, "n_kernels", self.n_kernels, ">= 84")
        _check(self.hydra_groups >= 2 and self.hydra_groups % 2 == 0, model, "hydra_groups", self.hydra_groups,
               "even and >= 2")
        _check(self.hydra_kernels >= 2, model, "hydra_kernels", self.hydra_kernels, ">= 2")
        _check(self.hydra_channels >= 2, model, "hydra_channels", self.hydra_channels, ">= 2")


K_GRID = (1, 3, 5, 9, 15, 25)


@dataclass(frozen=True)
class KNNSettings:
    # None: chosen on the validation part from K_GRID (the choice is recorded).
    k: int | None = None
    # The reference set: at most this many train windows, a stratified sample beyond it.
    max_train: int = 20000

    def _validate(self, model: str) -> None:
        _check(self.k is None or self.k >= 1, model, "k", self.k, ">= 1, or auto")
        _check(self.max_train >= 1, model, "max_train", self.max_train, ">= 1")


@dataclass(frozen=True)
class KNNSemiSettings(KNNSettings):
    max_labeled: int = 8000
    max_unlabeled: int = 8000
    alpha: float = 0.2
    unlabeled_part: str = "test"

    def _validate(self, model: str) -> None:
        super()._validate(model)
        _check(self.max_labeled >= 1, model, "max_labeled", self.max_labeled, ">= 1")
        _check(self.max_unlabeled >= 0, model, "max_unlabeled", self.max_unlabeled, ">= 0")
        _check(0 < self.alpha < 1, model, "alpha", self.alpha, "in (0, 1)")
        _check(self.unlabeled_part in ("val", "test"), model, "unlabeled_part", self.unlabeled_part, "val or test")


def settable(settings_cls) -> list[str]:
    return [f.name for f in fields(settings_cls) if not f.metadata.get("derived")]


def defaults(settings_cls) -> dict:
    return asdict(settings_cls())


def make(settings_cls, model: str, values: dict | None, allow_derived: bool = False):
    """The settings `values` set over the defaults, validated: the one place a
    settings object is made from what a user (or a header) gave, so a value is
    checked once and then travels typed to the code that uses it. One line
    naming the valid keys for an unknown one, and the rule for a value out of
    range."""
    values = dict(values or {})
    names = {f.name for f in fields(settings_cls)} if allow_derived else set(settable(settings_cls))
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError(f"{model} has no setting '{unknown[0]}' (its settings: {', '.join(settable(settings_cls))})")
    s = settings_cls(**values)
    s._validate(model)
    return s


def given(settings) -> dict:
    """The settings that differ from the defaults (what a run records as asked)."""
    default = type(settings)()
    return {f.name: getattr(settings, f.name) for f in fields(settings)
            if not f.metadata.get("derived") and getattr(settings, f.name) != getattr(default, f.name)}


def parse_value(settings_cls, model: str, key: str, raw: str):
    """A `--set` value as the field's type: int, float, bool, str, or int-or-auto."""
    hints = typing.get_type_hints(settings_cls)
    kind = hints[key]
    args = set(typing.get_args(kind))
    text = raw.strip()
    if type(None) in args and text.lower() in ("auto", "none"):
        return None
    base = next((a for a in args if a is not type(None)), kind) if args else kind
    try:
        if base is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        return base(text)
    except ValueError:
        what = {int: "an integer", float: "a number", str: "text"}.get(base, base.__name__)
        auto = " or auto" if type(None) in args else ""
        raise ConfigError(f"{model}: --set {key}={raw}: {key} takes {what}{auto}") from None


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """`key=value` strings, in order; a later one wins."""
    out: dict[str, str] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--set {p}: expected key=value, e.g. --set k=5 or --set hidden=128")
        out[key.strip()] = value.strip()
    return out

