"""Metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from autopaint_app.core import metrics
from autopaint_app.core.metrics import (
    THRESHOLDS, best_fixed_threshold, best_per_subject, confusion_counts, dice, mse, precision, psnr,
    recall, ssim, summarize, sweep, wilcoxon,
)


# --------------------------------------------------------------------------- inpainting quality
def test_mse_whole_image_and_inside_mask():
    a = np.zeros((2, 2))
    b = np.array([[0.0, 0.5], [0.0, 0.0]])
    assert mse(a, b) == 0.0625  # 0.25 / 4
    mask = np.array([[False, True], [True, False]])
    assert mse(a, b, mask) == 0.125  # 0.25 / 2
    assert mse(a, b, ~mask) == 0.0


def test_mse_rejects_shape_mismatch_and_empty_mask():
    with pytest.raises(ValueError, match=r"\(2, 2\) vs \(2, 3\)"):
        mse(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="mask is empty"):
        mse(np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2), bool))


def test_psnr_of_known_mse():
    a = np.zeros((4, 4))
    b = np.full((4, 4), 0.1)  # MSE = 0.01  ->  10 log10(1 / 0.01) = 20 dB
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-9)
    assert psnr(a, b, data_range=2.0) == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-9)
    assert psnr(a, a) == math.inf
    b[0, 0] = 0.5  # MSE inside the one-pixel mask is 0.25 -> 10 log10(4) = 6.0206 dB
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    assert psnr(a, b, mask=mask) == pytest.approx(10 * math.log10(4.0), abs=1e-9)


def test_ssim_identical_is_one_and_constant_images_match_the_formula():
    rng = np.random.default_rng(0)
    image = rng.random((16, 16))
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    # Two flat images: variances and covariance are 0, so SSIM = (2 mu_a mu_b + C1) / (mu_a² + mu_b² + C1)
    # with C1 = (0.01 * 1)², the paper's formula computed by hand.
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.4 + c1) / (0.2**2 + 0.4**2 + c1)
    assert ssim(np.full((9, 9), 0.2), np.full((9, 9), 0.4)) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.80009995, abs=1e-8)


def test_ssim_matches_scikit_image_on_a_slice_and_averages_slices_of_a_stack():
    rng = np.random.default_rng(1)
    a = rng.random((3, 20, 24))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    per_slice = [structural_similarity(a[i], b[i], data_range=1.0) for i in range(3)]
    assert ssim(a[1], b[1]) == pytest.approx(per_slice[1], rel=1e-12)
    assert ssim(a, b) == pytest.approx(np.mean(per_slice), rel=1e-12)
    assert 0.5 < ssim(a, b) < 0.99


def test_masked_ssim_scores_only_the_holes():
    rng = np.random.default_rng(2)
    a = rng.random((20, 20))
    b = a.copy()
    b[:, 12:] = rng.random((20, 8))  # only the right part differs
    left = np.zeros((20, 20), bool)
    left[:, :6] = True  # more than the 3-pixel window radius away from any change
    assert ssim(a, b, mask=left) == pytest.approx(1.0, abs=1e-12)
    right = ~left
    _, ssim_map = structural_similarity(a, b, data_range=1.0, full=True)
    assert ssim(a, b, mask=right) == pytest.approx(ssim_map[right].mean(), rel=1e-12)
    assert ssim(a, b, mask=right) < 0.8
    stack_mask = np.stack([left, right])
    expected = np.concatenate([np.ones(left.sum()), ssim_map[right]]).mean()
    assert ssim(np.stack([a, a]), np.stack([a, b]), mask=stack_mask) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- segmentation overlap
def _four_by_four_pair():
    truth = np.zeros((4, 4), bool)
    truth[0, :4] = True  # 4 truth pixels
    pred = np.zeros((4, 4), bool)
    pred[0, :3] = True  # 3 true positives, 1 false negative
    pred[2, 0] = pred[3, 3] = True  # 2 false positives
    return pred, truth


def test_dice_precision_recall_by_hand():
    pred, truth = _four_by_four_pair()
    assert confusion_counts(pred, truth) == metrics.ConfusionCounts(tp=3, fp=2, fn=1, tn=10)
    assert dice(pred, truth) == 2 * 3 / (2 * 3 + 2 + 1)
    assert precision(pred, truth) == 3 / 5
    assert recall(pred, truth) == 3 / 4


def test_empty_mask_conventions():
    empty = np.zeros((3, 3), bool)
    some = empty.copy()
    some[1, 1] = True
    assert (dice(empty, empty), precision(empty, empty), recall(empty, empty)) == (1.0, 1.0, 1.0)
    # Nothing predicted, a tumour present: Dice 0, recall 0, precision undefined.
    assert dice(empty, some) == 0.0 and recall(empty, some) == 0.0
    assert math.isnan(precision(empty, some))
    # Something predicted in a healthy case: Dice 0, precision 0, recall undefined.
    assert dice(some, empty) == 0.0 and precision(some, empty) == 0.0
    assert math.isnan(recall(some, empty))


def test_segmentation_metrics_require_boolean_arrays_of_one_shape():
    with pytest.raises(ValueError, match="pred must be a boolean array"):
        dice(np.ones((2, 2), np.uint8), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match=r"\(2, 2\) vs \(3, 3\)"):
        dice(np.ones((2, 2), bool), np.ones((3, 3), bool))


# --------------------------------------------------------------------------- the threshold sweep
def test_thresholds_are_the_papers_41_exact_values():
    assert len(THRESHOLDS) == 41
    assert THRESHOLDS[0] == 0.0 and THRESHOLDS[-1] == 0.8
    for i, value in enumerate(THRESHOLDS):
        assert value == float(Decimal(2 * i) / 100)  # the double nearest 0.02 * i, no drift
    assert THRESHOLDS[3] == 0.06 and THRESHOLDS[35] == 0.7


def test_sweep_counts_strictly_greater_than_the_threshold():
    residual = np.array([0.0, 0.02, 0.03, 0.8])
    truth = np.array([False, True, True, True])
    result = sweep(residual, truth)
    assert result.tp[0] == 3 and result.fp[0] == 0  # residual 0 is not > 0
    assert result.tp[1] == 2  # 0.02 is not > 0.02
    assert result.tp[40] == 0  # 0.8 is not > 0.8
    assert result.tp[39] == 1


def test_sweep_matches_thresholding_at_every_threshold():
    rng = np.random.default_rng(3)
    residual = rng.random((5, 12, 12)) * 0.9
    residual[0, 0, :4] = [0.1, 0.2, 0.3, 0.8]  # values that sit exactly on thresholds
    truth = rng.random((5, 12, 12)) < 0.3
    result = sweep(residual, truth)
    for i, t in enumerate(THRESHOLDS):
        pred = residual > t
        assert result.dice[i] == dice(pred, truth)
        assert result.precision[i] == precision(pred, truth)
        assert result.recall[i] == recall(pred, truth)


def _cohort():
    """Three 1-D 'residual maps' of 10 voxels; the first 4 are tumour. Answers worked out by hand."""
    truth = np.zeros(10, bool)
    truth[:4] = True
    a = np.where(truth, 0.5, 0.1)  # exact for 0.10 <= t < 0.50
    b = np.array([0.3, 0.3, 0.3, 0.05, 0.2, 0, 0, 0, 0, 0])
    c = np.where(truth, 0.7, 0.0)
    c[4:6] = 0.6  # exact for 0.60 <= t < 0.70
    return truth, [a, b, c]


def test_best_threshold_per_subject_on_a_hand_made_cohort():
    truth, maps = _cohort()
    best_a, best_b, best_c = (best_per_subject(sweep(m, truth)) for m in maps)
    assert best_a == metrics.BestThreshold(0.1, 1.0, 1.0, 1.0)  # lowest of the tied thresholds
    # b: t < 0.05 -> TP 4, FP 1 (Dice 8/9); 0.05..0.2 -> 6/8; 0.2..0.3 -> 6/7; the first wins.
    assert best_b == metrics.BestThreshold(0.0, 8 / 9, 4 / 5, 1.0)
    assert best_c == metrics.BestThreshold(0.6, 1.0, 1.0, 1.0)


def test_best_fixed_threshold_on_a_hand_made_cohort():
    truth, maps = _cohort()
    fixed = best_fixed_threshold([sweep(m, truth) for m in maps])
    # Mean Dice per range: t<0.05: (4/7+8/9+0.8)/3 = 0.753; 0.1..0.2: 0.850; 0.2..0.3: (1+6/7+0.8)/3.
    assert fixed.threshold == 0.2
    np.testing.assert_array_equal(fixed.dices, [1.0, 6 / 7, 0.8])
    assert fixed.mean_dice == pytest.approx((1 + 6 / 7 + 0.8) / 3, rel=1e-15)


def test_best_fixed_threshold_rejects_mixed_threshold_grids_and_empty_cohorts():
    truth, maps = _cohort()
    with pytest.raises(ValueError, match="same thresholds"):
        best_fixed_threshold([sweep(maps[0], truth), sweep(maps[1], truth, thresholds=[0.1, 0.2])])
    with pytest.raises(ValueError, match="cohort is empty"):
        best_fixed_threshold([])


def test_summarize_reports_mean_sd_and_undefined_values():
    summary = summarize([1.0, 2.0, 3.0, float("nan")])
    assert (summary.mean, summary.sd, summary.n, summary.n_missing) == (2.0, 1.0, 3, 1)
    assert str(summary) == "2.000 ± 1.000 (n=3), 1 undefined"
    assert math.isnan(summarize([0.5]).sd)


# --------------------------------------------------------------------------- Wilcoxon
def _exact_two_sided_p(differences: np.ndarray) -> tuple[float, float]:
    """Enumerate all 2^n sign patterns of the ranks (no ties, no zeros): the textbook exact test."""
    ranks = np.argsort(np.argsort(np.abs(differences))) + 1
    w_plus = ranks[differences > 0].sum()
    total = ranks.sum()
    all_w = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=len(ranks))]
    all_w = np.array(all_w)
    p = 2 * min(np.mean(all_w <= w_plus), np.mean(all_w >= w_plus))
    return float(min(w_plus, total - w_plus)), float(min(p, 1.0))


def test_wilcoxon_against_exact_enumeration():
    a = np.array([0.81, 0.72, 0.90, 0.66, 0.75, 0.88, 0.79, 0.70])
    b = np.array([0.66, 0.77, 0.70, 0.36, 0.85, 0.48, 0.54, 0.63])
    statistic, p = _exact_two_sided_p(a - b)
    result = wilcoxon(a, b)
    # |d| ranks: 0.05 (1, -), 0.07 (2), 0.10 (3, -), 0.15 ... 0.40 (4..8): W- = 1 + 3 = 4.
    # Subsets of {1..8} with sum <= 4: {}, {1}, {2}, {3}, {1,2}, {4}, {1,3} = 7 of 256, two-sided x2.
    assert (statistic, p) == (4.0, 2 * 7 / 256)
    assert result.statistic == statistic and result.pvalue == pytest.approx(p, rel=1e-12)
    assert result.n == 8 and result.note == ""


def test_wilcoxon_all_positive_textbook_value():
    result = wilcoxon([2, 3, 4, 5, 6, 7], [1, 1, 1, 1, 1, 1])
    assert result.statistic == 0.0 and result.pvalue == pytest.approx(2 / 2**6, rel=1e-12)


def test_wilcoxon_all_equal_pairs_give_p_one_with_a_note():
    result = wilcoxon([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert result.pvalue == 1.0 and "all pairs are equal" in result.note


def test_wilcoxon_rejects_nan_and_unpaired_input():
    with pytest.raises(ValueError, match="NaN"):
        wilcoxon([0.5, float("nan")], [0.4, 0.3])
    with pytest.raises(ValueError, match=r"\(2,\) vs \(3,\)"):
        wilcoxon([0.5, 0.6], [0.4, 0.3, 0.2])
