"""Tiny ONNX inpainting models built with the ``onnx`` helper API (no torch, no trained weights).

``inpainted = box3x3(image * mask) + (1 - mask) * 0.5 + 0 * upsample32(avgpool32(image * mask))``:
the last term makes the graph fail unless H and W are multiples of 32, so a successful call on odd
sizes proves InpaintModel's padding; the 3x3 box blur makes outputs depend on neighbours.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

CARD = {"channels": ["ct", "pet"], "site": "lung", "ct_window": [-1000, 500], "suv_window": [0, 12],
        "size_multiple": 32, "architecture": "test-fill"}


def _const(name: str, values):
    array = np.asarray(values, dtype=np.float32)
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name + "_t", TensorProto.FLOAT, array.shape, array.ravel().tolist()))


def build_model(path, channels: int = 2, input_names=("image", "mask"), output_name="inpainted",
                static_channels: int | None = None) -> None:
    """Write the fill-with-0.5 model to ``path`` (``static_channels`` overrides the declared C)."""
    c = static_channels if static_channels is not None else channels
    image = helper.make_tensor_value_info(input_names[0], TensorProto.FLOAT, ["N", c, "H", "W"])
    mask = helper.make_tensor_value_info(input_names[1], TensorProto.FLOAT, ["N", 1, "H", "W"])
    out = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", c, "H", "W"])
    nodes = [
        _const("one", 1.0), _const("half", 0.5), _const("zero", 0.0), _const("scales", [1.0, 1.0, 32.0, 32.0]),
        helper.make_node("Mul", [input_names[0], input_names[1]], ["known"]),
        _const("box", np.full((c, 1, 3, 3), 1 / 9)),
        helper.make_node("Conv", ["known", "box"], ["blurred"], group=c, pads=[1, 1, 1, 1]),
        helper.make_node("Sub", ["one", input_names[1]], ["hole"]),
        helper.make_node("Mul", ["hole", "half"], ["fill"]),
        helper.make_node("Add", ["blurred", "fill"], ["filled"]),
        helper.make_node("AveragePool", ["known"], ["pooled"], kernel_shape=[32, 32], strides=[32, 32]),
        helper.make_node("Resize", ["pooled", "", "scales"], ["upsampled"], mode="nearest"),
        helper.make_node("Mul", ["upsampled", "zero"], ["nothing"]),
        helper.make_node("Add", ["filled", "nothing"], [output_name]),
    ]
    graph = helper.make_graph(nodes, "fill", [image, mask], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_card(path, **changes) -> None:
    """Write a valid card (``CARD`` with ``changes``) to ``path``."""
    path.write_text(json.dumps(dict(CARD, **changes)), encoding="utf-8")


def reference_output(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """What the graph computes, in numpy (the Conv's zero padding)."""
    known = image * mask
    padded = np.pad(known, ((0, 0), (0, 0), (1, 1), (1, 1)))
    blurred = sum(padded[:, :, dy:dy + image.shape[2], dx:dx + image.shape[3]] for dy in range(3) for dx in range(3)) / 9
    return blurred + (1 - mask) * 0.5
