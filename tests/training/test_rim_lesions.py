"""Decoy lesions on the rim of training holes (training/rim_lesions.py)."""

import json

import numpy as np
import pytest

from autopaint_app.core.errors import InputError
from autopaint_app.core.presets import HEAD_NECK, LUNG
from autopaint_app.training.config import RunConfig, load_run_config
from autopaint_app.training.rim_lesions import RimLesionSettings, add_rim_lesions, allowed_centres, settings_for

CT_WINDOW, SUV_WINDOW = LUNG.ct_window, LUNG.suv_window


def _lung_crops(n=6, size=96, seed=0):
    """PET-CT crops of lung (-850 HU, PET SUV 0.6, a little noise) with a disc hole each."""
    rng = np.random.default_rng(seed)
    ct = np.full((size, size), (-850.0 - CT_WINDOW[0]) / (CT_WINDOW[1] - CT_WINDOW[0]), np.float32)
    pet = np.full((size, size), 0.6 / SUV_WINDOW[1], np.float32)
    images = np.stack([np.stack([ct, pet])] * n) + rng.normal(0, 0.005, (n, 2, size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    hole = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= 20 ** 2
    masks = np.broadcast_to((~hole).astype(np.float32), (n, 1, size, size)).copy()
    return images, masks


def _settings(probability=1.0):
    return RimLesionSettings(probability, (6.0, 12.0), ("ct", "pet"), CT_WINDOW, SUV_WINDOW)


def test_decoys_touch_only_known_pixels_next_to_the_hole():
    images, masks = _lung_crops()
    out = add_rim_lesions(images, masks, _settings(), np.random.default_rng(1))
    changed = np.any(out != images, axis=1)          # (n, H, W)
    hole = masks[:, 0] == 0
    assert not np.any(changed & hole)                # the healthy target under the hole is kept
    assert np.all(changed.reshape(len(images), -1).any(axis=1))   # every crop got its decoy
    # Each decoy sits near the hole: within radius + offset of its rim (hole radius 20, centre 48).
    yy, xx = np.nonzero(np.any(changed, axis=0))
    distance = np.hypot(yy - 48, xx - 48)
    assert distance.min() <= 21 and distance.max() < 20 + 12 * 3.5
    assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1
    assert images is not out and np.array_equal(images, _lung_crops()[0])   # the input is not modified


def test_decoys_look_like_a_tumour_dense_ct_and_hot_pet():
    images, masks = _lung_crops()
    out = add_rim_lesions(images, masks, _settings(), np.random.default_rng(2))
    ct_hu = out[:, 0] * (CT_WINDOW[1] - CT_WINDOW[0]) + CT_WINDOW[0]
    suv = out[:, 1] * SUV_WINDOW[1]
    # The lesion cores reach soft-tissue HU (lung is -850) and tumour uptake (background SUV 0.6).
    for i in range(len(out)):
        assert ct_hu[i].max() > -100 and suv[i].max() > 2.0
    assert np.all(out[:, 1] >= images[:, 1] - 1e-6)  # uptake is added, never lowered


def test_no_decoy_outside_the_body_and_none_at_probability_zero():
    images, masks = _lung_crops()
    air = np.zeros_like(images)                      # -1000 HU, SUV 0: outside the patient
    assert np.array_equal(add_rim_lesions(air, masks, _settings(), np.random.default_rng(3)), air)
    assert np.array_equal(add_rim_lesions(images, masks, _settings(0.0), np.random.default_rng(3)), images)
    # A crop without a hole has no rim to decorate.
    assert np.array_equal(add_rim_lesions(images, np.ones_like(masks), _settings(), np.random.default_rng(3)), images)


def test_share_of_decorated_crops_follows_the_probability():
    images, masks = _lung_crops(n=200, size=64)
    out = add_rim_lesions(images, masks, _settings(0.3), np.random.default_rng(4))
    share = np.mean(np.any(out != images, axis=(1, 2, 3)))
    assert 0.2 < share < 0.4


def test_single_channel_decoys_and_site_sizes():
    images, masks = _lung_crops(n=4)
    pet_only = RimLesionSettings(1.0, (4.0, 8.0), ("pet",), CT_WINDOW, SUV_WINDOW)
    out = add_rim_lesions(images[:, 1:], masks, pet_only, np.random.default_rng(5))
    assert out.shape == (4, 1, 96, 96) and np.any(out > images[:, 1:])
    assert settings_for(0.5, ("ct", "pet"), LUNG).radius_px == (7.0, 0.9 * 27)
    assert settings_for(0.5, ("pet",), HEAD_NECK).radius_px == (4.0, 0.9 * 15)


def test_rim_lesions_option_is_validated_by_name(tmp_path):
    assert RunConfig(cases=("a",), out_dir="o").rim_lesions == 0.0
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"cases": ["a"], "out_dir": "o", "rim_lesions": 1.5}))
    with pytest.raises(InputError, match=r"run.json.*rim_lesions must be a share of crops in \[0, 1\], got 1.5"):
        load_run_config(run_json)
    run_json.write_text(json.dumps({"cases": ["a"], "out_dir": "o", "rim_lesions": 0.5}))
    config = load_run_config(run_json)
    assert config.rim_lesions == 0.5 and RunConfig.from_dict(config.to_dict()).rim_lesions == 0.5


