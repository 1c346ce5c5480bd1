"""Neural models: mlp on summary features; cnn, gru, lstm, transformer on
channel x time tensors (standardised values stacked with the presence mask).
Small on purpose: live inference runs on a Raspberry Pi's CPU."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.models.base import BaseModel, class_weights, save_npz
from core.models.loop import train_loop
from core.models.settings import MLPSettings, RecurrentSettings, SequenceSettings, TransformerSettings

SEQUENCE_NETS = ("gru", "lstm", "transformer")


def build_net(name: str, in_dim: int, steps: int, k: int, cfg: MLPSettings):
    import torch
    from torch import nn

    h = cfg.hidden
    if name == "mlp":
        return nn.Sequential(nn.Linear(in_dim, h), nn.ReLU(), nn.Dropout(cfg.dropout),
                             nn.Linear(h, h // 2), nn.ReLU(), nn.Linear(h // 2, k))
    if name == "cnn":
        def block(i, o, kernel):
            return [nn.Conv1d(i, o, kernel, padding=kernel // 2), nn.BatchNorm1d(o), nn.ReLU()]
        return nn.Sequential(*block(in_dim, h // 2, 5), *block(h // 2, h, 5), *block(h, h, 3),
                             nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(h, k))

    # Long windows become at most `max_tokens` tokens of p consecutive steps
    # each: a recurrent net or attention over hundreds of noisy steps learns
    # slowly from few windows. With the `conv` stem (the default), a
    # convolution reads the window at full resolution first and a strided one
    # makes each token from its p steps; `patch` flattens p raw steps into a
    # token (what format 2 did: on 200-step windows it left lstm near chance).
    p = max(1, math.ceil(steps / cfg.max_tokens)) if name in SEQUENCE_NETS else 1
    tokens = math.ceil(steps / p)
    conv_stem = p > 1 and getattr(cfg, "stem", None) == "conv"
    token_dim = h if conv_stem else in_dim * p

    class Stem(nn.Module):
        def __init__(self):
            super().__init__()
            self.local = nn.Sequential(nn.Conv1d(in_dim, h, 5, padding=2), nn.BatchNorm1d(h), nn.ReLU())
            self.stride = nn.Conv1d(h, h, p, stride=p)

        def forward(self, x):                      # (B, D, T) -> (B, tokens, h)
            z = nn.functional.pad(self.local(x), (0, tokens * p - steps))
            return self.stride(z).transpose(1, 2)

    stem = Stem() if conv_stem else None

    def patch(x):                                  # (B, D, T) -> (B, tokens, token_dim)
        if stem is not None:
            return stem(x)
        if p == 1:
            return x.transpose(1, 2)
        x = nn.functional.pad(x, (0, tokens * p - steps))
        return x.unflatten(2, (tokens, p)).permute(0, 2, 1, 3).flatten(2)

    class Recurrent(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.stem = stem
            self.rnn = cell(token_dim, h, batch_first=True)
            if cell is nn.LSTM:
                # Forget-gate bias 1 (Jozefowicz et al., 2015): remember by default early in training.
                with torch.no_grad():
                    self.rnn.bias_ih_l0[h:2 * h].fill_(1.0)
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(2 * h, k))

        def forward(self, x):                      # (B, D, T)
            out, _ = self.rnn(patch(x))
            # Mean over time beside the last state: every step gets a gradient,
            # which long windows and small sets need (the last state alone
            # left gru/lstm at chance on 32 windows of 200 steps).
            return self.head(torch.cat([out.mean(dim=1), out[:, -1]], dim=1))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg.d_model
            self.stem = stem
            self.proj = nn.Linear(token_dim, d)
            pos = torch.arange(tokens).unsqueeze(1)
            div = torch.exp(torch.arange(0, d, 2) * (-np.log(10000.0) / d))
            pe = torch.zeros(tokens, d)
            pe[:, 0::2] = torch.sin(pos * div)
            pe[:, 1::2] = torch.cos(pos * div)
            self.register_buffer("pe", pe.unsqueeze(0), persistent=False)
            layer = nn.TransformerEncoderLayer(d, cfg.heads, 2 * d, cfg.dropout, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
            self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, k))

        def forward(self, x):
            z = self.proj(patch(x)) + self.pe
            return self.head(self.encoder(z).mean(dim=1))

    if name == "gru":
        return Recurrent(nn.GRU)
    if name == "lstm":
        return Recurrent(nn.LSTM)
    if name == "transformer":
        return Transformer()
    raise KeyError(name)


# Under a budget, the windows each validation scores at most: a stratified
# sample, so that at least ten validations fit whatever the lab's size.
BUDGET_VAL_WINDOWS = 20000


def budget_val(val, cfg, seed: int):
    """The validation part a budgeted fit chooses on, and what the record says of it."""
    if val is None or cfg.budget_s <= 0 or len(val) <= BUDGET_VAL_WINDOWS:
        return val, {}
    rng = np.random.default_rng(seed + 7)
    keep = []
    for c in np.unique(val.y):
        idx = np.flatnonzero(val.y == c)
        keep.append(rng.choice(idx, max(1, int(round(BUDGET_VAL_WINDOWS * len(idx) / len(val)))), replace=False))
    keep = np.sort(np.concatenate(keep))
    return val.take(keep), {"val_windows_used": int(len(keep)),
                            "val_sample": f"a stratified {len(keep):,} of the {len(val):,} validation windows "
                                          "(the budget's validations each score at most "
                                          f"{BUDGET_VAL_WINDOWS:,})"}


class NeuralModel(BaseModel):
    progress_unit = "epoch"
    option_keys = {**{k: k for k in ("epochs", "batch_size", "lr", "weight_decay", "patience")}, "budget": "budget_s"}

    @classmethod
    def progress_total(cls, cfg) -> int:
        return cfg.epochs

    def _dims(self) -> tuple[int, int]:
        kept = len(self.pre.keep)
        return (kept, 1) if self.input_kind == "summary" else (2 * kept, self.cfg.steps)

    def _fit(self, train, val, progress) -> dict:
        if self.input_kind == "tensor":
            self.cfg = replace(self.cfg, steps=int(train.store.shape[1]))
        import torch
        in_dim, steps = self._dims()
        torch.manual_seed(self.seed)  # the initial weights are part of what the seed fixes
        self.net = build_net(self.name, in_dim, steps, len(self.classes), self.cfg)

        def train_batches(rng, size):
            return self.prepared_batches(train, size, rng)

        val, val_note = budget_val(val, self.cfg, self.seed)

        def val_batches():
            return self.prepared_batches(val, 2048)
        info = train_loop(self.net, train_batches, len(train), val_batches if val is not None else None,
                          class_weights(train.y, len(self.classes)), self.cfg, self.device, self.seed, progress,
                          stop_epoch=self.fixed.get("epochs"), resume=None if self.fixed else self.resume)
        self.net.to("cpu")
        self.device = "cpu"
        return {**info, **val_note}

    # Folds run every epoch (no early stop): their validation curves are averaged.
    cv_overrides = {"patience": 10**6}

    def _cv_summary(self, info: dict) -> dict:
        h = info["history"]
        return {"best_epoch": int(info["best_epoch"]), "score": float(info["val_macro_f1"]),
                "curve": [round(float(e["val_macro_f1"]), 5) for e in h],
                "loss": [round(float(e["val_loss"]), 5) for e in h]}

    def _cv_fix(self, summaries: list[dict]) -> dict:
        # The epoch with the best mean held-out macro-F1 over the folds (a tie
        # to the lower mean held-out loss): one fold's best epoch is a noisy draw.
        n = min(len(s["curve"]) for s in summaries)
        f1 = np.mean([s["curve"][:n] for s in summaries], axis=0)
        loss = np.mean([s["loss"][:n] for s in summaries], axis=0)
        best = max(range(n), key=lambda e: (round(float(f1[e]), 6), -float(loss[e])))
        return {"epochs": best + 1}

    def export_net(self):
        """The module the ONNX export traces (the network itself)."""
        return self.net

    def write_export(self, directory: Path) -> dict:
        from core.lab import GRAPH
        from core.models.onnx_graphs import torch_graph
        in_dim, steps = self._dims()
        torch_graph(self.name, self.export_net(), (in_dim,) if self.input_kind == "summary" else (in_dim, steps),
                    Path(directory) / GRAPH)
        return {}

    def _predict_proba(self, x) -> np.ndarray:
        import torch
        self.net.eval()
        with torch.no_grad():
            return torch.softmax(self.net(torch.from_numpy(x)), dim=1).numpy()

    def _save_weights(self, directory: Path) -> str:
        save_npz(directory / "weights.npz", {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()})
        return "weights.npz"

    def _load_weights(self, path: Path) -> None:
        import torch
        in_dim, steps = self._dims()
        self.net = build_net(self.name, in_dim, steps, len(self.classes), self.cfg)
        with np.load(path, allow_pickle=False) as z:
            self.net.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
        self.net.eval()


class MLPModel(NeuralModel):
    name, input_kind, settings = "mlp", "summary", MLPSettings


class CNNModel(NeuralModel):
    name, input_kind, settings = "cnn", "tensor", SequenceSettings


class GRUModel(NeuralModel):
    name, input_kind, settings = "gru", "tensor", RecurrentSettings


class LSTMModel(NeuralModel):
    name, input_kind, settings = "lstm", "tensor", RecurrentSettings


class TransformerModel(NeuralModel):
    name, input_kind, settings = "transformer", "tensor", TransformerSettings
