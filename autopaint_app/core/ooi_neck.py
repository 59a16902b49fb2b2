"""Head-and-neck organ of interest: a box over the neck between the skull base and the shoulders.

Stand-in for the oropharynx detector the paper used (Andrearczyk et al. 2020). Landmarks come from
the body contour (CT or PET), the skull (CT) and the brain uptake (PET); see :func:`head_neck_box`.
Arrays are numpy ``(z, y, x)``; :class:`~autopaint_app.core.io.Volume` spacing is ``(x, y, z)`` mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume
from autopaint_app.core.ooi_morphology import (BONE_HU, BlockGrid, body_from_ct, body_from_pet, disk_mm,
                                               fill_slices)


@dataclass(frozen=True)
class NeckBox:
    """The head-and-neck box, as index ranges on the input grid (numpy order, stop exclusive).

    Attributes:
        z, y, x: ``(start, stop)`` voxel index ranges along numpy axes ``(z, y, x)``.
        z_mm: ``(bottom, top)`` physical z of the lowest and highest box slice centres in mm.
        cues: which landmarks set the limits (for logs and the GUI), e.g. ``{"top": "skull"}``.
    """

    z: tuple[int, int]
    y: tuple[int, int]
    x: tuple[int, int]
    z_mm: tuple[float, float]
    cues: dict

    def to_mask(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The box as a bool mask of ``shape`` ``(z, y, x)``."""
        mask = np.zeros(shape, dtype=bool)
        mask[slice(*self.z), slice(*self.y), slice(*self.x)] = True
        return mask


def head_neck_box(ct: Volume | None = None, pet: Volume | None = None, below_shoulders_mm: float = 20.0,
                  side_margin_mm: float = 10.0) -> NeckBox:
    """Locate the neck between the skull base and the shoulders (stand-in for the paper's detector).

    Heuristic, on the body contour (from CT, else from PET) measured per axial slice:

    * top: the lowest slice of the cranial cavity - a closed bone ring (> 300 HU) around at least
      60 cm2 of non-bone (CT) - or the bottom of the brain, the large hot (SUV >= 2.5) region at the
      top (PET); with both, the lower of the two. Without either (head outside the field of view),
      the top of the body.
    * bottom: the shoulders, i.e. the first slice below the neck's narrowest point where the body is
      1.6 times wider left-right than there, lowered by ``below_shoulders_mm`` to keep the lower
      neck (level IV/V nodes). Without shoulders in the field of view, the lowest slice.
    * in-plane: the body's extent over the neck and face slices (shoulders excluded) plus
      ``side_margin_mm``.

    Limits: the CT skull cue is the lowest *closed* cranial section, which on HN-CHUS-052 lies at
    orbit level, ~5 cm above the bottom of the brain uptake (the skull base has foramina and does
    not close), so a CT-only box reaches higher than a PET one. It assumes an axial scan with the
    patient roughly upright in the slice; strongly tilted heads, arms raised beside the head, or a
    brain without FDG uptake defeat one cue (the other still works). The box spans skull base to
    lower neck (~15-20 cm), larger than the paper's fixed oropharynx boxes: it favours not missing
    nodes over compactness.

    Args:
        ct: CT in HU, shape ``(z, y, x)``; or None.
        pet: SUV, shape ``(z, y, x)``, on the CT grid when both are given; or None.
        below_shoulders_mm: how far below the shoulder line the box reaches.
        side_margin_mm: in-plane margin around the neck's body extent.

    Returns:
        The box on the grid of the input (CT when given).
    """
    return _neck_box_and_body(ct, pet, below_shoulders_mm, side_margin_mm)[0]


def _neck_box_and_body(ct: Volume | None, pet: Volume | None, below_shoulders_mm: float,
                       side_margin_mm: float) -> tuple[NeckBox, np.ndarray]:
    """:func:`head_neck_box` plus the body contour on the full grid (shared by the OOI)."""
    if ct is None and pet is None:
        raise ValueError("the head-and-neck box needs a CT, a PET or both")
    reference = ct if ct is not None else pet
    grid = BlockGrid.for_volume(reference)
    hu = grid.downsample(ct.array) if ct is not None else None
    suv = grid.downsample(pet.array) if pet is not None else None
    body = body_from_ct(hu, grid) if hu is not None else body_from_pet(suv, grid)
    body_slices = np.flatnonzero(body.any(axis=(1, 2)))
    if body_slices.size == 0:
        raise InputError(reference.source or "image", "no body found to place the head-and-neck box")
    top, cues = int(body_slices[-1]), {"top": "top of body"}
    for cue, level in (("skull", cranium_bottom(hu, grid) if hu is not None else None),
                       ("brain uptake", brain_bottom(suv, grid) if suv is not None else None)):
        if level is not None and (cues["top"] == "top of body" or level < top):
            top, cues = level, {"top": cue}
    found = shoulder_slice(body, grid, top, search_mm=300.0 if cues["top"] == "top of body" else 200.0)
    shoulders = found if found is not None else int(body_slices[0])
    cues["bottom"] = "shoulders" if found is not None else "bottom of field of view"
    bottom = max(int(body_slices[0]), shoulders - int(round(below_shoulders_mm / grid.spacing_zyx[0])))
    neck_body = body[shoulders + 1 : top + 1] if top > shoulders else body[bottom : top + 1]
    y_range = _extent(neck_body.any(axis=(0, 2)), side_margin_mm / grid.spacing_zyx[1], grid.factor, reference.shape[1])
    x_range = _extent(neck_body.any(axis=(0, 1)), side_margin_mm / grid.spacing_zyx[2], grid.factor, reference.shape[2])
    z_mm = tuple(float(reference.index_to_physical(np.array([0, 0, k]))[2]) for k in (bottom, top))
    return NeckBox((bottom, top + 1), y_range, x_range, z_mm, cues), grid.upsample(body)


