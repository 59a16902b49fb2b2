"""Scores and decisions of the autoinpainting pipeline: differences, outliers, mask choice, minimum size.

Differences between an input slice and an inpainted one are taken on the residual
``delta = inpainted - input`` of the *composited* inpainting (network output inside the hole, input
elsewhere), so ``delta`` is zero outside the hole. All values are in unit intensity ([0, 1] windows).

Intensity difference
    mean over channels of ``|delta|`` per pixel (:func:`intensity_map`).

Texture difference (feature domain): a fixed Gaussian-derivative filter bank
    For each scale ``sigma`` in ``feature_sigmas_px`` (default 1, 2, 4 px) two scale-normalised
    features (Lindeberg): the gradient ``sigma * grad(G_sigma * I)`` and the Laplacian of Gaussian
    ``sigma^2 * LoG_sigma(I)``. The texture difference per pixel is the mean, over channels, scales
    and the two features, of the norm of ``F(inpainted) - F(input)``. The bank is linear, so that
    difference is exactly ``F(delta)``: zero-padded filtering of ``delta`` on the hole's bounding box
    is exact, and is done as two small matrix products per filter (BLAS), ~1 ms per circle.

    Why this and not the network's encoder features: it is model-independent (the same score for
    every ONNX model, and for fake predictors in tests), deterministic, cheap, and identical in
    fast and reference mode because it depends only on ``delta`` inside the hole. It captures what
    intensity alone misses: edges and blob structure (at 1-4 px, i.e. 1-4 mm) that the inpainting
    removed or invented.

Outliers, mask choice and minimum size are documented at their functions.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage as ndi

# Robust scale of a normal sample: 1.4826 x median absolute deviation.
MAD_TO_SIGMA = 1.4826
# Differences below half a percent of an intensity window are noise; normalising a slice's scores by
# a smaller spread would turn noise into "outliers" (e.g. circles over air, inpainted perfectly).
NOISE_FLOOR = 0.005
# Combined scores are in robust standard units; their spread is never taken as less than one unit.
SCORE_SPREAD_FLOOR = 1.0
# Connected components of residuals use 8-connectivity (diagonal neighbours belong together).
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


# --- difference maps ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _gaussian_matrices(length: int, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Toeplitz matrices ``K[i, j] = g_k(i - j)`` of the Gaussian and its 1st and 2nd derivatives.

    ``K @ v`` is the zero-padded convolution of a length-``length`` vector with the kernel
    (truncated only where it falls below 1e-12 of its peak), float32.
    """
    t = np.subtract.outer(np.arange(length), np.arange(length)).astype(np.float64)
    g0 = np.exp(-t * t / (2 * sigma * sigma)) / (math.sqrt(2 * math.pi) * sigma)
    g1 = -t / sigma**2 * g0
    g2 = (t * t / sigma**4 - 1 / sigma**2) * g0
    kernels = []
    for k in (g0, g1, g2):
        # Far tails underflow to float32 denormals, which make BLAS 500x slower on some inputs;
        # entries below 1e-12 of the peak change nothing measurable, so they are set to zero.
        k = np.where(np.abs(k) < 1e-12 * np.abs(k).max(), 0.0, k)
        kernels.append(np.ascontiguousarray(k, dtype=np.float32))
    return tuple(kernels)


# OpenBLAS runs a GEMM with m * n * k above 2^18 on all cores. When ONNX Runtime's threads (or other
# processes) hold the cores, that hand-off costs ~100x the arithmetic of these small products
# (measured here: one 84 x 84 filter pass 16 ms instead of 0.1 ms). Products are therefore cut into
# row blocks below that size, which OpenBLAS runs on the calling thread; results are identical.
_SINGLE_THREAD_MNK = 1 << 18


