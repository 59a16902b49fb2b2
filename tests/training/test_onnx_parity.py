"""The U-Nets export to ONNX (dynamo exporter, opset 18, dynamic N/H/W) and match PyTorch."""

import numpy as np
import onnxruntime
import pytest
import torch

from autopaint_app.training.networks import NetworkConfig, build_network

onnxruntime.set_default_logger_severity(4)  # onnxruntime-gpu's CUDA fallback noise
# The exporter's own chatter (torch internals, not our code).
pytestmark = [pytest.mark.filterwarnings("ignore:# The axis name:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")]


def _export(model, example):
    batch, height, width = (torch.export.Dim(name) for name in ("batch", "height", "width"))
    axes = {0: batch, 2: height, 3: width}
    program = torch.onnx.export(model, example, None, input_names=["image", "mask"],
                                output_names=["inpainted"], opset_version=18,
                                dynamic_shapes={"image": axes, "mask": axes})
    return program.model_proto


@pytest.mark.parametrize("arch, channels", [("gconv", 2), ("pconv", 1)])
def test_onnx_export_matches_pytorch_on_several_shapes(arch, channels):
    torch.manual_seed(0)
    model = build_network(NetworkConfig.with_widths((8, 16, 16), arch=arch,
                                                    in_channels=channels)).eval()
    g = torch.Generator().manual_seed(1)
    # Give BN non-trivial running statistics so the exported eval-mode BN is really checked.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1, generator=g)
            module.running_var.uniform_(0.5, 1.5, generator=g)
    example = (torch.rand(2, channels, 64, 64), torch.ones(2, 1, 64, 64))
    proto = _export(model, example)
    assert [i.name for i in proto.graph.input] == ["image", "mask"]
    assert [o.name for o in proto.graph.output] == ["inpainted"]
    assert any(o.domain in ("", "ai.onnx") and o.version == 18 for o in proto.opset_import)
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    for n, h, w in ((1, 64, 64), (3, 32, 96), (2, 128, 128)):
        image = torch.rand(n, channels, h, w, generator=g)
        mask = (torch.rand(n, 1, h, w, generator=g) > 0.3).float()
        with torch.no_grad():
            expected = model(image, mask).numpy()
        (got,) = session.run(None, {"image": image.numpy(), "mask": mask.numpy()})
        assert got.shape == (n, channels, h, w) and got.dtype == np.float32
        assert np.abs(got - expected).max() < 1e-5
