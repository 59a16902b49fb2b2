"""Clinical PET threshold baselines on hand-made SUV arrays."""

from __future__ import annotations

import numpy as np
import pytest

from autopaint_app.core.baselines import (
    CLI_BASELINES, percent_suvmax, percent_suvmax_per_lesion, suv_threshold,
)


def _case():
    """One axial slice, 1x5x8: a hot lesion (max 10), a mild lesion (max 5), a hotter voxel outside the OOI."""
    suv = np.array([[
        [10.0, 5.0, 4.0, 3.0, 0.5, 5.0, 3.0, 2.6],
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 2.4],
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        [2.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 99.0],
    ]])
    ooi = np.ones_like(suv, bool)
    ooi[0, 4, 7] = False  # the 99 (say, the bladder) lies outside the organ of interest
    return suv, ooi


def _voxels(mask):
    return sorted(tuple(int(i) for i in index[1:]) for index in np.argwhere(mask))


def test_suv_threshold_is_inclusive_and_confined_to_the_ooi():
    suv, ooi = _case()
    mask = suv_threshold(suv, ooi)
    assert mask.dtype == bool and mask.shape == suv.shape
    # 2.5 is in, 2.4 is out, 99 is outside the OOI.
    assert _voxels(mask) == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 5), (0, 6), (0, 7), (3, 0)]
    assert _voxels(suv_threshold(suv, ooi, threshold=4.0)) == [(0, 0), (0, 1), (0, 2), (0, 5)]


def test_percent_suvmax_uses_the_global_max_inside_the_ooi():
    suv, ooi = _case()
    # SUVmax inside the OOI is 10 (the 99 is outside): cut-off 4.1; 4.0 falls just below it.
    assert _voxels(percent_suvmax(suv, ooi)) == [(0, 0), (0, 1), (0, 5)]
    assert _voxels(percent_suvmax(suv, ooi, fraction=0.5)) == [(0, 0), (0, 1), (0, 5)]
    # fraction 0.25 -> cut-off 2.5: the same voxels as SUV >= 2.5.
    np.testing.assert_array_equal(percent_suvmax(suv, ooi, fraction=0.25), suv_threshold(suv, ooi))


def test_percent_suvmax_per_lesion_uses_each_components_own_max():
    suv, ooi = _case()
    mask = percent_suvmax_per_lesion(suv, ooi)
    # Lesion A = (0,0..3) max 10 -> cut 4.1 keeps 10, 5.  Lesion B = (0,5..7) max 5 -> cut 2.05 keeps
    # all three (the global variant loses 3.0 and 2.6).  The lone 2.5 voxel is its own lesion: kept.
    assert _voxels(mask) == [(0, 0), (0, 1), (0, 5), (0, 6), (0, 7), (3, 0)]
    assert not (mask & ~suv_threshold(suv, ooi)).any()  # never grows beyond SUV >= 2.5


def test_per_lesion_components_are_26_connected():
    suv = np.full((2, 3, 3), 0.5)
    suv[0, 0, 0], suv[1, 1, 1] = 10.0, 3.0  # touch only by a corner: one lesion, max 10, cut 4.1
    ooi = np.ones_like(suv, bool)
    assert _voxels(percent_suvmax_per_lesion(suv, ooi)) == [(0, 0)]
    suv[1, 1, 1], suv[1, 2, 2] = 0.5, 3.0  # now separate: its own max 3 keeps it
    assert np.argwhere(percent_suvmax_per_lesion(suv, ooi)).tolist() == [[0, 0, 0], [1, 2, 2]]


def test_per_lesion_with_no_voxel_above_2_5_is_empty():
    suv = np.full((1, 3, 3), 1.0)
    assert not percent_suvmax_per_lesion(suv, np.ones_like(suv, bool)).any()


def test_cli_baselines_are_named_callables():
    suv, ooi = _case()
    assert set(CLI_BASELINES) == {"suv_2.5", "suvmax_41pct_per_lesion"}
    np.testing.assert_array_equal(CLI_BASELINES["suvmax_41pct_per_lesion"](suv, ooi),
                                  percent_suvmax_per_lesion(suv, ooi))


@pytest.mark.parametrize("baseline", [suv_threshold, percent_suvmax, percent_suvmax_per_lesion])
def test_baselines_reject_bad_input(baseline):
    suv, ooi = _case()
    with pytest.raises(ValueError, match=r"shape mismatch \(suv, ooi\): \(1, 5, 8\) vs \(1, 5, 7\)"):
        baseline(suv, ooi[:, :, :7])
    with pytest.raises(ValueError, match="organ-of-interest mask is empty"):
        baseline(suv, np.zeros_like(ooi))
    suv[0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="1 NaN/Inf voxels"):
        baseline(suv, ooi)


def test_fraction_must_be_in_zero_one():
    suv, ooi = _case()
    for fraction in (0.0, 1.5):
        with pytest.raises(ValueError, match="fraction must be in"):
            percent_suvmax(suv, ooi, fraction=fraction)
        with pytest.raises(ValueError, match="fraction must be in"):
            percent_suvmax_per_lesion(suv, ooi, fraction=fraction)
