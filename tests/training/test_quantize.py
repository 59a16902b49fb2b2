"""The int8 twin of a float model: calibrated on the pipeline's own crops, close to the float model,
the convs that must stay float kept float, a complete card, and no damage to the user's files."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from autopaint_app.core.errors import InputError, OutputExistsError
from autopaint_app.core.holes import batch_masks
from autopaint_app.core.inpaint_model import InpaintModel
from autopaint_app.core.phantom import make_phantom, write_phantom
from autopaint_app.training.export import onnx_bytes
from autopaint_app.training.networks import NetworkConfig, build_network
from autopaint_app.training.quantize import convs_kept_in_float, int8_path_for, quantize_model
from tests.core.tiny_onnx import write_card

SLICES = range(6, 10)


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    """A small GConv U-Net (random weights, BN statistics of real-looking inputs) exported by our exporter."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    network = build_network(NetworkConfig.with_widths((8, 16), in_channels=2))
    network.train()
    with torch.no_grad():  # a few forward passes give BN running statistics that are not the identity
        for _ in range(3):
            network(torch.rand(4, 2, 32, 32), torch.from_numpy(batch_masks(4, (32, 32), np.random.default_rng(0))))
    network.eval()
    path = folder / "lung_petct_gconv_lap.onnx"
    path.write_bytes(onnx_bytes(network))
    write_card(path.with_suffix(".json"), size_multiple=4, architecture="gconv_lap", modality="petct",
               validation={"model": {"psnr_hole": 1.0}})
    return path


@pytest.fixture(scope="module")
def calibration_case(tmp_path_factory):
    return write_phantom(make_phantom("lung", 3, in_plane=128, n_slices=16), tmp_path_factory.mktemp("cal") / "lung_3")


@pytest.fixture(scope="module")
def twin(float_model, calibration_case):
    card = quantize_model(float_model, calibration_case, slices=SLICES, crops=16, check_crops=16, threads=1,
                          command="pytest")
    return int8_path_for(float_model), card


def test_the_twin_is_int8_except_the_first_gated_conv_and_the_head(twin, float_model):
    path, card = twin
    assert path.name == "lung_petct_gconv_lap.int8.onnx" and path.with_suffix(".json").name == "lung_petct_gconv_lap.int8.json"
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    float_convs = [n for n in graph.node if n.op_type == "Conv"]
    # 2 encoder + 2 decoder gated convs (2 convs each) + the head = 9 convs; 3 stay float
    assert ops.count("QLinearConv") == 6 and len(float_convs) == 3
    weights = sorted(n.input[1].split(".conv")[0].split(".weight")[0] for n in float_convs)
    assert weights == ["encoder.0", "encoder.0", "head"]
    assert card["quantization"]["convs_kept_float32"] == convs_kept_in_float(onnx.load(str(float_model)))


def test_the_card_records_where_the_twin_comes_from_and_how_close_it_is(twin, float_model):
    path, card = twin
    assert json.loads(path.with_suffix(".json").read_text()) == card
    assert card["precision"] == "int8" and card["name"].endswith(".int8")
    assert card["quantized_from"] == {"file": float_model.name,
                                      "sha256": hashlib.sha256(float_model.read_bytes()).hexdigest()}
    calibration = card["quantization"]["calibration"]
    assert calibration["case"] == "lung_3" and calibration["slices"] == [6, 10] and calibration["crops_used"] == 16
    assert calibration["crop_size"] == 100  # the lung rule's 96-px crop, fed one size multiple (4) larger
    assert card["quantization"]["command"] == "pytest"
    check = card["int8_vs_float"]
    assert check["crops"] == 16 and 0 < check["mean_abs_in_holes"] < 0.02 and check["max_abs_in_holes"] < 0.2
    assert "held_out" not in card  # the float model's figures do not describe the twin
    assert "note" in card["validation"]  # no --val-set: the float model's validation, said so


