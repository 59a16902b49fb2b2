"""benchmarks/: the convolution FLOP counter on hand-made graphs, and a --quick smoke run of bench_models.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from benchmarks.flops import contract_shapes, conv_flops, matmul_gflops
from tests.core.tiny_onnx import build_model, write_card

REPO = Path(__file__).resolve().parents[2]


def _three_conv_model() -> onnx.ModelProto:
    """x (N, 3, H, W) -> Conv 3x3 stride 2 (8 out) -> grouped Conv 3x3 (2 groups) -> ConvTranspose 2x2 stride 2 (2 out)."""
    weights = [numpy_helper.from_array(np.ones(shape, np.float32), name) for name, shape in
               (("w1", (8, 3, 3, 3)), ("w2", (8, 4, 3, 3)), ("w3", (8, 2, 2, 2)))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Conv", ["a", "w2"], ["b"], pads=[1, 1, 1, 1], group=2),
             helper.make_node("ConvTranspose", ["b", "w3"], ["y"], strides=[2, 2])]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, "H", "W"])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("n, size", [(1, 16), (3, 32)])
def test_conv_flops_counts_strided_grouped_and_transposed_convolutions(n, size):
    half = (size // 2) ** 2
    macs = (n * 8 * half * 3 * 9          # stride 2: 8 outputs per half-size pixel, 3 inputs x 3x3
            + n * 8 * half * 4 * 9        # 2 groups: each output sees 8 / 2 = 4 inputs x 3x3
            + n * 8 * half * 2 * 4)       # transposed: each input pixel feeds 2 outputs x 2x2
    assert conv_flops(_three_conv_model(), {"x": (n, 3, size, size)}) == 2 * macs


def test_conv_flops_of_a_saved_contract_model_and_a_missing_shape(tmp_path):
    build_model(tmp_path / "fill.onnx", channels=2)  # one depthwise 3x3 box blur (weight from a Constant node)
    assert conv_flops(tmp_path / "fill.onnx", contract_shapes(2, 64, batch=2)) == 2 * (2 * 2 * 64 * 64 * 9)
    with pytest.raises(ValueError, match="no shape given for graph input 'mask'"):
        conv_flops(tmp_path / "fill.onnx", {"image": (1, 2, 64, 64)})


def test_conv_flops_sizes_convolutions_after_a_runtime_shaped_expand():
    # x -> Expand(ones, Shape(x)) -> Conv 3x3: shape inference cannot size the Expand (the prefills'
    # torch.ones_like exports like this), so the counter falls back to one onnxruntime run.
    weight = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    one = numpy_helper.from_array(np.ones((1,), np.float32), "one")
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Expand", ["one", "shape"], ["ones"]),
             helper.make_node("Conv", ["ones", "w"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "expand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight, one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    assert conv_flops(model, {"x": (2, 1, 24, 40)}) == 2 * (2 * 24 * 40 * 9)


def test_matmul_gflops_is_a_plausible_rate():
    assert 0.05 < matmul_gflops(256, repeats=1) < 10_000


def test_quick_run_prints_roofline_training_and_a_row_per_model_size_and_batch(tmp_path):
    build_model(tmp_path / "lung_petct_fill.onnx", channels=2)
    write_card(tmp_path / "lung_petct_fill.json")
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_models.py"), "--quick", "--models-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    matmul = float(re.search(r"float32 matmul .*: ([\d.]+) GFLOP/s", out).group(1))
    assert matmul > 0
    training = re.search(r"training .*2\.18 M params.*64-px crops, batch 2: ([\d.]+) s/step, ([\d.]+) slices/s", out)
    assert training, out
    assert float(training.group(2)) == pytest.approx(2 / float(training.group(1)), rel=0.05)
    rows = [line.split() for line in out.splitlines() if line.startswith("lung_petct_fill")]
    assert [(r[1], r[2]) for r in rows] == [("128", "1"), ("128", "2")]
    for _, _, batch, ms, crops_per_s, gflop_per_crop, gflops, share in rows:
        assert float(crops_per_s) == pytest.approx(int(batch) * 1000 / float(ms), rel=0.01)
        assert float(gflop_per_crop) == pytest.approx(2 * 2 * 128 * 128 * 9 / 1e9, rel=1e-3)
        assert float(gflops) == pytest.approx(float(crops_per_s) * float(gflop_per_crop), rel=0.01)
        assert share.endswith("%")
