"""Geometric building blocks for the synthetic PET-CT phantoms (vectorised numpy, no voxel loops).

Every shape is rasterised on a :class:`Grid` and returned as a boolean array of shape ``(z, y, x)``
(numpy order). Positions and sizes are in millimetres in the phantom's anatomical frame: ``x``
towards the patient's left, ``y`` towards posterior (LPS), ``u`` = height above the bottom of the
anatomy (the grid's physical ``z`` minus a constant). Shapes are computed only inside their bounding
box, which keeps a full 512x512x100 case fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class Grid:
    """A regular axial grid centred on the anatomy.

    Attributes:
        x: voxel-centre x positions in mm, shape ``(nx,)`` (patient's left is +x).
        y: voxel-centre y positions in mm, shape ``(ny,)`` (posterior is +y).
        u: voxel-centre heights above the anatomy's bottom in mm, shape ``(nz,)``.
        spacing: voxel size in mm, ``(x, y, z)`` (SimpleITK order).
    """

    x: np.ndarray
    y: np.ndarray
    u: np.ndarray
    spacing: tuple[float, float, float]

    @property
    def X(self) -> np.ndarray:  # noqa: N802 - broadcast coordinate, named like the maths
        """x positions (mm) as float32, shape ``(1, 1, nx)``."""
        return self.x.astype(np.float32)[None, None, :]

    @property
    def Y(self) -> np.ndarray:  # noqa: N802
        """y positions (mm) as float32, shape ``(1, ny, 1)``."""
        return self.y.astype(np.float32)[None, :, None]

    @property
    def U(self) -> np.ndarray:  # noqa: N802
        """Heights (mm) as float32, shape ``(nz, 1, 1)``."""
        return self.u.astype(np.float32)[:, None, None]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return (self.u.size, self.y.size, self.x.size)

    def index_of(self, point_xyu: np.ndarray) -> np.ndarray:
        """Continuous ``(z, y, x)`` indices of a point given as ``(x, y, u)`` mm."""
        p = np.asarray(point_xyu, dtype=float)
        return np.array([(p[2] - self.u[0]) / self.spacing[2],
                         (p[1] - self.y[0]) / self.spacing[1],
                         (p[0] - self.x[0]) / self.spacing[0]])

    def box(self, low_xyu, high_xyu) -> tuple[slice, slice, slice] | None:
        """Index slices ``(z, y, x)`` covering the mm box, or None when it misses the grid."""
        lo = np.floor(self.index_of(low_xyu)).astype(int)
        hi = np.ceil(self.index_of(high_xyu)).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, self.shape)
        if np.any(hi <= lo):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]

    def coords(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable ``(X, Y, U)`` mm coordinates of a box: shapes (1,1,nx), (1,ny,1), (nz,1,1)."""
        zs, ys, xs = box
        return (self.x[xs][None, None, :].astype(np.float32),
                self.y[ys][None, :, None].astype(np.float32),
                self.u[zs][:, None, None].astype(np.float32))


def as_per_slice(value, grid: Grid) -> np.ndarray:
    """A scalar or a callable of height ``u`` (mm) as a float32 array of shape ``(nz,)``."""
    if callable(value):
        return np.asarray(value(grid.u), dtype=np.float32)
    return np.full(grid.u.shape, value, dtype=np.float32)


def ellipse_stack(grid: Grid, cx, cy, a, b, angle: float = 0.0) -> np.ndarray:
    """Axial ellipses whose centre and semi-axes may vary with height.

    Args:
        grid: the grid.
        cx, cy: centre in mm (scalar or function of ``u`` in mm).
        a, b: semi-axes in mm along the rotated x and y axes; slices where either is <= 0 stay empty.
        angle: in-plane rotation in radians (counter-clockwise from +x towards +y).

    Returns:
        Boolean mask, shape ``(z, y, x)``.
    """
    cx, cy, a, b = (as_per_slice(v, grid) for v in (cx, cy, a, b))
    out = np.zeros(grid.shape, dtype=bool)
    live = (a > 0) & (b > 0)
    if not live.any():
        return out
    reach = np.maximum(a, b)[live]
    box = grid.box((np.min(cx[live] - reach), np.min(cy[live] - reach), grid.u[live].min()),
                   (np.max(cx[live] + reach), np.max(cy[live] + reach), grid.u[live].max()))
    if box is None:
        return out
    X, Y, _ = grid.coords(box)
    zs = box[0]
    dx = X - cx[zs, None, None]
    dy = Y - cy[zs, None, None]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    ra = np.where(live, a, 1.0)[zs, None, None]
    rb = np.where(live, b, 1.0)[zs, None, None]
    inside = ((dx * c + dy * s) / ra) ** 2 + ((-dx * s + dy * c) / rb) ** 2 <= 1.0
    out[box] = inside & live[zs, None, None]
    return out


def ellipsoid(grid: Grid, centre_xyu, semi_axes_xyu, angle: float = 0.0) -> np.ndarray:
    """A solid ellipsoid (in-plane rotation ``angle`` in radians), boolean ``(z, y, x)``."""
    cx, cy, cu = (float(v) for v in centre_xyu)
    ax, ay, au = (float(v) for v in semi_axes_xyu)

    def height_scale(u):
        return np.sqrt(np.clip(1.0 - ((u - cu) / au) ** 2, 0.0, None))

    return ellipse_stack(grid, cx, cy, lambda u: ax * height_scale(u), lambda u: ay * height_scale(u), angle)


def tubes(grid: Grid, segments: list[tuple], radius_offset: float = 0.0) -> np.ndarray:
    """Union of capsules (tubes with linearly varying radius) along straight segments.

    Args:
        grid: the grid.
        segments: ``(p0_xyu, p1_xyu, r0_mm, r1_mm)`` per segment.
        radius_offset: added to every radius (negative gives the lumen of a walled tube).

    Returns:
        Boolean mask, shape ``(z, y, x)``.
    """
    out = np.zeros(grid.shape, dtype=bool)
    for p0, p1, r0, r1 in segments:
        p0 = np.asarray(p0, dtype=np.float32)
        p1 = np.asarray(p1, dtype=np.float32)
        r0, r1 = r0 + radius_offset, r1 + radius_offset
        reach = max(r0, r1)
        if reach <= 0:
            continue
        box = grid.box(np.minimum(p0, p1) - reach, np.maximum(p0, p1) + reach)
        if box is None:
            continue
        X, Y, U = grid.coords(box)
        v = p1 - p0
        length2 = max(float(v @ v), 1e-6)
        t = np.clip(((X - p0[0]) * v[0] + (Y - p0[1]) * v[1] + (U - p0[2]) * v[2]) / length2, 0.0, 1.0)
        d2 = (X - p0[0] - t * v[0]) ** 2 + (Y - p0[1] - t * v[1]) ** 2 + (U - p0[2] - t * v[2]) ** 2
        radius = r0 + t * (r1 - r0)
        out[box] |= (d2 <= radius * radius) & (radius > 0)
    return out


def polyline(points_xyu, radii) -> list[tuple]:
    """Segments ``(p0, p1, r0, r1)`` joining consecutive points (mm) with per-point radii (mm)."""
    points = np.asarray(points_xyu, dtype=float)
    radii = np.broadcast_to(np.asarray(radii, dtype=float), (len(points),))
    return [(points[i], points[i + 1], radii[i], radii[i + 1]) for i in range(len(points) - 1)]


def branching_tree(rng: np.random.Generator, root_xyu, direction, length_mm: float, radius_mm: float,
                   inside, min_radius_mm: float = 0.5, max_generations: int = 8,
                   shrink: float = 0.74, spread_deg: tuple[float, float] = (18.0, 38.0)) -> list[tuple]:
    """Segments of a randomly bifurcating tube tree, thinner and shorter at every generation.

    Args:
        rng: random generator (the only source of randomness).
        root_xyu: start point in mm ``(x, y, u)``.
        direction: initial direction (need not be unit length).
        length_mm, radius_mm: first segment's length and radius.
        inside: callable mapping an ``(n, 3)`` array of mm points to booleans; a branch whose end
            leaves this region stops growing (so trees stay inside the lung).
        min_radius_mm: branches thinner than this are not grown.
        max_generations: depth limit.
        shrink: length and radius factor per generation.
        spread_deg: range of the angle between a child and its parent, in degrees.

    Returns:
        ``(p0, p1, r0, r1)`` segments, mm.
    """
    segments: list[tuple] = []
    front = [(np.asarray(root_xyu, float), _unit(direction), length_mm, radius_mm)]
    for _ in range(max_generations):
        if not front:
            break
        ends = np.array([p + d * length for p, d, length, _ in front])
        # The first generation always grows: roots start at the hilum, outside the region.
        keep = np.asarray(inside(ends), dtype=bool) | (len(segments) == 0)
        next_front = []
        for (p, d, length, r), end, ok in zip(front, ends, keep):
            segments.append((p, end, r, r * (0.5 + 0.5 * shrink)))
            if not ok or r * shrink < min_radius_mm:
                continue
            axis = _unit(np.cross(d, rng.normal(size=3)))
            for sign in (1.0, -1.0):
                angle = np.deg2rad(rng.uniform(*spread_deg)) * sign
                child = _rotate(d, axis, angle)
                next_front.append((end, child, length * shrink * rng.uniform(0.85, 1.15), r * shrink))
        front = next_front
    return segments


def lookup(grid: Grid, mask: np.ndarray):
    """A callable telling whether mm points ``(n, 3)`` given as ``(x, y, u)`` fall in ``mask``.

    ``mask`` has shape ``(z, y, x)``; the nearest voxel decides, points off the grid are outside.
    """
    origin = np.array([grid.u[0], grid.y[0], grid.x[0]])
    step = np.array(grid.spacing[::-1])

    def inside(points: np.ndarray) -> np.ndarray:
        idx = np.rint((np.asarray(points, float)[:, ::-1] - origin) / step).astype(int)
        ok = np.all((idx >= 0) & (idx < np.array(grid.shape)), axis=1)
        hit = np.zeros(len(idx), dtype=bool)
        hit[ok] = mask[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        return hit
    return inside


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about the unit ``axis``."""
    return (v * np.cos(angle) + np.cross(axis, v) * np.sin(angle)
            + axis * float(axis @ v) * (1.0 - np.cos(angle)))


def upsample_linear(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Separable linear interpolation of a coarse array to ``shape`` (corners aligned), float32."""
    out = coarse.astype(np.float32)
    for axis, n in enumerate(shape):
        m = out.shape[axis]
        if m == n:
            continue
        pos = np.linspace(0.0, m - 1.0, n) if m > 1 else np.zeros(n)
        lo = np.minimum(np.floor(pos).astype(int), max(m - 2, 0))
        w = (pos - lo).astype(np.float32)
        hi = np.minimum(lo + 1, m - 1)
        bshape = [1] * out.ndim
        bshape[axis] = n
        w = w.reshape(bshape)
        low = np.take(out, lo, axis=axis)
        high = np.take(out, hi, axis=axis)
        high -= low
        high *= w
        low += high
        out = low
    return out


def smooth_field(rng: np.random.Generator, grid: Grid, scale_mm: float) -> np.ndarray:
    """Zero-mean, unit-sd random texture with features of about ``scale_mm``; float32 ``(z, y, x)``.

    White noise is drawn on a grid no finer than ``scale_mm / 2`` (never finer than the grid itself),
    smoothed there and interpolated up, so fine grids cost little more than the final interpolation.
    """
    coarse_shape, sigmas = [], []
    for n, step in zip(grid.shape, grid.spacing[::-1]):
        m = int(min(n, max(2, np.ceil((n - 1) * step / (scale_mm / 2.0)) + 1)))
        coarse_step = (n - 1) * step / max(m - 1, 1)
        coarse_shape.append(m)
        sigmas.append(scale_mm / 2.0 / coarse_step)
    coarse = rng.standard_normal(tuple(coarse_shape), dtype=np.float32)
    coarse = ndi.gaussian_filter(coarse, [s if s > 0.3 else 0.0 for s in sigmas], mode="wrap")
    coarse /= max(float(coarse.std()), 1e-6)
    return upsample_linear(coarse, grid.shape)


def irregular_blob(rng: np.random.Generator, grid: Grid, centre_xyu, radius_mm: float,
                   roughness: float = 0.22) -> np.ndarray:
    """A sphere deformed by low-frequency noise on its surface, plus up to two lobules.

    The surface radius along unit direction ``n`` is ``R * (1 + roughness * g(n))`` where ``g`` is a
    sum of three random cosines of ``n`` (low order, so the shape stays compact and one piece).

    Returns:
        Boolean mask, shape ``(z, y, x)``.
    """
    centre = np.asarray(centre_xyu, dtype=np.float32)
    waves = rng.normal(size=(3, 3)) * 1.6
    phases = rng.uniform(0, 2 * np.pi, size=3)
    amplitudes = rng.uniform(0.5, 1.0, size=3) / 3.0 ** 0.5
    reach = radius_mm * (1 + 1.8 * roughness) + 1
    out = np.zeros(grid.shape, dtype=bool)
    box = grid.box(centre - reach, centre + reach)
    if box is not None:
        X, Y, U = grid.coords(box)
        dx, dy, du = X - centre[0], Y - centre[1], U - centre[2]
        dist = np.sqrt(dx * dx + dy * dy + du * du) + 1e-6
        g = sum(a * np.cos((dx * w[0] + dy * w[1] + du * w[2]) / dist + ph)
                for a, w, ph in zip(amplitudes, waves, phases))
        out[box] = dist <= radius_mm * (1.0 + roughness * g)
    for _ in range(int(rng.integers(0, 3))):
        offset = _unit(rng.normal(size=3)) * radius_mm * rng.uniform(0.45, 0.7)
        out |= ellipsoid(grid, centre + offset, [radius_mm * rng.uniform(0.35, 0.55)] * 3)
    return out
