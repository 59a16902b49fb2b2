"""Where inpainting crops come from: tumour-free axial slices, coarse body maps and crop windows.

Shared by the trainer (``training.data`` imports these) and the held-out evaluation
(``core.model_eval``), so that a model is scored on crops drawn the way it was trained on.

Slices meeting the tumour label, or lying within a z margin of it (which keeps the PET blur of a
lesion out too), are excluded. Crop centres are drawn from coarse ``CELL x CELL``-pixel maps of the
body and of the organ of interest, never from empty air. Arrays are numpy: volumes ``(z, y, x)``,
slices ``(C, y, x)`` in [0, 1] on the 512 x 512 working grid.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
from scipy import ndimage as ndi

from autopaint_app.core.ooi import compute_ooi
from autopaint_app.core.preprocess import PreparedCase, ct_to_unit, pet_to_unit
from autopaint_app.core.presets import SitePreset, get_preset

CELL = 8  # pixels per side of the coarse body / OOI maps crop centres are drawn from
OOI_CENTRE_PROBABILITY = 0.75  # else anywhere in the body (context around the organ)
BODY_CT_HU = -320.0  # lung parenchyma and air below; the body is filled in per slice
BODY_SUV = 0.1


def healthy_slice_mask(label: np.ndarray | None, n_slices: int, slice_mm: float, margin_mm: float = 0.0,
                       flagged_healthy: bool = False) -> np.ndarray | None:
    """Which axial slices are tumour free.

    Args:
        label: uint8/bool (z, y, x), 1 = tumour; None when the case has no label.
        n_slices: Number of axial slices z.
        slice_mm: Slice spacing (z) in mm.
        margin_mm: Slices whose centre lies within this z distance of a tumour slice go too.
        flagged_healthy: The user declared the case tumour free (used when ``label`` is None).

    Returns:
        bool (z,), or None when there is no label and the case is not flagged healthy.
    """
    if label is None:
        return np.ones(n_slices, dtype=bool) if flagged_healthy else None
    tumour = np.asarray(label).reshape(label.shape[0], -1).any(axis=1)
    reach = int(math.floor(margin_mm / slice_mm)) if slice_mm > 0 else 0
    if reach > 0 and tumour.any():
        tumour = ndi.binary_dilation(tumour, iterations=reach)
    return ~tumour


def ooi_slices(prepared: PreparedCase, site: str, candidates: np.ndarray, case_id: str,
               logger: logging.Logger) -> tuple[np.ndarray, np.ndarray | None]:
    """Keep the ``candidates`` slice indices that meet the site's organ of interest.

    The OOI's warnings are logged for ``case_id`` (a cohort run must not stop on one odd case).

    Returns:
        (kept indices, OOI on the working grid ``(z, N, N)`` bool), or (``candidates``, None) when no
        organ of interest is found (the caller decides whether that is acceptable).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ooi = compute_ooi(site, ct=prepared.ct_hu, pet=prepared.suv)
    for warning in caught:
        logger.warning("case %s: %s", case_id, warning.message)
    if not ooi.any():
        return candidates, None
    ooi_working = prepared.grid.to_working(ooi.astype(np.uint8), order=0).array.astype(bool)
    return candidates[ooi_working[candidates].any(axis=(1, 2))], ooi_working


def even_subset(indices: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` of ``indices``, evenly spaced (first and last kept)."""
    if len(indices) <= limit:
        return indices
    picks = np.unique(np.round(np.linspace(0, len(indices) - 1, limit)).astype(int))
    return indices[picks]


def coarse_cells(mask: np.ndarray) -> np.ndarray:
    """(n, N, N) bool -> (n, N / CELL, N / CELL): a cell is on when any of its pixels is."""
    n, h, w = mask.shape
    return mask.reshape(n, h // CELL, CELL, w // CELL, CELL).any(axis=(2, 4))


def body_cells(images: np.ndarray, channels: tuple[str, ...], site: str | SitePreset) -> np.ndarray:
    """Coarse body map from the unit-range slices (n, C, N, N): tissue above air, holes filled.

    ``site``: a site name, or the preset (windows) the slices were normalised with.
    """
    preset = site if isinstance(site, SitePreset) else get_preset(site)
    limits = {"ct": float(ct_to_unit(np.array(BODY_CT_HU), preset)),
              "pet": float(pet_to_unit(np.array(BODY_SUV), preset))}
    n, _, h, w = images.shape
    cells = np.zeros((n, h // CELL, w // CELL), dtype=bool)
    for c, name in enumerate(channels):
        mean = images[:, c].astype(np.float32).reshape(n, h // CELL, CELL, w // CELL, CELL).mean(axis=(2, 4))
        cells |= mean > limits[name]
    return np.stack([ndi.binary_fill_holes(cell) for cell in cells])


def crop_at(image: np.ndarray, cells: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A (C, crop, crop) window of ``image`` (C, N, N) centred in a random on-cell of ``cells``."""
    _, h, w = image.shape
    if crop > min(h, w):
        raise ValueError(f"crop {crop} exceeds the slice size {h}x{w}")
    on = np.flatnonzero(cells)
    cell = int(rng.choice(on)) if on.size else int(rng.integers(cells.size))
    row, col = np.unravel_index(cell, cells.shape)
    cy, cx = row * CELL + rng.integers(CELL), col * CELL + rng.integers(CELL)
    top = int(np.clip(cy - crop // 2, 0, h - crop))
    left = int(np.clip(cx - crop // 2, 0, w - crop))
    return image[:, top:top + crop, left:left + crop]


def sample_window(image: np.ndarray, ooi_cells: np.ndarray | None, body: np.ndarray, crop: int,
                  rng: np.random.Generator) -> np.ndarray:
    """One float32 (C, crop, crop) crop of a slice (C, N, N): centred in the organ of interest with
    probability ``OOI_CENTRE_PROBABILITY`` (when the slice meets it), else anywhere in the body.

    ``ooi_cells`` and ``body`` are the slice's coarse (N / CELL, N / CELL) maps.
    """
    use_ooi = ooi_cells is not None and ooi_cells.any() and rng.random() < OOI_CENTRE_PROBABILITY
    return crop_at(image, ooi_cells if use_ooi else body, crop, rng).astype(np.float32)
