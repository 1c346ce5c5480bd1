"""Neural models: mlp on summary features; cnn, gru, lstm, transformer on
channel x time tensors (standardised values stacked with the presence mask).
Small on purpose: live inference runs on a Raspberry Pi's CPU."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.models.base import BaseModel, class_weights, save_npz
from core.models.loop import LoopConfig, train_loop

LOOP_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "warmup_frac", "patience", "clip")
LOOP_DEFAULTS = {k: getattr(LoopConfig(), k) for k in LOOP_KEYS}


def build_net(name: str, in_dim: int, steps: int, k: int, cfg: dict):
    import torch
    from torch import nn

    h = cfg["hidden"]
    if name == "mlp":
        return nn.Sequential(nn.Linear(in_dim, h), nn.ReLU(), nn.Dropout(cfg["dropout"]),
                             nn.Linear(h, h // 2), nn.ReLU(), nn.Linear(h // 2, k))
    if name == "cnn":
        def block(i, o, kernel):
            return [nn.Conv1d(i, o, kernel, padding=kernel // 2), nn.BatchNorm1d(o), nn.ReLU()]
        return nn.Sequential(*block(in_dim, h // 2, 5), *block(h // 2, h, 5), *block(h, h, 3),
                             nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Dropout(cfg["dropout"]), nn.Linear(h, k))

    class Recurrent(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.rnn = cell(in_dim, h, batch_first=True)
            self.head = nn.Sequential(nn.Dropout(cfg["dropout"]), nn.Linear(h, k))

        def forward(self, x):                      # (B, D, T)
            out, _ = self.rnn(x.transpose(1, 2))
            return self.head(out[:, -1])

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg["d_model"]
            self.proj = nn.Linear(in_dim, d)
            pos = torch.arange(steps).unsqueeze(1)
            div = torch.exp(torch.arange(0, d, 2) * (-np.log(10000.0) / d))
            pe = torch.zeros(steps, d)
            pe[:, 0::2] = torch.sin(pos * div)
            pe[:, 1::2] = torch.cos(pos * div)
            self.register_buffer("pe", pe.unsqueeze(0), persistent=False)
            layer = nn.TransformerEncoderLayer(d, cfg["heads"], 2 * d, cfg["dropout"], batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, cfg["layers"], enable_nested_tensor=False)
            self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, k))

        def forward(self, x):
            z = self.proj(x.transpose(1, 2)) + self.pe[:, : x.shape[2]]
            return self.head(self.encoder(z).mean(dim=1))

    if name == "gru":
        return Recurrent(nn.GRU)
    if name == "lstm":
        return Recurrent(nn.LSTM)
    if name == "transformer":
        return Transformer()
    raise KeyError(name)


class NeuralModel(BaseModel):
    arch: dict = {}
    progress_unit = "epoch"

    @classmethod
    def progress_total(cls, config: dict) -> int:
        return int(config["epochs"])

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.default_config = {**LOOP_DEFAULTS, **cls.arch}

    def _dims(self) -> tuple[int, int]:
        kept = len(self.pre.keep)
        return (kept, 1) if self.input_kind == "summary" else (2 * kept, self.config["steps"])

    def _fit(self, train, val, progress) -> dict:
        if self.input_kind == "tensor":
            self.config["steps"] = int(train.store.shape[1])
        import torch
        in_dim, steps = self._dims()
        torch.manual_seed(self.seed)  # the initial weights are part of what the seed fixes
        self.net = build_net(self.name, in_dim, steps, len(self.classes), self.config)
        loop = LoopConfig(**{k: self.config[k] for k in LOOP_KEYS})

        def train_batches(rng):
            return ((self._prepare(x), y) for x, y in train.batches(loop.batch_size, rng))

        def val_batches():
            return ((self._prepare(x), y) for x, y in val.batches(2048))
        info = train_loop(self.net, train_batches, len(train), val_batches, class_weights(train.y, len(self.classes)),
                          loop, self.device, self.seed, progress)
        self.net.to("cpu")
        self.device = "cpu"
        return info

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
        self.net = build_net(self.name, in_dim, steps, len(self.classes), self.config)
        with np.load(path, allow_pickle=False) as z:
            self.net.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
        self.net.eval()


class MLPModel(NeuralModel):
    name, input_kind = "mlp", "summary"
    arch = {"hidden": 128, "dropout": 0.1}


class CNNModel(NeuralModel):
    name, input_kind = "cnn", "tensor"
    arch = {"hidden": 64, "dropout": 0.1}


class GRUModel(NeuralModel):
    name, input_kind = "gru", "tensor"
    arch = {"hidden": 64, "dropout": 0.1}


class LSTMModel(NeuralModel):
    name, input_kind = "lstm", "tensor"
    arch = {"hidden": 64, "dropout": 0.1}


class TransformerModel(NeuralModel):
    name, input_kind = "transformer", "tensor"
    arch = {"hidden": 48, "d_model": 48, "heads": 4, "layers": 2, "dropout": 0.1}
