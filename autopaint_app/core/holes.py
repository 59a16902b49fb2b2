"""Irregular training holes: unions of circles, rotated ellipses and thick lines (paper, 2.4).

Tumours come in irregular shapes, sizes and places, so the holes do too. Each mask gets a target
hole coverage and random shapes (sized relative to the image, placed anywhere, clipped at the
border) are added until the coverage reaches it; a shape that would overshoot by more than
``OVERSHOOT`` is redrawn. ``batch_masks`` spreads the per-mask targets widely (small and large holes)
but centres them on a batch target drawn in ``BATCH_TARGET_RANGE``, so that every batch's mean
hole coverage lies in the paper's 25-30 %.

Arrays are numpy float32 (H, W) = (rows = y, columns = x); 1 = known pixel, 0 = hole. Pure numpy +
scikit-image. It lives in core because the trainer (``training.masks`` re-exports it) and the held-out
evaluation (``core.model_eval``) must draw holes from the very same generator.
"""

from __future__ import annotations

import numpy as np
from skimage.draw import disk, ellipse, polygon

PAPER_BATCH_COVERAGE = (0.25, 0.30)  # section 2.4: mean hole fraction per batch
BATCH_TARGET_RANGE = (0.255, 0.28)  # leaves room for the overshoot below
MASK_TARGET_RANGE = (0.08, 0.45)  # spread of single masks (mean 0.265)
MIN_MASK_TARGET, MAX_MASK_TARGET = 0.03, 0.60
OVERSHOOT = 0.02  # a mask's coverage ends in [target, target + OVERSHOOT]
MAX_SHAPE_TRIES = 300
# Shape sizes as fractions of the smaller image side.
CIRCLE_RADIUS = (0.03, 0.12)
ELLIPSE_SEMI_AXIS = (0.03, 0.18)
LINE_THICKNESS = (0.02, 0.06)
LINE_LENGTH = (0.15, 0.50)


def _as_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    shape = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(shape) != 2 or min(shape) < 8:
        raise ValueError(f"mask size must be an int or (H, W) of at least 8 px, got {size!r}")
    return int(shape[0]), int(shape[1])


def hole_coverage(mask: np.ndarray) -> float:
    """Fraction of hole pixels (mask == 0) in a mask or a stack of masks."""
    return float(1.0 - np.mean(mask))


def _random_shape(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Flat pixel indices (row * W + column, no repeats) of one random circle, rotated ellipse
    or thick line."""
    h, w = shape
    side = min(h, w)
    row, col = rng.uniform(0, h), rng.uniform(0, w)
    kind = rng.integers(3)
    if kind == 0:
        rows, cols = disk((row, col), rng.uniform(*CIRCLE_RADIUS) * side, shape=shape)
        return rows * w + cols
    if kind == 1:
        semi_r, semi_c = rng.uniform(*ELLIPSE_SEMI_AXIS, size=2) * side
        rows, cols = ellipse(row, col, semi_r, semi_c, shape=shape,
                             rotation=rng.uniform(-np.pi, np.pi))
        return rows * w + cols
    # Thick line: a rotated rectangle from (row, col) with round caps.
    angle = rng.uniform(0, np.pi)
    length = rng.uniform(*LINE_LENGTH) * side
    half = rng.uniform(*LINE_THICKNESS) * side / 2
    d_row, d_col = np.sin(angle) * length, np.cos(angle) * length
    n_row, n_col = np.cos(angle) * half, -np.sin(angle) * half
    rows = np.array([row + n_row, row + d_row + n_row, row + d_row - n_row, row - n_row])
    cols = np.array([col + n_col, col + d_col + n_col, col + d_col - n_col, col - n_col])
    body = polygon(rows, cols, shape=shape)
    cap_a = disk((row, col), half, shape=shape)
    cap_b = disk((row + d_row, col + d_col), half, shape=shape)
    rows = np.concatenate([body[0], cap_a[0], cap_b[0]])
    cols = np.concatenate([body[1], cap_a[1], cap_b[1]])
    return np.unique(rows * w + cols)  # the caps overlap the body


def random_hole_mask(size: int | tuple[int, int], rng: np.random.Generator,
                     target_coverage: float | None = None) -> np.ndarray:
    """One irregular hole mask.

    Args:
        size: Side length, or (H, W) in pixels.
        rng: Seeded numpy Generator (all randomness comes from it).
        target_coverage: Hole fraction to reach; default uniform in ``MASK_TARGET_RANGE``.

    Returns:
        float32 (H, W), 1 = known, 0 = hole; hole fraction in [target, target + OVERSHOOT]
        (slightly below the target only if ``MAX_SHAPE_TRIES`` shapes did not get there).
    """
    shape = _as_shape(size)
    if target_coverage is None:
        target_coverage = rng.uniform(*MASK_TARGET_RANGE)
    if not 0.0 < target_coverage <= MAX_MASK_TARGET:
        raise ValueError(f"target_coverage must be in (0, {MAX_MASK_TARGET}], "
                         f"got {target_coverage}")
    holes = np.zeros(shape[0] * shape[1], dtype=bool)  # flat, so shapes index it once
    n_holes = 0
    for _ in range(MAX_SHAPE_TRIES):
        pixels = _random_shape(shape, rng)
        added = int(np.count_nonzero(~holes[pixels]))
        if (n_holes + added) / holes.size > target_coverage + OVERSHOOT:
            continue  # too big for what is left: draw another shape
        holes[pixels] = True
        n_holes += added
        if n_holes / holes.size >= target_coverage:
            break
    holes = holes.reshape(shape)
    return (~holes).astype(np.float32)


def batch_masks(n: int, size: int | tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A training batch of hole masks whose mean hole coverage is in 25-30 %.

    Per-mask targets are spread over ``MASK_TARGET_RANGE`` and shifted so that their mean is a
    batch target drawn from ``BATCH_TARGET_RANGE``.

    Args:
        n: Number of masks.
        size: Side length, or (H, W) in pixels.
        rng: Seeded numpy Generator.

    Returns:
        float32 (n, 1, H, W), 1 = known, 0 = hole (the network's mask layout).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    shape = _as_shape(size)
    batch_target = rng.uniform(*BATCH_TARGET_RANGE)
    spread = rng.uniform(*MASK_TARGET_RANGE, size=n)
    targets = np.clip(spread - spread.mean() + batch_target, MIN_MASK_TARGET, MAX_MASK_TARGET)
    masks = np.stack([random_hole_mask(shape, rng, float(t)) for t in targets])
    return masks[:, None]
