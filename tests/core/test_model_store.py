"""Default models and their int8 twins: which file a site, modality, precision and mode get."""

import pytest

from autopaint_app.core.errors import InputError
from autopaint_app.core.model_store import default_model_path, int8_twin, is_int8, uses_int8


def _touch(folder, *names):
    for name in names:
        (folder / name).write_bytes(b"")


def test_auto_precision_gives_the_int8_twin_in_fast_mode_only(tmp_path):
    _touch(tmp_path, "lung_petct_gconv_lap.onnx", "lung_petct_gconv_lap.json",
           "lung_petct_gconv_lap.int8.onnx", "lung_petct_gconv_lap.int8.json")
    float_model, twin = tmp_path / "lung_petct_gconv_lap.onnx", tmp_path / "lung_petct_gconv_lap.int8.onnx"
    assert default_model_path("lung", "petct", tmp_path, precision="auto", mode="fast") == twin
    assert default_model_path("lung", "petct", tmp_path, precision="auto", mode="reference") == float_model
    assert default_model_path("lung", "petct", tmp_path, precision="float32", mode="fast") == float_model
    assert default_model_path("lung", "petct", tmp_path, precision="int8", mode="reference") == twin
    assert default_model_path("lung", "petct", tmp_path) == float_model  # the library default stays float


def test_a_twin_without_its_card_is_not_used(tmp_path):
    _touch(tmp_path, "lung_pet_gconv_lap.onnx", "lung_pet_gconv_lap.json", "lung_pet_gconv_lap.int8.onnx")
    assert int8_twin(tmp_path / "lung_pet_gconv_lap.onnx") is None
    assert default_model_path("lung", "pet", tmp_path, precision="auto").name == "lung_pet_gconv_lap.onnx"


def test_int8_asked_for_but_missing_names_the_expected_file(tmp_path):
    _touch(tmp_path, "hn_pet_gconv_lap.onnx", "hn_pet_gconv_lap.json")
    with pytest.raises(InputError) as error:
        default_model_path("hn", "pet", tmp_path, precision="int8")
    assert "hn_pet_gconv_lap.onnx has no int8 twin (hn_pet_gconv_lap.int8.onnx with its card)" in str(error.value)
    with pytest.raises(InputError, match="--precision: must be one of auto, float32, int8"):
        default_model_path("hn", "pet", tmp_path, precision="fp16")


def test_a_lone_twin_is_never_the_float_default(tmp_path):
    # Without any float model of the site/modality, an int8 file is not picked as "the first other model".
    _touch(tmp_path, "hn_petct_gconv.int8.onnx", "hn_petct_gconv.int8.json")
    with pytest.raises(InputError, match="no model for hn/petct"):
        default_model_path("hn", "petct", tmp_path, precision="auto")
    _touch(tmp_path, "hn_petct_gconv.onnx", "hn_petct_gconv.json")
    assert default_model_path("hn", "petct", tmp_path, precision="float32").name == "hn_petct_gconv.onnx"
    assert default_model_path("hn", "petct", tmp_path, precision="auto").name == "hn_petct_gconv.int8.onnx"


def test_names():
    assert is_int8("models/x.int8.onnx") and not is_int8("models/x.onnx")
    assert int8_twin("models/x.int8.onnx") is None  # a twin has no twin
    assert uses_int8("auto", "fast") and not uses_int8("auto", "reference") and not uses_int8("float32", "fast")
