"""Coarse-to-fine circle search and the fast-mode crop rule (core/autopaint_search.py, autopaint_params.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autopaint_app.core import metrics
from autopaint_app.core.autopaint import PipelineParams, autopaint, working_ooi
from autopaint_app.core.autopaint_circles import circle_centres
from autopaint_app.core.autopaint_scores import (
    combined_scores,
    robust_z,
    select_outliers,
)
from autopaint_app.core.autopaint_search import (
    grid_keys,
    neighbour_table,
    screening_mask,
)
from autopaint_app.core.presets import HEAD_NECK, LUNG
from tests.core.autopaint_fakes import CountingPredictor, disc_case, ring_mean_fill

# k = 3 as these planted cases were built for: with the default k = 2 the screened population's
# statistics can still flip a borderline circle (coarse-to-fine is opt-in for that reason).
# The per-slice rule alone (volume rule off): these cases have a tumour in nearly every slice.
EXHAUSTIVE = {"circle_search": "exhaustive", "outlier_k": 3.0, "volume_outlier_k": 0.0}
COARSE = {"circle_search": "coarse-to-fine", "outlier_k": 3.0, "volume_outlier_k": 0.0}


def _lungs(shape=(512, 512)):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    left = ((yy - 250) / 150) ** 2 + ((xx - 170) / 90) ** 2 <= 1
    right = ((yy - 250) / 150) ** 2 + ((xx - 340) / 90) ** 2 <= 1
    return left | right


@pytest.mark.parametrize("preset", [LUNG, HEAD_NECK], ids=["lung", "hn"])
def test_screening_takes_a_quarter_and_every_circle_has_a_screened_neighbour(preset):
    r, s = preset.circle_radius_px, preset.circle_stride_px
    centres = circle_centres(_lungs(), r, s)
    keys = grid_keys(centres, s, (512, 512))
    np.testing.assert_array_equal(np.diff(np.unique(keys[:, 0])), 1)          # consecutive grid rows
    table = neighbour_table(keys)
    screened = screening_mask(keys, table)
    assert 0.24 < screened.mean() < 0.33
    for i, centre in enumerate(centres):                                      # within one grid step
        distances = np.hypot(*(centres[screened] - centre).T)
        assert distances.min() <= s * math.sqrt(2) + 1e-9
        neighbours = table[i][table[i] >= 0]
        assert np.all(np.abs(centres[neighbours] - centre) <= s)


def test_population_statistics_come_from_the_subset_only():
    values = np.array([1.0, 2.0, 3.0, 50.0, 60.0, 70.0, 80.0])
    population = np.array([True, True, True, False, False, False, False])
    np.testing.assert_allclose(robust_z(values, 0.0, population), (values - 2.0) / 1.4826)
    np.testing.assert_allclose(robust_z(values, 0.0, [0, 1, 2]), (values - 2.0) / 1.4826)     # indices too
    scores = combined_scores(values, None, population)
    np.testing.assert_array_equal(select_outliers(scores, values, 3.0, 3, 0.0, population), [6, 5, 4])
    whole = combined_scores(values, None)
    assert select_outliers(whole, values, 3.0, 3, 0.0).size == 0      # the whole set's MAD (30) hides them


def _planted_case():
    discs = [(0, 58, 40, 9, 7.0), (1, 70, 78, 16, 9.0)]
    prepared, ooi = disc_case(128, 3, discs, noise=0.1, seed=5)           # slice 2 is healthy
    return prepared, ooi, discs


def test_coarse_to_fine_keeps_the_exhaustive_top_k_for_a_fraction_of_the_circles():
    prepared, ooi, _ = _planted_case()
    exhaustive_predictor, coarse_predictor = CountingPredictor(ring_mean_fill), CountingPredictor(ring_mean_fill)
    exhaustive = autopaint(prepared, ooi, exhaustive_predictor, PipelineParams(**EXHAUSTIVE))
    coarse = autopaint(prepared, ooi, coarse_predictor, PipelineParams(**COARSE))
    for z in (0, 1):
        e, c = exhaustive.slices[z], coarse.slices[z]
        assert e.candidates.size >= 1
        np.testing.assert_array_equal(c.centres[c.candidates], e.centres[e.candidates])   # same circles, same order
        assert c.chosen == e.chosen
        assert len(c.centres) < len(e.centres)
        # the inpainted circles are a subset of the grid with the same differences as exhaustively
        rows = [np.flatnonzero((e.centres == centre).all(axis=1))[0] for centre in c.centres]
        np.testing.assert_allclose(c.intensity, e.intensity[rows], atol=1e-6)
    healthy_e, healthy_c = exhaustive.slices[2], coarse.slices[2]
    assert not healthy_e.has_candidates and not healthy_c.has_candidates
    assert len(healthy_c.centres) < 0.5 * len(healthy_e.centres)           # screening + a few neighbours
    assert metrics.dice(coarse.mask(), exhaustive.mask()) == 1.0
    assert coarse_predictor.items < 0.8 * exhaustive_predictor.items


def test_a_large_screen_margin_refines_everything_and_reference_mode_always_searches_exhaustively():
    prepared, ooi, _ = _planted_case()
    ooi_w = working_ooi(prepared, ooi)
    grid = sum(len(circle_centres(ooi_w[z], 27, 15)) for z in range(3))
    everywhere = autopaint(prepared, ooi, CountingPredictor(ring_mean_fill), PipelineParams(screen_margin=20, **COARSE))
    assert sum(len(s.centres) for s in everywhere.slices.values()) == grid
    reference = PipelineParams(mode="reference", **COARSE)
    assert reference.circle_search == "coarse-to-fine" and not reference.coarse_to_fine
    result = autopaint(prepared, ooi, CountingPredictor(ring_mean_fill), reference, slices=[2])
    assert len(result.slices[2].centres) == len(circle_centres(ooi_w[2], 27, 15))


@pytest.mark.parametrize("preset, ratio, crop", [(LUNG, 0.7, 96), (LUNG, 1.0, 128), (LUNG, 0.5, 96),
                                                 (LUNG, 1.5, 160), (HEAD_NECK, 0.7, 64), (HEAD_NECK, 1.0, 64)])
def test_crop_rule_keeps_the_context_ratio(preset, ratio, crop):
    params = PipelineParams.from_preset(preset, crop_context_ratio=ratio)
    assert params.circle_crop_size(32) == crop
    r = params.circle_radius_px
    assert (crop - (2 * r + 1)) / 2 >= math.ceil(ratio * r - 1e-9)          # context on each side, at least


def test_new_options_are_validated():
    for bad, message in [(dict(crop_context_ratio=0.1), "crop_context_ratio"),
                         (dict(circle_search="random"), "circle_search"), (dict(screen_margin=-1), "screen_margin")]:
        with pytest.raises(ValueError, match=message):
            PipelineParams(**bad)
    defaults = PipelineParams()
    assert (defaults.circle_search, defaults.crop_context_ratio, defaults.screen_margin) == ("exhaustive", 0.7, 1.5)
    assert not defaults.coarse_to_fine and defaults.with_changes(**COARSE).coarse_to_fine
