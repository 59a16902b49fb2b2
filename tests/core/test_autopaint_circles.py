"""Circle placement, coverage, crops, union and dilations (core/autopaint_circles.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from autopaint_app.core.autopaint_circles import (
    Box,
    circle_centres,
    aligned_crop,
    crop_around,
    dilated_masks,
    disk_mask,
    grid_positions,
    union_of_circles,
)
from autopaint_app.core.autopaint_engine import mask_crop
from autopaint_app.core.autopaint_params import PipelineParams
from autopaint_app.core.presets import HEAD_NECK, LUNG


def _ellipse(shape, cy, cx, ay, ax):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1


def _oois(shape=(512, 512)):
    rng = np.random.default_rng(7)
    blobs = ndi.gaussian_filter(rng.random(shape), 12) > 0.52
    line = np.zeros(shape, dtype=bool)
    line[100:400, 250] = True                       # one pixel wide: "centre inside" would miss it
    corner = np.zeros(shape, dtype=bool)
    corner[:40, -30:] = True                        # touches the slice border
    single = np.zeros(shape, dtype=bool)
    single[301, 77] = True
    lungs = _ellipse(shape, 250, 170, 150, 90) | _ellipse(shape, 250, 340, 150, 90)
    return {"lungs": lungs, "blobs": blobs, "line": line, "corner": corner, "single": single}


@pytest.mark.parametrize("name", ["lungs", "blobs", "line", "corner", "single"])
@pytest.mark.parametrize("preset", [LUNG, HEAD_NECK], ids=["lung", "hn"])
def test_centres_are_on_the_stride_grid_near_the_ooi_and_cover_it(name, preset):
    ooi = _oois()[name]
    r, s = preset.circle_radius_px, preset.circle_stride_px
    centres = circle_centres(ooi, r, s)
    assert len(centres) > 0
    # On the fixed grid.
    assert set(centres[:, 0]) <= set(grid_positions(512, s)) and set(centres[:, 1]) <= set(grid_positions(512, s))
    # Exactly the grid points within s / sqrt(2) of the OOI (brute force over the whole grid).
    distance = ndi.distance_transform_edt(~ooi)
    gy, gx = np.meshgrid(grid_positions(512, s), grid_positions(512, s), indexing="ij")
    expected = {(y, x) for y, x in zip(gy.ravel(), gx.ravel()) if distance[y, x] <= s / math.sqrt(2) + 1e-9}
    assert {tuple(c) for c in centres} == expected
    # Coverage: every OOI pixel lies inside some circle.
    assert not (ooi & ~union_of_circles(centres, r, ooi.shape)).any()


def test_centres_inside_a_large_ooi_are_mostly_inside_it():
    ooi = _oois()["lungs"]
    centres = circle_centres(ooi, 27, 15)
    inside = ooi[centres[:, 0], centres[:, 1]]
    # Only the ring needed for coverage lies outside: far fewer than "circle overlaps the OOI" would add.
    overlapping = ndi.distance_transform_edt(~ooi) <= 27
    gy, gx = np.meshgrid(grid_positions(512, 15), grid_positions(512, 15), indexing="ij")
    assert inside.mean() > 0.8
    assert len(centres) < 0.85 * overlapping[gy, gx].sum()


def test_grid_is_centred_and_reaches_every_row():
    positions = grid_positions(512, 15)
    assert positions[0] == 0 and positions[-1] == 510 and np.all(np.diff(positions) == 15)
    assert max(positions[0], 511 - positions[-1]) <= 15 / 2
    assert list(grid_positions(100, 8)[:2]) == [1, 9] and grid_positions(100, 8)[-1] == 97  # 99 % 8 = 3 -> offset 1


def test_empty_ooi_and_bad_radius():
    assert circle_centres(np.zeros((64, 64), dtype=bool), 27, 15).shape == (0, 2)
    with pytest.raises(ValueError, match="would not cover"):
        circle_centres(np.ones((64, 64), dtype=bool), 10, 15)


def test_disk_and_union():
    disk = disk_mask((10, 12), 3, (32, 32))
    assert disk.sum() == 29 and disk[10, 12] and disk[13, 12] and not disk[13, 13]
    union = union_of_circles(np.array([[10, 10], [10, 30]]), 5, (20, 40))
    assert union.sum() == 2 * disk_mask((10, 10), 5, (20, 40)).sum()   # disjoint
    clipped = disk_mask((0, 0), 5, (20, 20))
    assert clipped.sum() == sum(1 for y in range(6) for x in range(6) if y * y + x * x <= 25)


def test_dilations_grow_by_the_structuring_element_radius():
    union = np.zeros((64, 64), dtype=bool)
    union[32, 32] = True
    masks = dilated_masks(union, (7, 9, 11, 13, 15))
    assert len(masks) == 6 and masks[0].sum() == 1
    for mask, radius in zip(masks[1:], (3, 4, 5, 6, 7)):
        np.testing.assert_array_equal(mask, disk_mask((32, 32), radius, (64, 64)))
    assert all(a.sum() < b.sum() and not (a & ~b).any() for a, b in zip(masks, masks[1:]))


def test_dilations_of_an_empty_union_stay_empty():
    masks = dilated_masks(np.zeros((16, 16), dtype=bool), (7, 9))
    assert len(masks) == 3 and not any(m.any() for m in masks)


def test_crop_is_shifted_inside_the_slice_never_padded():
    assert crop_around(Box(0, 0, 10, 10), (128, 128), (512, 512)) == Box(0, 0, 128, 128)
    assert crop_around(Box(500, 505, 512, 512), (128, 128), (512, 512)) == Box(384, 384, 512, 512)
    assert crop_around(Box(200, 200, 255, 255), (128, 128), (512, 512)) == Box(163, 163, 291, 291)
    assert crop_around(Box(0, 0, 10, 10), (128, 600), (512, 512)) == Box(0, 0, 128, 512)


@pytest.mark.parametrize("preset, crop", [(LUNG, 96), (HEAD_NECK, 64)], ids=["lung", "hn"])
def test_circle_crop_rule_holds_every_circle_window(preset, crop):
    params = PipelineParams.from_preset(preset)
    assert params.circle_crop_size(32) == crop
    r = params.circle_radius_px
    for y in range(0, 512, 7):
        for x in (0, 3, 100, 255, 490, 511):
            window = Box.of_circle((y, x), r, (512, 512))
            assert crop_around(window, (crop, crop), (512, 512)).contains(window)


def test_mask_crop_keeps_context_and_the_size_multiple():
    params = PipelineParams.from_preset(LUNG)
    window = Box(100, 300, 170, 420)
    crop = mask_crop(window, params, 32, (512, 512))
    assert crop.contains(window.expanded(27, (512, 512)))
    assert crop.shape[0] % 32 == 0 and crop.shape[1] % 32 == 0
    assert mask_crop(Box(0, 0, 480, 100), params, 32, (512, 512)).shape == (512, 160)


def test_params_from_presets_and_validation():
    lung, hn = PipelineParams.from_preset(LUNG), PipelineParams.from_preset(HEAD_NECK)
    assert (lung.circle_radius_px, lung.circle_stride_px, lung.min_tumour_radius_px) == (27, 15, 7)
    assert (hn.circle_radius_px, hn.circle_stride_px, hn.min_tumour_radius_px) == (15, 8, 4)
    assert lung.dilation_widths_px == (7, 9, 11, 13, 15) and lung.top_k == 3 and lung.mode == "fast"
    assert lung.dilation_radii_px == (3, 4, 5, 6, 7)
    assert PipelineParams(crop_size_px=100).circle_crop_size(32) == 128
    assert lung.with_changes(mode="reference").mode == "reference"
    assert lung.to_dict()["dilation_widths_px"] == [7, 9, 11, 13, 15]
    for bad, message in [(dict(circle_stride_px=40), "cover the OOI"), (dict(dilation_widths_px=(7, 8)), "odd"),
                         (dict(mode="quick"), "mode must be"), (dict(threshold=1.5), "threshold"),
                         (dict(top_k=0), "top_k"), (dict(texture="vgg"), "texture")]:
        with pytest.raises(ValueError, match=message):
            PipelineParams(**bad)


def test_aligned_crops_sit_on_the_network_grid_and_keep_the_centred_crops_context():
    shape = (512, 512)
    for y in range(27, 485, 13):
        for x in (27, 100, 255, 484):
            window = Box.of_circle((y, x), 27, shape)
            centred = crop_around(window, (96, 96), shape)
            crop = aligned_crop(window, (96, 96), shape, 32)
            assert crop.shape == (128, 128) and crop.y0 % 32 == 0 and crop.x0 % 32 == 0
            assert crop.contains(centred) and crop.contains(window)
    # a slice side that is not a multiple of the grid: the centred crop
    assert aligned_crop(Box(10, 10, 20, 20), (64, 64), (500, 512), 32) == crop_around(Box(10, 10, 20, 20), (64, 64), (500, 512))
