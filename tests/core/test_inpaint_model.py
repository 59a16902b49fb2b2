"""InpaintModel: card and contract checks, providers, padding to the size multiple, batching.

The models are the tiny ONNX graphs of ``tests/core/tiny_onnx.py`` (no torch, no trained weights):
they fail unless H and W are multiples of 32, so a successful call on odd sizes proves the padding.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from autopaint_app.core.errors import InputError
from autopaint_app.core.inpaint_model import InpaintModel, read_card
from tests.core.tiny_onnx import CARD, build_model, reference_output, write_card


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    build_model(folder / "lung_petct_test.onnx")
    write_card(folder / "lung_petct_test.json")
    return folder


@pytest.fixture(scope="module")
def model(model_dir):
    return InpaintModel.load(model_dir / "lung_petct_test.onnx", threads=1, batch_size=3)


def _batch(rng, n, height, width, channels=2):
    image = rng.random((n, channels, height, width), dtype=np.float32)
    mask = np.ones((n, 1, height, width), dtype=np.float32)
    mask[:, :, height // 3: height // 2, width // 4: width // 2] = 0
    return image, mask


def test_loads_card_and_runs_on_cpu(model):
    assert model.provider == "CPUExecutionProvider"
    assert model.providers[-1] == "CPUExecutionProvider"
    assert model.channels == ("ct", "pet")
    assert model.size_multiple == 32
    assert model.card.architecture == "test-fill" and model.card.ct_window == (-1000.0, 500.0)
    image, mask = _batch(np.random.default_rng(0), 2, 64, 96)
    out = model(image, mask)
    assert out.shape == (2, 2, 64, 96) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference_output(image, mask), atol=1e-6)


def test_pads_odd_sizes_to_the_multiple_and_crops_back(model):
    rng = np.random.default_rng(1)
    image, mask = _batch(rng, 2, 50, 77)
    out = model(image, mask)  # the graph itself would fail on 50 x 77 (AveragePool/Resize size check)
    assert out.shape == (2, 2, 50, 77)
    # Away from the bottom/right padding the blur sees only real pixels: exact agreement there.
    expected = reference_output(image, mask)
    np.testing.assert_allclose(out[:, :, :-1, :-1], expected[:, :, :-1, :-1], atol=1e-6)
    # The last row/column sees the mirrored padding (symmetric mode, the mask mirrored too): exactly
    # what the graph gives on the mirrored 64 x 96 input, cropped back.
    pad = ((0, 0), (0, 0), (0, 14), (0, 19))
    mirrored = reference_output(np.pad(image * mask, pad, mode="symmetric"), np.pad(mask, pad, mode="symmetric"))
    np.testing.assert_allclose(out, mirrored[:, :, :50, :77], atol=1e-6)


def test_the_graph_really_needs_the_multiple(model_dir):
    import onnxruntime  # only to prove the test model is strict; the app never does this outside core

    session = onnxruntime.InferenceSession(str(model_dir / "lung_petct_test.onnx"), providers=["CPUExecutionProvider"])
    image, mask = _batch(np.random.default_rng(2), 1, 50, 77)
    with pytest.raises(Exception):
        session.run(["inpainted"], {"image": image, "mask": mask})


def test_batching_equals_one_by_one(model):
    image, mask = _batch(np.random.default_rng(3), 7, 32, 64)   # 7 = 3 + 3 + 1 chunks of batch_size 3
    together = model(image, mask)
    alone = np.concatenate([model(image[i:i + 1], mask[i:i + 1]) for i in range(7)])
    np.testing.assert_array_equal(together, alone)


def test_holes_are_zeroed_before_the_network(model):
    image, mask = _batch(np.random.default_rng(4), 1, 64, 64)
    bright = image.copy()
    bright[mask.repeat(2, axis=1) == 0] = 1.0  # a "tumour" under the hole
    np.testing.assert_array_equal(model(image, mask), model(bright, mask))


def test_call_rejects_wrong_shapes(model):
    image, mask = _batch(np.random.default_rng(5), 1, 32, 32)
    with pytest.raises(ValueError, match=r"image must be \(N, 2, H, W\)"):
        model(image[:, :1], mask)
    with pytest.raises(ValueError, match="mask must have shape"):
        model(image, mask[:, :, :16])


def test_missing_model_file(tmp_path):
    with pytest.raises(InputError, match="model file not found") as info:
        InpaintModel.load(tmp_path / "absent.onnx")
    assert "absent.onnx" in str(info.value)


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("this is not a protobuf", encoding="utf-8")
    write_card(tmp_path / "bad.json")
    with pytest.raises(InputError, match="not a readable ONNX model") as info:
        InpaintModel.load(bad)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_names=("x", "mask")), r"inputs must be named \['image', 'mask'\]"),
    (dict(output_name="output"), "no output named 'inpainted'"),
    (dict(static_channels=1), r"'image' has 1 channel\(s\), but its card lists channels \['ct', 'pet'\]"),
])
def test_contract_violations_name_the_file(tmp_path, kwargs, message):
    path = tmp_path / "wrong.onnx"
    build_model(path, **kwargs)
    write_card(tmp_path / "wrong.json")
    with pytest.raises(InputError, match=message) as info:
        InpaintModel.load(path)
    assert str(path) in str(info.value)


def test_missing_card(tmp_path):
    build_model(tmp_path / "m.onnx")
    with pytest.raises(InputError, match="model card not found") as info:
        InpaintModel.load(tmp_path / "m.onnx")
    assert str(tmp_path / "m.json") in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({k: v for k, v in CARD.items() if k not in ("site", "size_multiple")}),
     "lacks the field\\(s\\) site, size_multiple"),
    (json.dumps(dict(CARD, channels=["pet", "ct"])), "'channels' must be a non-empty subsequence"),
    (json.dumps(dict(CARD, site="brain")), "'site' must be one of lung, hn"),
    (json.dumps(dict(CARD, size_multiple=0)), "'size_multiple' must be a positive integer"),
    (json.dumps(dict(CARD, suv_window=[12, 0])), "'suv_window' must be \\[low, high\\]"),
])
def test_bad_cards_name_the_card(tmp_path, text, message):
    card = tmp_path / "card.json"
    card.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as info:
        read_card(card)
    assert str(card) in str(info.value)


def test_explicit_card_path_and_single_channel_model(tmp_path):
    build_model(tmp_path / "pet_model.onnx", channels=1)
    write_card(tmp_path / "elsewhere.json", channels=["pet"], site="hn")
    model = InpaintModel.load(tmp_path / "pet_model.onnx", card_path=tmp_path / "elsewhere.json",
                              providers="cpu", batch_size=1)
    assert model.channels == ("pet",) and model.card.site == "hn"
    image, mask = _batch(np.random.default_rng(6), 2, 40, 40, channels=1)
    np.testing.assert_allclose(model(image, mask)[:, :, :-1, :-1],
                               reference_output(image, mask)[:, :, :-1, :-1], atol=1e-6)


def test_bad_arguments(model_dir):
    with pytest.raises(ValueError, match="batch_size and threads"):
        InpaintModel.load(model_dir / "lung_petct_test.onnx", batch_size=0)
    with pytest.raises(ValueError, match="providers must be one of"):
        InpaintModel.load(model_dir / "lung_petct_test.onnx", providers="gpu")