def _filter_last_axis(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``x @ matrix.T`` along the last axis of ``x`` (..., n), as single-threaded row-block GEMMs."""
    n = x.shape[-1]
    rows = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, n)
    out = np.empty((rows.shape[0], matrix.shape[0]), dtype=np.float32)
    transposed = np.ascontiguousarray(matrix.T)
    step = max(1, _SINGLE_THREAD_MNK // (n * matrix.shape[0]))
    for start in range(0, rows.shape[0], step):
        np.matmul(rows[start:start + step], transposed, out=out[start:start + step])
    return out.reshape(x.shape[:-1] + (matrix.shape[0],))


def texture_map(delta: np.ndarray, sigmas: tuple[float, ...]) -> np.ndarray:
    """Per-pixel texture difference of a residual (see the module docstring).

    Args:
        delta: ``inpainted - input``, shape ``(..., C, h, w)``, zero outside the hole, and the hole
            inside the ``h x w`` window (then the zero-padded filtering is exact).
        sigmas: filter scales in pixels.

    Returns:
        float32 ``(..., h, w)``: mean over channels, scales and the two features of |feature|.
    """
    delta = np.asarray(delta, dtype=np.float32)
    height, width = delta.shape[-2:]
    # Filter along x, then transpose once and filter along y; the features are combined pixel-wise,
    # so they stay in the transposed (..., w, h) layout until the end.
    total = np.zeros(delta.shape[:-3] + (width, height), dtype=np.float32)
    for sigma in sigmas:
        y0, y1, y2 = _gaussian_matrices(height, float(sigma))
        along_x = [np.swapaxes(_filter_last_axis(delta, k), -1, -2) for k in _gaussian_matrices(width, float(sigma))]
        grad_x = _filter_last_axis(along_x[1], y0)
        grad_y = _filter_last_axis(along_x[0], y1)
        laplacian = _filter_last_axis(along_x[0], y2) + _filter_last_axis(along_x[2], y0)
        gradient = sigma * np.sqrt(grad_x * grad_x + grad_y * grad_y)
        total += (gradient + sigma * sigma * np.abs(laplacian)).mean(axis=-3)
    return np.ascontiguousarray(np.swapaxes(total, -1, -2)) / (2 * len(sigmas))


def intensity_map(delta: np.ndarray) -> np.ndarray:
    """Per-pixel intensity difference: mean over channels of ``|delta|``; ``(..., C, h, w) -> (..., h, w)``."""
    return np.abs(np.asarray(delta, dtype=np.float32)).mean(axis=-3)


def difference_maps(delta: np.ndarray, sigmas: tuple[float, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """``(intensity_map, texture_map)`` of ``delta`` ``(..., C, h, w)``; texture is zeros when ``sigmas`` is None."""
    intensity = intensity_map(delta)
    texture = texture_map(delta, sigmas) if sigmas else np.zeros_like(intensity)
    return intensity, texture


# --- candidate circles --------------------------------------------------------------------------


def _subset(values: np.ndarray, population: np.ndarray | None) -> np.ndarray:
    """``values`` restricted to ``population`` (boolean mask or indices); all of them when None."""
    return values if population is None else values[population]


def robust_z(values: np.ndarray, floor: float, population: np.ndarray | None = None) -> np.ndarray:
    """``(v - median) / max(1.4826 * MAD, floor)``: robust standard units across a slice's circles.

    ``population`` (boolean mask or indices, default all) selects the circles the median and MAD
    are taken from; every value is then expressed in those units. Coarse-to-fine search passes its
    evenly spread screening circles, an unbiased sample of the slice's exhaustive grid.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    sample = _subset(values, population)
    median = np.median(sample)
    spread = MAD_TO_SIGMA * np.median(np.abs(sample - median))
    return (values - median) / max(spread, floor)


def combined_scores(intensity: np.ndarray, texture: np.ndarray | None,
                    population: np.ndarray | None = None) -> np.ndarray:
    """Score per circle: robust z of the intensity difference + robust z of the texture difference.

    Normalising each difference by its own median and MAD over the slice's circles (or over
    ``population``, see :func:`robust_z`) puts the two on one scale (they have different units) and
    makes the score relative to the slice, whatever the modality or the model's typical error. With
    ``texture=None`` the score is the intensity z alone.
    """
    score = robust_z(intensity, NOISE_FLOOR, population)
    if texture is not None:
        score = score + robust_z(texture, NOISE_FLOOR, population)
    return score


def outlier_level(scores: np.ndarray, k: float, population: np.ndarray | None = None) -> float:
    """``median + k * max(1.4826 * MAD, 1)`` of the scores (of ``population`` when given)."""
    sample = _subset(np.asarray(scores, dtype=np.float64), population)
    median = np.median(sample)
    return float(median + k * max(MAD_TO_SIGMA * np.median(np.abs(sample - median)), SCORE_SPREAD_FLOOR))


def select_outliers(scores: np.ndarray, intensity: np.ndarray, k: float = 3.0, top_k: int = 3,
                    min_intensity: float = 0.01, population: np.ndarray | None = None,
                    eligible: np.ndarray | None = None) -> np.ndarray:
    """The circles that stand out from the rest of their slice, best first, at most ``top_k``.

    Rule: ``score > median(scores) + k * max(1.4826 * MAD(scores), 1)`` (k = 3: a healthy circle
    passes by chance about once in 700 for normal scores, and median/MAD are not dragged by the
    tumour circles themselves, unlike mean/sd), and a mean intensity difference of at least
    ``min_intensity`` (a change at the noise level is never a tumour, however tight the slice's
    spread). The paper keeps "only the top few values with notable differences w.r.t. the other
    values"; a slice with no outlier has no candidate.

    Args:
        scores: combined score per circle, shape ``(n,)``.
        intensity: mean intensity difference per circle, shape ``(n,)``.
        k: outlier distance in robust standard deviations.
        top_k: cap on the number of candidates.
        min_intensity: absolute floor on the intensity difference.
        population: circles (boolean mask or indices) the median and MAD come from; default all.
        eligible: ``(n,)`` bool, the circles that may be candidates at all (the volume rule's
            verdict); the ``top_k`` cap applies among them. Default: all.

    Returns:
        int array of circle indices, highest score first (ties: lower index first).
    """
    scores = np.asarray(scores, dtype=np.float64)
    intensity = np.asarray(intensity, dtype=np.float64)
    if scores.shape != intensity.shape or scores.ndim != 1:
        raise ValueError(f"scores and intensity must be 1-D of one length, got {scores.shape}, {intensity.shape}")
    if scores.size == 0:
        return np.zeros(0, dtype=int)
    level = outlier_level(scores, k, population)
    passing = (scores > level) & (intensity >= min_intensity)
    if eligible is not None:
        passing &= np.asarray(eligible, dtype=bool)
    outliers = np.flatnonzero(passing)
    order = np.lexsort((outliers, -scores[outliers]))  # by score descending, then index
    return outliers[order][:top_k]


# --- the target region --------------------------------------------------------------------------


def choose_mask(differences, areas, healthy_level: float, tolerance: float = 2.0) -> int:
    """Index of the chosen mask among the union (0) and its dilations (1, 2, ...), paper's rule.

    Walk from the union outwards: the next larger mask is taken while it changes the slice
    "notably", i.e. while the change it adds per added pixel,
    ``(d[j+1] - d[j]) / (area[j+1] - area[j])``, exceeds ``tolerance * healthy_level``; otherwise
    the smaller mask is kept ("if no changes are observed between the sequential orders, the mask
    with the smaller size is selected"). The reference ``healthy_level`` is the slice's median
    circle difference per pixel: what inpainting healthy tissue changes. A plain relative increase
    ``d[j+1] / d[j] - 1`` would not work: one dilation step adds only ~2 / R of the area of a mask of
    radius R, so it is tiny even when the added ring is all tumour.

    Args:
        differences: total change ``d[j]`` (sum over the measured pixels) of each mask's inpainting.
        areas: measured pixel count of each mask (increasing).
        healthy_level: change per pixel of a healthy inpainting (floored at the noise level).
        tolerance: multiple of ``healthy_level`` an added ring must exceed.
    """
    differences = np.asarray(differences, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    if differences.shape != areas.shape or differences.size == 0:
        raise ValueError("differences and areas must be non-empty and of one length")
    level = tolerance * max(float(healthy_level), NOISE_FLOOR)
    chosen = 0
    while chosen + 1 < differences.size:
        added = areas[chosen + 1] - areas[chosen]
        if added <= 0 or (differences[chosen + 1] - differences[chosen]) / added <= level:
            break
        chosen += 1
    return chosen


# --- minimum tumour size ------------------------------------------------------------------------


def digital_disk_area(radius: float) -> int:
    """Pixels of a digital disk ``y^2 + x^2 <= radius^2`` (radius 7 -> 149, radius 4 -> 49)."""
    reach = int(math.floor(radius))
    offsets = np.arange(-reach, reach + 1)
    return int(np.count_nonzero(offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius))


def largest_component_area(binary: np.ndarray) -> int:
    """Pixel count of the largest 8-connected component of a 2-D boolean array (0 when empty)."""
    labels, count = ndi.label(binary, structure=EIGHT_CONNECTED)
    return 0 if count == 0 else int(np.bincount(labels.ravel())[1:].max())


def largest_component_radius(binary: np.ndarray) -> float:
    """Equivalent radius ``sqrt(area / pi)`` (pixels) of the largest 8-connected component; 0 if empty."""
    return math.sqrt(largest_component_area(binary) / math.pi)


def passes_min_size(residual: np.ndarray, level: float, min_radius_px: float) -> bool:
    """Paper's size criterion on one slice's residual.

    The largest 8-connected component of ``residual > level`` must be at least as large as the
    smallest tumour: a digital disk of radius ``min_radius_px`` (the paper measured 7 pixels for the
    lung, 4 for head and neck). Comparing pixel counts with the digital disk (149 pixels for radius
    7, not pi * 49 = 154) lets a tumour of exactly the minimum radius pass.

    Args:
        residual: residual of one slice, ``(h, w)`` (any crop containing all its non-zero pixels).
        level: binarisation level of the residual for the components.
        min_radius_px: minimum tumour radius in pixels.
    """
    binary = np.asarray(residual) > level
    if not binary.any():
        return False
    return largest_component_area(binary) >= digital_disk_area(min_radius_px)