def test_the_twin_obeys_the_contract(twin):
    path, _ = twin
    model = InpaintModel.load(path, threads=1)
    assert model.channels == ("ct", "pet") and model.size_multiple == 4
    rng = np.random.default_rng(1)
    image = rng.random((2, 2, 64, 64), dtype=np.float32)
    mask = batch_masks(2, (64, 64), rng)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(["inpainted"], {"image": image, "mask": mask})
    scrambled = np.where(mask > 0.5, image, rng.random(image.shape, dtype=np.float32))
    (again,) = session.run(["inpainted"], {"image": scrambled, "mask": mask})
    assert np.array_equal(out, again), "the int8 output depends on the pixels under the holes"
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_existing_outputs_and_the_float_model_are_never_overwritten(twin, float_model, calibration_case):
    path, _ = twin
    before = path.read_bytes(), float_model.read_bytes()
    with pytest.raises(OutputExistsError):
        quantize_model(float_model, calibration_case, slices=SLICES, crops=8, check_crops=8)
    with pytest.raises(InputError, match="would replace the float model"):
        quantize_model(float_model, calibration_case, out=float_model, overwrite=True, crops=8, check_crops=8)
    with pytest.raises(InputError, match="already int8"):
        quantize_model(path, calibration_case, out=path.with_name("again.onnx"), crops=8, check_crops=8)
    assert (path.read_bytes(), float_model.read_bytes()) == before
    assert not list(path.parent.glob("*.tmp*")) and not path.with_name("again.onnx").exists()


def test_too_few_crops_and_a_wrong_case_are_named(float_model, calibration_case, tmp_path):
    out = tmp_path / "twin.onnx"
    with pytest.raises(InputError) as error:
        quantize_model(float_model, calibration_case, out=out, slices=range(6, 7), crops=5000, check_crops=8)
    assert "crops of 100 px on these slices, 5008 are needed: give more slices" in str(error.value)
    with pytest.raises(InputError, match="no known case layout found in this folder"):
        quantize_model(float_model, tmp_path, out=out, crops=8, check_crops=8)
    assert not out.exists()


def test_cli_reports_a_missing_model_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "autopaint_app.cli", "quantize", "--model", str(tmp_path / "nope.onnx"),
                           "--calibration-case", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "nope" in done.stderr


def test_recording_stops_once_enough_crops_are_held(float_model, calibration_case, monkeypatch):
    from autopaint_app.training import quantize

    monkeypatch.setattr(quantize, "MAX_RECORDED_CROPS", 40)
    model = InpaintModel.load(float_model, threads=1)
    (images, _), (check, _), facts = quantize.record_network_inputs(model, calibration_case, None, 8, 8)
    batch = model.batch_size
    assert 40 <= facts["crops_recorded"] < 40 + batch  # the whole 16-slice case would feed hundreds
    assert images.shape[1:] == (2, 100, 100) and len(images) == len(check) == 8


def test_a_bad_validation_set_leaves_no_half_written_twin(float_model, calibration_case, tmp_path):
    out = tmp_path / "twin.onnx"
    with pytest.raises(InputError, match="validation set not found"):
        quantize_model(float_model, calibration_case, out=out, val_set=tmp_path / "none.npz", crops=8, check_crops=8)
    corrupt = tmp_path / "val_set.npz"
    corrupt.write_text("not an npz")
    with pytest.raises(InputError) as error:
        quantize_model(float_model, calibration_case, out=out, slices=SLICES, val_set=corrupt, crops=8, check_crops=8)
    assert str(error.value).startswith(f"{corrupt}: not a training run's val_set.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["val_set.npz"]  # no model, no card, no temporary file


def test_a_twin_that_returns_nan_is_refused_and_nothing_is_written(float_model, calibration_case, tmp_path,
                                                                   monkeypatch):
    import autopaint_app.training.quantize as quantize_module

    real_run, calls = quantize_module._run, []

    def int8_gives_nan(session, images, masks):  # the second run is the twin's (a prefill model's fate)
        calls.append(session)
        out = real_run(session, images, masks)
        return np.full_like(out, np.nan) if len(calls) == 2 else out

    monkeypatch.setattr(quantize_module, "_run", int8_gives_nan)
    out = tmp_path / "twin.onnx"
    with pytest.raises(InputError) as error:
        quantize_model(float_model, calibration_case, out=out, slices=SLICES, crops=8, check_crops=8)
    assert str(error.value).startswith(f"{float_model}: its int8 twin returns NaN or infinite values on 8 of 8 check crops")
    assert "must stay float32" in str(error.value)
    assert list(tmp_path.iterdir()) == []  # no model, no card, no temporary file
