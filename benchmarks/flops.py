"""Arithmetic counts and this machine's roofline, for the benchmark scripts.

``conv_flops`` counts the FLOPs (2 x multiply-accumulates) of every Conv and ConvTranspose of an
ONNX graph for given input shapes, from the weight shapes and the inferred output sizes; the
element-wise work (gating, activations, batch norm folded or not, resizes) is left out, as it is a
few per cent of a U-Net's arithmetic. ``matmul_gflops`` is numpy's float32 matmul speed, the
practical roofline the achieved GFLOP/s are compared with. Needs ``onnx`` (dev extra).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def conv_flops(model, input_shapes: Mapping[str, Sequence[int]]) -> float:
    """FLOPs (2 x MACs) of the convolutions of ``model`` for inputs of the given shapes.

    Args:
        model: an ``onnx.ModelProto`` or the path of an ``.onnx`` file.
        input_shapes: graph input name -> concrete shape, e.g. ``{"image": (1, 2, 128, 128),
            "mask": (1, 1, 128, 128)}``; every dynamic dimension of every input must be given.

    Returns:
        Sum over Conv and QLinearConv nodes of ``2 * prod(output shape) * (C_in / group) * kh * kw`` and over
        ConvTranspose nodes of ``2 * prod(input shape) * (C_out / group) * kh * kw``.

    Raises:
        ValueError: an input is missing from ``input_shapes``, a weight is not a constant,
            or shape inference leaves a convolution's size unknown.
    """
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(model)) if isinstance(model, (str, Path)) else onnx.ModelProto.FromString(
        model.SerializeToString())
    initialisers = {t.name for t in model.graph.initializer}
    for tensor in model.graph.input:
        if tensor.name in initialisers:
            continue
        if tensor.name not in input_shapes:
            raise ValueError(f"no shape given for graph input {tensor.name!r}")
        dims = tensor.type.tensor_type.shape.dim
        for dim, value in zip(dims, input_shapes[tensor.name], strict=True):
            dim.ClearField("dim_param")
            dim.dim_value = int(value)
    model = shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else 0 for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:  # weights may also come from Constant nodes (hand-built graphs)
        values = [attr.t for attr in node.attribute if attr.name == "value"]
        if node.op_type == "Constant" and values:
            weights[node.output[0]] = list(values[0].dims)
    # an int8 twin's QLinearConv (x, x_scale, x_zero_point, w, ...) does the same multiply-adds on int8
    weight_input = {"Conv": 1, "ConvTranspose": 1, "QLinearConv": 3}
    convolutions = [node for node in model.graph.node if node.op_type in weight_input]
    measured = {node.name: node.input[0] if node.op_type == "ConvTranspose" else node.output[0] for node in convolutions}
    unknown = [name for name in measured.values() if not shapes.get(name) or 0 in shapes[name]]
    if unknown:
        shapes.update(_shapes_by_running(model, input_shapes, unknown))
    flops = 0.0
    for node in convolutions:
        weight = node.input[weight_input[node.op_type]]
        if weight not in weights:
            raise ValueError(f"{node.op_type} {node.name!r}: weight {weight!r} is not a constant")
        kernel = weights[weight]  # Conv: (C_out, C_in/g, kh, kw); ConvTranspose: (C_in, C_out/g, kh, kw)
        shape = shapes.get(measured[node.name])
        if not shape or 0 in shape:
            raise ValueError(f"{node.op_type} {node.name!r}: size of {measured[node.name]!r} unknown")
        flops += 2.0 * float(np.prod(shape)) * float(np.prod(kernel[1:]))
    return flops


def _shapes_by_running(model, input_shapes: Mapping[str, Sequence[int]], names: Sequence[str]) -> dict:
    """Shapes of the tensors ``names`` from one onnxruntime run on zeros of ``input_shapes``.

    Shape inference gives up after ops whose output shape is data-dependent (an ``Expand`` to a
    runtime shape, e.g. ``torch.ones_like`` in the prefills), and every node after it stays unsized.
    """
    import onnx
    import onnxruntime

    probe = onnx.ModelProto.FromString(model.SerializeToString())
    present = {output.name for output in probe.graph.output}
    for name in dict.fromkeys(names):
        if name not in present:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    session = onnxruntime.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros(input_shapes[i.name], dtype=np.float32) for i in session.get_inputs()}
    outputs = session.run(None, feeds)
    return {info.name: list(value.shape) for info, value in zip(session.get_outputs(), outputs)}


def contract_shapes(channels: int, size: int, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """Input shapes of an inpainting model (``image`` (N, C, H, W), ``mask`` (N, 1, H, W)), square."""
    return {"image": (batch, channels, size, size), "mask": (batch, 1, size, size)}


def matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    """Best-of-``repeats`` float32 ``n x n`` matmul GFLOP/s through numpy's BLAS (one warm-up first)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9
