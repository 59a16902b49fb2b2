"""The default models shipped in models/: present, small, loadable on CPU, obeying the contract, matching their cards.

Issue 3, sections 5, 6 and 8. The checks are module-level helpers taking the models folder, so the
same code can be pointed at a folder of candidate models before they are committed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime
import pytest

from autopaint_app.core.holes import batch_masks
from autopaint_app.core.inpaint_model import InpaintModel, read_card
from autopaint_app.core.inpaint_quality import composite
from autopaint_app.core.presets import MODALITY_CHANNELS, get_preset

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "models"
# <site>_<modality>: every model the README lists as shipped.
SHIPPED = ("lung_ct", "lung_pet", "lung_petct", "hn_pet", "hn_petct")
ARCH = "gconv_lap"
MAX_BYTES = 10 * 1024 * 1024
# The fixed 3x3 stencils of the parameter-free prefills (networks.HarmonicPrefill's neighbour mean,
# BiharmonicPrefill's Laplacian), one per channel in depthwise convs: constants, not parameters.
PREFILL_STENCILS = (np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], np.float32),
                    np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32))
PARITY_LIMIT = 1e-4  # ONNX Runtime vs PyTorch at export (measured ~2e-7)


# <site>_<modality> with an int8 twin (<name>.int8.onnx) that fast mode uses by default.
SHIPPED_INT8 = ("lung_petct",)
INT8_MEAN_ABS_LIMIT = 0.005  # int8 vs float inside the holes of the pipeline's crops (measured 0.0015)


def model_path(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}_{ARCH}.onnx"


def int8_model_path(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}_{ARCH}.int8.onnx"


def check_files(folder: Path, name: str) -> None:
    """The model and its card exist; the model is at most 10 MB."""
    path = model_path(folder, name)
    assert path.is_file(), f"missing shipped model {path}"
    assert path.with_suffix(".json").is_file(), f"missing model card {path.with_suffix('.json')}"
    assert path.stat().st_size <= MAX_BYTES, f"{path.name} is {path.stat().st_size / 2**20:.1f} MB > 10 MB"


def check_graph_interface(folder: Path, name: str) -> None:
    """Inputs image (N, C, H, W) and mask (N, 1, H, W), output inpainted (N, C, H, W), float32, C as the card says."""
    path = model_path(folder, name)
    channels = len(read_card(path.with_suffix(".json")).channels)
    graph = onnx.load(str(path), load_external_data=False).graph
    initialisers = {t.name for t in graph.initializer}
    def dims(value):
        return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]
    inputs = {v.name: v for v in graph.input if v.name not in initialisers}
    outputs = {v.name: v for v in graph.output}
    assert sorted(inputs) == ["image", "mask"] and list(outputs) == ["inpainted"]
    for value in (*inputs.values(), *outputs.values()):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, value.name
    image, mask, out = dims(inputs["image"]), dims(inputs["mask"]), dims(outputs["inpainted"])
    assert image[1] == channels and mask[1] == 1 and out[1] == channels
    assert all(isinstance(d, str) for d in image[:1] + image[2:]), f"N, H, W must be dynamic, got {image}"


def check_contract(folder: Path, name: str, seed: int = 0) -> None:
    """Through ONNX Runtime (CPU) and InpaintModel: shapes, [0, 1], holes never seen, composite keeps known pixels."""
    path = model_path(folder, name)
    model = InpaintModel.load(path, threads=2, providers="cpu")
    assert model.provider == "CPUExecutionProvider"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    channels, step = len(model.channels), model.size_multiple
    rng = np.random.default_rng(seed)
    for n, h, w in ((1, 2 * step, 2 * step), (3, 4 * step, 3 * step)):
        image = rng.random((n, channels, h, w), dtype=np.float32)
        mask = batch_masks(n, (h, w), rng)
        (out,) = session.run(["inpainted"], {"image": image, "mask": mask})
        assert out.shape == image.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
        scrambled = np.where(mask > 0.5, image, rng.random(image.shape, dtype=np.float32))
        (again,) = session.run(["inpainted"], {"image": scrambled, "mask": mask})
        assert np.array_equal(out, again), "the output depends on the pixels under the holes"
        filled = composite(out, image, mask)
        known = np.broadcast_to(mask > 0.5, image.shape)
        assert np.array_equal(filled[known], image[known])
        assert np.abs(filled - image)[~known].max() > 0, "the model leaves every hole pixel as it was"
    # Constant images (air, an empty PET window): the in-network prefill's solver divides 0 by 0 there
    # unless guarded; the models once returned NaN for them.
    flat = np.stack([np.zeros((channels, 2 * step, 2 * step), np.float32),
                     np.full((channels, 2 * step, 2 * step), 0.3, np.float32)])
    (out,) = session.run(["inpainted"], {"image": flat, "mask": batch_masks(2, flat.shape[2:], rng)})
    assert np.isfinite(out).all(), "NaN or inf for a constant image"
    odd = rng.random((2, channels, step + 5, 2 * step - 3), dtype=np.float32)
    predicted = model(odd, batch_masks(2, odd.shape[2:], rng))  # padded to multiples of step inside
    assert predicted.shape == odd.shape and 0.0 <= predicted.min() <= predicted.max() <= 1.0


def trained_parameter_count(path: Path, use_bn: bool) -> int:
    """The trainable parameters of the exported network, counted from its ONNX graph.

    Every Conv weight counts. A feature conv (the one feeding ReLU/LeakyReLU in a gated conv) of a
    network with BN had no bias but a BatchNorm of 2 C trainable parameters, which the export folds
    into the conv (its bias then holds the folded shift, or is dropped when that is all zeros); every
    other bias (gates, output head, feature convs without BN) counts as it is. The prefill's
    depthwise stencil convs (:data:`PREFILL_STENCILS`) are constants and do not count.
    """
    graph = onnx.load(str(path)).graph
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    values = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}

    def is_prefill_stencil(name: str) -> bool:
        weight = values.get(name)
        return (weight is not None and weight.ndim == 4 and weight.shape[1:] == (1, 3, 3)
                and any(all(np.array_equal(w[0], stencil) for w in weight) for stencil in PREFILL_STENCILS))
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    total = 0
    for node in graph.node:
        if node.op_type != "Conv" or is_prefill_stencil(node.input[1]):
            continue
        weight = shapes[node.input[1]]
        total += int(np.prod(weight))
        if use_bn and consumers.get(node.output[0], set()) & {"Relu", "LeakyRelu"}:
            total += 2 * weight[0]
        elif len(node.input) > 2 and node.input[2]:
            total += int(np.prod(shapes[node.input[2]]))
    return total


def check_card(folder: Path, name: str) -> None:
    """The card matches the file name, the preset, the graph, and records a model that beats biharmonic."""
    path = model_path(folder, name)
    site, modality = name.split("_")
    card = read_card(path.with_suffix(".json"))
    raw = card.raw
    preset = get_preset(site)
    assert (card.site, raw["modality"], card.architecture) == (site, modality, ARCH)
    assert card.channels == MODALITY_CHANNELS[modality]
    assert (card.ct_window, card.suv_window) == (preset.ct_window, preset.suv_window)
    network = raw["network"]
    assert network["in_channels"] == len(card.channels) and card.size_multiple == 2 ** network["depth"]
    assert isinstance(raw["train_crop"], int) and raw["train_crop"] % card.size_multiple == 0
    counted = trained_parameter_count(path, network["use_bn"])
    assert raw["params"] == counted, f"card params {raw['params']} != {counted} counted from the graph"
    assert raw["vgg_weights"] in ("imagenet", "random-seeded")
    assert isinstance(raw["training"].get("command"), str) and raw["training"]["command"].strip()
    assert 0 <= raw["onnx_parity_max_abs"] < PARITY_LIMIT
    validation = raw["validation"]
    model, baseline = validation["model"], validation["biharmonic"]
    assert validation["crops"], "the card's validation must come from the model's own validation crops"
    assert model["psnr_hole"] > baseline["psnr_hole"], f"{name}: hole PSNR {model['psnr_hole']:.2f} dB does not " \
                                                       f"beat biharmonic's {baseline['psnr_hole']:.2f} dB"
    assert model["ssim_hole"] > baseline["ssim_hole"], f"{name}: hole SSIM {model['ssim_hole']:.4f} does not " \
                                                       f"beat biharmonic's {baseline['ssim_hole']:.4f}"
    held_out = raw["held_out"]  # model-eval on patients no training step or checkpoint choice saw
    assert "model-eval" in held_out["command"] and held_out["pooled"]["crops"] >= 100
    pooled = held_out["pooled"]
    for metric in ("psnr_hole", "ssim_hole"):
        assert pooled["model"][metric] > pooled["biharmonic"][metric], f"{name}: held-out {metric}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_files_exist_and_fit_in_10_mb(name):
    check_files(SHIPPED_DIR, name)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_graph_has_the_contract_interface(name):
    check_graph_interface(SHIPPED_DIR, name)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_obeys_the_contract_on_cpu(name):
    check_contract(SHIPPED_DIR, name)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_its_card(name):
    check_card(SHIPPED_DIR, name)


def check_int8_twin(folder: Path, name: str) -> None:
    """The twin: small, made from the float model beside it (same bytes), close to it, better than biharmonic."""
    path, float_path = int8_model_path(folder, name), model_path(folder, name)
    assert path.is_file() and path.with_suffix(".json").is_file(), f"missing int8 twin {path}"
    assert path.stat().st_size <= MAX_BYTES
    card = read_card(path.with_suffix(".json"))
    float_card = read_card(float_path.with_suffix(".json"))
    raw = card.raw
    assert raw["precision"] == "int8"
    assert (card.channels, card.site, card.ct_window, card.suv_window, card.size_multiple) == (
        float_card.channels, float_card.site, float_card.ct_window, float_card.suv_window, float_card.size_multiple)
    assert raw["quantized_from"] == {"file": float_path.name,
                                     "sha256": hashlib.sha256(float_path.read_bytes()).hexdigest()}, \
        "the twin was made from another version of the float model: quantise again"
    assert raw["int8_vs_float"]["crops"] >= 64 and raw["int8_vs_float"]["mean_abs_in_holes"] < INT8_MEAN_ABS_LIMIT
    graph = onnx.load(str(path)).graph
    assert sum(n.op_type == "QLinearConv" for n in graph.node) >= 10
    assert sorted(n.name for n in graph.node if n.op_type == "Conv") == sorted(raw["quantization"]["convs_kept_float32"])
    validation, held_out = raw["validation"], raw["held_out"]
    assert validation["crops"] and "note" not in validation  # measured on the twin itself
    assert "model-eval" in held_out["command"] and ".int8.onnx" in held_out["command"]
    for metric in ("psnr_hole", "ssim_hole"):
        assert validation["model"][metric] > validation["biharmonic"][metric]
        assert held_out["pooled"]["model"][metric] > held_out["pooled"]["biharmonic"][metric]


@pytest.mark.parametrize("name", SHIPPED_INT8)
def test_shipped_int8_twin_matches_its_float_model_and_card(name):
    check_int8_twin(SHIPPED_DIR, name)


@pytest.mark.parametrize("name", SHIPPED_INT8)
def test_shipped_int8_twin_obeys_the_contract_on_cpu(name, tmp_path):
    # check_contract by name: the twin under the float model's name in a folder of its own
    for suffix in (".onnx", ".json"):
        (tmp_path / f"{name}_{ARCH}{suffix}").symlink_to(int8_model_path(SHIPPED_DIR, name).with_suffix(suffix))
    check_contract(tmp_path, name)
