"""Tumours and lymph nodes of the synthetic phantoms: placement, shape, CT and FDG appearance.

Kinds (the ``kind`` field of :class:`TumourSpec`):

- lung cases: ``"lung-parenchymal"`` (surrounded by lung, the easy case), ``"juxta-mediastinal"`` and
  ``"juxta-pleural"`` (in the lung but abutting the mediastinum / chest wall, where CT contrast is
  poor: the paper's hard cases), ``"node"`` (hilar / mediastinal node touching the lung field);
- head-and-neck cases: ``"oropharynx"`` (primary around the oropharyngeal airway: tonsil, base of
  tongue) and ``"node"`` (neck levels II-III beside the jugular vein).

Every tumour is an irregular blob (a sphere deformed by low-frequency noise plus lobules) that never
occupies bone, teeth, cartilage or air lumen, kept as one connected piece, with soft-tissue HU
(30-50), heterogeneous FDG uptake and, for larger ones, sometimes a cold necrotic core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from autopaint_app.core.phantom_shapes import Grid, ellipsoid, irregular_blob
from autopaint_app.core.phantom_tissues import Anatomy, Tissue

LUNG_KINDS = ("lung-parenchymal", "juxta-mediastinal", "juxta-pleural", "node")
HN_KINDS = ("oropharynx", "node")

# kind: (smallest, largest) nominal radius in mm
_RADIUS_MM = {"lung-parenchymal": (7.0, 40.0), "juxta-mediastinal": (10.0, 40.0), "juxta-pleural": (8.0, 30.0),
              "node": (7.0, 15.0), "oropharynx": (10.0, 24.0)}


@dataclass(frozen=True)
class TumourSpec:
    """Ground truth of one tumour or node.

    Attributes:
        kind: see the module docstring.
        centre_mm: physical centre ``(x, y, z)`` in mm (LPS, SimpleITK order), a CT voxel centre.
        radius_mm: nominal radius of the sphere before deformation.
        suv: mean true SUV over the tumour voxels (before PET blur and noise), 3..15.
        hu: CT number of the viable tumour in HU.
        necrotic: whether it has a cold, hypodense necrotic core.
        voxels: number of label voxels on the CT grid.
        volume_ml: label volume in millilitres.
    """

    kind: str
    centre_mm: tuple[float, float, float]
    radius_mm: float
    suv: float
    hu: float
    necrotic: bool
    voxels: int
    volume_ml: float


@dataclass
class PaintedTumour:
    """One tumour painted on the CT grid: flat voxel indices and their true HU and SUV."""

    index: np.ndarray
    hu: np.ndarray
    suv: np.ndarray
    spec: TumourSpec


def default_kinds(site: str, rng: np.random.Generator) -> list[str]:
    """1-4 tumour kinds for a diseased case: a primary first, then nodes or further tumours."""
    count = int(rng.integers(1, 5))
    if site == "hn":
        return ["oropharynx"] + ["node"] * (count - 1)
    first = str(rng.choice(LUNG_KINDS[:3], p=[0.4, 0.35, 0.25]))
    rest = rng.choice(LUNG_KINDS, size=count - 1, p=[0.3, 0.25, 0.2, 0.25])
    return [first] + [str(k) for k in rest]


class _Distances:
    """Distance maps (mm) of the placement regions on a coarse copy of the grid (every ``step`` pixel)."""

    def __init__(self, anatomy: Anatomy, grid: Grid):
        self.step = max(1, int(4.0 // grid.spacing[0]))
        s = self.step
        self.sampling = (grid.spacing[2], grid.spacing[1] * s, grid.spacing[0] * s)
        self.regions = {name: mask[:, ::s, ::s] for name, mask in anatomy.regions.items()}
        self._cache: dict[str, np.ndarray] = {}

    def to(self, name: str) -> np.ndarray:
        """Distance (mm) from every coarse voxel to the nearest voxel of region ``name``."""
        if name not in self._cache:
            self._cache[name] = ndi.distance_transform_edt(~self.regions[name], sampling=self.sampling)
        return self._cache[name]

    def inside(self, name: str) -> np.ndarray:
        """Depth (mm) of every coarse voxel inside region ``name`` (0 outside)."""
        key = "in:" + name
        if key not in self._cache:
            self._cache[key] = ndi.distance_transform_edt(self.regions[name], sampling=self.sampling)
        return self._cache[key]


def _candidates(kind: str, r: float, dist: _Distances) -> np.ndarray:
    """Coarse voxels where a tumour of ``kind`` and radius ``r`` (mm) may be centred."""
    if kind == "lung-parenchymal":
        return dist.inside("lung") >= 1.3 * r + 2.0
    if kind == "juxta-mediastinal":
        d = dist.to("mediastinum")
        return dist.regions["lung"] & (d >= 0.35 * r) & (d <= 0.8 * r) & (dist.to("wall") >= 1.3 * r)
    if kind == "juxta-pleural":
        d = dist.to("wall")
        return dist.regions["lung"] & (d >= 0.35 * r) & (d <= 0.8 * r) & (dist.to("mediastinum") >= 1.3 * r)
    if kind == "node" and "lung" in dist.regions:
        return dist.regions["node"] & (dist.to("lung") <= 0.8 * r)
    if kind in ("node", "oropharynx"):
        region = "node" if kind == "node" else "primary"
        return dist.regions[region] & (dist.inside(region) >= min(0.3 * r, 6.0))
    raise ValueError(f"unknown tumour kind {kind!r}")


def place_tumours(anatomy: Anatomy, grid: Grid, rng: np.random.Generator,
                  kinds: list[str]) -> list[tuple[str, np.ndarray, float]]:
    """Choose centre (mm, ``(x, y, u)``, a voxel centre) and nominal radius (mm) for each kind.

    Tumours keep apart (centre distance above 1.45 times the sum of radii). When no centre fits, the
    radius shrinks towards the kind's minimum; a kind that still does not fit is left out.
    """
    dist = _Distances(anatomy, grid)
    placed: list[tuple[str, np.ndarray, float]] = []
    for kind in kinds:
        low, high = _RADIUS_MM[kind]
        r = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        while True:
            ok = _candidates(kind, r, dist)
            flat = np.flatnonzero(ok)
            if flat.size:
                centres = _coarse_to_mm(np.unravel_index(flat, ok.shape), grid, dist.step)
                far = np.ones(len(centres), dtype=bool)
                for _, c, rr in placed:
                    far &= np.linalg.norm(centres - c, axis=1) > 1.45 * (r + rr) + 3.0
                if far.any():
                    choice = centres[rng.choice(np.flatnonzero(far))]
                    placed.append((kind, choice, r))
                    break
            if r <= low:
                break
            r = max(low, r * 0.8)
    return placed


def _coarse_to_mm(index: tuple[np.ndarray, ...], grid: Grid, step: int) -> np.ndarray:
    z, y, x = index
    return np.stack([grid.x[x * step], grid.y[y * step], grid.u[z]], axis=1)


def paint_tumours(anatomy: Anatomy, grid: Grid, rng: np.random.Generator, placements,
                  z_of_u) -> list[PaintedTumour]:
    """Paint placed tumours into ``anatomy.tissue`` (TUMOUR / NECROSIS codes) and return their voxels.

    Args:
        anatomy: healthy anatomy; its tissue map is modified in place.
        grid: the CT grid.
        rng: random generator for shape and uptake.
        placements: output of :func:`place_tumours`.
        z_of_u: converts an anatomical height ``u`` (mm) to the physical ``z`` (mm) of the CT.

    Returns:
        One :class:`PaintedTumour` per placement (flat indices into the ``(z, y, x)`` CT array).
    """
    taken = anatomy.exclude.copy() if anatomy.exclude is not None else np.zeros(grid.shape, bool)
    painted = []
    for kind, centre, r in placements:
        mask = irregular_blob(rng, grid, centre, r) & ~taken
        mask = _component_at(mask, grid.index_of(centre))
        if not mask.any():
            continue
        taken |= mask
        painted.append(_appearance(anatomy, grid, rng, kind, centre, r, mask, z_of_u))
    return painted


def _component_at(mask: np.ndarray, centre_index: np.ndarray) -> np.ndarray:
    """The connected piece of ``mask`` holding the centre voxel (else its largest piece)."""
    box = _bounding_box(mask)
    if box is None:
        return mask
    labels, count = ndi.label(mask[box])
    if count <= 1:
        return mask
    local = np.rint(centre_index).astype(int) - np.array([s.start for s in box])
    keep = 0
    if np.all(local >= 0) and np.all(local < labels.shape):
        keep = labels[tuple(local)]
    if keep == 0:
        keep = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    out = np.zeros_like(mask)
    out[box] = labels == keep
    return out


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Index slices of the smallest box holding every True voxel of ``mask`` (None when empty)."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _appearance(anatomy: Anatomy, grid: Grid, rng, kind: str, centre, r: float, mask: np.ndarray,
                z_of_u) -> PaintedTumour:
    """True HU and SUV of the tumour voxels: heterogeneous uptake, optional necrotic core."""
    index = np.flatnonzero(mask)
    hu_viable = float(rng.uniform(30.0, 50.0))
    necrotic = r >= 14.0 and rng.random() < 0.45
    core = np.zeros(index.size, dtype=bool)
    if necrotic:
        offset = rng.normal(size=3) * 0.1 * r
        core = ellipsoid(grid, np.asarray(centre) + offset, [r * rng.uniform(0.35, 0.55)] * 3).ravel()[index]
    texture = rng.standard_normal(index.size).astype(np.float32)
    z, y, x = np.unravel_index(index, grid.shape)
    # Smooth, low-order heterogeneity: a random linear gradient plus voxel-level variation.
    gradient = (rng.normal(size=3) * 0.15 / r) @ np.stack(
        [grid.x[x] - centre[0], grid.y[y] - centre[1], grid.u[z] - centre[2]])
    relative = np.clip(1.0 + gradient + 0.12 * texture, 0.3, None).astype(np.float32)
    relative[core] = rng.uniform(0.08, 0.2)
    target = float(rng.uniform(3.5, 14.0))
    suv = relative * np.float32(target / relative.mean())
    hu = np.float32(hu_viable) + 4.0 * texture
    hu[core] = np.float32(hu_viable - rng.uniform(15.0, 25.0)) + 3.0 * texture[core]
    anatomy.tissue.flat[index] = np.where(core, Tissue.NECROSIS, Tissue.TUMOUR).astype(np.uint8)
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    spec = TumourSpec(kind, (float(centre[0]), float(centre[1]), float(z_of_u(centre[2]))), round(r, 2),
                      round(float(suv.mean()), 3), round(hu_viable, 1), bool(core.any()), int(index.size),
                      round(index.size * voxel_ml, 3))
    return PaintedTumour(index, hu.astype(np.float32), suv.astype(np.float32), spec)
