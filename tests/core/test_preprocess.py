"""Preprocessing: PET onto CT, windows, channel stacks, the 512 x 512 working grid, prepare_case."""

from __future__ import annotations

import numpy as np
import pytest

from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume, read_volume
from autopaint_app.core.presets import HEAD_NECK, LUNG
from autopaint_app.core.preprocess import (
    WorkingGrid,
    ct_to_unit,
    denormalise,
    normalise,
    pet_to_unit,
    prepare_case,
    resample_pet_to_ct,
    resample_to_reference,
    stack_channels,
    unit_to_ct,
    unit_to_pet,
)


@pytest.fixture(scope="module")
def sts001(shared_data):
    folder = shared_data / "sts_petct" / "STS_001"
    return {
        "ct": read_volume(folder / "CT_image.nii.gz"),
        "pet": read_volume(folder / "PET_image.nii.gz", as_float=True),
        "ct_mask": read_volume(folder / "CT_mask.nii.gz"),
        "pet_mask": read_volume(folder / "PET_mask.nii.gz"),
    }


def assert_same_geometry(a: Volume, b: Volume):
    assert a.shape == b.shape
    assert a.spacing == b.spacing and a.origin == b.origin and a.direction == b.direction


# --- resampling on real data ---------------------------------------------------------------------


def test_pet_onto_ct_grid_sts001(sts001):
    ct, pet = sts001["ct"], sts001["pet"]
    assert pet.shape == (59, 43, 41) and ct.shape == (59, 202, 198)
    on_ct = resample_pet_to_ct(pet, ct)
    assert_same_geometry(on_ct, ct)
    assert on_ct.array.dtype == np.float32
    assert on_ct.array.min() == 0.0  # B-spline ringing clipped
    assert on_ct.array.max() == pytest.approx(pet.array.max(), rel=0.15)
    # The hot spot stays in place: within one PET voxel in mm.
    pet_peak = pet.index_to_physical(np.array(np.unravel_index(np.argmax(pet.array), pet.shape)[::-1]))
    ct_peak = ct.index_to_physical(np.array(np.unravel_index(np.argmax(on_ct.array), ct.shape)[::-1]))
    assert np.all(np.abs(pet_peak - ct_peak) <= np.array(pet.spacing))


def test_bspline_without_clipping_rings_negative(sts001):
    """The reason for clipping: plain cubic B-spline leaves negative SUVs next to steep edges."""
    unclipped = resample_to_reference(sts001["pet"], sts001["ct"], order=3)
    assert unclipped.array.min() < -0.01
    assert sts001["pet"].array.min() >= 0.0


def test_label_nearest_neighbour_keeps_values(sts001):
    on_ct = resample_to_reference(sts001["pet_mask"], sts001["ct"], order=0)
    assert_same_geometry(on_ct, sts001["ct"])
    assert on_ct.array.dtype == sts001["pet_mask"].array.dtype
    assert set(np.unique(on_ct.array).tolist()) == {0, 1}
    # Same contour voxelised on the two grids: volumes agree within a few % (README: about 2 %).
    ct_mask = sts001["ct_mask"].array.astype(bool)
    assert int(on_ct.array.sum()) == pytest.approx(int(ct_mask.sum()), rel=0.05)
    # ... and overlap voxel by voxel (Dice measured 0.967): the geometry is right, not just the count.
    resampled = on_ct.array.astype(bool)
    dice = 2 * np.count_nonzero(resampled & ct_mask) / (resampled.sum() + ct_mask.sum())
    assert dice > 0.95


def test_non_overlapping_volumes_raise(sts001):
    pet = sts001["pet"]
    far = Volume(pet.array, pet.spacing, (pet.origin[0] + 5000.0, pet.origin[1], pet.origin[2]),
                 pet.direction, "far_pet.nii.gz")
    with pytest.raises(InputError, match="far_pet.nii.gz: does not overlap the reference volume"):
        resample_pet_to_ct(far, sts001["ct"])
    with pytest.raises(ValueError, match="interpolation order"):
        resample_to_reference(pet, sts001["ct"], order=2)


