"""Clinical PET threshold segmentations: the baselines AutoPaint has to beat.

Both work on body-weight SUV inside the organ of interest (OOI):

* :func:`suv_threshold` — fixed threshold, SUV >= 2.5 (the classic malignancy cut-off).
* :func:`percent_suvmax` — SUV >= 41 % of the SUVmax inside the whole OOI (one global maximum).
* :func:`percent_suvmax_per_lesion` — every 26-connected component of SUV >= 2.5 is thresholded at
  41 % of *its own* maximum (EANM practice for PET volume delineation).

The CLI (``evaluate``) reports ``suv_threshold`` and ``percent_suvmax_per_lesion``
(:data:`CLI_BASELINES`). Why per lesion: with one global maximum, the hottest structure in the OOI —
often physiological (myocardium in a dilated lung field, tonsils or salivary glands in the neck) or one
very avid lesion — sets the cut-off for everything, and every other lesion of lower uptake vanishes.
The global variant stays available because it is the literal "41 % of SUVmax" of the issue.

All arrays are numpy ``(z, y, x)`` on the same grid; ``suv`` is float SUV, ``ooi`` boolean.
Errors are ``ValueError`` with the reason (shapes included on a mismatch); the CLI maps them to
``InputError`` naming the file.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

from autopaint_app.core.lesions import CONNECTIVITY_26

SUV_THRESHOLD = 2.5
SUVMAX_FRACTION = 0.41


def _validated(suv, ooi) -> tuple[np.ndarray, np.ndarray]:
    """``suv`` as float64 and ``ooi`` as bool, after checking shapes, NaN/Inf and an empty OOI."""
    suv = np.asarray(suv, dtype=np.float64)
    ooi = np.asarray(ooi)
    if suv.shape != ooi.shape:
        raise ValueError(f"shape mismatch (suv, ooi): {suv.shape} vs {ooi.shape}")
    if not np.isfinite(suv).all():
        raise ValueError(f"suv contains {int(np.count_nonzero(~np.isfinite(suv)))} NaN/Inf voxels")
    ooi = ooi.astype(bool, copy=False)
    if not ooi.any():
        raise ValueError("the organ-of-interest mask is empty")
    return suv, ooi


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")


def suv_threshold(suv: np.ndarray, ooi: np.ndarray, threshold: float = SUV_THRESHOLD) -> np.ndarray:
    """Voxels inside the OOI with ``SUV >= threshold``.

    Args:
        suv: SUV volume, shape ``(z, y, x)``.
        ooi: organ-of-interest mask, same shape (bool or 0/non-zero).
        threshold: SUV cut-off (default 2.5), inclusive.

    Returns:
        Boolean mask, shape ``(z, y, x)``.
    """
    suv, ooi = _validated(suv, ooi)
    return (suv >= threshold) & ooi


def percent_suvmax(suv: np.ndarray, ooi: np.ndarray, fraction: float = SUVMAX_FRACTION) -> np.ndarray:
    """Voxels inside the OOI with ``SUV >= fraction * max(SUV inside the OOI)`` (one global maximum).

    Args:
        suv: SUV volume, shape ``(z, y, x)``.
        ooi: organ-of-interest mask, same shape.
        fraction: fraction of the OOI's SUVmax (default 0.41), inclusive.

    Returns:
        Boolean mask, shape ``(z, y, x)``.
    """
    _check_fraction(fraction)
    suv, ooi = _validated(suv, ooi)
    cut_off = fraction * suv[ooi].max()
    return (suv >= cut_off) & ooi


def percent_suvmax_per_lesion(suv: np.ndarray, ooi: np.ndarray, fraction: float = SUVMAX_FRACTION,
                              seed_threshold: float = SUV_THRESHOLD) -> np.ndarray:
    """41 % of each lesion's own SUVmax, lesions being the 26-connected components of SUV >= 2.5.

    Each component of ``suv_threshold(suv, ooi, seed_threshold)`` keeps its voxels with
    ``SUV >= fraction * (that component's SUVmax)``. The result is a subset of the SUV >= 2.5 mask:
    when 41 % of a component's maximum is below 2.5 (SUVmax < 6.1) the whole component is kept; the
    region never grows beyond it.

    Args:
        suv: SUV volume, shape ``(z, y, x)``.
        ooi: organ-of-interest mask, same shape.
        fraction: fraction of each component's SUVmax (default 0.41), inclusive.
        seed_threshold: SUV that defines the components (default 2.5).

    Returns:
        Boolean mask, shape ``(z, y, x)``.
    """
    _check_fraction(fraction)
    seeds = suv_threshold(suv, ooi, seed_threshold)
    suv = np.asarray(suv, dtype=np.float64)
    labels, count = ndimage.label(seeds, structure=CONNECTIVITY_26)
    if count == 0:
        return seeds
    component_max = ndimage.maximum(suv, labels, index=np.arange(1, count + 1))
    cut_off = np.concatenate([[np.inf], fraction * np.asarray(component_max)])  # label 0 never passes
    return seeds & (suv >= cut_off[labels])


# What `autopaint-cli evaluate` reports, by name (see the module docstring for the choice).
CLI_BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "suv_2.5": suv_threshold,
    "suvmax_41pct_per_lesion": percent_suvmax_per_lesion,
}
