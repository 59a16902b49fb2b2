"""Per-slice overlays on the case grid and the export of a run's residual and inpainted volumes."""

from __future__ import annotations

import numpy as np
import pytest

from autopaint_app.core.autopaint import autopaint
from autopaint_app.core.autopaint_export import export_pipeline_volumes, pipeline_export_paths
from autopaint_app.core.autopaint_overlays import (CHOSEN_BIT, LEVEL_BITS, mask_levels, result_overlays,
                                                   working_slice_to_case, working_to_case_index)
from autopaint_app.core.errors import OutputExistsError
from autopaint_app.core.io import Volume, read_volume
from autopaint_app.core.preprocess import WorkingGrid
from tests.core.autopaint_fakes import CountingPredictor, disc_case, ring_mean_fill


def _grid(size_yx, spacing_xy, origin=(-120.0, 35.0, -10.0)):
    array = np.zeros((3,) + size_yx, dtype=np.float32)
    return WorkingGrid.for_volume(Volume(array, (*spacing_xy, 2.5), origin))


@pytest.mark.parametrize("size_yx, spacing_xy", [((256, 256), (1.6, 1.6)),      # resampled (demo case)
                                                 ((200, 150), (500 / 512, 500 / 512)),  # padded
                                                 ((96, 120), (3.9, 2.7))])       # anisotropic, resampled
def test_slice_mapping_matches_the_volume_mapping(size_yx, spacing_xy):
    grid = _grid(size_yx, spacing_xy)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=grid.shape).astype(np.uint8)
    labels = np.repeat(np.repeat(labels[:, ::8, ::8], 8, axis=1), 8, axis=2)  # blocks: no ties at edges
    whole = grid.from_working(labels, order=0).array
    for z in range(grid.shape[0]):
        assert np.array_equal(working_slice_to_case(grid, labels[z], order=0), whole[z])
    smooth = np.linspace(0, 1, grid.size * grid.size, dtype=np.float32).reshape(grid.size, grid.size)
    linear = grid.from_working(np.repeat(smooth[None], 3, axis=0), order=1).array[1]
    assert np.allclose(working_slice_to_case(grid, smooth, order=1), linear, atol=1e-5)


def test_working_centre_maps_to_the_case_centre_and_mm():
    grid = _grid((256, 256), (1.6, 1.6))
    centre = working_to_case_index(grid, [[255.5, 255.5]])[0]
    assert centre == pytest.approx([127.5, 127.5])
    step = working_to_case_index(grid, [[0, 0], [0, 10]])
    assert step[1, 1] - step[0, 1] == pytest.approx(10 * grid.pixel_size_mm / 1.6)
    padded = _grid((200, 150), (500 / 512, 500 / 512))
    ox, oy = padded.pad_offset
    assert working_to_case_index(padded, [[oy + 7, ox + 3]])[0] == pytest.approx([7, 3])


@pytest.fixture(scope="module")
def disc_run():
    prepared, ooi = disc_case(size=128, n_slices=3, discs=[(1, 64, 64, 12, 9.0)], noise=0.05)
    result = autopaint(prepared, ooi, CountingPredictor(ring_mean_fill))
    return prepared, result


def test_levels_encode_union_dilations_and_choice(disc_run):
    _, result = disc_run
    s = result.slices[1]
    assert s.has_candidates and s.chosen is not None
    widths = result.params.dilation_widths_px
    levels = mask_levels(s, widths)
    masks = s.masks(widths)
    for index, mask in enumerate(masks, start=1):
        assert np.array_equal(((levels & LEVEL_BITS) > 0) & ((levels & LEVEL_BITS) <= index), mask)
    assert np.array_equal((levels & CHOSEN_BIT) > 0, masks[s.chosen])


def test_overlays_of_a_run(disc_run):
    prepared, result = disc_run
    overlays = list(result_overlays(result))
    assert [o.z for o in overlays] == sorted(result.slices)
    hot = overlays[1]
    assert hot.levels.shape == (128, 128) and hot.residual.shape == (128, 128)
    assert hot.passes == result.slices[1].passes(result.params.size_level, result.params.min_tumour_radius_px)
    assert np.array_equal(hot.mask(result.params.threshold), result.mask()[1])  # padded grid: exact
    ring = hot.centres_yx[hot.candidates[0]]
    assert np.hypot(ring[0] - 64, ring[1] - 64) < result.params.circle_radius_px  # a candidate covers the disc
    assert hot.radius_mm == pytest.approx(27 * prepared.grid.pixel_size_mm)


def test_export_pipeline_volumes(disc_run, tmp_path):
    prepared, result = disc_run
    paths = export_pipeline_volumes(result, prepared, tmp_path, "disc")
    assert paths == pipeline_export_paths(tmp_path, "disc", ("pet",))
    reference = prepared.reference
    residual = read_volume(paths["residual"])
    assert (residual.spacing, residual.origin, residual.shape) == (reference.spacing, reference.origin, reference.shape)
    assert np.array_equal(residual.array, result.residual_volume().array)
    healed = read_volume(paths["inpainted_pet"]).array
    assert healed[1, 64, 64] < 3.0 < reference.array[1, 64, 64]  # the hot disc is inpainted away
    assert np.array_equal(healed[0], reference.array[0].astype(np.float32))  # untouched slice: original SUV
    with pytest.raises(OutputExistsError):
        export_pipeline_volumes(result, prepared, tmp_path, "disc")
    larger = export_pipeline_volumes(result, prepared, tmp_path, "disc", min_radius_px=60, overwrite=True)
    assert not read_volume(larger["residual"]).array.any()  # no blob that large: nothing kept
