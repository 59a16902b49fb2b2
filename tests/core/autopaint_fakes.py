"""Fake predictors and tiny synthetic cases for the autoinpainting tests (no network, no weights)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from autopaint_app.core.io import Volume
from autopaint_app.core.preprocess import REFERENCE_PIXEL_MM, PreparedCase, prepare_case
from autopaint_app.core.presets import LUNG


class CountingPredictor:
    """Wraps a fill function; counts calls and items, records batch shapes; ``size_multiple`` 32."""

    size_multiple = 32

    def __init__(self, fill):
        self.fill = fill
        self.calls = 0
        self.items = 0
        self.shapes = []

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        assert image.ndim == 4 and mask.shape == (image.shape[0], 1) + image.shape[2:]
        self.calls += 1
        self.items += image.shape[0]
        self.shapes.append(image.shape)
        return self.fill(image, mask)


def ring_mean_fill(image: np.ndarray, mask: np.ndarray, ring_px: int = 4) -> np.ndarray:
    """A non-learned inpainter: each hole filled per channel with the mean of the known ring around it.

    Local (the ring is within ``ring_px`` of the hole), so a crop holding the ring gives exactly the
    whole-slice answer. Outside the hole the output is the input (as a trained net nearly is).
    """
    out = image.astype(np.float32, copy=True)
    for i in range(image.shape[0]):
        hole = mask[i, 0] < 0.5
        if not hole.any():
            continue
        ring = ndi.binary_dilation(hole, iterations=ring_px) & ~hole
        for c in range(image.shape[1]):
            out[i, c][hole] = image[i, c][ring].mean() if ring.any() else 0.0
    return out


def healing_fill(level: float, background: float):
    """A fill that "heals" bright pixels under the hole: values > ``level`` become ``background``."""
    def fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = image.astype(np.float32, copy=True)
        hole = np.broadcast_to(mask < 0.5, image.shape)
        out[hole & (image > level)] = background
        return out
    return fill


def disc_case(size: int = 128, n_slices: int = 3, discs=(), background_suv: float = 1.2, noise: float = 0.0,
              seed: int = 0) -> tuple[PreparedCase, np.ndarray]:
    """A PET-only lung case of ``size`` x ``size`` pixels of 0.977 mm (padded into the 512 working grid).

    Args:
        discs: ``(z, y, x, radius, suv)`` hot discs in case pixels.

    Returns:
        ``(prepared, ooi)``: the prepared case and an OOI ellipse filling most of the slice (case grid).
    """
    rng = np.random.default_rng(seed)
    suv = np.full((n_slices, size, size), background_suv, dtype=np.float32)
    suv += noise * rng.standard_normal(suv.shape).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    for z, y, x, r, value in discs:
        suv[z][(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = value
    spacing = (REFERENCE_PIXEL_MM, REFERENCE_PIXEL_MM, 3.0)
    pet = Volume(np.clip(suv, 0, None), spacing, (0.0, 0.0, 0.0), source="synthetic-pet")
    centre = (size - 1) / 2
    ellipse = ((yy - centre) / (0.45 * size)) ** 2 + ((xx - centre) / (0.42 * size)) ** 2 <= 1
    ooi = np.repeat(ellipse[None], n_slices, axis=0)
    return prepare_case(None, pet, LUNG, "pet"), ooi
