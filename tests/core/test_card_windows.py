"""Inference normalises with the model card's windows (a model trained with a custom window)."""

from dataclasses import dataclass

import numpy as np

from autopaint_app.core.case import load_case
from autopaint_app.core.phantom import make_phantom, write_phantom
from autopaint_app.core.preprocess import normalise
from autopaint_app.core.presets import HEAD_NECK, LUNG, preset_for_model
from autopaint_app.core.segment import drive, segment_case
from tests.core.autopaint_fakes import ring_mean_fill


@dataclass(frozen=True)
class _Card:
    ct_window: tuple[float, float]
    suv_window: tuple[float, float]


class _CardPredictor:
    """A ring-mean fill that carries a model card, as ``InpaintModel`` does."""

    def __init__(self, card):
        self.card = card

    def __call__(self, image, mask):
        return ring_mean_fill(image, mask)


def test_preset_for_model_takes_the_cards_windows_and_keeps_the_rest():
    preset = preset_for_model("hn", _Card((-160, 240), (0, 8)))
    assert preset.ct_window == (-160.0, 240.0) and preset.suv_window == (0.0, 8.0)
    assert preset.circle_radius_px == HEAD_NECK.circle_radius_px and preset.name == "hn"
    assert preset_for_model("lung", None) is LUNG and preset_for_model("lung", object()) is LUNG


def test_segment_case_prepares_with_the_cards_windows(tmp_path):
    write_phantom(make_phantom("lung", 2, healthy=True, in_plane=64, n_slices=4), tmp_path / "case")
    case = load_case(tmp_path / "case")
    card = _Card((-300.0, 300.0), (0.0, 6.0))
    segmentation = drive(segment_case(case, "lung", "petct", _CardPredictor(card), slices=[2]))
    prepared = segmentation.prepared
    assert prepared.preset.ct_window == card.ct_window and prepared.preset.suv_window == card.suv_window
    # the 64 px phantom is scaled onto the 512 px grid: compare the CT channel's range and a plain-preset run
    ct_unit = normalise(case.ct.array, card.ct_window)
    assert prepared.channels[:, 0].max() <= ct_unit.max() + 1e-6
    plain = drive(segment_case(case, "lung", "petct", ring_mean_fill, slices=[2])).prepared
    assert plain.preset is LUNG and not np.allclose(plain.channels[:, 0], prepared.channels[:, 0], atol=0.05)
