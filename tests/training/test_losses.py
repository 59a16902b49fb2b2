"""The six loss terms on hand-made tensors with known values, and their weighted sum."""

import logging

import pytest
import torch
import torch.nn.functional as F

from autopaint_app.core.errors import InputError
from autopaint_app.training import vgg as vgg_module
from autopaint_app.training.losses import (
    InpaintingLoss,
    LossWeights,
    _blur,
    composite,
    gram_matrix,
    hole_loss,
    laplacian_loss,
    laplacian_pyramid,
    perceptual_loss,
    style_loss,
    total_loss,
    tv_loss,
    valid_loss,
)
from autopaint_app.training.vgg import VGG_RANDOM_SEED, VGG16Features, load_vgg16_features


@pytest.fixture(scope="module")
def random_vgg():
    return load_vgg16_features(use_hub_cache=False)


def _pair_with_one_hole():
    output = torch.tensor([[[[0.5, 0.2], [0.1, 0.9]]]])
    target = torch.zeros(1, 1, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])  # hole at row 0, column 1
    return output, target, mask


def test_valid_and_hole_l1_normalised_by_the_number_of_pixels():
    output, target, mask = _pair_with_one_hole()
    assert valid_loss(output, target, mask).item() == pytest.approx((0.5 + 0.1 + 0.9) / 4)
    assert hole_loss(output, target, mask).item() == pytest.approx(0.2 / 4)


def test_composite_keeps_known_pixels_from_the_target():
    output, target, mask = _pair_with_one_hole()
    assert torch.equal(composite(output, target, mask),
                       torch.tensor([[[[0.0, 0.2], [0.0, 0.0]]]]))


def test_tv_of_a_ramp_inside_the_dilated_hole():
    ramp = (0.1 * torch.arange(5.0)).expand(1, 1, 5, 5).contiguous()  # +0.1 per column
    all_holes = torch.zeros(1, 1, 5, 5)
    # 5 rows x 4 horizontal pairs x 0.1, no vertical change, over 25 pixels.
    assert tv_loss(ramp, all_holes).item() == pytest.approx(5 * 4 * 0.1 / 25)
    centre_hole = torch.ones(1, 1, 5, 5)
    centre_hole[..., 2, 2] = 0.0
    # Dilated region = the 3x3 block: 3 rows x 2 pairs.
    assert tv_loss(ramp, centre_hole).item() == pytest.approx(3 * 2 * 0.1 / 25)
    assert tv_loss(ramp, torch.ones(1, 1, 5, 5)).item() == 0.0


def test_gram_matrix_of_a_tiny_feature_map():
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / (2 * 1 * 2)
    assert torch.allclose(gram_matrix(features), expected)


def test_perceptual_and_style_on_hand_made_features():
    gt = [torch.zeros(1, 2, 1, 2)]
    out = [torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])]
    comp = [torch.ones(1, 2, 1, 2)]
    assert perceptual_loss(out, comp, gt).item() == pytest.approx(10 / 4 + 1.0)
    # Gram(out) = [[5, 11], [11, 25]] / 4 against 0: mean of the 4 entries.
    assert style_loss(out, gt).item() == pytest.approx((5 + 11 + 11 + 25) / 4 / 4)
    assert style_loss(out, out).item() == 0.0


