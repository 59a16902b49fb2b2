"""Organ of interest (OOI): where the sliding circles may go (paper section 2.5).

The paper segmented the lung fields with a pretrained network (P-HNN), dilated them, and found the
oropharynx with a detector (Andrearczyk et al. 2020). We cannot ship those, so this module builds the
same kind of mask classically, with scipy.ndimage and scikit-image, in physical units (mm) so that it
behaves the same on 0.57 mm and 2 mm pixels and 1-5 mm slices:

* :func:`lung_ooi` - lung fields from CT HU, with tumours next to the pleura or mediastinum kept
  inside by a per-lung convex hull per slice, then dilated.
* :func:`lung_ooi_from_pet` - fallback when only PET exists: the chest (below the shoulders) inside
  the PET body contour; coarse.
* :func:`head_neck_ooi` / :func:`head_neck_box` - a box over the neck between the skull base and the
  shoulders, from the body contour (CT or PET), the skull (CT) and the brain uptake (PET); they
  live in :mod:`autopaint_app.core.ooi_neck`, the shared morphology in
  :mod:`autopaint_app.core.ooi_morphology`, and are re-exported here.
* :func:`body_ooi` - the whole body in the field of view, for sites without a preset organ
  (limbs, abdomen, a cropped volume around a lesion); kept a circle radius away from the edge of
  the field of view.
* :func:`load_user_ooi` - a mask the user drew elsewhere.
* :func:`compute_ooi` - the dispatcher the CLI and GUI call; ``region`` chooses the site's organ
  (:data:`SITE_REGION`) or the whole body (:data:`BODY_REGION`).

Every mask is numpy bool, shape ``(z, y, x)`` on the grid of the input volume. Heavy morphology runs
on an in-plane-downsampled copy (pixels of about 2 mm, blocks of ``f x f`` pixels) and is mapped back
by repeating each block, which costs at most one block (about 2 mm) of precision at mask borders;
the final dilation is far larger than that.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume, grid_differences, read_volume
from autopaint_app.core.ooi_morphology import (AIR_HU, IN_PLANE, BlockGrid, OrganNotFoundWarning, body_from_ct,
                                               body_from_pet, body_parts_from_ct, body_parts_from_pet, dilate_mm,
                                               largest_component)
from autopaint_app.core.ooi_neck import NeckBox, brain_bottom, head_neck_box, head_neck_ooi, shoulder_slice
from autopaint_app.core.presets import BODY_REGION, OOI_REGIONS, SITE_REGION, get_preset
from autopaint_app.core.preprocess import REFERENCE_PIXEL_MM

__all__ = ["OrganNotFoundWarning", "NeckBox", "lung_ooi", "lung_ooi_from_pet", "head_neck_box", "head_neck_ooi",
           "body_ooi", "load_user_ooi", "compute_ooi", "OOI_REGIONS", "SITE_REGION", "BODY_REGION"]


# ----------------------------------------------------------------------------------------- lungs


def lung_ooi(ct: Volume, dilation_mm: float = 10.0, min_lung_ml: float = 150.0) -> np.ndarray:
    """Extended lung-field mask from a CT in HU (the paper's dilated lung masks).

    Steps on a ~2 mm in-plane grid: air (< -320 HU) inside the body contour (outside air, table and
    immobilisation shells excluded); trachea, main bronchi and oesophageal air removed (small round
    air regions near the body midline in each slice); the largest air component kept, plus the
    second when it is a lung-sized partner at the same height; a convex hull per lung side per slice,
    so tumours against the chest wall, diaphragm or mediastinum (soft tissue, not air) and the
    vessels inside (holes) stay inside; finally a 3-D dilation by ``dilation_mm``, kept inside the body.

    Args:
        ct: CT in HU, array shape ``(z, y, x)``; spacing ``(x, y, z)`` in mm.
        dilation_mm: final dilation radius in mm (0 = the undilated lung fields).
        min_lung_ml: smaller air components are not lungs (sinuses, bowel gas, a few lung slices).

    Returns:
        bool mask, shape ``(z, y, x)`` on the CT grid. All False (with an
        :class:`OrganNotFoundWarning`) when the CT holds no lungs.
    """
    grid = BlockGrid.for_volume(ct)
    hu = grid.downsample(ct.array)
    body = body_from_ct(hu, grid)
    air = (hu < AIR_HU) & body
    air &= ~_central_airways(air, body, grid)
    lungs = _lung_components(air, grid, min_lung_ml)
    if not lungs.any():
        problem = f"no lungs found (no air region of at least {min_lung_ml:g} ml inside the body)"
        warnings.warn(OrganNotFoundWarning(f"{ct.source or 'CT'}: {problem}"), stacklevel=2)
        return np.zeros(ct.shape, dtype=bool)
    fields = _hull_per_side(lungs, body)
    return grid.upsample(dilate_mm(fields, dilation_mm, grid) & body)


def lung_ooi_from_pet(pet: Volume, chest_height_mm: float = 300.0, above_shoulders_mm: float = 20.0) -> np.ndarray:
    """Fallback when only PET exists: a chest region from the PET body contour.

    FDG uptake in the lungs (SUV ~0.3-0.5) is as low as in fat, so PET alone cannot outline them
    reliably. Instead: the body contour from PET; the top of the chest is the shoulder line (the
    body widening below the neck, found under the brain uptake) raised by ``above_shoulders_mm``
    for the lung apices, or the top of the field of view when no brain is in it (a chest-only
    scan); the region reaches ``chest_height_mm`` down (adult lungs are at most ~30 cm tall) and
    keeps the trunk (largest section per slice, so arms at the side drop out). It is much coarser
    than :func:`lung_ooi`: it holds the whole thorax (heart, mediastinum, chest wall, liver dome).

    Args:
        pet: SUV, array shape ``(z, y, x)``; spacing ``(x, y, z)`` in mm.
        chest_height_mm: height of the chest region in mm.
        above_shoulders_mm: how far above the shoulder line the region starts.

    Returns:
        bool mask ``(z, y, x)`` on the PET grid; empty with :class:`OrganNotFoundWarning` if no body.
    """
    grid = BlockGrid.for_volume(pet)
    suv = grid.downsample(pet.array)
    body = body_from_pet(suv, grid)
    body_slices = np.flatnonzero(body.any(axis=(1, 2)))
    if body_slices.size == 0:
        warnings.warn(OrganNotFoundWarning(f"{pet.source or 'PET'}: no body found in the PET"), stacklevel=2)
        return np.zeros(pet.shape, dtype=bool)
    top = int(body_slices[-1])
    brain = brain_bottom(suv, grid)
    if brain is not None:
        shoulders = shoulder_slice(body, grid, brain)
        if shoulders is not None:
            top = min(top, shoulders + int(round(above_shoulders_mm / grid.spacing_zyx[0])))
    bottom = max(int(body_slices[0]), top - int(round(chest_height_mm / grid.spacing_zyx[0])))
    chest = np.zeros_like(body)
    for z in range(bottom, top + 1):
        chest[z] = largest_component(body[z])
    return grid.upsample(chest)


def _central_airways(air: np.ndarray, body: np.ndarray, grid: BlockGrid,
                     max_area_mm2: float = 700.0, max_offset_mm: float = 30.0) -> np.ndarray:
    """Trachea, main bronchi and oesophageal air: per slice, small air regions near the body midline.

    In every axial slice the trachea and the main bronchi (in the mediastinum, before they enter the
    lungs) are separate air regions of a few cm2 within ~3 cm of the midline, while lung sections
    are large or lateral (apices sit 4-7 cm off the midline). Removing them cuts the airway tree
    from the lungs, so upper-airway air (larynx, pharynx) falls away with the small components.

    Returns:
        bool mask ``(z, y, x)`` on the downsampled grid of the air regions to remove.
    """
    labels, count = ndi.label(air, structure=IN_PLANE)
    if count == 0:
        return np.zeros_like(air)
    z_index, _, x_index = np.nonzero(labels)
    owner = labels[labels > 0]  # same C order as np.nonzero
    pixels = np.bincount(owner, minlength=count + 1)[1:].astype(np.float64)
    centre_x = np.bincount(owner, weights=x_index, minlength=count + 1)[1:] / pixels
    slice_of = np.bincount(owner, weights=z_index, minlength=count + 1)[1:] / pixels  # one slice each
    offset_mm = np.abs(centre_x - _midline_x(body)[slice_of.round().astype(int)]) * grid.spacing_zyx[2]
    is_airway = (pixels * grid.pixel_area_mm2 <= max_area_mm2) & (offset_mm <= max_offset_mm)
    return np.concatenate([[False], is_airway])[labels]


def _midline_x(body: np.ndarray) -> np.ndarray:
    """Per-slice x (column, downsampled grid) of the body's centre of mass; image centre if empty."""
    columns = body.sum(axis=1).astype(np.float64)  # (z, x)
    weight = columns.sum(axis=1)
    x = np.arange(body.shape[2], dtype=np.float64)
    centre = np.full(body.shape[0], (body.shape[2] - 1) / 2.0)
    has = weight > 0
    centre[has] = (columns[has] @ x) / weight[has]
    return centre


def _lung_components(candidates: np.ndarray, grid: BlockGrid, min_lung_ml: float) -> np.ndarray:
    """The largest candidate 3-D component, plus the second if it is a lung-sized partner.

    The second is kept when it holds >= 10 % of the largest's volume, at least ``min_lung_ml``, and
    shares at least half of its slices with the largest (two lungs side by side; bowel gas or a
    stomach bubble sits below the lungs and fails this).
    """
    labels, count = ndi.label(candidates)
    if count == 0:
        return np.zeros_like(candidates)
    sizes = np.bincount(labels.ravel()) * grid.voxel_ml
    sizes[0] = 0
    order = np.argsort(sizes)[::-1]
    if sizes[order[0]] < min_lung_ml:
        return np.zeros_like(candidates)
    keep = [order[0]]
    if count >= 2 and sizes[order[1]] >= max(min_lung_ml, 0.1 * sizes[order[0]]):
        slices = ndi.find_objects(labels)
        first, second = slices[order[0] - 1][0], slices[order[1] - 1][0]
        shared = min(first.stop, second.stop) - max(first.start, second.start)
        if shared >= 0.5 * (second.stop - second.start):
            keep.append(order[1])
    return np.isin(labels, keep)


def _hull_per_side(lungs: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Convex hull of each lung side in each slice (fills vessels, juxta-pleural and hilar dents).

    Each 2-D lung section goes to the side of the body midline holding most of it; a section lying
    across the midline (lungs touching at the anterior junction) is cut at the midline. The hull is
    taken per side so the space between the lungs (heart, mediastinum) is not filled as a whole.
    """
    left_of_midline = np.arange(lungs.shape[2])[None, None, :] < _midline_x(body)[:, None, None]
    left_of_midline = np.broadcast_to(left_of_midline, lungs.shape)
    labels, count = ndi.label(lungs, structure=IN_PLANE)
    share_left = np.concatenate([[0.0], np.atleast_1d(ndi.mean(left_of_midline, labels, np.arange(1, count + 1)))])
    section_share = share_left[labels]
    side_a = lungs & ((section_share >= 0.75) | ((section_share > 0.25) & left_of_midline))
    out = np.zeros_like(lungs)
    for z in np.flatnonzero(lungs.any(axis=(1, 2))):
        for side in (side_a[z], lungs[z] & ~side_a[z]):
            if side.any():
                out[z] |= _hull(side)
    return out


def _hull(mask2d: np.ndarray) -> np.ndarray:
    """Convex hull of a 2-D mask, computed in its bounding box for speed."""
    rows, cols = np.flatnonzero(mask2d.any(axis=1)), np.flatnonzero(mask2d.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    out = np.zeros_like(mask2d)
    out[box] = convex_hull_image(mask2d[box]) if mask2d[box].sum() >= 3 else mask2d[box]
    return out


# ------------------------------------------------------------------------------ whole body


def body_ooi(ct: Volume | None = None, pet: Volume | None = None, edge_margin_mm: float = 15.0) -> np.ndarray:
    """The whole body as organ of interest: every body part in the field of view, minus an edge band.

    For lesions outside the preset organs (a limb sarcoma, an abdominal node) and for volumes cropped
    around a lesion. The body comes from the CT (> -320 HU, filled per slice), else from the PET;
    unlike the site masks, every sizeable body part is kept (both legs, an arm beside the trunk),
    not only the largest. Pixels closer than ``edge_margin_mm`` to the in-plane edge of the field of
    view are left out: beyond that edge the working grid is padding, so a circle reaching it would be
    inpainted against an artificial border and score as an anomaly. :func:`compute_ooi` passes the
    run's circle radius (the site preset's by default), so no circle leaves the field of view.

    Args:
        ct: CT in HU, shape ``(z, y, x)``; or None.
        pet: SUV, shape ``(z, y, x)``, on the CT grid when both are given; or None (ignored with a CT).
        edge_margin_mm: width of the band along the in-plane image edge that is left out.

    Returns:
        bool mask ``(z, y, x)`` on the CT grid (PET grid without CT); empty with
        :class:`OrganNotFoundWarning` when no body is found.
    """
    reference = ct if ct is not None else pet
    if reference is None:
        raise ValueError("body_ooi needs a CT or a PET")
    grid = BlockGrid.for_volume(reference)
    if ct is not None:
        body = body_parts_from_ct(grid.downsample(ct.array), grid)
    else:
        body = body_parts_from_pet(grid.downsample(pet.array), grid)
    mask = grid.upsample(body) & _away_from_edge(reference, edge_margin_mm)
    if not mask.any():
        problem = f"no body found at least {edge_margin_mm:g} mm inside the field of view"
        warnings.warn(OrganNotFoundWarning(f"{reference.source or 'image'}: {problem}"), stacklevel=2)
    return mask


def _away_from_edge(volume: Volume, margin_mm: float) -> np.ndarray:
    """True where a pixel's centre is at least ``margin_mm`` from the in-plane edge of the image."""
    sx, sy = volume.spacing[0], volume.spacing[1]
    _, ny, nx = volume.shape
    keep_y, keep_x = int(np.ceil(margin_mm / sy)), int(np.ceil(margin_mm / sx))
    inside = np.zeros(volume.shape[1:], dtype=bool)
    inside[keep_y : max(keep_y, ny - keep_y), keep_x : max(keep_x, nx - keep_x)] = True
    return np.broadcast_to(inside, volume.shape)


# ------------------------------------------------------------------------------ user & dispatch


def load_user_ooi(path: str | os.PathLike, reference: Volume) -> np.ndarray:
    """Read a user-supplied OOI mask; voxels > 0 are inside.

    Args:
        path: mask file (any format :func:`read_volume` reads).
        reference: the CT (or PET) whose grid the mask must match exactly.

    Returns:
        bool mask ``(z, y, x)`` on the reference grid.

    Raises:
        InputError: unreadable file, a grid that differs from the reference (says what differs), or
            an empty mask.
    """
    mask = read_volume(path)
    differences = grid_differences(mask, reference)
    if differences:
        raise InputError(path, "OOI mask does not match the image grid: " + "; ".join(differences))
    inside = mask.array > 0
    if not inside.any():
        raise InputError(path, "OOI mask is empty (no voxel > 0)")
    return inside


def compute_ooi(site: str, ct: Volume | None = None, pet: Volume | None = None,
                user_mask_path: str | os.PathLike | None = None, region: str = SITE_REGION,
                circle_radius_mm: float | None = None) -> np.ndarray:
    """The organ of interest for a case: user mask if given, else the automatic mask of ``region``.

    Lung: :func:`lung_ooi` from CT; without CT, :func:`lung_ooi_from_pet` (PET low-uptake lungs in
    the PET body contour). Head and neck: :func:`head_neck_ooi` from CT and/or PET. Whole body
    (``region="body"``, any site): :func:`body_ooi`, kept a circle radius away from the edge of
    the field of view.

    Args:
        site: ``"lung"`` or ``"hn"``.
        ct: CT in HU, shape ``(z, y, x)``; or None.
        pet: SUV, shape ``(z, y, x)``, already on the CT grid when both are given; or None.
        user_mask_path: a mask file on the CT grid (PET grid without CT) that replaces the automatic one.
        region: :data:`SITE_REGION` (the site's organ) or :data:`BODY_REGION` (the whole body).
        circle_radius_mm: the run's sliding-circle radius, the whole body's edge margin (default: the
            site preset's radius on the paper's 500/512 mm pixels).

    Returns:
        bool mask ``(z, y, x)`` on the CT grid (PET grid without CT). An automatic mask may be
        empty (with :class:`OrganNotFoundWarning`); callers should check ``mask.any()``.

    Raises:
        ValueError: unknown site or region, or neither CT nor PET.
        InputError: PET not on the CT grid; bad user mask.
    """
    preset = get_preset(site)
    if region not in OOI_REGIONS:
        raise ValueError(f"unknown organ-of-interest region {region!r}; choose one of {', '.join(OOI_REGIONS)}")
    if ct is None and pet is None:
        raise ValueError("compute_ooi needs a CT, a PET or both")
    if ct is not None and pet is not None and not pet.same_grid(ct):
        raise InputError(pet.source or "PET", "PET is not on the CT grid; resample it onto the CT first")
    reference = ct if ct is not None else pet
    if user_mask_path is not None:
        return load_user_ooi(user_mask_path, reference)
    if region == BODY_REGION:
        margin = preset.circle_radius_px * REFERENCE_PIXEL_MM if circle_radius_mm is None else circle_radius_mm
        return body_ooi(ct, pet, edge_margin_mm=margin)
    if preset.name == "lung":
        return lung_ooi(ct) if ct is not None else lung_ooi_from_pet(pet)
    return head_neck_ooi(ct, pet)