def _lung_and_mediastinum_crop(size=96):
    """One PET-CT crop: aerated lung (-850 HU) on the left 20 columns, soft tissue (40 HU, SUV 2) elsewhere."""
    ct = np.full((size, size), 40.0)
    ct[:, :20] = -850.0
    pet = np.where(ct < -500, 0.6, 2.0)
    unit_ct = (ct - CT_WINDOW[0]) / (CT_WINDOW[1] - CT_WINDOW[0])
    return np.stack([unit_ct, pet / SUV_WINDOW[1]]).astype(np.float32)


def test_near_lung_decoys_sit_within_reach_of_aerated_lung_only():
    image = _lung_and_mediastinum_crop()
    near = RimLesionSettings(1.0, (6.0, 12.0), ("ct", "pet"), CT_WINDOW, SUV_WINDOW, region="near_lung")
    allowed = allowed_centres(image, near)
    # The lung is columns 0-19; reach is the largest decoy radius, 12 px: columns up to 31.
    assert allowed[:, :32].all() and not allowed[:, 32:].any()
    assert allowed_centres(image, _settings()).all()          # "body": all of the patient
    # A hole deep in the mediastinum (far from the lung) gets no decoy; the same hole at the lung does.
    yy, xx = np.mgrid[:96, :96]
    far_hole = ((yy - 48) ** 2 + (xx - 75) ** 2 <= 10 ** 2)
    near_hole = ((yy - 48) ** 2 + (xx - 24) ** 2 <= 10 ** 2)
    images = np.stack([image] * 8)
    for hole, decorated in ((far_hole, False), (near_hole, True)):
        masks = np.broadcast_to((~hole).astype(np.float32), (8, 1, 96, 96)).copy()
        out = add_rim_lesions(images, masks, near, np.random.default_rng(6))
        assert np.any(out != images) == decorated


def test_near_lung_needs_a_ct_channel_and_a_known_region(tmp_path):
    with pytest.raises(ValueError, match="finds the lung on CT"):
        RimLesionSettings(1.0, (6.0, 12.0), ("pet",), CT_WINDOW, SUV_WINDOW, region="near_lung")
    with pytest.raises(ValueError, match="decoy region must be one of"):
        RimLesionSettings(1.0, (6.0, 12.0), ("ct",), CT_WINDOW, SUV_WINDOW, region="liver")
    assert settings_for(0.5, ("ct", "pet"), LUNG, "near_lung").region == "near_lung"
    run_json = tmp_path / "run.json"
    run_json.write_text(json.dumps({"cases": ["a"], "out_dir": "o", "modality": "pet", "rim_lesion_region": "near_lung"}))
    with pytest.raises(InputError, match="rim_lesion_region 'near_lung' finds the lung on CT; modality pet has no CT"):
        load_run_config(run_json)
    run_json.write_text(json.dumps({"cases": ["a"], "out_dir": "o", "rim_lesion_region": "lungs"}))
    with pytest.raises(InputError, match=r"rim_lesion_region must be one of \['body', 'near_lung'\], got 'lungs'"):
        load_run_config(run_json)
