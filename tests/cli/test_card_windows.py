"""segment/evaluate accept a model trained with custom windows (they normalise with its card); model-eval,
which prepares crops with the site preset, refuses it."""

import pytest

from autopaint_app.core.errors import InputError
from autopaint_app.segment_commands import load_predictor
from tests.core.tiny_onnx import build_model, write_card


def test_custom_window_models_load_for_segmentation_but_not_for_model_eval(tmp_path):
    path = tmp_path / "lung_petct_custom.onnx"
    build_model(path, channels=2)
    write_card(path.with_suffix(".json"), ct_window=[-160, 240])
    model = load_predictor(path, "lung", "petct", threads=1, batch_size=2)
    assert model.card.ct_window == (-160.0, 240.0)
    with pytest.raises(InputError, match=r"model windows CT \(-160.0, 240.0\)"):
        load_predictor(path, "lung", "petct", threads=1, batch_size=2, card_windows=False)
    with pytest.raises(InputError, match="trained for site lung, not hn"):
        load_predictor(path, "hn", "petct", threads=1, batch_size=2)
