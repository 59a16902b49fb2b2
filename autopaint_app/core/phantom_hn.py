"""Head-and-neck anatomy of the PET-CT phantom (skull base to shoulders), painted as a tissue map.

Frame (mm): ``x`` towards the patient's left, ``y`` towards posterior, ``u`` height above the bottom
of the 240 mm field (shoulders at the bottom, skull base at the top). Levels from bottom to top:
shoulders and clavicles, trachea and thyroid gland, larynx (cricoid and thyroid cartilage),
submandibular glands, mandible with the tongue and oropharynx (tonsils), teeth, hard palate, parotid
glands, nasopharynx with the nasal cavity and maxillary sinuses, skull base. Cervical spine and
neck vessels run through. Sizes and positions are drawn per case.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from autopaint_app.core.phantom_shapes import Grid, ellipse_stack, ellipsoid, polyline, smooth_field, tubes
from autopaint_app.core.phantom_tissues import Anatomy, Tissue, TissueTable, is_any, paint, paint_codes

HN_EXTENT_MM = 240.0

_HARD = (Tissue.CORTICAL_BONE, Tissue.CANCELLOUS_BONE, Tissue.DISC, Tissue.CARTILAGE, Tissue.TEETH,
         Tissue.AIRWAY, Tissue.TABLE, Tissue.AIR)


def build_hn_anatomy(grid: Grid, rng: np.random.Generator) -> Anatomy:
    """Paint a healthy head and neck on ``grid`` (tissue map uint8, shape ``(z, y, x)``)."""
    p = _sample_parameters(rng)
    tissue = np.zeros(grid.shape, dtype=np.uint8)
    body = _paint_body(tissue, grid, p, rng)
    _paint_glands_and_muscles(tissue, grid, p)
    _paint_airway(tissue, grid, p)
    _paint_spine(tissue, grid, p)
    _paint_jaw_and_face(tissue, grid, p)
    _paint_shoulders(tissue, grid, p)
    soft = body & ~is_any(tissue, _HARD)
    ring = ellipse_stack(grid, 0.0, lambda u: _airway(u, p)[2], lambda u: _airway(u, p)[0] + 16,
                         lambda u: _airway(u, p)[1] + 14)
    levels = grid.U
    node = ellipse_stack(grid, -p.xn, p.yv - 14, 13.0, 15.0) | ellipse_stack(grid, p.xn, p.yv - 14, 13.0, 15.0)
    regions = {
        "primary": soft & ring & (levels > 122) & (levels < 172),
        "node": soft & node & (levels > 70) & (levels < 140),
    }
    exclude = ~soft
    return Anatomy(tissue, _hn_table(rng), regions, exclude)


def _sample_parameters(rng: np.random.Generator) -> SimpleNamespace:
    p = SimpleNamespace()
    p.yn = rng.uniform(-14, 2)                                  # neck centre
    p.an, p.bn = rng.uniform(55, 67), rng.uniform(54, 64)       # neck semi-axes
    p.ah, p.bh = rng.uniform(68, 80), rng.uniform(88, 100)      # face semi-axes
    p.yh = p.yn - 14.0
    p.a_sh, p.b_sh = rng.uniform(172, 198), rng.uniform(92, 108)
    p.fat = rng.uniform(4, 13)
    p.yv = p.yn + rng.uniform(10, 16)                           # cervical vertebral body centre
    p.xn = rng.uniform(30, 38)                                  # node level II-III lateral offset
    return p


def _hn_table(rng: np.random.Generator) -> TissueTable:
    table = TissueTable.defaults()
    for gland in (Tissue.PAROTID, Tissue.SUBMANDIBULAR, Tissue.TONSIL):
        table.suv[gland] = rng.uniform(2.0, 4.0)
    table.suv[Tissue.BLOOD] = rng.uniform(1.6, 2.0)
    table.suv[Tissue.TONGUE] = rng.uniform(1.3, 2.2)
    return table


def _outline(u: np.ndarray, p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body semi-axes ``a`` (left-right), ``b`` (antero-posterior) and centre ``y`` per height (mm)."""
    knots = [0, 28, 58, 80, 120, 150, 190, 240]
    a = np.interp(u, knots, [p.a_sh, p.a_sh * 0.82, p.an * 1.35, p.an, p.an * 1.02, p.ah * 0.95, p.ah, p.ah * 0.93])
    b = np.interp(u, knots, [p.b_sh, p.b_sh * 0.92, p.bn * 1.12, p.bn, p.bn * 1.08, p.bh * 0.92, p.bh, p.bh])
    y = np.interp(u, knots, [p.yn + 6, p.yn + 5, p.yn, p.yn, p.yn - 4, p.yh, p.yh, p.yh])
    return a, b, y


