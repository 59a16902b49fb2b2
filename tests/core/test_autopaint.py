"""The autoinpainting pipeline end to end with fake predictors (core/autopaint.py and friends).

Fakes (tests/core/autopaint_fakes.py): ``healing_fill`` replaces bright pixels under the hole by the
background (a perfect "healthy" inpainter that knows nothing but a level), ``ring_mean_fill`` fills a
hole with the mean of the ring around it (a non-learned, local inpainter).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from autopaint_app.core import autopaint as autopaint_module
from autopaint_app.core import metrics
from autopaint_app.core.autopaint import PipelineParams, autopaint, run_autopaint
from autopaint_app.core.errors import InputError
from autopaint_app.core.inpaint_model import InpaintModel
from autopaint_app.core.ooi import compute_ooi
from autopaint_app.core.phantom import make_phantom
from autopaint_app.core.preprocess import prepare_case, resample_pet_to_ct
from autopaint_app.core.presets import LUNG
from tests.core.autopaint_fakes import CountingPredictor, disc_case, healing_fill, ring_mean_fill
from tests.core.tiny_onnx import build_model, write_card

BACKGROUND = 1.2 / 12     # the disc cases' background SUV 1.2 in the [0, 12] window
HOT = 8.0 / 12            # their discs' SUV 8


def _disc_label(size, n_slices, discs):
    label = np.zeros((n_slices, size, size), dtype=bool)
    yy, xx = np.mgrid[:size, :size]
    for z, y, x, r, _ in discs:
        label[z] |= (yy - y) ** 2 + (xx - x) ** 2 <= r * r
    return label


def _healer():
    return CountingPredictor(healing_fill(0.3, BACKGROUND))


def test_a_small_blob_is_found_and_the_union_is_kept():
    discs = [(0, 64, 60, 10, 8.0)]
    prepared, ooi = disc_case(128, 1, discs)
    result = autopaint(prepared, ooi, _healer())
    s = result.slices[0]
    assert 1 <= s.candidates.size <= 3
    disc_working = np.pad(_disc_label(128, 1, discs)[0], 192)          # the case sits at (192, 192)
    for index in s.candidates:                                           # every candidate covers the blob
        assert (s.circle_mask(index, 27) & disc_working).sum() > 0.9 * disc_working.sum()
    assert s.chosen == 0
    np.testing.assert_array_equal(result.mask(), _disc_label(128, 1, discs))
    assert result.residual_volume().array.max() == pytest.approx(HOT - BACKGROUND, abs=1e-6)
    healed = result.inpainted_working()[0, 0]
    np.testing.assert_allclose(healed[disc_working], BACKGROUND, atol=1e-7)


def test_a_large_blob_takes_the_first_dilation_that_covers_it():
    discs = [(0, 128, 120, 34, 8.0)]
    prepared, ooi = disc_case(256, 1, discs)
    result = autopaint(prepared, ooi, _healer())
    s = result.slices[0]
    disc_working = np.pad(_disc_label(256, 1, discs)[0], 128)
    coverage = [(m & disc_working).sum() / disc_working.sum() for m in s.masks(result.params.dilation_widths_px)]
    assert coverage[0] < 0.95                     # the union alone misses the rim
    # The walk goes on while a ring adds tumour and stops once the disc is covered but for a pixel
    # or two, whose healing adds less per ring pixel than the tolerance (2 x noise level 0.005).
    assert s.chosen > 0 and coverage[s.chosen] > 0.999 and coverage[s.chosen - 1] < coverage[s.chosen] - 0.001
    assert coverage[-1] - coverage[s.chosen] < 0.001
    assert metrics.dice(result.mask(), _disc_label(256, 1, discs)) > 0.999


def test_the_minimum_size_criterion_drops_a_tiny_blob_and_re_thresholding_needs_no_inference():
    discs = [(0, 64, 60, 4, 8.0)]                 # radius 4 < the lung's minimum 7
    prepared, ooi = disc_case(128, 1, discs)
    predictor = _healer()
    result = autopaint(prepared, ooi, predictor)
    s = result.slices[0]
    assert s.has_candidates and s.residual.max() > 0.5
    assert result.kept_slices() == [] and not result.mask().any()
    assert not result.residual_volume().array.any()
    np.testing.assert_array_equal(result.inpainted_working(), prepared.channels)   # output = input
    calls = predictor.calls
    np.testing.assert_array_equal(result.mask(min_radius_px=4), _disc_label(128, 1, discs))
    assert not result.mask(threshold=0.6, min_radius_px=4).any()                    # 0.567 < 0.6
    assert predictor.calls == calls


def test_a_healthy_slice_has_no_candidates_and_costs_only_its_circles():
    discs = [(1, 64, 60, 10, 8.0)]
    prepared, ooi = disc_case(128, 2, discs, noise=0.02)
    predictor = _healer()
    result = autopaint(prepared, ooi, predictor)
    healthy, sick = result.slices[0], result.slices[1]
    assert not healthy.has_candidates and healthy.chosen is None and healthy.residual is None
    assert sick.has_candidates
    assert predictor.items == len(healthy.centres) + len(sick.centres) + 6   # circles + union + 5 dilations
    np.testing.assert_array_equal(result.inpainted_working()[0], prepared.channels[0])
    assert result.kept_slices() == [1]


def test_progress_reports_every_stage_and_ends_with_the_result():
    prepared, ooi = disc_case(128, 2, [(1, 64, 60, 10, 8.0)])
    items = list(run_autopaint(prepared, ooi, _healer()))
    stages = [p.stage for p in items]
    assert {"circles", "masks", "slice"} <= set(stages) and stages[-1] == "done"
    assert [p.slices_done for p in items] == sorted(p.slices_done for p in items)
    assert items[-1].fraction == 1.0 and items[-1].result is not None and items[-2].result is None
    assert items[-1].holes_inpainted == sum(len(s.centres) for s in items[-1].result.slices.values()) + 6


def test_stopping_iteration_cancels_cleanly_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prepared, ooi = disc_case(128, 3, [(1, 64, 60, 10, 8.0)])
    predictor = _healer()
    run = run_autopaint(prepared, ooi, predictor)
    for _ in range(4):
        progress = next(run)
    assert progress.stage == "circles" and progress.slices_done < 3
    calls = predictor.calls
    run.close()                                   # what a GUI worker does on quit()
    assert predictor.calls == calls
    with pytest.raises(StopIteration):
        next(run)
    assert list(tmp_path.iterdir()) == []


def test_a_cancel_token_ends_the_run_without_a_result():
    prepared, ooi = disc_case(128, 3, [(1, 64, 60, 10, 8.0)])
    predictor = _healer()
    polls, calls_at_stop = iter(range(100)), []

    def should_stop():
        if next(polls) < 5:
            return False
        calls_at_stop.append(predictor.calls)
        return True

    run = run_autopaint(prepared, ooi, predictor, should_stop=should_stop)
    items = []
    with pytest.raises(StopIteration) as stop:
        while True:
            items.append(next(run))
    assert stop.value.value is None and all(p.result is None for p in items)
    assert calls_at_stop == [predictor.calls]          # asked once, and no inpainting after the stop
    assert 5 <= len(items) < 10 and items[-1].slices_done < 3


def test_fast_and_reference_modes_take_the_same_decisions():
    discs = [(0, 50, 45, 9, 7.0), (1, 70, 75, 18, 9.0)]
    prepared, ooi = disc_case(128, 2, discs, noise=0.1, seed=3)
    fast_predictor, reference_predictor = CountingPredictor(ring_mean_fill), CountingPredictor(ring_mean_fill)
    # exhaustive search on 128-px crops: circle by circle the same as reference
    exhaustive = PipelineParams(mode="fast", circle_search="exhaustive", volume_outlier_k=0.0)  # per-slice rule:
    # both slices have a tumour
    fast = autopaint(prepared, ooi, fast_predictor, exhaustive)
    reference = autopaint(prepared, ooi, reference_predictor, PipelineParams(mode="reference", volume_outlier_k=0.0))
    for z in (0, 1):
        f, r = fast.slices[z], reference.slices[z]
        np.testing.assert_array_equal(f.centres, r.centres)
        np.testing.assert_allclose(f.scores, r.scores, atol=1e-4)
        np.testing.assert_array_equal(f.candidates, r.candidates)
        assert f.chosen == r.chosen is not None
    assert metrics.dice(fast.mask(), reference.mask()) >= 0.95
    assert metrics.dice(fast.mask(), _disc_label(128, 2, discs)) > 0.9
    # reference: one whole slice per pass; fast: batches of 128-pixel crops (96 + 32, on the grid)
    assert reference_predictor.calls == reference_predictor.items
    assert {s[2:] for s in reference_predictor.shapes} == {(512, 512)}
    assert fast_predictor.calls < fast_predictor.items / 4
    assert max(s[0] for s in fast_predictor.shapes) == 8 and (128, 128) in {s[2:] for s in fast_predictor.shapes}
    # the 4 r rule (crop_context_ratio 1.0: 128 + 32 px aligned crops) keeps the same circles and mask
    default_predictor = CountingPredictor(ring_mean_fill)
    default = autopaint(prepared, ooi, default_predictor,
                        PipelineParams(crop_context_ratio=1.0, circle_search="exhaustive", volume_outlier_k=0.0))
    for z in (0, 1):
        d, r = default.slices[z], reference.slices[z]
        np.testing.assert_array_equal(d.centres[d.candidates], r.centres[r.candidates])
        assert d.chosen == r.chosen
    assert metrics.dice(default.mask(), reference.mask()) >= 0.95
    assert default_predictor.items == fast_predictor.items and (160, 160) in {s[2:] for s in default_predictor.shapes}


@pytest.fixture(scope="module")
def lung_phantom():
    phantom = make_phantom("lung", 0, in_plane=128, n_slices=6, slice_mm=5.0)
    suv = resample_pet_to_ct(phantom.pet, phantom.ct)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # a thin slab may warn about the lung size
        ooi = compute_ooi("lung", phantom.ct, suv)
    return phantom, ooi


def test_end_to_end_on_a_pet_phantom_finds_the_hot_tumours(lung_phantom):
    phantom, ooi = lung_phantom
    prepared = prepare_case(phantom.ct, phantom.pet, LUNG, "pet")
    assert not prepared.grid.is_padding                  # 3.9 mm pixels, resampled to ~1 mm and back
    result = autopaint(prepared, ooi, CountingPredictor(ring_mean_fill))
    truth = phantom.label.array > 0
    mask = result.mask()
    assert mask.shape == phantom.ct.shape
    assert metrics.dice(mask, truth) > 0.5 and metrics.recall(mask, truth) > 0.6
    residual = result.residual_volume()
    assert residual.same_grid(phantom.ct, tolerance_mm=1e-9)
    assert metrics.best_per_subject(metrics.sweep(residual.array, truth)).dice > 0.7
    pet = result.inpainted_volumes(physical=True)["pet"]
    assert pet.same_grid(phantom.ct, tolerance_mm=1e-9)
    assert pet.array[truth].mean() < 0.5 * prepared.suv.array[truth].mean()     # the tumours were healed
    json.dumps(result.summary())


def test_an_onnx_model_is_a_predictor_and_its_channels_must_match(tmp_path):
    build_model(tmp_path / "pet.onnx", channels=1)
    write_card(tmp_path / "pet.json", channels=["pet"])
    model = InpaintModel.load(tmp_path / "pet.onnx", threads=1)
    prepared, ooi = disc_case(128, 1, [(0, 64, 60, 10, 8.0)])
    run = list(run_autopaint(prepared, ooi, model))
    s = run[-1].result.slices[0]
    # This model fills every hole with ~0.5, so healthy circles change most: no real test of quality,
    # but the whole run goes through ONNX Runtime (padding, batching) and every circle is scored.
    assert len(s.centres) > 0 and np.isfinite(s.scores).all() and s.intensity.min() > 0.1
    assert run[-1].holes_inpainted >= len(s.centres)
    build_model(tmp_path / "petct.onnx", channels=2)
    write_card(tmp_path / "petct.json")
    with pytest.raises(InputError, match=r"takes channels \['ct', 'pet'\] but the case was prepared for modality pet"):
        next(run_autopaint(prepared, ooi, InpaintModel.load(tmp_path / "petct.onnx")))


def test_bad_ooi_and_slices():
    prepared, ooi = disc_case(64, 2, [])
    with pytest.raises(InputError, match="OOI shape"):
        next(run_autopaint(prepared, ooi[:1], _healer()))
    with pytest.raises(ValueError, match="slice indices"):
        next(run_autopaint(prepared, ooi, _healer(), slices=[5]))
    only = autopaint(prepared, ooi, _healer(), slices=[1])
    assert list(only.slices) == [1]


def test_the_volume_rule_drops_the_per_slice_outliers_of_healthy_slices_and_keeps_the_tumour(monkeypatch):
    # Each healthy slice has a mild hot spot (physiological uptake, ~4.7 robust SDs) that stands out
    # from its own slice, so the per-slice rule (k = 2) keeps it; the tumour (~20) also stands out
    # from all the circles of the volume. 512-px slices: no padding, no edge circles.
    discs = [(2, 256, 240, 12, 6.0)] + [(z, 200 + 20 * z, 300, 7, 4.0) for z in (0, 1, 3)]
    prepared, ooi = disc_case(512, 4, discs, noise=0.1, seed=5)
    monkeypatch.setattr(autopaint_module, "VOLUME_RULE_MIN_SLICES", 4)  # 4 slices keep the test quick
    paper_only = autopaint(prepared, ooi, CountingPredictor(ring_mean_fill), PipelineParams(volume_outlier_k=0.0))
    with_volume = autopaint(prepared, ooi, CountingPredictor(ring_mean_fill), PipelineParams(volume_outlier_k=6.0))
    assert all(paper_only.slices[z].candidates.size > 0 for z in range(4))
    assert [z for z in range(4) if with_volume.slices[z].candidates.size] == [2]
    assert with_volume.stats["volume_level"] == pytest.approx(6.0, abs=0.5) and paper_only.stats["volume_level"] is None
    np.testing.assert_array_equal(with_volume.slices[2].candidates, paper_only.slices[2].candidates)
    truth = _disc_label(512, 4, discs[:1])
    assert metrics.dice(with_volume.mask(), truth) > 0.9 > metrics.dice(paper_only.mask(), truth)
    monkeypatch.setattr(autopaint_module, "VOLUME_RULE_MIN_SLICES", 5)  # too few slices: the rule is off
    too_few = autopaint(prepared, ooi, CountingPredictor(ring_mean_fill), PipelineParams(volume_outlier_k=6.0))
    assert too_few.stats["volume_level"] is None and all(too_few.slices[z].candidates.size for z in range(4))


def test_the_minimum_lesion_volume_drops_small_3d_lesions_from_the_mask_only():
    from autopaint_app.core.autopaint_result import drop_small_lesions

    mask = np.zeros((3, 8, 8), dtype=bool)
    mask[0:2, 1:3, 1:3] = True       # 8 voxels
    mask[0, 7, 0] = True             # 1 voxel
    mask[1, 4, 4] = mask[2, 5, 5] = True  # 2 voxels, diagonal neighbours in 3-D (26-connected)
    np.testing.assert_array_equal(drop_small_lesions(mask, 0.0, 0.5), mask)           # off
    kept = drop_small_lesions(mask, 1.0, 0.5)                                         # >= 2 voxels of 0.5 ml
    assert kept.sum() == 10 and not kept[0, 7, 0] and kept[1, 4, 4] and kept[2, 5, 5]
    assert drop_small_lesions(mask, 4.0, 0.5).sum() == 8
    assert not drop_small_lesions(mask, 4.5, 0.5).any()
    discs = [(0, 64, 60, 10, 8.0)]
    prepared, ooi = disc_case(128, 1, discs)
    predictor = _healer()
    result = autopaint(prepared, ooi, predictor)
    voxel_ml = result.residual_volume().voxel_volume_ml
    lesion_ml = _disc_label(128, 1, discs).sum() * voxel_ml
    calls = predictor.calls
    np.testing.assert_array_equal(result.mask(min_lesion_ml=lesion_ml), _disc_label(128, 1, discs))
    assert not result.mask(min_lesion_ml=lesion_ml * 1.01).any()
    assert result.residual_volume().array.any() and predictor.calls == calls   # residual kept, no inference
    with pytest.raises(ValueError, match=r"min_lesion_ml must be in \[0, 1000\]"):
        result.params.with_changes(min_lesion_ml=-1.0)
