"""What one autoinpainting run keeps: every intermediate per slice, and the volumes built from them.

Per slice (:class:`SliceResult`, working-grid pixels ``(y, x)``): the circle centres and their
intensity / texture differences and scores, the kept candidates, the union mask and its dilations
(re-derived from the stored union), the differences that chose among them, the chosen index, and
the final inpainted values and raw residual on the chosen mask's window. Nothing needs the network
again: the GUI can draw every step and re-threshold.

Residual and the minimum-size criterion (paper, "Segmenting the target tumor"):

* the raw residual of a slice is ``max over channels |input - inpainted|`` inside the OOI. The max
  (not the mean) keeps the full contrast of a lesion that shows in one channel only (a PET-hot,
  CT-subtle node); for one channel both are the same;
* a slice keeps its inpainting when the largest 8-connected component of ``raw residual >
  size_level`` has at least the pixels of a digital disk of the minimum tumour radius
  (:func:`~autopaint_app.core.autopaint_scores.passes_min_size`); otherwise its output is the input
  itself and its residual is 0;
* the residual volume (slices stacked, back on the case grid by linear interpolation) is what the
  paper thresholds: ``mask = residual > threshold`` (as ``metrics.sweep`` does). ``size_level`` is
  separate from ``threshold`` so that the threshold sweep sees one fixed residual volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from autopaint_app.core.autopaint_circles import Box, dilated_masks, disk_mask
from autopaint_app.core.autopaint_params import PipelineParams
from autopaint_app.core.autopaint_scores import largest_component_radius, passes_min_size
from autopaint_app.core.io import Volume
from autopaint_app.core.lesions import CONNECTIVITY_26
from autopaint_app.core.preprocess import WorkingGrid, unit_to_ct, unit_to_pet
from autopaint_app.core.presets import SitePreset


@dataclass(frozen=True, eq=False)
class SliceResult:
    """Everything decided on one working slice.

    Attributes:
        z: slice index (working grid = case grid along z).
        shape: slice shape ``(H, W)``.
        centres: ``(n, 2)`` int circle centres ``(y, x)``.
        intensity, texture, scores: ``(n,)`` mean differences inside each circle (in the OOI) and
            the combined robust score.
        candidates: indices into ``centres`` of the kept circles, best first (empty: no candidate).
        healthy_level: median circle difference per pixel (intensity + texture), the reference of
            the dilation rule.
        window: bounding box of the largest dilated mask (None without candidates).
        union: boolean union of the candidate circles on ``window``.
        mask_differences, mask_areas: total change and measured area (pixels in the OOI) of the
            union (index 0) and of each dilation.
        chosen: index of the chosen mask (0 = union), or None.
        inpainted: ``(C, h, w)`` final composited slice on ``window`` with the chosen mask.
        residual: ``(h, w)`` float32 raw residual on ``window`` (before the size criterion).
        population: ``(n,)`` bool, the circles whose median/MAD normalise the scores (None: all).
        volume_population: ``(n,)`` bool, the circles this slice adds to the volume rule's
            statistics (None: ``population``); differs on a slice the coarse-to-fine search
            completed (``autopaint_search.complete_circles``).
    """

    z: int
    shape: tuple[int, int]
    centres: np.ndarray
    intensity: np.ndarray
    texture: np.ndarray
    scores: np.ndarray
    candidates: np.ndarray
    healthy_level: float = 0.0
    window: Box | None = None
    union: np.ndarray | None = None
    mask_differences: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mask_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    chosen: int | None = None
    inpainted: np.ndarray | None = None
    residual: np.ndarray | None = None
    population: np.ndarray | None = None
    volume_population: np.ndarray | None = None

    def population_mask(self) -> np.ndarray:
        """Boolean ``(n,)``: the circles the robust statistics come from (all, unless coarse-to-fine)."""
        if self.population is None:
            return np.ones(len(self.centres), dtype=bool)
        return np.asarray(self.population, dtype=bool)

    def volume_population_mask(self) -> np.ndarray:
        """Boolean ``(n,)``: the circles of this slice in the volume rule's statistics."""
        if self.volume_population is None:
            return self.population_mask()
        return np.asarray(self.volume_population, dtype=bool)

    @property
    def has_candidates(self) -> bool:
        return self.candidates.size > 0

    def circle_mask(self, index: int, radius: int) -> np.ndarray:
        """Boolean ``(H, W)`` disk of circle ``index``."""
        return disk_mask(tuple(self.centres[index]), radius, self.shape)

    def masks(self, widths: tuple[int, ...]) -> list[np.ndarray]:
        """The union and its dilations as full ``(H, W)`` boolean masks (empty list without candidates)."""
        if self.union is None:
            return []
        return [self._full(m) for m in dilated_masks(self.union, widths)]

    def residual_full(self) -> np.ndarray:
        """Raw residual on the whole slice, ``(H, W)`` float32 (zeros without candidates)."""
        full = np.zeros(self.shape, dtype=np.float32)
        if self.residual is not None:
            full[self.window.slices] = self.residual
        return full

    def component_radius(self, level: float) -> float:
        """Equivalent radius (pixels) of the largest component of ``residual > level``."""
        return 0.0 if self.residual is None else largest_component_radius(self.residual > level)

    def passes(self, level: float, min_radius_px: float) -> bool:
        """The minimum-size criterion (see the module docstring)."""
        return self.residual is not None and passes_min_size(self.residual, level, min_radius_px)

    def _full(self, patch: np.ndarray) -> np.ndarray:
        full = np.zeros(self.shape, dtype=patch.dtype)
        full[self.window.slices] = patch
        return full


