"""Per-lesion statistics on hand-made masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from autopaint_app.core import metrics
from autopaint_app.core.lesions import LesionStats, lesion_table, sphere_offsets, suv_peak

SPACING_XYZ = (2.0, 2.0, 3.0)  # mm; one voxel = 12 mm³ = 0.012 ml


def _two_lesions():
    """A 2x2x2 cube (SUV 1..8) and three voxels touching only by edges/corners (SUV 3, 4, 5)."""
    mask = np.zeros((6, 8, 8), bool)
    suv = np.full((6, 8, 8), 0.5)
    mask[0:2, 0:2, 0:2] = True
    suv[0:2, 0:2, 0:2] = np.arange(1.0, 9.0).reshape(2, 2, 2)
    for (z, y, x), value in zip([(3, 5, 5), (4, 6, 6), (4, 7, 5)], (3.0, 4.0, 5.0)):
        mask[z, y, x] = True  # (3,5,5)-(4,6,6) share a corner, (4,6,6)-(4,7,5) an edge
        suv[z, y, x] = value
    return mask, suv


def test_two_lesions_with_26_connectivity_and_exact_values():
    mask, suv = _two_lesions()
    cube, chain = lesion_table(mask, suv, SPACING_XYZ)
    assert cube.voxels == 8 and chain.voxels == 3
    assert cube.volume_ml == pytest.approx(8 * 0.012, rel=1e-15)
    assert chain.volume_ml == pytest.approx(3 * 0.012, rel=1e-15)
    assert (cube.suv_max, cube.suv_mean) == (8.0, 4.5)
    assert (chain.suv_max, chain.suv_mean) == (5.0, 4.0)
    assert cube.tlg == pytest.approx(4.5 * 0.096, rel=1e-15)
    assert chain.tlg == pytest.approx(4.0 * 0.036, rel=1e-15)
    assert cube.z_range == (0, 1) and chain.z_range == (3, 4)
    assert cube.centroid_zyx == (0.5, 0.5, 0.5)
    assert chain.centroid_zyx == pytest.approx((11 / 3, 6.0, 16 / 3))
    assert cube.hottest_zyx == (1, 1, 1) and chain.hottest_zyx == (4, 7, 5)
    assert (cube.label, chain.label) == (1, 2)


def test_sphere_of_radius_6_2_mm_on_a_2_2_3_grid_has_73_voxels():
    # By hand: dz = 0 -> dy²+dx² <= 9: 29 points; dz = ±1 -> dy²+dx² <= 7: 21 each; dz = ±2 -> 1 each.
    offsets = sphere_offsets(6.2, SPACING_XYZ)
    assert len(offsets) == 29 + 2 * 21 + 2 * 1
    assert np.abs(offsets).max(axis=0).tolist() == [2, 3, 3]  # (z, y, x): 6 mm / 3 mm, 6 mm / 2 mm


def test_suv_peak_of_a_single_hot_voxel_and_of_a_uniform_region():
    suv = np.ones((11, 15, 15))
    suv[5, 7, 7] = 10.0
    assert suv_peak(suv, (5, 7, 7), SPACING_XYZ) == pytest.approx((10 + 72) / 73, rel=1e-15)
    uniform = np.full((11, 15, 15), 4.2)
    mask = np.zeros_like(uniform, bool)
    mask[4:7, 6:9, 6:9] = True
    (lesion,) = lesion_table(mask, uniform, SPACING_XYZ)
    assert lesion.suv_peak == pytest.approx(4.2, rel=1e-15)


def test_suv_peak_sphere_is_clipped_at_the_volume_edge():
    suv = np.ones((3, 4, 4))
    suv[0, 0, 0] = 9.0
    # Quarter of the dz = 0 disk (dy, dx >= 0, dy²+dx² <= 9): 11 voxels; dz = 1 (<= 7): 8; dz = 2: 1.
    assert suv_peak(suv, (0, 0, 0), SPACING_XYZ) == pytest.approx((9 + 19) / 20, rel=1e-15)


def test_lesion_table_without_suv_and_of_an_empty_mask():
    mask, _ = _two_lesions()
    table = lesion_table(mask, spacing_xyz=SPACING_XYZ)
    assert [lesion.voxels for lesion in table] == [8, 3]
    assert table[0].suv_max is None and table[0].tlg is None and table[0].suv_peak is None
    assert lesion_table(np.zeros((2, 3, 3), bool), spacing_xyz=SPACING_XYZ) == []
    assert metrics.lesion_table is lesion_table and metrics.LesionStats is LesionStats


def test_lesion_table_rejects_bad_input():
    mask, suv = _two_lesions()
    with pytest.raises(ValueError, match=r"\(6, 8, 8\) vs \(6, 8, 7\)"):
        lesion_table(mask, suv[:, :, :7], SPACING_XYZ)
    suv[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lesion_table(mask, suv, SPACING_XYZ)
    with pytest.raises(ValueError, match="3-D"):
        lesion_table(mask[0], spacing_xyz=SPACING_XYZ)
    with pytest.raises(ValueError, match="positive"):
        lesion_table(mask, spacing_xyz=(2.0, 0.0, 3.0))
