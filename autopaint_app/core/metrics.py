"""Measuring results: inpainting quality, segmentation overlap, the paper's threshold sweep, statistics.

Paper section 2.7 (and 2.5, "Segmenting the target tumor"):

* Inpainting quality: MSE, PSNR and SSIM between the original and the synthesized image, both in
  the normalised intensity range ``[0, 1]`` (so ``data_range = 1``).
* Segmentation: Dice, precision and recall of a binary prediction against the ground truth.
* The residual volume ``|input - autoinpainted|`` (values in ``[0, 1]``) is binarised at every
  threshold ``0, 0.02, ..., 0.80``. The best threshold per subject gives the paper's ``[Dice]``,
  ``[Precision]`` and ``[Recall]``; the single threshold with the best mean Dice over a cohort is the
  fixed threshold used at inference.
* Wilcoxon signed-rank test between two methods on paired per-subject scores.

Conventions for empty masks (used everywhere in this module, and tested):

* A ratio whose denominator is zero is undefined and reported as ``nan`` — except when the
  prediction and the truth are both empty: then there was nothing to find and nothing was found, and
  Dice, precision and recall are all ``1.0`` (MONAI's ``ignore_empty=False`` convention).
* Hence Dice is never ``nan`` (its denominator ``|S| + |G|`` is zero only when both are empty);
  precision is ``nan`` when only the prediction is empty, recall is ``nan`` when only the truth is.

Arrays are numpy, any dimensionality unless stated; volumes are ``(z, y, x)``.
Per-lesion statistics (SUVmax, SUVpeak, TLG, ...) live in :mod:`autopaint_app.core.lesions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.stats
from skimage.metrics import structural_similarity

# Re-exported so that callers find every measurement under `metrics`; the code lives in lesions.py.
from autopaint_app.core.lesions import LesionStats, lesion_table  # noqa: F401

# The paper's sweep: 0 to 0.8 in steps of 0.02 (41 values). Built from integers so that every value
# is the double nearest its decimal (0.06 is 3/50, not 0.02 + 0.02 + 0.02 = 0.06000000000000001).
THRESHOLDS: tuple[float, ...] = tuple(i / 50 for i in range(41))


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: str = "a, b") -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch ({names}): {a.shape} vs {b.shape}")


def _selected(a, b, mask) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as float64 (restricted to ``mask`` when given), after shape checks."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _check_same_shape(a, b)
    if mask is None:
        return a, b
    mask = np.asarray(mask, dtype=bool)
    _check_same_shape(a, mask, "images, mask")
    if not mask.any():
        raise ValueError("mask is empty: nothing to compare")
    return a[mask], b[mask]


# --------------------------------------------------------------------------- inpainting quality
def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error between two images.

    Args:
        a, b: images of the same shape (2-D slice ``(y, x)`` or stack ``(z, y, x)``), intensities
            normalised to ``[0, 1]``.
        mask: optional boolean array of the same shape; only voxels inside it count (e.g. the holes).

    Returns:
        ``mean((a - b) ** 2)`` over all voxels or over the mask, in squared intensity units.

    Raises:
        ValueError: shapes differ or the mask is empty.
    """
    a, b = _selected(a, b, mask)
    return float(np.mean((a - b) ** 2))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio ``10 log10(R^2 / MSE)`` in dB (paper eq. 2).

    Args:
        a, b: images of the same shape, intensities in ``[0, data_range]``.
        data_range: ``R``, the largest possible intensity difference (1.0 for our normalised images).
        mask: optional boolean array; the MSE is taken inside it only.

    Returns:
        PSNR in dB; ``inf`` for identical images (MSE = 0).
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    error = mse(a, b, mask)
    if error == 0.0:
        return math.inf
    return float(10.0 * np.log10(data_range**2 / error))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, mask: np.ndarray | None = None) -> float:
    """Structural similarity (scikit-image, Wang et al. 2004: 7x7 uniform window, K1=0.01, K2=0.03).

    SSIM is computed in 2-D, slice by slice, as the paper does: a ``(z, y, x)`` stack is treated as
    ``z`` axial slices ``(y, x)``. Each slice must be at least 7x7.

    * Without a mask: the mean over slices of scikit-image's mean SSIM per slice (which ignores a
      3-pixel border strip to avoid edge effects).
    * With a mask: the per-pixel SSIM maps of all slices are averaged over the pixels inside the mask
      (border pixels included; the filters reflect at the edges). This scores only the holes.

    Args:
        a, b: images of the same shape, ``(y, x)`` or ``(z, y, x)``, intensities in ``[0, data_range]``.
        data_range: dynamic range of the images (1.0 for our normalised images).
        mask: optional boolean array of the same shape.

    Returns:
        SSIM in ``[-1, 1]``; 1.0 for identical images.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _check_same_shape(a, b)
    if a.ndim not in (2, 3):
        raise ValueError(f"ssim needs a 2-D slice (y, x) or a stack (z, y, x), got shape {a.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        _check_same_shape(a, mask, "images, mask")
        if not mask.any():
            raise ValueError("mask is empty: nothing to compare")
    slices_a, slices_b = (a[None], b[None]) if a.ndim == 2 else (a, b)
    means, maps = [], []
    for slice_a, slice_b in zip(slices_a, slices_b):
        mean_ssim, ssim_map = structural_similarity(slice_a, slice_b, data_range=data_range, full=True)
        means.append(mean_ssim)
        maps.append(ssim_map)
    if mask is None:
        return float(np.mean(means))
    return float(np.stack(maps).reshape(mask.shape)[mask].mean())


# --------------------------------------------------------------------------- segmentation overlap
@dataclass(frozen=True)
class ConfusionCounts:
    """Voxel counts of a binary prediction against the truth."""

    tp: int
    fp: int
    fn: int
    tn: int


def _as_masks(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    _check_same_shape(pred, truth, "pred, truth")
    for name, array in (("pred", pred), ("truth", truth)):
        if array.dtype != bool:
            raise ValueError(f"{name} must be a boolean array, got dtype {array.dtype}")
    return pred, truth


def confusion_counts(pred: np.ndarray, truth: np.ndarray) -> ConfusionCounts:
    """True/false positives/negatives of boolean ``pred`` against boolean ``truth`` (same shape)."""
    pred, truth = _as_masks(pred, truth)
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    return ConfusionCounts(tp, fp, fn, pred.size - tp - fp - fn)


def _ratios(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dice, precision, recall from counts (scalars or arrays), with the module's empty conventions."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    both_empty = (tp + fp + fn) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(both_empty, 1.0, 2 * tp / (2 * tp + fp + fn))
        precision = np.where(both_empty, 1.0, tp / (tp + fp))
        recall = np.where(both_empty, 1.0, tp / (tp + fn))
    return dice, precision, recall


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice ``2|S∩G| / (|S| + |G|)`` of boolean arrays; 1.0 when both are empty, never nan."""
    c = confusion_counts(pred, truth)
    return float(_ratios(c.tp, c.fp, c.fn)[0])


