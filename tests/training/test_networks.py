"""GConv / PConv U-Nets: contract, topology, gating gradients, PConv mask rule, BN freezing."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from autopaint_app.training.layers import GatedConv2d, PartialConv2d
from autopaint_app.training.networks import NetworkConfig, build_network, count_parameters


def _inputs(n, c, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(n, c, size, size, generator=g)
    mask = (torch.rand(n, 1, size, size, generator=g) > 0.3).float()
    return image, mask


@pytest.mark.parametrize("arch", ["gconv", "pconv"])
@pytest.mark.parametrize("channels", [1, 2])
def test_output_shape_and_range_on_128_and_256(arch, channels):
    torch.manual_seed(0)
    model = build_network(NetworkConfig(arch=arch, in_channels=channels)).eval()
    for n, size in ((2, 128), (1, 256)):
        image, mask = _inputs(n, channels, size)
        with torch.no_grad():
            out = model(image, mask)
        assert out.shape == (n, channels, size, size)
        assert out.dtype == torch.float32
        assert 0.0 <= out.min() and out.max() <= 1.0


def test_compact_gconv_runs_on_a_512_slice_with_the_same_weights():
    model = build_network(NetworkConfig(in_channels=2)).eval()
    image, mask = _inputs(1, 2, 512)
    with torch.no_grad():
        out = model(image, mask)
    assert out.shape == (1, 2, 512, 512)
    assert torch.isfinite(out).all()


def test_network_never_sees_the_pixels_under_the_holes():
    torch.manual_seed(1)
    model = build_network(NetworkConfig(in_channels=2)).eval()
    image, mask = _inputs(1, 2, 128)
    changed = image.clone()
    changed[mask.expand_as(image) == 0] = torch.rand(int((mask == 0).sum()) * 2)
    with torch.no_grad():
        assert torch.equal(model(image, mask), model(changed, mask))


def test_size_multiple_and_bad_inputs_are_refused():
    config = NetworkConfig()
    assert config.size_multiple == 2 ** config.depth == 32
    assert NetworkConfig.paper().size_multiple == 256
    model = build_network(config)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 1, 128, 112), torch.ones(1, 1, 128, 112))
    with pytest.raises(ValueError, match=r"expected image \(N, 1, H, W\)"):
        model(torch.rand(1, 2, 128, 128), torch.ones(1, 1, 128, 128))


def test_config_validation():
    with pytest.raises(ValueError, match="arch"):
        NetworkConfig(arch="unet")
    with pytest.raises(ValueError, match="in_channels"):
        NetworkConfig(in_channels=3)
    with pytest.raises(ValueError, match="depth"):
        NetworkConfig(widths=(8, 16), depth=3)
    with pytest.raises(ValueError, match="odd"):
        NetworkConfig(widths=(8, 16), depth=2, kernels=(4, 3))
    assert NetworkConfig.with_widths((8, 16, 32)).kernels == (7, 5, 5)


def test_parameter_counts_of_paper_and_compact_configs():
    # Paper GConv: 8 levels, 64...512 channels, 2 convs per gated layer (ARCHITECTURE.md: 65.8 M).
    assert count_parameters(build_network(NetworkConfig.paper("gconv", 1))) == 65_823_763
    assert count_parameters(build_network(NetworkConfig.paper("pconv", 1))) == 32_894_922
    compact = count_parameters(build_network(NetworkConfig(in_channels=2)))
    # <= 2.5 M keeps the float32 ONNX file under the 10 MB budget of the shipped models.
    assert compact == 2_178_840 and compact * 4 < 10e6


def test_named_sizes_and_the_card_name_of_explicit_widths():
    from autopaint_app.training.export import size_name

    light = NetworkConfig.named("light", in_channels=2)
    assert (light.widths, light.kernels, light.size_multiple) == ((16, 32, 48, 64), (7, 5, 5, 3), 16)
    assert count_parameters(build_network(light)) == 326_568
    assert NetworkConfig.named("compact", in_channels=2) == NetworkConfig(in_channels=2)
    assert NetworkConfig.named("paper") == NetworkConfig.paper()
    # a run that spelled the light widths out is still carded as the light network
    assert size_name(NetworkConfig.with_widths((16, 32, 48, 64), in_channels=2)) == "light"
    assert size_name(NetworkConfig()) == "compact" and size_name(NetworkConfig.paper()) == "paper"
    assert size_name(NetworkConfig.with_widths((16, 32, 48))) == "custom"


def test_gradients_reach_the_gating_branch():
    model = build_network(NetworkConfig.with_widths((8, 16, 16), in_channels=2))
    image, mask = _inputs(2, 2, 64)
    (model(image, mask) - image).abs().mean().backward()
    gated = [m for m in model.modules() if isinstance(m, GatedConv2d)]
    assert len(gated) == 6  # 3 encoder + 3 decoder blocks
    for layer in gated:
        assert layer.conv_g.weight.grad is not None
        assert layer.conv_g.weight.grad.abs().sum() > 0
        assert layer.conv_f.weight.grad.abs().sum() > 0


def test_gated_conv_is_feature_times_sigmoid_gate():
    layer = GatedConv2d(1, 1, 1, activation=nn.ReLU())
    with torch.no_grad():
        layer.conv_f.weight.fill_(2.0)
        layer.conv_f.bias.fill_(-1.0)
        layer.conv_g.weight.fill_(0.0)
        layer.conv_g.bias.fill_(0.0)  # gate = sigmoid(0) = 0.5
    x = torch.tensor([[[[0.0, 1.0]]]])
    assert torch.allclose(layer(x), torch.tensor([[[[0.0, 0.5]]]]))


def test_partial_conv_mask_update_and_renormalisation_on_a_single_known_pixel():
    layer = PartialConv2d(1, 1, 3, bias=True)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
        layer.conv.bias.fill_(0.5)
    mask = torch.zeros(1, 1, 5, 5)
    mask[0, 0, 1, 3] = 1.0
    ratio, new_mask = layer.renormalisation(mask)
    expected_mask = torch.zeros(1, 1, 5, 5)
    expected_mask[0, 0, 0:3, 2:5] = 1.0  # the 3x3 neighbourhood of (1, 3)
    assert torch.equal(new_mask, expected_mask)
    assert torch.equal(ratio, 9.0 * expected_mask)  # sum(1) / sum(M) = 9 / 1
    x = torch.full((1, 1, 5, 5), 7.0)
    out, out_mask = layer(x, mask)
    assert torch.equal(out_mask, expected_mask)
    # Only the known pixel (7) counts, scaled by 9, plus the bias; 0 outside the new mask.
    assert torch.allclose(out, (7.0 * 9.0 + 0.5) * expected_mask)


def test_partial_conv_mask_groups_count_channels_per_mask():
    layer = PartialConv2d(3, 1, 1, mask_groups=(2, 1), bias=False)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
    mask = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)  # first 2 channels known, third a hole
    ratio, _ = layer.renormalisation(mask)
    assert ratio.item() == pytest.approx(3 / 2)
    out, _ = layer(torch.tensor([1.0, 2.0, 100.0]).view(1, 3, 1, 1), mask)
    assert out.item() == pytest.approx((1.0 + 2.0) * 1.5)
    with pytest.raises(ValueError, match="sum to 3"):
        PartialConv2d(3, 1, 1, mask_groups=(1, 1))


def test_pconv_fills_a_large_hole_from_the_known_pixels_around_it():
    torch.manual_seed(2)
    model = build_network(NetworkConfig.with_widths((4, 4, 4), arch="pconv")).eval()
    mask = torch.ones(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 0.0
    image = torch.rand(1, 1, 64, 64)
    brighter = image.clone()
    brighter[..., :8, :] += 0.5  # change known pixels far from the hole only
    with torch.no_grad():
        out, out_brighter = model(image, mask), model(brighter, mask)
    inside = (slice(None), slice(None), slice(28, 36), slice(28, 36))
    # The rule-based update has filled the hole by the bottleneck, so the hole centre depends
    # on the known pixels (the default 0.5 = sigmoid(0) would mean "never reached").
    assert not torch.allclose(out[inside], out_brighter[inside])


def test_encoder_bn_freezing_survives_train_calls():
    model = build_network(NetworkConfig.with_widths((4, 8)))
    model.set_encoder_bn_frozen(True)
    model.train()
    encoder_bn = [m for m in model.encoder.modules() if isinstance(m, nn.BatchNorm2d)]
    decoder_bn = [m for m in model.decoder.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(encoder_bn) == 2 and len(decoder_bn) == 2
    assert not any(m.training for m in encoder_bn) and all(m.training for m in decoder_bn)
    before = encoder_bn[0].running_mean.clone()
    model(*_inputs(2, 1, 16))
    assert torch.equal(encoder_bn[0].running_mean, before)
    model.set_encoder_bn_frozen(False)
    assert all(m.training for m in encoder_bn)


def test_no_bn_config_has_no_batchnorm():
    model = build_network(NetworkConfig.with_widths((4, 8), use_bn=False))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_importing_the_training_package_and_masks_does_not_load_torch():
    code = ("import sys, autopaint_app.training, autopaint_app.training.masks; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
