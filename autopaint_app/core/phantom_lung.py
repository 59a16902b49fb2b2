"""Chest anatomy of the lung PET-CT phantom, painted as a tissue map.

Frame (mm): ``x`` towards the patient's left, ``y`` towards posterior, ``u`` height above the bottom
of the 300 mm chest field (liver dome near the bottom, lung apices near the top). Every size and
position is drawn from the case's random generator, so organ shapes vary per seed while staying
anatomically ordered: body wall (skin, fat, muscle, ribs) around a thoracic cavity that holds two
air-filled lungs with vessel and bronchial trees, the mediastinum (heart, aorta, pulmonary arteries,
SVC, trachea, oesophagus, fat) and the spine; below the diaphragm domes the liver and upper abdomen.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from autopaint_app.core.phantom_shapes import (Grid, branching_tree, ellipse_stack, ellipsoid, lookup,
                                               polyline, tubes)
from autopaint_app.core.phantom_tissues import Anatomy, Tissue, TissueTable, is_any, paint, paint_codes

LUNG_EXTENT_MM = 300.0

_BONE = (Tissue.CORTICAL_BONE, Tissue.CANCELLOUS_BONE, Tissue.DISC, Tissue.CARTILAGE, Tissue.TEETH)


def build_lung_anatomy(grid: Grid, rng: np.random.Generator) -> Anatomy:
    """Paint a healthy chest on ``grid`` (tissue map uint8, shape ``(z, y, x)``)."""
    p = _sample_parameters(rng)
    tissue = np.zeros(grid.shape, dtype=np.uint8)
    body = _paint_body_wall(tissue, grid, p, rng)
    cavity = ellipse_stack(grid, 0.0, p.yc, p.ac, p.bc) & body
    paint(tissue, cavity, Tissue.FAT)
    spine_block = _spine_block(grid, p)
    heart = ellipsoid(grid, (p.xh, p.yh, p.uh), (p.hax, p.hay, p.hau), p.hangle)
    great_vessels = _great_vessel_segments(p)
    lung = _lung_field(grid, p, cavity, heart, spine_block, great_vessels)
    dome = _diaphragm(grid, p)
    abdomen = cavity & ~dome
    paint(tissue, abdomen & (grid.X < 12.0), Tissue.LIVER)
    paint(tissue, abdomen & (grid.X >= 12.0), Tissue.ABDOMEN)
    paint(tissue, lung, Tissue.LUNG)
    _paint_heart(tissue, grid, p, heart & dome)
    paint(tissue, tubes(grid, great_vessels), Tissue.BLOOD, dome | (grid.U > 40))
    _paint_lung_vessels(tissue, grid, p, rng, lung)
    _paint_airways(tissue, grid, p, rng, lung)
    oesophagus = tubes(grid, polyline([(3, p.yvb - 25, LUNG_EXTENT_MM + 10), (14, p.yvb - 24, p.udl - 5)], 8.0))
    paint_codes(tissue, oesophagus, Tissue.OESOPHAGUS, (Tissue.FAT, Tissue.LUNG))
    _paint_ribs_and_sternum(tissue, grid, p)
    _paint_spine(tissue, grid, p)
    mediastinum = cavity & dome & ~lung & ~spine_block & (np.abs(grid.x) < 0.45 * p.ac)[None, None, :]
    regions = {
        "lung": lung,
        "mediastinum": mediastinum,
        "node": mediastinum & (tissue == Tissue.FAT)
        & (np.abs(grid.u - p.ucar)[:, None, None] < 45.0),
        "wall": body & ~cavity | (cavity & ~dome),
    }
    exclude = is_any(tissue, (*_BONE, Tissue.AIRWAY, Tissue.TABLE, Tissue.AIR))
    return Anatomy(tissue, _lung_table(rng), regions, exclude)


def _sample_parameters(rng: np.random.Generator) -> SimpleNamespace:
    """Per-case sizes and positions (mm); see the module docstring for the frame."""
    p = SimpleNamespace()
    p.a0, p.b0 = rng.uniform(140, 172), rng.uniform(98, 122)          # body semi-axes
    p.fat_lat, p.fat_ap = rng.uniform(5, 24), rng.uniform(4, 18)       # subcutaneous fat
    p.mus_lat, p.mus_ant, p.mus_post = rng.uniform(8, 13), rng.uniform(9, 14), rng.uniform(36, 46)
    p.yb = rng.uniform(-12, 6)
    p.ac = p.a0 - p.fat_lat - p.mus_lat
    p.bc = p.b0 - p.fat_ap - (p.mus_ant + p.mus_post) / 2
    p.yc = p.yb - (p.mus_post - p.mus_ant) / 2
    p.yvb = p.yc + p.bc - 22.0                                         # vertebral body centre
    p.udr = rng.uniform(58, 80)                                        # right diaphragm dome peak
    p.udl = p.udr - rng.uniform(8, 20)
    p.uapex = rng.uniform(278, 292)
    p.ucar = rng.uniform(185, 205)                                     # carina
    p.uarch = p.ucar + rng.uniform(30, 42)
    p.xh, p.yh = rng.uniform(14, 28), p.yc - 0.3 * p.bc
    p.hax, p.hay, p.hau = rng.uniform(48, 58), rng.uniform(38, 46), rng.uniform(45, 55)
    p.uh = p.udl + p.hau * 0.85
    p.hangle = rng.uniform(-0.7, -0.3)
    p.harm = rng.normal(0, 0.025, size=(3, 2))                         # body contour harmonics
    return p


def _lung_table(rng: np.random.Generator) -> TissueTable:
    table = TissueTable.defaults()
    table.suv[Tissue.MYOCARDIUM] = np.exp(rng.uniform(np.log(1.5), np.log(8.0)))
    table.suv[Tissue.BLOOD] = table.suv[Tissue.LUNG_VESSEL] = rng.uniform(1.6, 2.0)
    table.suv[Tissue.LIVER] = rng.uniform(2.0, 2.45)
    table.suv[Tissue.LUNG] = rng.uniform(0.4, 0.6)
    return table


def _body_ellipse(u: np.ndarray, p) -> tuple[np.ndarray, np.ndarray]:
    """Body semi-axes (mm) per height: the thoracic inlet narrows towards the top."""
    top = np.clip((u - 230.0) / 70.0, 0.0, 1.0) ** 2
    return p.a0 * (1 - 0.2 * top), p.b0 * (1 - 0.1 * top)


def _paint_body_wall(tissue: np.ndarray, grid: Grid, p, rng) -> np.ndarray:
    """Skin, subcutaneous fat, muscle and the couch; returns the body mask."""
    X, Y = grid.X, grid.Y
    a, b = _body_ellipse(grid.u, p)
    a, b = a.astype(np.float32)[:, None, None], b.astype(np.float32)[:, None, None]
    theta = np.arctan2(Y - p.yb, X)
    wobble = sum(c * np.cos((k + 2) * theta) + s * np.sin((k + 2) * theta)
                 for k, (c, s) in enumerate(p.harm)).astype(np.float32)
    r2 = (X / a) ** 2 + ((Y - np.float32(p.yb)) / b) ** 2
    body = (r2 <= (1 + wobble) ** 2) & (Y <= p.yb + 0.93 * b)    # flattened back on the couch
    paint(tissue, body, Tissue.SKIN)
    inner = (r2 <= (1 + wobble - 2.5 / a) ** 2) & (Y <= p.yb + 0.93 * b - 2.5)
    paint(tissue, inner, Tissue.FAT)
    ab = _body_ellipse(grid.u, p)
    muscle = ellipse_stack(grid, 0.0, p.yb - (p.fat_ap * 0.2),
                           ab[0] - p.fat_lat, ab[1] - p.fat_ap) & inner
    paint(tissue, muscle, Tissue.MUSCLE)
    couch_y = p.yb + 0.93 * p.b0 + 10.0 - 0.0007 * X ** 2
    couch = (Y >= couch_y) & (Y <= couch_y + 6.0) & (np.abs(X) < 230)
    paint(tissue, np.broadcast_to(couch, grid.shape), Tissue.TABLE, tissue == Tissue.AIR)
    return body


def _spine_block(grid: Grid, p) -> np.ndarray:
    """Region around the spine that the lungs never enter (paravertebral)."""
    X, Y = grid.X, grid.Y
    return np.broadcast_to((X / 30.0) ** 2 + ((Y - p.yvb - 8.0) / 34.0) ** 2 <= 1.0, grid.shape)


def _great_vessel_segments(p) -> list[tuple]:
    """Aorta, pulmonary trunk and arteries, superior vena cava as tube segments (mm)."""
    top = LUNG_EXTENT_MM + 10
    aorta = polyline([(p.xh - 22, p.yh - 5, p.uh + 20), (-4, p.yc - 0.25 * p.bc, p.uarch - 15),
                      (6, p.yc - 0.05 * p.bc, p.uarch), (20, p.yvb - 28, p.uarch - 8),
                      (24, p.yvb - 16, p.uarch - 35), (18, p.yvb - 16, -10)], [15, 15, 13, 12, 11.5, 11])
    trunk = polyline([(p.xh - 2, p.yh - 22, p.uh + 25), (10, p.yc - 8, p.ucar - 18)], [13, 12.5])
    left_pa = polyline([(10, p.yc - 8, p.ucar - 18), (52, p.yc + 2, p.ucar - 16)], [11.5, 9])
    right_pa = polyline([(10, p.yc - 8, p.ucar - 18), (-50, p.yc - 2, p.ucar - 26)], [11.5, 9])
    svc = polyline([(-24, p.yc - 0.3 * p.bc, top), (-22, p.yh - 10, p.uh + 30)], [9, 10])
    return aorta + trunk + left_pa + right_pa + svc


def _lung_field(grid: Grid, p, cavity, heart, spine_block, vessels) -> np.ndarray:
    """Both lungs: the cavity minus mediastinal structures, above the diaphragm, below the apices."""
    X, Y = grid.X, grid.Y
    apex = np.sqrt(np.clip((p.uapex - grid.u) / 75.0, 0.0, 1.0)).astype(np.float32)[:, None, None]
    # Near the apex each lung narrows to a dome; lower down it fills its half of the cavity.
    apex_shape = (((np.abs(X) - p.ac * 0.5) / np.maximum(p.ac * 0.8 * apex, 1e-3)) ** 2
                  + ((Y - p.yc - 10) / np.maximum(p.bc * 1.4 * apex, 1e-3)) ** 2 <= 1.0) | (apex >= 1.0)
    margin_heart = ellipsoid(grid, (p.xh, p.yh, p.uh), (p.hax + 6, p.hay + 6, p.hau + 6), p.hangle)
    band = np.broadcast_to(np.abs(X) < 5.0 + 12.0 * (Y > p.yc - 0.2 * p.bc), grid.shape)
    airway_block = tubes(grid, _trachea_segments(p), radius_offset=10.0)
    lung = cavity & apex_shape & ~band & ~spine_block & ~margin_heart & ~airway_block
    lung &= ~tubes(grid, vessels, radius_offset=4.0)
    lung &= _diaphragm(grid, p, lift_mm=4.0)
    return lung & ~heart


def _diaphragm(grid: Grid, p, lift_mm: float = 0.0) -> np.ndarray:
    """True above the two diaphragm domes (paraboloids peaking at ``udr`` right, ``udl`` left)."""
    X, Y = grid.X, grid.Y
    right = p.udr - ((X + 55) ** 2 + (Y - p.yc) ** 2) / 170.0
    left = p.udl - ((X - 55) ** 2 + (Y - p.yc) ** 2) / 170.0
    return grid.U > np.maximum(right, left) + np.float32(lift_mm)


def _paint_heart(tissue: np.ndarray, grid: Grid, p, heart: np.ndarray) -> None:
    paint(tissue, heart, Tissue.BLOOD)
    c, s = np.cos(p.hangle), np.sin(p.hangle)
    shift = np.array([0.35 * p.hax * c, 0.35 * p.hax * s, -8.0])  # LV towards the apex of the heart
    centre = np.array([p.xh, p.yh, p.uh]) + shift
    lv = ellipsoid(grid, centre, (p.hax * 0.6, p.hay * 0.62, p.hau * 0.72), p.hangle)
    cavity = ellipsoid(grid, centre, (p.hax * 0.6 - 11, p.hay * 0.62 - 11, p.hau * 0.72 - 11), p.hangle)
    paint(tissue, lv & ~cavity, Tissue.MYOCARDIUM, heart)


def _paint_lung_vessels(tissue: np.ndarray, grid: Grid, p, rng, lung: np.ndarray) -> None:
    """Pulmonary arterial and venous trees from the hila, thinning towards the periphery."""
    inside = lookup(grid, lung)
    segments: list[tuple] = []
    for side, hilum_u in ((1, p.ucar - 16), (-1, p.ucar - 26)):
        hilum = np.array([side * 55.0, p.yc + 2, hilum_u])
        arteries = ((side * 0.5, 0.1, 1.0), (side * 1.0, -0.6, 0.2), (side * 1.0, 0.2, -0.3),
                    (side * 0.6, 0.6, -1.0), (side * 0.3, -0.5, -1.0))
        for direction in arteries:
            segments += branching_tree(rng, hilum, direction, rng.uniform(26, 34), 5.0, inside, max_generations=9)
        veins = np.array([side * 38.0, p.yh + 0.5 * p.hay, p.uh + 8])
        for direction in ((side * 1.0, 0.3, 0.5), (side * 0.8, 0.5, -0.6), (side * 1.0, -0.4, -0.2)):
            segments += branching_tree(rng, veins, direction, rng.uniform(30, 38), 4.5, inside, max_generations=9)
    paint(tissue, tubes(grid, segments), Tissue.LUNG_VESSEL, tissue == Tissue.LUNG)


def _trachea_segments(p) -> list[tuple]:
    ytr = p.yvb - 46.0
    carina = (0.0, ytr + 6, p.ucar)
    return (polyline([(0.0, ytr, LUNG_EXTENT_MM + 10), carina], 9.0)
            + polyline([carina, (-42.0, ytr + 16, p.ucar - 22)], [7.0, 6.0])
            + polyline([carina, (45.0, ytr + 20, p.ucar - 36)], [6.5, 5.5]))


def _paint_airways(tissue: np.ndarray, grid: Grid, p, rng, lung: np.ndarray) -> None:
    """Trachea, main bronchi and a few generations of lobar bronchi (air lumen, thin wall)."""
    ytr = p.yvb - 46.0
    inside = lookup(grid, lung)
    segments = _trachea_segments(p)
    for end, side in (((-42.0, ytr + 16, p.ucar - 22), -1), ((45.0, ytr + 20, p.ucar - 36), 1)):
        for direction in ((side * 0.4, 0.2, 1.0), (side * 1.0, 0.0, -0.3), (side * 0.4, 0.6, -1.0)):
            segments += branching_tree(rng, end, direction, rng.uniform(18, 25), 4.0, inside,
                                       min_radius_mm=1.2, max_generations=4, shrink=0.72)
    soft_or_lung = (Tissue.LUNG, Tissue.FAT, Tissue.LUNG_VESSEL, Tissue.MUSCLE, Tissue.SKIN)
    paint_codes(tissue, tubes(grid, segments, radius_offset=1.5), Tissue.AIRWAY_WALL, soft_or_lung)
    paint_codes(tissue, tubes(grid, segments), Tissue.AIRWAY, (Tissue.AIRWAY_WALL,))


def _paint_ribs_and_sternum(tissue: np.ndarray, grid: Grid, p) -> None:
    """Twelve pairs of ribs descending from the spine round to the costal cartilages; sternum."""
    ribs, cartilage = [], []
    for i in range(12):
        u_post = p.uapex - 8.0 - 21.0 * i
        if u_post < -20:
            break
        scale = 0.55 + 0.45 * min(1.0, (i + 1) / 3.0)              # upper ribs are shorter
        drop = 55.0 + 3.0 * i
        for side in (-1, 1):
            phi = np.linspace(0.42, 2.55, 14)
            frac = (phi - phi[0]) / (phi[-1] - phi[0])
            u = u_post + 6 * np.sin(np.pi * frac) - drop * frac ** 1.4
            x = side * (p.ac * scale + 5) * np.sin(phi)
            y = p.yc + (p.bc + 5) * np.cos(phi) * (0.8 + 0.2 * scale)
            pts = np.stack([x, y, u], axis=1)
            ribs += polyline(pts, 5.0)
            cphi = np.linspace(2.55, 2.95, 4)
            cart = np.stack([side * (p.ac * scale + 5) * np.sin(cphi),
                             p.yc + (p.bc + 5) * np.cos(cphi) * (0.8 + 0.2 * scale),
                             np.full(4, u[-1]) + np.linspace(0, 8, 4)], axis=1)
            if i < 10:
                cartilage += polyline(cart, 4.5)
    paint(tissue, tubes(grid, ribs), Tissue.CORTICAL_BONE)
    paint(tissue, tubes(grid, ribs, radius_offset=-2.2), Tissue.CANCELLOUS_BONE)
    paint_codes(tissue, tubes(grid, cartilage), Tissue.CARTILAGE, (Tissue.MUSCLE, Tissue.FAT, Tissue.LUNG))
    ys = p.yc - p.bc - 3.0

    def sternum_extent(u):
        return np.where((u > p.uh - 40) & (u < p.uapex - 25), 1.0, 0.0)

    paint(tissue, ellipse_stack(grid, 0.0, ys, lambda u: 17 * sternum_extent(u), 6.5), Tissue.CORTICAL_BONE)
    paint(tissue, ellipse_stack(grid, 0.0, ys, lambda u: 15 * sternum_extent(u), 4.5), Tissue.CANCELLOUS_BONE)


def _paint_spine(tissue: np.ndarray, grid: Grid, p) -> None:
    """Thoracic vertebrae: bodies with cortical shell and discs, canal with cord, posterior arch."""
    u = grid.u
    yv = p.yvb + 5.0 * np.sin(np.pi * u / LUNG_EXTENT_MM)           # mild kyphosis
    canal_y = yv + 26.0
    disc = ((u - p.udr) % 24.0) < 5.0
    body = ellipse_stack(grid, 0.0, lambda _: yv, 19.0, 15.0)
    inner = ellipse_stack(grid, 0.0, lambda _: yv, 16.5, 12.5)
    paint(tissue, body, Tissue.CORTICAL_BONE)
    paint(tissue, inner, Tissue.CANCELLOUS_BONE)
    paint(tissue, body & disc[:, None, None], Tissue.DISC)
    arch = ellipse_stack(grid, 0.0, lambda _: canal_y, 15.0, 14.0)
    for dx, dy, a, b in ((0, 22, 4.5, 14), (-22, 2, 13, 5), (22, 2, 13, 5)):   # spinous, transverse
        arch |= ellipse_stack(grid, dx, lambda _: canal_y + dy, a, b)
    paint(tissue, arch, Tissue.CORTICAL_BONE)
    paint(tissue, ellipse_stack(grid, 0.0, lambda _: canal_y, 8.5, 8.0), Tissue.FAT)
    paint(tissue, ellipse_stack(grid, 0.0, lambda _: canal_y, 5.5, 5.0), Tissue.SPINAL_CORD)