def drop_small_lesions(mask: np.ndarray, min_ml: float, voxel_ml: float) -> np.ndarray:
    """``mask`` without its 26-connected components of less than ``min_ml`` (the mask itself when 0)."""
    if min_ml <= 0 or not mask.any():
        return mask
    labels, _ = ndimage.label(mask, structure=CONNECTIVITY_26)
    sizes = np.bincount(labels.ravel()) * voxel_ml
    keep = sizes >= min_ml
    keep[0] = False
    return keep[labels]


@dataclass(eq=False)
class AutopaintResult:
    """A finished run on one case.

    Attributes:
        params: the parameters used.
        grid: the case's working grid; ``reference``: the case grid volume (CT, else PET).
        channels: network input, ``(z, C, N, N)`` on the working grid (not copied).
        channel_names: e.g. ``("ct", "pet")``.
        preset: the site preset (windows for converting back to HU / SUV).
        ooi: boolean ``(z, N, N)`` OOI on the working grid.
        slices: ``SliceResult`` per processed slice index.
        stats: timings (s) and counters.
    """

    params: PipelineParams
    grid: WorkingGrid
    reference: Volume
    channels: np.ndarray
    channel_names: tuple[str, ...]
    preset: SitePreset
    ooi: np.ndarray
    slices: dict[int, SliceResult]
    stats: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    def _criterion(self, size_level: float | None, min_radius_px: float | None) -> tuple[float, float]:
        level = self.params.size_level if size_level is None else float(size_level)
        radius = self.params.min_tumour_radius_px if min_radius_px is None else float(min_radius_px)
        return level, radius

    def kept_slices(self, size_level: float | None = None, min_radius_px: float | None = None) -> list[int]:
        """Slice indices whose inpainting passes the minimum-size criterion."""
        level, radius = self._criterion(size_level, min_radius_px)
        return sorted(z for z, s in self.slices.items() if s.passes(level, radius))

    def residual_working(self, size_level: float | None = None, min_radius_px: float | None = None) -> np.ndarray:
        """Residual volume on the working grid, ``(z, N, N)`` float32, after the size criterion."""
        residual = np.zeros(self.ooi.shape, dtype=np.float32)
        for z in self.kept_slices(size_level, min_radius_px):
            s = self.slices[z]
            residual[z][s.window.slices] = s.residual
        return residual

    def inpainted_working(self, size_level: float | None = None, min_radius_px: float | None = None) -> np.ndarray:
        """Autoinpainted volume on the working grid, ``(z, C, N, N)`` float32 in [0, 1]."""
        inpainted = np.array(self.channels, dtype=np.float32, copy=True)
        for z in self.kept_slices(size_level, min_radius_px):
            s = self.slices[z]
            inpainted[z][(slice(None),) + s.window.slices] = s.inpainted
        return inpainted

    def residual_volume(self, size_level: float | None = None, min_radius_px: float | None = None) -> Volume:
        """Residual on the case grid (linear interpolation back; exact for 512-pixel or padded cases)."""
        key = ("residual",) + self._criterion(size_level, min_radius_px)
        if key not in self._cache:
            volume = self.grid.from_working(self.residual_working(*key[1:]), order=1)
            self._cache[key] = self._on_reference(np.clip(volume.array, 0.0, 1.0))
        return self._cache[key]

    def mask(self, threshold: float | None = None, min_radius_px: float | None = None,
             size_level: float | None = None, min_lesion_ml: float | None = None) -> np.ndarray:
        """Tumour mask on the case grid: ``residual > threshold`` without lesions under ``min_lesion_ml``.

        Boolean ``(z, y, x)``. Re-thresholding, a different minimum radius or minimum lesion volume
        need no inference (stored residuals). Defaults come from :attr:`params`.
        """
        threshold = self.params.threshold if threshold is None else float(threshold)
        smallest = self.params.min_lesion_ml if min_lesion_ml is None else float(min_lesion_ml)
        residual = self.residual_volume(size_level, min_radius_px)
        return drop_small_lesions(residual.array > threshold, smallest, residual.voxel_volume_ml)

    def inpainted_volumes(self, physical: bool = False, size_level: float | None = None,
                          min_radius_px: float | None = None) -> dict[str, Volume]:
        """Autoinpainted channels on the case grid, unit range, or HU / SUV when ``physical``."""
        working = self.inpainted_working(size_level, min_radius_px)
        volumes = {}
        for index, name in enumerate(self.channel_names):
            array = np.clip(self.grid.from_working(working[:, index], order=1).array, 0.0, 1.0)
            if physical:
                array = unit_to_ct(array, self.preset) if name == "ct" else unit_to_pet(array, self.preset)
            volumes[name] = self._on_reference(array)
        return volumes

    def summary(self) -> dict:
        """JSON-ready facts of the run (parameters, counters, slices with candidates / kept)."""
        return {"params": self.params.to_dict(), "slices_processed": len(self.slices),
                "circles": int(sum(len(s.centres) for s in self.slices.values())),
                "slices_with_candidates": sorted(z for z, s in self.slices.items() if s.has_candidates),
                "slices_kept": self.kept_slices(), **self.stats}

    def _on_reference(self, array: np.ndarray) -> Volume:
        r = self.reference
        return Volume(array.astype(np.float32), r.spacing, r.origin, r.direction)