# --- windows -------------------------------------------------------------------------------------


def test_normalise_by_hand():
    hu = np.array([-1100.0, -1000.0, -250.0, 500.0, 700.0])
    np.testing.assert_array_equal(ct_to_unit(hu, LUNG), np.array([0, 0, 0.5, 1, 1], np.float32))
    np.testing.assert_array_equal(ct_to_unit(np.array([-300.0, -200, 0, 100, 200]), HEAD_NECK),
                                  np.array([0, 0, 0.5, 0.75, 1], np.float32))
    unit = pet_to_unit(np.array([-1.0, 0.0, 3.0, 12.0, 20.0]), LUNG)
    assert unit.dtype == np.float32
    np.testing.assert_array_equal(unit, np.array([0, 0, 0.25, 1, 1], np.float32))
    assert normalise(np.int16([10, 30]), (10, 30)).tolist() == [0.0, 1.0]


def test_inverse_returns_physical_units_inside_window():
    hu = np.array([[-1000.0, -512.5, 0.0, 500.0]])
    np.testing.assert_allclose(unit_to_ct(ct_to_unit(hu, LUNG), LUNG), hu, atol=1e-3)
    suv = np.array([0.0, 2.5, 11.9])
    np.testing.assert_allclose(unit_to_pet(pet_to_unit(suv, LUNG), LUNG), suv, atol=1e-5)
    assert unit_to_pet(np.array([1.0]), LUNG)[0] == 12.0  # SUV 20 came back clamped at 12
    assert denormalise(np.array([0.5]), (-200, 200))[0] == 0.0
    with pytest.raises(ValueError, match="window low must be below high"):
        normalise(hu, (500, -1000))


# --- channel stacks ------------------------------------------------------------------------------


def test_stack_channels_order_and_shape():
    ct = np.full((3, 4, 5), 0.25, np.float32)
    pet = np.full((3, 4, 5), 0.75, np.float32)
    both = stack_channels(ct, pet, "petct")
    assert both.shape == (3, 2, 4, 5) and both.dtype == np.float32
    assert np.all(both[:, 0] == 0.25) and np.all(both[:, 1] == 0.75)  # ("ct", "pet")
    assert stack_channels(ct, pet, "ct").shape == (3, 1, 4, 5)
    assert np.all(stack_channels(None, pet, "pet")[:, 0] == 0.75)


def test_stack_channels_errors():
    ct = np.zeros((3, 4, 5), np.float32)
    with pytest.raises(ValueError, match="modality 'petct' needs the pet channel"):
        stack_channels(ct, None, "petct")
    with pytest.raises(ValueError, match="modality 'pet' needs the pet channel"):
        stack_channels(ct, None, "pet")
    with pytest.raises(ValueError, match="unknown modality 'mri'"):
        stack_channels(ct, ct, "mri")
    with pytest.raises(ValueError, match="one shape"):
        stack_channels(ct, np.zeros((3, 4, 6)), "petct")


# --- working grid --------------------------------------------------------------------------------


def make_volume(shape_zyx, spacing, origin=(-120.3, 45.7, -300.0), direction=None, dtype=np.float32, seed=0):
    array = np.random.default_rng(seed).normal(size=shape_zyx).astype(dtype)
    return Volume(array, spacing, origin, direction or (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))


@pytest.mark.parametrize("order", [0, 1, 3])
def test_square_512_case_is_bit_exact_identity(order):
    case = make_volume((3, 512, 512), (0.7031249, 0.7031249, 2.5))
    grid = WorkingGrid.for_volume(case)
    assert grid.is_identity and grid.pixel_size_mm == case.spacing[0]
    working = grid.to_working(case, order=order)
    assert_same_geometry(working, case)
    assert np.array_equal(working.array, case.array)
    back = grid.from_working(working, order=order)
    assert_same_geometry(back, case)
    assert np.array_equal(back.array, case.array)