def _airway(u: np.ndarray, p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Air lumen semi-axes ``a``, ``b`` and centre ``y`` per height: trachea, larynx, pharynx."""
    knots = [0, 68, 76, 118, 124, 170, 176, 212, 218]
    a = np.interp(u, knots, [8, 8, 8.5, 9, 13, 13, 13, 12, 0])
    b = np.interp(u, knots, [7.5, 7.5, 10, 11, 8, 8, 9, 9, 0])
    y = np.interp(u, knots, [-30, -30, -32, -32, -22, -22, -22, -22, -22]) + p.yv
    return a, b, y


def _paint_body(tissue: np.ndarray, grid: Grid, p, rng) -> np.ndarray:
    """Skin, subcutaneous fat, muscle with intermuscular fat planes, and the couch; returns the body."""
    a, b, y = _outline(grid.u, p)
    body = ellipse_stack(grid, 0.0, lambda _: y, lambda _: a, lambda _: b) \
        & (grid.Y <= (y + 0.95 * b).astype(np.float32)[:, None, None])
    paint(tissue, body, Tissue.SKIN)
    paint(tissue, ellipse_stack(grid, 0.0, lambda _: y, lambda _: a - 2.0, lambda _: b - 2.0) & body, Tissue.FAT)
    inner = ellipse_stack(grid, 0.0, lambda _: y, lambda _: a - p.fat, lambda _: b - p.fat) & body
    paint(tissue, inner, Tissue.MUSCLE)
    planes = smooth_field(rng, grid, 9.0) > 1.2                  # fat between the neck muscles
    paint(tissue, planes & inner, Tissue.FAT)
    X, Y = grid.X[0], grid.Y[0]
    couch_y = p.yn + 0.95 * p.b_sh + 14.0 - 0.0007 * X ** 2
    couch = (Y >= couch_y) & (Y <= couch_y + 6.0) & (np.abs(X) < 230)
    paint(tissue, np.broadcast_to(couch, grid.shape), Tissue.TABLE, tissue == Tissue.AIR)
    return body


def _paint_glands_and_muscles(tissue: np.ndarray, grid: Grid, p) -> None:
    """Sternocleidomastoids (with fat halo), vessels, glands, tongue and tonsils."""
    for side in (-1, 1):
        scm = polyline([(side * (p.an - 8), p.yv + 4, 205), (side * (p.an - 14), p.yv - 12, 110),
                        (side * 22, p.yv - 42, 20)], [9.0, 7.0, 6.0])
        paint_codes(tissue, tubes(grid, scm, radius_offset=3.0), Tissue.FAT, (Tissue.MUSCLE,))
        paint_codes(tissue, tubes(grid, scm), Tissue.MUSCLE, (Tissue.FAT,))
        vessels = polyline([(side * 22, p.yv - 12, -10), (side * 25, p.yv - 10, 200)], 3.8) \
            + polyline([(side * 32, p.yv - 3, -10), (side * 34, p.yv + 2, 200)], 6.0)
        paint(tissue, tubes(grid, vessels, radius_offset=1.2), Tissue.FAT)
        paint(tissue, tubes(grid, vessels), Tissue.BLOOD)
        paint(tissue, ellipsoid(grid, (side * 24, p.yv - 3, 162), (8, 12, 24)), Tissue.FAT)  # parapharyngeal
        inside = tissue != Tissue.AIR
        paint(tissue, ellipsoid(grid, (side * (p.ah - 21), p.yv - 4, 168), (11, 19, 26)), Tissue.PAROTID, inside)
        paint(tissue, ellipsoid(grid, (side * p.an * 0.55, p.yv - 40, 118), (12, 11, 11)), Tissue.SUBMANDIBULAR,
              inside)
        paint(tissue, ellipsoid(grid, (side * 18.5, p.yv - 21, 148), (7, 10, 13)), Tissue.TONSIL)
        paint(tissue, ellipsoid(grid, (side * 17, p.yv - 27, 52), (8, 11, 17)), Tissue.THYROID)
    paint(tissue, ellipsoid(grid, (0, p.yh - p.bh * 0.38, 146), (p.ah * 0.42, p.bh * 0.36, 22)), Tissue.TONGUE)
    oesophagus = polyline([(2, p.yv - 17, -10), (0, p.yv - 17, 78)], 6.5)
    paint(tissue, tubes(grid, oesophagus), Tissue.OESOPHAGUS)


def _paint_airway(tissue: np.ndarray, grid: Grid, p) -> None:
    """Trachea, larynx with cricoid and thyroid cartilage, pharynx, nasal cavity."""
    a, b, y = _airway(grid.u, p)
    levels = grid.U
    shell = ellipse_stack(grid, 0.0, lambda _: y, lambda _: a + 5.5, lambda _: b + 5.5) \
        & ~ellipse_stack(grid, 0.0, lambda _: y, lambda _: a + 3.0, lambda _: b + 3.0)
    anterior = grid.Y < (y + 2.0).astype(np.float32)[:, None, None]
    paint(tissue, shell & (levels > 74) & (levels < 84), Tissue.CARTILAGE)                  # cricoid
    paint(tissue, shell & anterior & (levels > 86) & (levels < 116), Tissue.CARTILAGE)      # thyroid
    paint(tissue, shell & anterior & (levels < 68) & (((levels % 8.0) < 4.0)), Tissue.CARTILAGE)
    paint(tissue, ellipse_stack(grid, 0.0, lambda _: y, lambda _: a + 2.0, lambda _: b + 2.0)
          & (levels > 120), Tissue.MUSCLE)                                                   # constrictors
    paint(tissue, ellipse_stack(grid, 0.0, lambda _: y, lambda _: a, lambda _: b), Tissue.AIRWAY)
    for side in (-1, 1):
        paint(tissue, ellipsoid(grid, (side * 6, p.yv - 55, 198), (3.5, 22, 26)), Tissue.AIRWAY)  # nasal


def _paint_spine(tissue: np.ndarray, grid: Grid, p) -> None:
    """Cervical vertebrae with discs, canal and cord, posterior arch; clivus at the skull base."""
    u = grid.u
    yv = p.yv + 3.0 * np.cos(np.pi * u / HN_EXTENT_MM)            # cervical lordosis
    canal_y = yv + 19.0
    top = np.where(u < 222, 1.0, 0.0)
    body = ellipse_stack(grid, 0.0, lambda _: yv, lambda _: 10.0 * top, 8.5)
    paint(tissue, body, Tissue.CORTICAL_BONE)
    paint(tissue, ellipse_stack(grid, 0.0, lambda _: yv, lambda _: 8.0 * top, 6.5), Tissue.CANCELLOUS_BONE)
    paint(tissue, body & (((u - 3.0) % 17.0) < 4.5)[:, None, None], Tissue.DISC)
    arch = ellipse_stack(grid, 0.0, lambda _: canal_y, lambda _: 11.0 * top, 10.0)
    for dx, dy, a, b in ((0, 14, 3.5, 10), (-17, -2, 8, 4), (17, -2, 8, 4)):
        arch |= ellipse_stack(grid, dx, lambda _: canal_y + dy, lambda _: a * top, b)
    paint(tissue, arch, Tissue.CORTICAL_BONE)
    paint(tissue, ellipse_stack(grid, 0.0, lambda _: canal_y, lambda _: 7.0 * top, 6.5), Tissue.FAT)
    paint(tissue, ellipse_stack(grid, 0.0, lambda _: canal_y, lambda _: 4.5 * top, 4.0), Tissue.SPINAL_CORD)
    base = ellipsoid(grid, (0, p.yv - 2, 240), (16, 13, 22)) \
        | ellipsoid(grid, (-38, p.yv + 6, 240), (24, 10, 16)) | ellipsoid(grid, (38, p.yv + 6, 240), (24, 10, 16))
    paint(tissue, base, Tissue.CORTICAL_BONE)
    paint(tissue, ellipsoid(grid, (0, p.yv - 2, 240), (12, 9, 18)), Tissue.CANCELLOUS_BONE)


def _jaw_curve(p, scale: float = 1.0) -> np.ndarray:
    """Horseshoe of the mandible / dental arch in the axial plane, ``(n, 2)`` mm points."""
    phi = np.linspace(-1.45, 1.45, 15)
    width = (p.ah - 20.0) * scale
    front = p.yh - p.bh + 14.0 + (1 - scale) * 12
    back = p.yv - 18.0
    y = front + (back - front) * (1 - np.cos(phi)) / (1 - np.cos(1.45))
    return np.stack([width * np.sin(phi), y], axis=1)


def _paint_jaw_and_face(tissue: np.ndarray, grid: Grid, p) -> None:
    """Mandible (body and rami), teeth, hard palate, maxillary sinuses."""
    curve = _jaw_curve(p)
    mandible = []
    for u in np.arange(120.0, 152.0, 4.0):
        mandible += polyline(np.column_stack([curve, np.full(len(curve), u)]), 5.0)
    for side in (-1, 1):
        x0, y0 = curve[0 if side < 0 else -1]
        for dy in (-6.0, 0.0, 6.0):
            mandible += polyline([(x0, y0 + dy, 122), (x0 + side * 3, y0 + dy + 6, 198)], 4.5)
    paint(tissue, tubes(grid, mandible), Tissue.CORTICAL_BONE)
    paint(tissue, tubes(grid, mandible, radius_offset=-2.2), Tissue.CANCELLOUS_BONE)
    teeth = []
    for lo, hi in ((151.0, 159.0), (162.0, 170.0)):
        for x, y in _jaw_curve(p, 0.92)[1:-1]:
            teeth.append(((x, y, lo), (x, y, hi), 3.6, 3.6))
    paint(tissue, tubes(grid, teeth), Tissue.TEETH)
    arch = _jaw_curve(p, 0.85)
    palate = ellipse_stack(grid, 0.0, float(arch[:, 1].mean()) - 4, float(arch[:, 0].max()),
                           float(np.ptp(arch[:, 1]) / 2 + 4))
    paint(tissue, palate & ((grid.u > 171) & (grid.u < 176))[:, None, None], Tissue.CORTICAL_BONE)
    for side in (-1, 1):
        centre = (side * 28, p.yh - p.bh + 48, 196)
        paint(tissue, ellipsoid(grid, centre, (16, 19, 20)), Tissue.CORTICAL_BONE)
        paint(tissue, ellipsoid(grid, centre, (14, 17, 18)), Tissue.AIRWAY)


def _paint_shoulders(tissue: np.ndarray, grid: Grid, p) -> None:
    """Clavicles, humeral heads and scapulae in the lowest slices."""
    bones = []
    for side in (-1, 1):
        bones += polyline([(side * 16, p.yn - 0.62 * p.bn, 26), (side * 70, p.yn - 45, 36),
                           (side * (p.a_sh - 45), p.yn - 12, 44)], 7.0)
        head = (side * (p.a_sh - 38), p.yn + 4, 30)
        bones.append((head, head, 24.0, 24.0))
        for u in np.arange(-6.0, 50.0, 5.0):
            bones += polyline([(side * 55, p.yn + 62, u), (side * (p.a_sh - 60), p.yn + 38, u)], 4.0)
    body = tissue != Tissue.AIR
    paint(tissue, tubes(grid, bones), Tissue.CORTICAL_BONE, body)
    paint(tissue, tubes(grid, bones, radius_offset=-2.5), Tissue.CANCELLOUS_BONE, body)
