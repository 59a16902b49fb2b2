"""One slice's autoinpainting intermediates mapped onto the case grid, ready to draw or inspect.

The pipeline works on the 512 x 512 working grid (:class:`~autopaint_app.core.preprocess.WorkingGrid`);
the viewers and every export use the case grid (the CT's). Both grids share the direction matrix
and the z sampling, so a working slice ``z`` *is* case slice ``z`` and only the in-plane index
mapping differs. With ``d = D^T (o_w - o)`` (the working origin seen along the case axes, mm),
spacing ``(sx, sy)`` of the case and working pixel size ``p``:

    case index ``i = (x_w * p + d_x) / sx``,   ``j = (y_w * p + d_y) / sy``     (and inversely)

which holds for both the padding and the resampling working grids. Circles of radius ``r`` working
pixels have radius ``r * p`` mm, i.e. ``r * p / sx`` case pixels across and ``r * p / sy`` down.

:func:`slice_overlay` does this for a whole :class:`~autopaint_app.core.autopaint_result.SliceResult`:
circle centres and scores, the nested union/dilation masks and the chosen one as one label image,
the raw residual, and whether the slice passes the minimum-size criterion. It is pure numpy, so the
GUI calls it in its worker thread and only copies the small 2-D results into its layers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from autopaint_app.core.autopaint_params import PipelineParams
from autopaint_app.core.autopaint_result import AutopaintResult, SliceResult
from autopaint_app.core.preprocess import WorkingGrid

# Label image of nested masks: low bits = index of the smallest mask holding the pixel (1 = union,
# 2.. = the dilations in order, 0 = none); CHOSEN_BIT set where the chosen mask covers the pixel.
LEVEL_BITS = 0x07
CHOSEN_BIT = 0x08


def _offset_mm(grid: WorkingGrid) -> np.ndarray:
    """``D^T (o_w - o)``: the working origin along the case's x and y axes, mm, shape (2,) as (x, y)."""
    direction = np.asarray(grid.case_direction, dtype=float).reshape(3, 3)
    delta = np.asarray(grid.origin, dtype=float) - np.asarray(grid.case_origin, dtype=float)
    return (direction.T @ delta)[:2]


def working_to_case_index(grid: WorkingGrid, points_yx: np.ndarray) -> np.ndarray:
    """Working pixel positions ``(n, 2)`` as ``(y, x)`` -> continuous case indices ``(n, 2)`` ``(row y, col x)``."""
    points = np.asarray(points_yx, dtype=float).reshape(-1, 2)
    dx, dy = _offset_mm(grid)
    sx, sy = grid.case_spacing[0], grid.case_spacing[1]
    p = grid.pixel_size_mm
    return np.stack([(points[:, 0] * p + dy) / sy, (points[:, 1] * p + dx) / sx], axis=1)


def working_slice_to_case(grid: WorkingGrid, working: np.ndarray, order: int = 0) -> np.ndarray:
    """One working slice ``(N, N)`` -> the same slice on the case grid ``(ny, nx)``.

    Args:
        grid: the case's working grid.
        working: 2-D array on the working grid.
        order: 0 nearest neighbour (labels and masks; dtype kept), 1 bilinear (float32).

    Padding grids are cropped (bit-exact); otherwise every case pixel centre is looked up in the
    working slice (outside the working field of view: 0).
    """
    working = np.asarray(working)
    if working.shape != (grid.size, grid.size):
        raise ValueError(f"working slice shape {working.shape} differs from ({grid.size}, {grid.size})")
    _, ny, nx = grid.case_shape
    if grid.is_padding:
        ox, oy = grid.pad_offset
        out = working[oy:oy + ny, ox:ox + nx].copy()
        return out if order == 0 else out.astype(np.float32)
    dx, dy = _offset_mm(grid)
    sx, sy = grid.case_spacing[0], grid.case_spacing[1]
    p = grid.pixel_size_mm
    rows = (np.arange(ny) * sy - dy) / p
    cols = (np.arange(nx) * sx - dx) / p
    if order == 0:
        r = np.rint(rows).astype(int)
        c = np.rint(cols).astype(int)
        out = np.zeros((ny, nx), dtype=working.dtype)
        rok, cok = (r >= 0) & (r < grid.size), (c >= 0) & (c < grid.size)
        out[np.ix_(rok, cok)] = working[np.ix_(r[rok], c[cok])]
        return out
    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    return ndi.map_coordinates(working.astype(np.float32), [yy, xx], order=1, mode="constant", cval=0.0)