def test_real_512_ct_is_identity(shared_data):
    ct = read_volume(shared_data / "lung_ct" / "lung1_image.nrrd")
    grid = WorkingGrid.for_volume(ct)
    assert grid.is_identity and grid.origin == ct.origin
    assert np.array_equal(grid.to_working(ct, order=3).array, ct.array)
    assert grid.mm(27) == pytest.approx(27 * 0.5703, rel=1e-4)


def test_256_mask_round_trip_at_twice_the_scale_is_exact():
    rng = np.random.default_rng(3)
    mask = (rng.random((2, 256, 256)) > 0.7).astype(np.uint8)
    case = Volume(mask, (2.0, 2.0, 3.0), (-180.0, -170.0, 10.0))
    grid = WorkingGrid.for_volume(case)
    assert grid.pixel_size_mm == 1.0 and grid.shape == (2, 512, 512) and not grid.is_padding
    working = grid.to_working(case, order=0)
    assert working.array.dtype == np.uint8
    # Every case pixel becomes a 2 x 2 block of working pixels.
    assert np.array_equal(working.array, np.kron(mask, np.ones((1, 2, 2), np.uint8)))
    back = grid.from_working(working.array, order=0)
    assert_same_geometry(back, case)
    assert np.array_equal(back.array, mask)


@pytest.mark.parametrize("direction", [None, (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)])
def test_anisotropic_300x200_keeps_physical_positions(direction):
    case = make_volume((3, 200, 300), (1.0, 1.5, 2.0), direction=direction)
    array = np.zeros(case.shape, np.float32)
    array[1, 37, 211] = 100.0  # (z, y, x)
    case = case.with_array(array)
    grid = WorkingGrid.for_volume(case)
    assert grid.pixel_size_mm == 500.0 / 512 and grid.shape == (3, 512, 512) and not grid.is_padding
    working = grid.to_working(case, order=0)
    position_mm = case.index_to_physical(np.array([211.0, 37.0, 1.0]))
    # The working pixel containing that position is bright (index from the inverse of index_to_physical).
    w_direction = np.asarray(working.direction).reshape(3, 3)
    w_index = np.linalg.solve(w_direction, position_mm - np.asarray(working.origin)) / np.asarray(working.spacing)
    wx, wy, wz = np.round(w_index).astype(int)
    assert wz == 1 and working.array[wz, wy, wx] == 100.0
    # The bright block is centred on that position within half a case pixel.
    z, y, x = np.nonzero(working.array)
    centroid_mm = working.index_to_physical(np.stack([x, y, z], axis=1).mean(axis=0))
    assert np.all(np.abs(centroid_mm - position_mm) <= 0.5 * np.array(case.spacing))
    back = grid.from_working(working, order=0)
    assert_same_geometry(back, case)
    assert np.array_equal(back.array, array)


