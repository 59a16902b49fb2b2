"""Smoothness augmentation (training/scan_smoothing.py) and the per-channel loss weights' run.json keys."""

import io
import json

import numpy as np
import pytest

from autopaint_app.core.errors import InputError
from autopaint_app.training.config import RunConfig, load_run_config
from autopaint_app.training.scan_smoothing import smooth_channel


def _noisy_petct(n=4, size=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.15, size=(n, 2, size, size)).astype(np.float32)


def _roughness(image):
    """Mean |discrete Laplacian|: what the blur must lower."""
    return np.abs(4 * image[1:-1, 1:-1] - image[:-2, 1:-1] - image[2:, 1:-1] - image[1:-1, :-2] - image[1:-1, 2:]).mean()


def test_pet_is_smoothed_ct_untouched_and_the_mean_kept():
    images = _noisy_petct()
    out = smooth_channel(images, ("ct", "pet"), "pet", (2.0, 3.0), np.random.default_rng(1))
    assert np.array_equal(out[:, 0], images[:, 0])            # the CT channel is not changed
    for i in range(len(images)):
        assert _roughness(out[i, 1]) < 0.2 * _roughness(images[i, 1])
        assert out[i, 1].mean() == pytest.approx(images[i, 1].mean(), abs=2e-3)   # uptake level unchanged
    assert np.array_equal(images, _noisy_petct())             # the input is not modified


def test_sigma_range_is_drawn_per_crop_and_zero_leaves_crops_alone():
    images = _noisy_petct(n=40)
    out = smooth_channel(images, ("ct", "pet"), "pet", (0.0, 3.0), np.random.default_rng(2))
    rough = np.array([_roughness(o) / _roughness(i) for o, i in zip(out[:, 1], images[:, 1])])
    assert rough.min() < 0.2 and rough.max() > 0.7            # a spread of reconstructions, not one
    assert np.array_equal(smooth_channel(images, ("ct", "pet"), "pet", (0.0, 0.0), np.random.default_rng(2)), images)
    assert np.array_equal(smooth_channel(images[:, :1], ("ct",), "pet", (1.0, 2.0), np.random.default_rng(2)),
                          images[:, :1])
    again = smooth_channel(images, ("ct", "pet"), "pet", (0.0, 3.0), np.random.default_rng(2))
    assert np.array_equal(out, again)                          # seeded: the same crops for a seed
    with pytest.raises(ValueError, match="PET smoothing range must be 0 <= low <= high"):
        smooth_channel(images, ("pet",), "pet", (2.0, 1.0), np.random.default_rng(2))


def test_ct_smoothing_blurs_the_ct_only():
    images = _noisy_petct()
    out = smooth_channel(images, ("ct", "pet"), "ct", (1.0, 1.5), np.random.default_rng(3))
    assert np.array_equal(out[:, 1], images[:, 1])
    assert all(_roughness(o) < 0.5 * _roughness(i) for o, i in zip(out[:, 0], images[:, 0]))


@pytest.mark.parametrize("extra, message", [
    ({"pet_smoothing_px": [3, 1]}, r"pet_smoothing_px must be \[low, high\] px with 0 <= low <= high <= 10, got \[3.0, 1.0\]"),
    ({"pet_smoothing_px": "soft"}, r"pet_smoothing_px must be \[low, high\], got 'soft'"),
    ({"pet_smoothing_px": [0, 2], "modality": "ct"}, "pet_smoothing_px blurs the PET; modality ct has no PET"),
    ({"ct_smoothing_px": [0, 1], "modality": "pet"}, "ct_smoothing_px blurs the CT; modality pet has no CT"),
    ({"ct_smoothing_px": [0, 11]}, r"ct_smoothing_px must be \[low, high\] px with 0 <= low <= high <= 10"),
    ({"channel_loss_weights": {"spect": 2}}, r"channel_loss_weights names 'spect', not a channel of modality petct \(ct, pet\)"),
    ({"channel_loss_weights": {"pet": 0}}, r"channel_loss_weights\['pet'\] must be a positive number, got 0"),
    ({"channel_loss_weights": [3]}, "channel_loss_weights must be an object like"),
])
def test_bad_augmentation_and_weight_settings_name_the_file_and_key(tmp_path, extra, message):
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"cases": ["a"], "out_dir": "o", **extra}))
    with pytest.raises(InputError, match=message) as caught:
        load_run_config(run_json)
    assert str(run_json) in str(caught.value)


def test_channel_weights_in_network_order_with_mean_one(tmp_path):
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"cases": ["a"], "out_dir": "o", "channel_loss_weights": {"pet": 3},
                                    "pet_smoothing_px": [0, 3.5], "ct_smoothing_px": [0, 1.2]}))
    config = load_run_config(run_json)
    assert config.channel_weights() == (0.5, 1.5)
    assert config.pet_smoothing_px == (0.0, 3.5) and config.ct_smoothing_px == (0.0, 1.2)
    assert RunConfig.from_dict(config.to_dict()).channel_weights() == (0.5, 1.5)
    assert RunConfig(cases=("a",), out_dir="o").channel_weights() is None