def precision(pred: np.ndarray, truth: np.ndarray) -> float:
    """Precision ``TP / (TP + FP)``; 1.0 when both are empty, nan when only ``pred`` is empty."""
    c = confusion_counts(pred, truth)
    return float(_ratios(c.tp, c.fp, c.fn)[1])


def recall(pred: np.ndarray, truth: np.ndarray) -> float:
    """Recall ``TP / (TP + FN)``; 1.0 when both are empty, nan when only ``truth`` is empty."""
    c = confusion_counts(pred, truth)
    return float(_ratios(c.tp, c.fp, c.fn)[2])


# --------------------------------------------------------------------------- the paper's threshold sweep
@dataclass(frozen=True)
class SweepResult:
    """Segmentation scores of one subject at every threshold (all arrays have one entry per threshold)."""

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    dice: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


@dataclass(frozen=True)
class BestThreshold:
    """The paper's per-subject ``[Dice]``, ``[Precision]``, ``[Recall]`` and the threshold that gave them."""

    threshold: float
    dice: float
    precision: float
    recall: float


@dataclass(frozen=True)
class FixedThreshold:
    """The one threshold with the best mean Dice over a cohort, and each subject's Dice at it."""

    threshold: float
    mean_dice: float
    dices: np.ndarray


def sweep(residual: np.ndarray, truth: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> SweepResult:
    """Dice, precision and recall of ``residual > t`` against ``truth`` for every threshold ``t``.

    A voxel is positive when its residual is strictly greater than the threshold, so at ``t = 0``
    exactly the voxels the inpainting changed are positive (``>=`` would mark the whole volume).

    Args:
        residual: residual volume ``|input - inpainted|``, float, any shape, values in ``[0, 1]``.
        truth: boolean ground truth of the same shape.
        thresholds: strictly increasing thresholds (default: the paper's 41 values 0..0.8).

    Returns:
        A :class:`SweepResult`; empty-mask conventions as in the module docstring.
    """
    residual = np.asarray(residual)
    truth = np.asarray(truth)
    _check_same_shape(residual, truth, "residual, truth")
    if truth.dtype != bool:
        raise ValueError(f"truth must be a boolean array, got dtype {truth.dtype}")
    if np.isnan(residual).any():
        raise ValueError("residual contains NaN")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or thresholds.size == 0 or np.any(np.diff(thresholds) <= 0):
        raise ValueError("thresholds must be a non-empty, strictly increasing 1-D sequence")

    def positives_per_threshold(values: np.ndarray) -> np.ndarray:
        # side="left" counts thresholds strictly below each value, i.e. those where value > t; one
        # pass with exact comparisons instead of re-thresholding the whole volume 41 times.
        n_below = np.searchsorted(thresholds, values, side="left")
        counts = np.bincount(n_below, minlength=thresholds.size + 1)
        return counts[::-1].cumsum()[::-1][1:]  # value > t_i  <=>  n_below >= i + 1

    tp = positives_per_threshold(residual[truth])
    fp = positives_per_threshold(residual[~truth])
    fn = int(np.count_nonzero(truth)) - tp
    dice_values, precision_values, recall_values = _ratios(tp, fp, fn)
    return SweepResult(thresholds, tp, fp, fn, dice_values, precision_values, recall_values)


def best_per_subject(result: SweepResult) -> BestThreshold:
    """The threshold with the highest Dice for this subject (ties: the lowest such threshold)."""
    best = int(np.argmax(result.dice))  # argmax returns the first maximum, i.e. the lowest threshold
    return BestThreshold(float(result.thresholds[best]), float(result.dice[best]),
                         float(result.precision[best]), float(result.recall[best]))


def best_fixed_threshold(results: Sequence[SweepResult]) -> FixedThreshold:
    """The single threshold that maximises the mean Dice over a cohort (ties: the lowest threshold).

    Args:
        results: one :class:`SweepResult` per subject, all swept over the same thresholds.
    """
    if len(results) == 0:
        raise ValueError("no subjects: the cohort is empty")
    thresholds = results[0].thresholds
    if any(not np.array_equal(r.thresholds, thresholds) for r in results):
        raise ValueError("all subjects must be swept over the same thresholds")
    dices = np.stack([r.dice for r in results])  # (subjects, thresholds)
    mean_dice = dices.mean(axis=0)
    best = int(np.argmax(mean_dice))
    return FixedThreshold(float(thresholds[best]), float(mean_dice[best]), dices[:, best].copy())


# --------------------------------------------------------------------------- cohort statistics
@dataclass(frozen=True)
class Summary:
    """Mean ± sample standard deviation (ddof = 1) of the finite values of a cohort."""

    mean: float
    sd: float
    n: int
    n_missing: int

    def __str__(self) -> str:
        text = f"{self.mean:.3f} ± {self.sd:.3f} (n={self.n})"
        return text + (f", {self.n_missing} undefined" if self.n_missing else "")


def summarize(values: Sequence[float]) -> Summary:
    """Mean ± SD over subjects, ignoring nan (undefined precision/recall) and counting it as missing.

    ``sd`` is the sample standard deviation (ddof = 1), nan when fewer than two values are finite;
    ``mean`` is nan when none is.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    finite = values[~np.isnan(values)]
    mean = float(finite.mean()) if finite.size else math.nan
    sd = float(finite.std(ddof=1)) if finite.size >= 2 else math.nan
    return Summary(mean, sd, int(finite.size), int(values.size - finite.size))


@dataclass(frozen=True)
class WilcoxonResult:
    """Paired two-sided Wilcoxon signed-rank test; ``note`` explains a degenerate case ("" otherwise)."""

    statistic: float
    pvalue: float
    n: int
    note: str = ""


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> WilcoxonResult:
    """Paired Wilcoxon signed-rank test between two methods' per-subject scores (scipy).

    scipy's defaults: two-sided, zero differences dropped (``zero_method="wilcox"``), exact p-value
    for small samples without ties, normal approximation otherwise. ``statistic`` is
    ``min(W+, W-)``.

    Args:
        a, b: scores of method A and method B for the same subjects, in the same order.

    Returns:
        The statistic and p-value. When every pair is equal there is no evidence of a difference and
        scipy's statistic is undefined: the result is ``statistic = 0, pvalue = 1.0`` with a note.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _check_same_shape(a, b)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"wilcoxon needs two non-empty 1-D sequences, got shape {a.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("wilcoxon: scores contain NaN; drop those subjects from both methods first")
    if np.all(a == b):
        return WilcoxonResult(0.0, 1.0, int(a.size), "all pairs are equal: no difference to test")
    result = scipy.stats.wilcoxon(a, b)
    return WilcoxonResult(float(result.statistic), float(result.pvalue), int(a.size))