def test_laplacian_loss_zero_for_identical_and_offset_only_in_the_low_pass():
    image = torch.rand(2, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    assert laplacian_loss(image, image).item() == 0.0
    pyramid_a, pyramid_b = laplacian_pyramid(image + 0.1), laplacian_pyramid(image)
    assert [p.shape[-1] for p in pyramid_a] == [16, 8, 4]
    for band_a, band_b in zip(pyramid_a[:2], pyramid_b[:2]):
        assert torch.allclose(band_a, band_b, atol=1e-6)
    assert laplacian_loss(image + 0.1, image).item() == pytest.approx(0.1, abs=1e-6)


def test_laplacian_pyramid_reconstructs_the_image():
    image = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    levels = laplacian_pyramid(image)
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = band + _blur(F.interpolate(rebuilt, size=band.shape[-2:], mode="nearest"))
    assert torch.allclose(rebuilt, image, atol=1e-6)


def test_perceptual_and_style_vanish_for_a_perfect_prediction(random_vgg):
    target = torch.rand(2, 2, 32, 32, generator=torch.Generator().manual_seed(2))
    mask = torch.ones(2, 1, 32, 32)
    mask[..., 8:20, 8:20] = 0.0
    _, terms = total_loss(target.clone(), target, mask, random_vgg)
    for name in ("valid", "hole", "perceptual", "style_out", "style_comp", "tv", "lap"):
        if name == "tv":
            assert terms[name] > 0  # the target itself varies inside the hole
        else:
            assert terms[name] == 0.0, name


def test_total_is_the_weighted_sum_and_lap_weight_zero_drops_the_term(random_vgg):
    g = torch.Generator().manual_seed(3)
    target = torch.rand(2, 1, 32, 32, generator=g)
    output = torch.rand(2, 1, 32, 32, generator=g, requires_grad=True)
    mask = torch.ones(2, 1, 32, 32)
    mask[..., 4:12, 10:30] = 0.0
    total, terms = InpaintingLoss(vgg=random_vgg)(output, target, mask)
    expected = (30 * terms["valid"] + 240 * terms["hole"] + 0.2 * terms["perceptual"]
                + 0.05 * (terms["style_out"] + terms["style_comp"]) + 250 * terms["tv"]
                + 20 * terms["lap"])
    assert terms["total"] == pytest.approx(expected, rel=1e-5)
    assert all(terms[k] > 0 for k in ("perceptual", "style_out", "style_comp", "lap"))
    plain_total, plain = total_loss(output, target, mask, random_vgg,
                                    LossWeights.without_laplacian())
    assert plain_total.item() == pytest.approx(plain["total"])
    assert plain["total"] == pytest.approx(terms["total"] - 20 * terms["lap"], rel=1e-5)
    total.backward()
    assert output.grad.abs().sum() > 0


def test_pixel_only_weights_need_no_vgg():
    loss = InpaintingLoss(LossWeights(perceptual=0.0, style=0.0))
    assert loss.vgg is None and loss.vgg_weights_source is None
    output, target, mask = _pair_with_one_hole()
    output, target, mask = (t.repeat(1, 1, 4, 4) for t in (output, target, mask))
    _, terms = loss(output, target, mask)
    assert terms["perceptual"] == 0.0 and terms["valid"] > 0


def test_vgg_arranges_two_channels_as_separate_grey_images(random_vgg):
    image = torch.rand(1, 2, 16, 16, generator=torch.Generator().manual_seed(4))
    both = random_vgg(image)
    pet_alone = random_vgg(image[:, 1:2])
    assert [f.shape for f in both] == [(2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2)]
    assert torch.allclose(both[2][1], pet_alone[2][0], atol=1e-5)  # batched conv rounding


def test_vgg_random_fallback_is_seeded_and_logged(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(vgg_module, "default_weights_path", lambda: tmp_path / "absent.pth")
    with caplog.at_level(logging.WARNING, logger=vgg_module.__name__):
        first = load_vgg16_features()
    assert first.weights_source == "random-seeded" and first.weights_path is None
    assert f"seed {VGG_RANDOM_SEED}" in caplog.text and "absent.pth" in caplog.text
    second = load_vgg16_features()
    assert torch.equal(first.features[0].weight, second.features[0].weight)
    assert not any(p.requires_grad for p in first.parameters())


def test_vgg_loads_a_torchvision_state_dict_from_a_path_or_the_hub_cache(monkeypatch, tmp_path):
    donor = VGG16Features()
    state = {k: torch.full_like(v, 0.01) for k, v in donor.state_dict().items()}
    state["features.17.weight"] = torch.zeros(512, 256, 3, 3)  # deeper layers are ignored
    state["classifier.0.weight"] = torch.zeros(4, 4)
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    model = load_vgg16_features(path)
    assert model.weights_source == "imagenet" and model.weights_path == path
    assert torch.all(model.features[14].weight == 0.01)
    monkeypatch.setattr(vgg_module, "default_weights_path", lambda: path)
    assert load_vgg16_features().weights_source == "imagenet"


def test_vgg_bad_weight_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="missing.pth: VGG16 weights file not found"):
        load_vgg16_features(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="garbage.pth: not a readable torch state dict"):
        load_vgg16_features(garbage)
    partial = tmp_path / "partial.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, partial)
    with pytest.raises(InputError, match="not a torchvision VGG16 state dict"):
        load_vgg16_features(partial)


def test_vgg_downsample_pools_the_images_before_vgg(random_vgg):
    g = torch.Generator().manual_seed(5)
    target, output = torch.rand(1, 1, 32, 32, generator=g), torch.rand(1, 1, 32, 32, generator=g)
    mask = torch.zeros(1, 1, 32, 32)  # all holes: composite == output
    _, terms = InpaintingLoss(vgg=random_vgg, vgg_downsample=2)(output, target, mask)
    small_out, small_gt = random_vgg(F.avg_pool2d(output, 2)), random_vgg(F.avg_pool2d(target, 2))
    assert terms["perceptual"] == pytest.approx(
        perceptual_loss(small_out, small_out, small_gt).item(), rel=1e-5)
    with pytest.raises(ValueError, match="vgg_downsample"):
        InpaintingLoss(vgg=random_vgg, vgg_downsample=0)


def test_channel_weights_scale_each_channels_pixel_terms_and_leave_tv_alone():
    target = torch.zeros(1, 2, 8, 8)
    output = target.clone()
    output[:, 0] = 0.4   # only channel 0 is wrong, everywhere
    mask = torch.ones(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 0.0
    pixel_only = LossWeights(perceptual=0.0, style=0.0)
    _, plain = total_loss(output, target, mask, None, pixel_only)
    _, weighted = total_loss(output, target, mask, None, LossWeights(perceptual=0.0, style=0.0, channels=(0.5, 1.5)))
    # 16 hole pixels of 0.4 over 128 elements, then half of it for channel 0's weight 0.5.
    assert plain["hole"] == pytest.approx(16 * 0.4 / 128)
    for term in ("valid", "hole", "lap"):
        assert weighted[term] == pytest.approx(0.5 * plain[term])
    assert weighted["tv"] == pytest.approx(plain["tv"])
    with pytest.raises(ValueError, match="3 channel weights for 2 channels"):
        total_loss(output, target, mask, None, LossWeights(perceptual=0.0, style=0.0, channels=(1.0, 1.0, 1.0)))
