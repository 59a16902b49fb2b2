"""The trainer and core's held-out evaluation share one hole generator, one slice rule and one scorer."""

from autopaint_app.core import holes, inpaint_quality, slice_sampling
from autopaint_app.training import data, evaluation, masks


def test_training_uses_the_core_implementations_not_copies():
    assert masks.batch_masks is holes.batch_masks and masks.random_hole_mask is holes.random_hole_mask
    assert masks.PAPER_BATCH_COVERAGE == holes.PAPER_BATCH_COVERAGE == (0.25, 0.30)
    assert evaluation.inpainting_metrics is inpaint_quality.inpainting_metrics
    assert evaluation.biharmonic_metrics is inpaint_quality.biharmonic_metrics
    assert data.healthy_slice_mask is slice_sampling.healthy_slice_mask
    assert data.sample_window is slice_sampling.sample_window