def mask_levels(slice_result: SliceResult, widths: tuple[int, ...]) -> np.ndarray | None:
    """The union and its dilations as one uint8 label image ``(N, N)`` on the working grid.

    Returns:
        Per pixel the index (1 = union, 2.. = dilation by ``widths[k - 2]``) of the smallest mask
        holding it, with :data:`CHOSEN_BIT` added inside the chosen mask; None without candidates.
    """
    masks = slice_result.masks(widths)
    if not masks:
        return None
    levels = np.zeros(slice_result.shape, dtype=np.uint8)
    for index in range(len(masks), 0, -1):  # largest first, smaller ones overwrite
        levels[masks[index - 1]] = index
    if slice_result.chosen is not None:
        levels[masks[slice_result.chosen]] |= CHOSEN_BIT
    return levels


@dataclass(frozen=True, eq=False)
class SliceOverlay:
    """A slice's intermediates on the case grid.

    Attributes:
        z: axial slice index (case grid = working grid along z).
        centres_yx: ``(n, 2)`` float circle centres as continuous case indices ``(row y, col x)``.
        radius_mm: circle radius in mm (``r * p``).
        scores: ``(n,)`` combined robust score per circle.
        candidates: indices into ``centres_yx`` of the kept top-k circles, best first.
        levels: uint8 ``(ny, nx)`` nested-mask label image (see :func:`mask_levels`), or None.
        chosen: index of the chosen mask (0 = union), or None.
        residual: float32 ``(ny, nx)`` raw residual (before the size criterion), or None.
        passes: the slice keeps its inpainting under the minimum-size criterion.
    """

    z: int
    centres_yx: np.ndarray
    radius_mm: float
    scores: np.ndarray
    candidates: np.ndarray
    levels: np.ndarray | None
    chosen: int | None
    residual: np.ndarray | None
    passes: bool

    def mask(self, threshold: float) -> np.ndarray | None:
        """The slice's final mask preview: ``residual > threshold`` when the slice passes, else None."""
        if self.residual is None or not self.passes:
            return None
        return self.residual > threshold


def slice_overlay(slice_result: SliceResult, grid: WorkingGrid, params: PipelineParams,
                  size_level: float | None = None, min_radius_px: float | None = None) -> SliceOverlay:
    """Map one :class:`SliceResult` onto the case grid (see the module docstring).

    Args:
        slice_result: the pipeline's record of the slice (working grid).
        grid: the case's working grid.
        params: the run's parameters (radius, dilation widths, size criterion defaults).
        size_level, min_radius_px: override the size criterion (default: ``params``).
    """
    level = params.size_level if size_level is None else float(size_level)
    radius = params.min_tumour_radius_px if min_radius_px is None else float(min_radius_px)
    levels = mask_levels(slice_result, params.dilation_widths_px)
    residual = None
    if slice_result.residual is not None:
        residual = np.clip(working_slice_to_case(grid, slice_result.residual_full(), order=1), 0.0, 1.0)
    return SliceOverlay(
        z=int(slice_result.z),
        centres_yx=working_to_case_index(grid, slice_result.centres),
        radius_mm=float(params.circle_radius_px * grid.pixel_size_mm),
        scores=np.asarray(slice_result.scores, dtype=float),
        candidates=np.asarray(slice_result.candidates, dtype=int),
        levels=None if levels is None else working_slice_to_case(grid, levels, order=0),
        chosen=slice_result.chosen,
        residual=residual,
        passes=bool(slice_result.passes(level, radius)),
    )


def result_overlays(result: AutopaintResult, min_radius_px: float | None = None) -> Iterator[SliceOverlay]:
    """:func:`slice_overlay` of every processed slice of a finished run, in slice order."""
    for z in sorted(result.slices):
        yield slice_overlay(result.slices[z], result.grid, result.params, min_radius_px=min_radius_px)
