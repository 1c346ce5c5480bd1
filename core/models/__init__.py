"""The model registry: a plain dict, name -> class."""
from __future__ import annotations

from core.models.base import BaseModel
from core.models.neural import CNNModel, GRUModel, LSTMModel, MLPModel, TransformerModel
from core.models.rocket import MiniRocketModel, MRHydraModel
from core.models.tabular import GBTModel, KNNModel, KNNSemiModel

MODELS: dict[str, type[BaseModel]] = {m.name: m for m in (
    GBTModel, MLPModel, KNNModel, KNNSemiModel, CNNModel, GRUModel, LSTMModel, TransformerModel,
    MiniRocketModel, MRHydraModel)}


def model_class(name: str) -> type[BaseModel]:
    """The registered model called `name`; any other name is the one line
    every command gives (train, eval, serve, publish, export)."""
    from core.errors import ConfigError
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}' (models: {', '.join(MODELS)})")
    return MODELS[name]
