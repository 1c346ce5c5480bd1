"""Writing a model as an ONNX graph: what each model's `write_export` calls
(core.deploy.export runs it and checks the bundle against the checkpoint).
Needs the `lab` extra (torch, onnx, onnxmltools)."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from core.errors import Cis490Error

ONNX_OPSET = 18
GBT_OPSET = 15                 # onnxmltools' highest for XGBoost trees


class GraphError(Cis490Error):
    """A model could not be written as a graph."""


@contextlib.contextmanager
def quiet():
    """The exporters narrate (progress lines, warnings, log records): none of it is the user's."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript",
                                              "torch._export", "torch.fx", "skl2onnx", "onnxmltools")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def torch_graph(name: str, net, example_shape: tuple[int, ...], path: Path) -> None:
    """`softmax(net(x))` as an ONNX graph with a symbolic batch dimension."""
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.softmax(self.net(x), dim=1)

    wrapped = Probabilities(net).eval()
    # A batch of 2 keeps the batch dimension symbolic (a batch of 1 is specialised away).
    example = torch.zeros((2, *example_shape))
    try:
        with quiet():
            torch.onnx.export(wrapped, (example,), str(path), input_names=["x"], output_names=["probabilities"],
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), dynamo=True,
                              opset_version=ONNX_OPSET, external_data=False, verbose=False)
    except Exception as exc:  # noqa: BLE001 - the exporter's failures are many and untyped
        raise GraphError(f"{name}: torch.onnx.export failed ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200]})") from None


def booster_graph(booster, n_inputs: int, path: Path) -> None:
    """An XGBoost booster's trees as an ONNX graph."""
    try:
        from onnxmltools.convert import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(exc.msg, name="onnxmltools") from None
    try:
        with quiet():
            onx = convert_xgboost(booster, initial_types=[("x", FloatTensorType([None, n_inputs]))],
                                  target_opset=GBT_OPSET)
    except Exception as exc:  # noqa: BLE001
        raise GraphError(f"gbt: onnxmltools could not convert the booster ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200]})") from None
    path.write_bytes(onx.SerializeToString())
