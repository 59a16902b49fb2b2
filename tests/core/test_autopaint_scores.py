"""Scores and decisions on hand-made numbers: features, outlier rule, dilation rule, minimum size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from autopaint_app.core.autopaint_circles import disk_mask
from autopaint_app.core.autopaint_scores import (
    choose_mask,
    combined_scores,
    difference_maps,
    digital_disk_area,
    intensity_map,
    largest_component_radius,
    passes_min_size,
    robust_z,
    select_outliers,
    texture_map,
)

# --- features -----------------------------------------------------------------------------------


def test_texture_map_equals_scipy_gaussian_derivatives_of_the_residual():
    rng = np.random.default_rng(0)
    delta = np.zeros((2, 80, 90), dtype=np.float32)
    delta[:, 20:60, 25:70] = rng.random((2, 40, 45))          # zero border: zero padding is exact
    features = []
    for sigma in (1.0, 2.0, 4.0):
        for c in range(2):
            grad = [ndi.gaussian_filter(delta[c].astype(np.float64), sigma, order=o, mode="constant", truncate=30)
                    for o in ((0, 1), (1, 0))]
            log = ndi.gaussian_laplace(delta[c].astype(np.float64), sigma, mode="constant", truncate=30)
            features += [sigma * np.hypot(*grad), sigma**2 * np.abs(log)]
    expected = np.mean(features, axis=0)
    np.testing.assert_allclose(texture_map(delta, (1.0, 2.0, 4.0)), expected, atol=2e-6)


def test_feature_difference_is_the_feature_map_of_the_residual():
    """Linear bank: F(inpainted) - F(input) == F(inpainted - input); so a zero residual scores zero."""
    rng = np.random.default_rng(1)
    image = rng.random((1, 40, 40)).astype(np.float32)
    assert not texture_map(np.zeros_like(image), (1.0, 2.0)).any()
    hole = disk_mask((20, 20), 8, (40, 40))
    inpainted = image.copy()
    inpainted[0][hole] = 0.3
    intensity, texture = difference_maps(inpainted - image, (1.0, 2.0))
    np.testing.assert_allclose(intensity, np.abs(inpainted - image)[0], atol=1e-7)
    assert texture[hole].mean() > 0.05 and texture[0, 0] < 1e-6    # zero far from the hole


def test_batched_and_single_texture_maps_agree():
    rng = np.random.default_rng(2)
    deltas = rng.random((5, 2, 55, 55)).astype(np.float32)
    together = texture_map(deltas, (1.0, 2.0, 4.0))
    assert together.shape == (5, 55, 55)
    for i in range(5):
        np.testing.assert_allclose(together[i], texture_map(deltas[i], (1.0, 2.0, 4.0)), atol=1e-6)


def test_intensity_map_is_the_channel_mean():
    delta = np.array([[[0.2, -0.4]], [[0.0, 0.2]]], dtype=np.float32)  # (C=2, 1, 2)
    np.testing.assert_allclose(intensity_map(delta), [[0.1, 0.3]], atol=1e-7)


# --- outlier rule -------------------------------------------------------------------------------


def test_robust_z_uses_median_and_mad_with_a_floor():
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    np.testing.assert_allclose(robust_z(values, 0.0), (values - 3.0) / (1.4826 * 1.0))
    np.testing.assert_allclose(robust_z(np.zeros(4), 0.5), np.zeros(4))
    np.testing.assert_allclose(robust_z(np.array([0.0, 0.0, 0.0, 0.1]), 0.05), [0, 0, 0, 2.0])


def test_outliers_are_the_few_that_stand_out_best_first():
    rng = np.random.default_rng(3)
    scores = np.clip(rng.normal(0.0, 1.0, 60), -2.5, 2.5)
    scores[[7, 33]] = [12.0, 9.0]
    intensity = np.full(60, 0.05)
    np.testing.assert_array_equal(select_outliers(scores, intensity, k=3, top_k=3), [7, 33])


def test_outliers_are_capped_at_top_k_with_ties_by_index():
    scores = np.array([0.0, 0.1, -0.1, 0.2, -0.2, 10.0, 10.0, 11.0, 10.0, 0.0])
    intensity = np.full(10, 0.1)
    np.testing.assert_array_equal(select_outliers(scores, intensity, k=3, top_k=3), [7, 5, 6])
    np.testing.assert_array_equal(select_outliers(scores, intensity, k=3, top_k=1), [7])


def test_no_outlier_in_a_homogeneous_slice():
    scores = np.random.default_rng(4).normal(0.0, 1.0, 200)
    scores = np.clip(scores, -2.9, 2.9)         # nothing beyond 3 robust sd
    assert select_outliers(scores, np.full(200, 0.5), k=3).size == 0
    assert select_outliers(np.zeros(20), np.zeros(20)).size == 0
    assert select_outliers(np.zeros(0), np.zeros(0)).size == 0


def test_the_spread_floor_and_the_intensity_floor():
    # MAD 0: the spread is floored at 1 robust unit, so 2.5 above the median is not an outlier, 3.5 is.
    scores = np.array([0.0] * 10 + [2.5, 3.5])
    np.testing.assert_array_equal(select_outliers(scores, np.full(12, 0.1), k=3), [11])
    # A change below the absolute floor is never a candidate, however much it stands out.
    intensity = np.array([0.001] * 10 + [0.004, 0.02])
    np.testing.assert_array_equal(select_outliers(np.array([0.0] * 10 + [9.0, 8.0]), intensity, min_intensity=0.01),
                                  [11])


def test_combined_scores_add_robust_units():
    intensity = np.array([0.01, 0.012, 0.011, 0.3])
    texture = np.array([0.002, 0.003, 0.002, 0.1])
    combined = combined_scores(intensity, texture)
    assert np.argmax(combined) == 3
    np.testing.assert_allclose(combined, robust_z(intensity, 0.005) + robust_z(texture, 0.005))
    np.testing.assert_allclose(combined_scores(intensity, None), robust_z(intensity, 0.005))


# --- dilation rule ------------------------------------------------------------------------------


def test_union_kept_when_larger_masks_add_only_healthy_change():
    areas = [1000, 1200, 1400, 1600, 1800, 2000]
    differences = [300.0, 301.0, 302.5, 303.0, 304.0, 305.0]   # +0.005..0.0075 per added pixel
    assert choose_mask(differences, areas, healthy_level=0.01, tolerance=2.0) == 0


def test_dilation_walks_while_the_ring_is_tumour():
    areas = [1000, 1200, 1400, 1600, 1800, 2000]
    # rings 1 and 2 add 0.5 per pixel (tumour), ring 3 adds 0.01 (healthy): stop at mask 2
    differences = [300.0, 400.0, 500.0, 502.0, 504.0, 506.0]
    assert choose_mask(differences, areas, healthy_level=0.01, tolerance=2.0) == 2
    assert choose_mask(np.cumsum([300.0] + [100.0] * 5), areas, healthy_level=0.01) == 5
    # the threshold is tolerance * healthy level: 0.5 per pixel is not notable if healthy tissue changes 0.3
    assert choose_mask(differences, areas, healthy_level=0.3, tolerance=2.0) == 0


def test_dilation_rule_edge_cases():
    assert choose_mask([5.0], [10], 0.01) == 0
    assert choose_mask([5.0, 4.0, 100.0], [10, 20, 30], 0.01) == 0        # a decrease stops the walk
    assert choose_mask([5.0, 50.0, 90.0], [10, 10, 30], 0.01) == 0        # no added pixel: no growth
    # the healthy level is floored at the noise level (0.005): a perfect inpainter's 0 does not make
    # every added pixel "notable"
    assert choose_mask([5.0, 5.005, 5.01], [10, 20, 30], 0.0, tolerance=2.0) == 0
    with pytest.raises(ValueError):
        choose_mask([1.0, 2.0], [10], 0.01)


# --- minimum size -------------------------------------------------------------------------------


def test_digital_disk_areas():
    assert digital_disk_area(7) == 149 and digital_disk_area(4) == 49 and digital_disk_area(0) == 1
    assert digital_disk_area(7) == disk_mask((20, 20), 7, (41, 41)).sum()


def test_min_size_criterion_on_hand_made_residuals():
    residual = np.zeros((64, 64), dtype=np.float32)
    residual[disk_mask((20, 20), 7, (64, 64))] = 0.5        # exactly the minimum lung tumour
    residual[disk_mask((50, 50), 3, (64, 64))] = 0.9
    assert passes_min_size(residual, 0.1, 7)
    assert not passes_min_size(residual, 0.6, 7)               # at 0.6 only the small bright blob remains
    assert passes_min_size(residual, 0.6, 3)
    assert not passes_min_size(residual, 0.1, 7.5)
    assert not passes_min_size(np.zeros((8, 8)), 0.1, 0)
    assert largest_component_radius(residual > 0.1) == pytest.approx(math.sqrt(149 / math.pi))


def test_min_size_uses_eight_connectivity():
    diagonal = np.eye(40, dtype=np.float32)                     # 40 pixels touching at corners only
    assert passes_min_size(diagonal, 0.5, 3.5)                  # 40 >= 37 pixels of a radius-3.5 disk
    assert largest_component_radius(diagonal > 0.5) == pytest.approx(math.sqrt(40 / math.pi))