def head_neck_ooi(ct: Volume | None = None, pet: Volume | None = None, **box_options) -> np.ndarray:
    """Head-and-neck OOI: :func:`head_neck_box` restricted to the body contour.

    Args:
        ct: CT in HU, shape ``(z, y, x)``; or None.
        pet: SUV on the CT grid (when both), shape ``(z, y, x)``; or None.
        **box_options: passed to :func:`head_neck_box`.

    Returns:
        bool mask ``(z, y, x)`` on the CT grid (PET grid without CT).
    """
    box, body = _neck_box_and_body(ct, pet, **{"below_shoulders_mm": 20.0, "side_margin_mm": 10.0, **box_options})
    return box.to_mask(body.shape) & body


def shoulder_slice(body: np.ndarray, grid: BlockGrid, head_bottom: int, search_mm: float = 200.0) -> int | None:
    """Highest slice of the shoulders: below the neck's narrowest slice, 1.6x wider than it.

    The neck is the narrowest slice (left-right body width) within ``search_mm`` below
    ``head_bottom``; the search window keeps legs and feet of a whole-body scan out of it.
    """
    width = body.any(axis=1).sum(axis=1) * grid.spacing_zyx[2]  # left-right body width per slice, mm
    first = max(0, head_bottom - int(round(search_mm / grid.spacing_zyx[0])))
    window = first + np.flatnonzero(width[first:head_bottom] > 0)
    if window.size == 0:
        return None
    neck = int(window[np.argmin(width[window])])
    wide = np.flatnonzero(width[:neck] >= 1.6 * width[neck])
    return int(wide[-1]) if wide.size else None


def _extent(present: np.ndarray, margin_px: float, factor: int, full_size: int) -> tuple[int, int]:
    """Full-grid ``(start, stop)`` of the True run of a downsampled 1-D profile, widened by a margin."""
    where = np.flatnonzero(present)
    start = max(0, int(np.floor(where[0] - margin_px)) * factor)
    stop = min(full_size, (int(np.ceil(where[-1] + margin_px)) + 1) * factor)
    return start, stop


def cranium_bottom(hu: np.ndarray, grid: BlockGrid, min_cavity_cm2: float = 60.0) -> int | None:
    """Lowest slice of the longest run of slices where a closed bone ring holds >= 60 cm2 of non-bone."""
    bone = ndi.binary_closing(hu > BONE_HU, structure=disk_mm(3.0, grid))
    cavity = fill_slices(bone) & ~bone
    area_cm2 = cavity.sum(axis=(1, 2)) * grid.pixel_area_mm2 / 100.0
    return _lowest_of_longest_run(area_cm2 >= min_cavity_cm2)


def brain_bottom(suv: np.ndarray, grid: BlockGrid, min_brain_ml: float = 300.0) -> int | None:
    """Lowest slice (at >= 30 % of its widest section) of the highest large hot region (brain)."""
    smooth = ndi.gaussian_filter(suv, sigma=[3.0 / s for s in grid.spacing_zyx])
    labels, count = ndi.label(smooth >= 2.5)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel()) * grid.voxel_ml
    large = [k for k in range(1, count + 1) if sizes[k] >= min_brain_ml]
    if not large:
        return None
    objects = ndi.find_objects(labels)
    brain = labels == max(large, key=lambda k: objects[k - 1][0].stop)
    area = brain.sum(axis=(1, 2))
    return int(np.flatnonzero(area >= 0.3 * area.max())[0])


def _lowest_of_longest_run(flags: np.ndarray) -> int | None:
    runs, count = ndi.label(flags)
    if count == 0:
        return None
    longest = np.bincount(runs)[1:].argmax() + 1
    return int(np.flatnonzero(runs == longest)[0])
