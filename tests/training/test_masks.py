"""Irregular hole masks: format, reproducibility and the paper's 25-30 % coverage per batch."""

import numpy as np
import pytest

from autopaint_app.training.masks import (
    OVERSHOOT,
    PAPER_BATCH_COVERAGE,
    batch_masks,
    hole_coverage,
    random_hole_mask,
)


def test_mask_format_and_reproducibility():
    first = random_hole_mask((96, 128), np.random.default_rng(7))
    again = random_hole_mask((96, 128), np.random.default_rng(7))
    assert first.shape == (96, 128) and first.dtype == np.float32
    assert set(np.unique(first)) == {0.0, 1.0}
    assert np.array_equal(first, again)
    batch = batch_masks(3, 64, np.random.default_rng(1))
    assert batch.shape == (3, 1, 64, 64) and batch.dtype == np.float32


@pytest.mark.parametrize("target", [0.05, 0.2, 0.45])
def test_single_mask_reaches_its_target_coverage(target):
    rng = np.random.default_rng(11)
    for _ in range(10):
        coverage = hole_coverage(random_hole_mask(128, rng, target))
        assert target <= coverage <= target + OVERSHOOT


def test_bad_arguments_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 8 px"):
        random_hole_mask(4, rng)
    with pytest.raises(ValueError, match="target_coverage"):
        random_hole_mask(64, rng, 0.9)
    with pytest.raises(ValueError, match="n must be"):
        batch_masks(0, 64, rng)


@pytest.mark.parametrize("size", [128, 256])
def test_batch_coverage_statistics_match_the_paper(size):
    rng = np.random.default_rng(2024 + size)
    batches = [batch_masks(8, size, rng) for _ in range(200)]
    per_batch = np.array([hole_coverage(b) for b in batches])
    low, high = PAPER_BATCH_COVERAGE
    # Every batch, not only the average, lies in the paper's 25-30 %.
    assert per_batch.min() >= low and per_batch.max() <= high
    # Standard error of the mean over 200 batches is ~0.0005 (batch std ~0.008), so a 0.005
    # tolerance (~10 SE) pins the generator to the middle of the paper's range, not to luck.
    standard_error = per_batch.std(ddof=1) / np.sqrt(per_batch.size)
    assert standard_error < 0.001
    assert abs(per_batch.mean() - (low + high) / 2) < 0.005
    # Single masks vary widely (small and large holes), as tumours do.
    per_mask = np.array([hole_coverage(m) for b in batches for m in b])
    assert per_mask.min() < 0.12 and per_mask.max() > 0.40
    # Holes are spread over the whole image: each quadrant is covered about equally often.
    hole_map = 1.0 - np.concatenate(batches)[:, 0].mean(axis=0)
    half = size // 2
    quadrants = [hole_map[:half, :half], hole_map[:half, half:], hole_map[half:, :half],
                 hole_map[half:, half:]]
    assert all(0.24 <= q.mean() <= 0.31 for q in quadrants)