def test_working_grid_centres_fov_when_resampling():
    case = Volume(np.ones((1, 200, 300), np.float32), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    grid = WorkingGrid.for_volume(case)
    assert grid.pixel_size_mm == pytest.approx(600.0 / 512) and not grid.is_padding
    working = grid.to_working(case, order=1, default=-5.0)
    # Field-of-view centres coincide: case (299, 199) mm, working index (255.5, 255.5).
    centre = working.index_to_physical(np.array([255.5, 255.5, 0.0]))
    np.testing.assert_allclose(centre, [299.0, 199.0, 0.0], atol=1e-9)
    # y covers 400 of 600 mm: about 512 / 6 rows of padding on each side.
    column = working.array[0, :, 256]
    assert np.all(column[:80] == -5.0) and np.all(column[-80:] == -5.0) and np.all(column[90:-90] == 1.0)


@pytest.mark.parametrize("shape_yx", [(202, 198), (143, 161), (77, 300)])
def test_cropped_case_is_padded_not_stretched_and_round_trips_exactly(shape_yx):
    """A cropped FOV keeps its native pixels (the paper's pixel radii stay ~1 mm pixels)."""
    ny, nx = shape_yx
    case = make_volume((2, ny, nx), (0.9765625, 0.9765625, 3.27), origin=(-50.0, 20.0, 5.0))
    grid = WorkingGrid.for_volume(case)
    assert grid.is_padding and grid.pixel_size_mm == 0.9765625 and grid.mm(27) == pytest.approx(26.37, abs=0.01)
    ox, oy = grid.pad_offset
    assert (ox, oy) == ((512 - nx) // 2, (512 - ny) // 2)
    working = grid.to_working(case, order=3, default=0.0)
    assert np.array_equal(working.array[:, oy:oy + ny, ox:ox + nx], case.array)
    assert np.count_nonzero(working.array) == np.count_nonzero(case.array)
    # Working pixel (ox + i, oy + j) is at the same mm position as case voxel (i, j).
    np.testing.assert_allclose(working.index_to_physical(np.array([ox + 5.0, oy + 7.0, 1.0])),
                               case.index_to_physical(np.array([5.0, 7.0, 1.0])), atol=1e-9)
    back = grid.from_working(working, order=3)
    assert_same_geometry(back, case)
    assert np.array_equal(back.array, case.array)


def test_pet_only_grid_is_upsampled_to_about_a_millimetre():
    pet = make_volume((2, 144, 144), (4.0, 4.0, 4.0))
    grid = WorkingGrid.for_volume(pet)
    assert grid.pixel_size_mm == pytest.approx(576.0 / 512) and not grid.is_padding


def test_working_grid_rejects_other_grids():
    case = make_volume((2, 100, 100), (1.0, 1.0, 1.0))
    grid = WorkingGrid.for_volume(case)
    with pytest.raises(ValueError, match="differs from the case grid"):
        grid.to_working(np.zeros((2, 100, 99)))
    with pytest.raises(ValueError, match="not on this working grid's case grid"):
        grid.to_working(make_volume((2, 100, 100), (1.0, 1.0, 2.0)))
    with pytest.raises(ValueError, match="differs from the working grid"):
        grid.from_working(np.zeros((2, 100, 100)))


# --- prepare_case --------------------------------------------------------------------------------


def test_prepare_case_petct_sts001(sts001):
    prepared = prepare_case(sts001["ct"], sts001["pet"], LUNG, "petct")
    assert prepared.channels.shape == (59, 2, 512, 512) and prepared.channels.dtype == np.float32
    assert prepared.channels.min() >= 0.0 and prepared.channels.max() <= 1.0
    assert_same_geometry(prepared.suv, sts001["ct"])
    assert prepared.reference is sts001["ct"]
    # Channel 1 is PET: its peak sits where the SUV peak is, mapped back to the CT grid.
    pet_back = prepared.grid.from_working(prepared.channels[:, 1], order=1)
    peak = np.unravel_index(np.argmax(pet_back.array), pet_back.shape)
    assert prepared.suv.array[peak] >= 0.9 * min(prepared.suv.array.max(), 12.0)


def test_prepare_case_identity_grid_values_exact():
    ct = Volume(np.linspace(-1200, 800, 2 * 512 * 512, dtype=np.float32).reshape(2, 512, 512),
                (0.8, 0.8, 3.0), (0.0, 0.0, 0.0))
    prepared = prepare_case(ct, None, HEAD_NECK, "ct")
    assert prepared.channels.shape == (2, 1, 512, 512)
    assert np.array_equal(prepared.channels[:, 0], ct_to_unit(ct.array, HEAD_NECK))


def test_prepare_case_pet_only_and_errors(sts001):
    prepared = prepare_case(None, sts001["pet"], LUNG, "pet")
    assert prepared.reference is sts001["pet"] and prepared.channels.shape == (59, 1, 512, 512)
    with pytest.raises(InputError, match="modality petct needs a PET volume; none was given"):
        prepare_case(sts001["ct"], None, LUNG, "petct")
    with pytest.raises(InputError, match="modality petct needs a CT and a PET volume"):
        prepare_case(None, None, LUNG, "petct")
    with pytest.raises(InputError, match="unknown modality 'spect'"):
        prepare_case(sts001["ct"], None, LUNG, "spect")
