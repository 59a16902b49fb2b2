"""Per-lesion statistics of a segmentation: size, SUVmax, SUVmean, SUVpeak, TLG.

A lesion is one 3-D connected component of the mask with 26-connectivity (voxels touching by a face,
an edge or a corner belong to the same lesion), the usual choice for PET lesion counting.

SUVpeak follows PERCIST (Wahl et al. 2009) in its common simplified form: the mean SUV inside a
1 cm³ sphere (radius 6.2 mm) centred on the lesion's hottest voxel. The sphere is built in physical
millimetres from the voxel spacing, contains every voxel whose centre lies within 6.2 mm of the
centre voxel's centre, takes all those voxels whether inside the lesion or not, and is clipped at the
volume's edge. (PERCIST proper moves the sphere to wherever its mean is highest; we do not search.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# 1 cm³ = 4/3 π r³  =>  r = 6.2035 mm; PERCIST rounds to 6.2 mm.
SUVPEAK_RADIUS_MM = 6.2

# 26-connectivity in 3-D: the full 3x3x3 neighbourhood.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class LesionStats:
    """One connected component of a mask.

    Attributes:
        label: 1-based lesion number, in scipy's labelling order (first voxel in (z, y, x) C order).
        voxels: number of voxels.
        volume_ml: ``voxels * prod(spacing) / 1000``.
        suv_max, suv_mean: max and mean SUV over the lesion's voxels (None without SUV).
        suv_peak: mean SUV in the 6.2 mm sphere around the hottest voxel (None without SUV).
        tlg: total lesion glycolysis ``suv_mean * volume_ml`` in SUV·ml (None without SUV).
        z_range: first and last axial slice index containing the lesion (inclusive).
        centroid_zyx: mean voxel index ``(z, y, x)`` (numpy order, not mm).
        hottest_zyx: voxel index ``(z, y, x)`` of SUVmax (first in C order on ties; None without SUV).
    """

    label: int
    voxels: int
    volume_ml: float
    suv_max: float | None
    suv_mean: float | None
    suv_peak: float | None
    tlg: float | None
    z_range: tuple[int, int]
    centroid_zyx: tuple[float, float, float]
    hottest_zyx: tuple[int, int, int] | None


def sphere_offsets(radius_mm: float, spacing_xyz: tuple[float, float, float]) -> np.ndarray:
    """Integer ``(dz, dy, dx)`` offsets of voxels whose centres lie within ``radius_mm`` of the origin.

    Args:
        radius_mm: sphere radius in mm.
        spacing_xyz: voxel size in mm, SimpleITK order ``(x, y, z)``.

    Returns:
        Array of shape ``(n, 3)``, columns in numpy order ``(z, y, x)``.
    """
    spacing_zyx = np.asarray(spacing_xyz, dtype=np.float64)[::-1]
    half = np.floor(radius_mm / spacing_zyx).astype(int)
    grids = np.meshgrid(*(np.arange(-h, h + 1) for h in half), indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    inside = ((offsets * spacing_zyx) ** 2).sum(axis=1) <= radius_mm**2
    return offsets[inside]


def suv_peak(suv: np.ndarray, centre_zyx: tuple[int, int, int], spacing_xyz: tuple[float, float, float],
             radius_mm: float = SUVPEAK_RADIUS_MM) -> float:
    """Mean SUV inside a sphere of ``radius_mm`` around voxel ``centre_zyx``, clipped at the edges.

    Args:
        suv: SUV volume, shape ``(z, y, x)``.
        centre_zyx: centre voxel index in numpy order.
        spacing_xyz: voxel size in mm, SimpleITK order ``(x, y, z)``.
        radius_mm: sphere radius in mm (default PERCIST's 6.2 mm, i.e. 1 cm³).
    """
    points = sphere_offsets(radius_mm, spacing_xyz) + np.asarray(centre_zyx)
    inside = np.all((points >= 0) & (points < np.asarray(suv.shape)), axis=1)
    points = points[inside]
    return float(suv[points[:, 0], points[:, 1], points[:, 2]].mean())


def _validated(mask, suv, spacing_xyz) -> tuple[np.ndarray, np.ndarray | None]:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D (z, y, x), got shape {mask.shape}")
    if len(spacing_xyz) != 3 or any(not s > 0 for s in spacing_xyz):
        raise ValueError(f"spacing_xyz must be three positive mm values (x, y, z), got {spacing_xyz}")
    if suv is None:
        return mask.astype(bool, copy=False), None
    suv = np.asarray(suv, dtype=np.float64)
    if suv.shape != mask.shape:
        raise ValueError(f"shape mismatch (mask, suv): {mask.shape} vs {suv.shape}")
    if not np.isfinite(suv).all():
        raise ValueError("suv contains NaN or Inf")
    return mask.astype(bool, copy=False), suv


def lesion_table(mask: np.ndarray, suv: np.ndarray | None = None,
                 spacing_xyz: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[LesionStats]:
    """Statistics of every 26-connected component of ``mask``.

    Args:
        mask: boolean (or 0/non-zero) segmentation, shape ``(z, y, x)``.
        suv: optional SUV volume of the same shape (PET on the mask's grid, body-weight SUV).
        spacing_xyz: voxel size in mm, SimpleITK order ``(x, y, z)`` (e.g. ``Volume.spacing``).

    Returns:
        One :class:`LesionStats` per component, ordered by label; empty for an empty mask.
    """
    mask, suv = _validated(mask, suv, spacing_xyz)
    labels, _ = ndimage.label(mask, structure=CONNECTIVITY_26)
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    table = []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        inside = labels[box] == label
        where = np.argwhere(inside) + np.array([s.start for s in box])  # (n, 3) global (z, y, x)
        voxels = int(where.shape[0])
        volume_ml = voxels * voxel_ml
        suv_max = suv_mean = peak = tlg = hottest = None
        if suv is not None:
            values = suv[box][inside]
            hottest = tuple(int(i) for i in where[int(np.argmax(values))])
            suv_max, suv_mean = float(values.max()), float(values.mean())
            peak = suv_peak(suv, hottest, spacing_xyz)
            tlg = suv_mean * volume_ml
        table.append(LesionStats(
            label=label, voxels=voxels, volume_ml=volume_ml, suv_max=suv_max, suv_mean=suv_mean,
            suv_peak=peak, tlg=tlg, z_range=(box[0].start, box[0].stop - 1),
            centroid_zyx=tuple(float(c) for c in where.mean(axis=0)), hottest_zyx=hottest))
    return table
