"""The int8 twin of a float ONNX model, for fast mode on CPUs without a GPU.

``autopaint-cli quantize --model models/lung_petct_gconv_lap.onnx --calibration-case CASE
--slices A:B --out models/lung_petct_gconv_lap.int8.onnx``

Why: on this 2-core CPU the circle inpaintings are ~95 % of a fast-mode run, and ONNX Runtime's
int8 convolutions (QLinearConv, AVX2) run the compact lung PET-CT network ~1.5x faster than float32
(README, Pipeline speed). Reference mode keeps the float model: the twin only makes fast mode
cheaper, and its agreement with reference mode is measured, like the crops', not assumed.

How: ONNX Runtime static quantisation (QOperator format: per-output-channel int8 weights, uint8
activations, MinMax ranges) of every convolution except
- the first gated conv, which reads the raw image and mask (its uint8 input range would be wasted
  on the zeroed holes, and it is cheap: 3 input channels);
- the output head, whose values are the inpainting itself (8-bit steps of 1/255 would show in the
  residual the pipeline thresholds);
- grouped convolutions (the in-network prefill's fixed stencils, iterated by a solver).
Measured on the lung PET-CT phantom of seed 3 (16 slices): quantising every conv gave fast-mode
masks Dice 0.993 against the float model's; keeping those two in float, Dice 0.9995 at the same
speed. The ranges are calibrated on the inputs the fast pipeline itself feeds the network (circle
crops with their hole, union and dilated masks) on a calibration case, recorded through the float
model: the activations the twin will see.

This module imports onnxruntime (its quantisation tools) like ``training.export``: a model-building
tool that runs outside the app. It does not need torch.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from autopaint_app.core.case import find_cases_in, load_case
from autopaint_app.core.errors import InputError, OutputExistsError
from autopaint_app.core.inpaint_model import InpaintModel, card_path_for, read_card
from autopaint_app.core.inpaint_quality import validation_set_report
from autopaint_app.core.io import file_sha256, write_json
from autopaint_app.core.model_eval import modality_of
from autopaint_app.core.model_store import int8_path_for
from autopaint_app.core.segment import segment_case

onnxruntime.set_default_logger_severity(4)  # onnxruntime-gpu's CUDA fallback noise on CPU machines

CALIBRATION_BATCH = 8


# Enough crops to draw from, and a bound on memory (4 096 lung crops of 2 x 128 x 128 float32 are
# ~0.5 GB; a whole case would feed ~20 000): the run stops once this many have been recorded.
MAX_RECORDED_CROPS = 4096


class _EnoughRecorded(Exception):
    pass


class _Recorder:
    """A predictor that records what the pipeline feeds the network, then runs the float model."""

    def __init__(self, model: InpaintModel):
        self.model, self.images, self.masks, self.count = model, [], [], 0

    def __getattr__(self, name):  # card, channels, size_multiple, ... of the wrapped model
        return getattr(self.model, name)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.count >= MAX_RECORDED_CROPS:
            raise _EnoughRecorded
        self.images.append(image.copy())
        self.masks.append(mask.copy())
        self.count += len(image)
        return self.model(image, mask)


def record_network_inputs(model: InpaintModel, case_dir: str | os.PathLike, slices: range | None,
                          crops: int, check_crops: int, seed: int = 0
                          ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], dict]:
    """Network inputs the fast pipeline produces on one case: ``crops`` for calibration and
    ``check_crops`` other ones for the comparison with the float model, drawn at random (``seed``).

    Only the most frequent input size is kept (circle crops; the union and dilated masks' larger
    crops are few). Returns ``((images, masks) for calibration, (images, masks) to check, facts)``.
    """
    found = find_cases_in([case_dir])
    if len(found) != 1:
        raise InputError(case_dir, f"expected one case folder for calibration, found {len(found)}")
    case = load_case(found[0])
    recorder = _Recorder(model)
    modality = modality_of(model.channels)
    run = segment_case(case, model.card.site, modality, recorder, slices=slices)
    try:
        for _ in run:
            pass
    except _EnoughRecorded:  # the first slices gave enough; the rest of the run is not needed
        pass
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(recorder.images):
        by_size.setdefault(image.shape[2:], []).append(index)
    size = max(by_size, key=lambda s: sum(len(recorder.images[i]) for i in by_size[s]))
    images = np.concatenate([recorder.images[i] for i in by_size[size]])
    masks = np.concatenate([recorder.masks[i] for i in by_size[size]])
    if len(images) < crops + check_crops:
        raise InputError(case_dir, f"the pipeline fed only {len(images)} crops of {size[0]} px on these slices, "
                                   f"{crops + check_crops} are needed: give more slices")
    rng = np.random.default_rng(seed)
    calibration = rng.choice(len(images), size=crops, replace=False)
    rest = np.setdiff1d(np.arange(len(images)), calibration)
    check = rng.choice(rest, size=check_crops, replace=False)
    facts = {"case": found[0].case_id, "slices": None if slices is None else [slices.start, slices.stop],
             "crop_size": int(size[0]), "crops_recorded": int(len(images)), "seed": seed}
    return (images[calibration], masks[calibration]), (images[check], masks[check]), facts


def convs_kept_in_float(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes left in float32 (see the module docstring for why)."""
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    grouped = [n.name for n in convs
               if any(a.name == "group" and onnx.helper.get_attribute_value(a) > 1 for a in n.attribute)]
    plain = [n for n in convs if n.name not in grouped]
    # Our exporter names weights after the torch modules: encoder.0.* is the first gated conv, head.* the output.
    named = [n.name for n in plain if n.input[1].startswith(("encoder.0.", "head."))]
    if not named and plain:  # another exporter: the convs reading the first conv's input, and the last conv
        first_input = plain[0].input[0]
        named = [n.name for n in plain if n.input[0] == first_input] + [plain[-1].name]
    return grouped + named


class _Batches(CalibrationDataReader):
    def __init__(self, images: np.ndarray, masks: np.ndarray):
        self._items = iter([{"image": images[i:i + CALIBRATION_BATCH], "mask": masks[i:i + CALIBRATION_BATCH]}
                            for i in range(0, len(images), CALIBRATION_BATCH)])

    def get_next(self):
        return next(self._items, None)


def quantize_to(float_path: Path, target: str, images: np.ndarray, masks: np.ndarray) -> list[str]:
    """Write the int8 model to ``target``; returns the convs kept in float."""
    keep = convs_kept_in_float(onnx.load(str(float_path)))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static advises "pre-processing" on the root logger; it fails on our Resize
    try:
        quantize_static(str(float_path), target, _Batches(images, masks), quant_format=QuantFormat.QOperator,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv"], calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=keep)
    finally:
        root.setLevel(level)
    return keep


def _run(session, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    return np.concatenate([session.run(["inpainted"], {"image": images[i:i + CALIBRATION_BATCH],
                                                       "mask": masks[i:i + CALIBRATION_BATCH]})[0]
                           for i in range(0, len(images), CALIBRATION_BATCH)])


def agreement(float_out: np.ndarray, int8_out: np.ndarray, masks: np.ndarray) -> dict:
    """How far the twin's prediction is from the float model's, inside the holes (where it is used)."""
    holes = np.broadcast_to(masks < 0.5, float_out.shape)
    difference = np.abs(int8_out - float_out)[holes]
    return {"max_abs_in_holes": float(difference.max()), "mean_abs_in_holes": float(difference.mean()),
            "p99_abs_in_holes": float(np.percentile(difference, 99))}


def crops_per_second(session, images: np.ndarray, masks: np.ndarray, seconds: float = 3.0) -> float:
    batch = {"image": images[:CALIBRATION_BATCH], "mask": masks[:CALIBRATION_BATCH]}
    session.run(["inpainted"], batch)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(["inpainted"], batch)
        done += len(batch["image"])
    return done / (time.perf_counter() - started)


def _validation(session, val_set: Path | None, float_card: dict) -> dict:
    """The twin (and biharmonic) on the float model's validation crops, when that file is given."""
    if val_set is None:
        return {**float_card.get("validation", {}), "note": "the float model's validation (no --val-set given); "
                                                              "see int8_vs_float for the twin's difference"}
    try:
        return validation_set_report(lambda images, masks: session.run(["inpainted"], {"image": images, "mask": masks})[0],
                                     val_set)
    except (OSError, KeyError, ValueError) as error:
        raise InputError(val_set, f"not a training run's val_set.npz ({error})") from None


def quantize_model(float_path: str | os.PathLike, calibration_case: str | os.PathLike, out: str | os.PathLike | None = None,
                   slices: range | None = None, crops: int = 96, check_crops: int = 96, seed: int = 0,
                   val_set: str | os.PathLike | None = None, overwrite: bool = False, threads: int | None = None,
                   command: str | None = None) -> dict:
    """Quantise ``float_path`` into its int8 twin (default ``<name>.int8.onnx``) with a card; returns the card.

    ``crops`` recorded inputs calibrate the ranges; ``check_crops`` other ones measure the twin
    against the float model. Refuses existing outputs unless ``overwrite``; never writes over the
    float model.

    Raises:
        InputError: a missing or wrong model, card or case, too few crops. OutputExistsError.
    """
    float_path = Path(float_path)
    out = Path(out) if out is not None else int8_path_for(float_path)
    if out.suffix != ".onnx":
        raise InputError(out, "the model file must end in .onnx")
    if out.resolve() == float_path.resolve():
        raise InputError(out, "the int8 model would replace the float model it is made from: choose another --out")
    for target in (out, card_path_for(out)):
        if target.exists() and not overwrite:
            raise OutputExistsError(target)
    if not out.parent.is_dir():
        raise InputError(out.parent, "output folder does not exist")
    if val_set is not None and not Path(val_set).is_file():
        raise InputError(val_set, "validation set not found")
    model = InpaintModel.load(float_path, threads=threads)
    float_card = dict(read_card(card_path_for(float_path)).raw)
    if float_card.get("precision", "float32") != "float32":
        raise InputError(float_path, f"this model is already {float_card['precision']}: quantise the float model")
    (images, masks), (check_images, check_masks), facts = record_network_inputs(
        model, calibration_case, slices, crops, check_crops, seed)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp.onnx", dir=out.parent)
    os.close(handle)
    try:  # the model and its card appear together, once everything has been measured
        card = _quantize_and_measure(float_path, temporary, float_card, images, masks, check_images, check_masks,
                                     facts, val_set, threads, command)
        os.chmod(temporary, 0o644)
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    write_json(card, card_path_for(out), overwrite=True)
    return card


def _quantize_and_measure(float_path: Path, temporary: str, float_card: dict, images, masks, check_images,
                          check_masks, facts: dict, val_set, threads: int | None, command: str | None) -> dict:
    """Quantise into ``temporary`` and build the twin's card (comparison, speed, validation)."""
    started = time.perf_counter()
    crops = len(images)
    keep = quantize_to(float_path, temporary, images, masks)
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    sessions = [onnxruntime.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                for p in (float_path, temporary)]
    float_out, int8_out = (_run(s, check_images, check_masks) for s in sessions)
    broken = int(np.sum(~np.isfinite(int8_out).all(axis=(1, 2, 3))))
    if broken:
        # Measured on a PET-prefill model (session 15): its in-network solver does not survive
        # int8 and every output was NaN; fast mode would have used that twin by default.
        prefill = (float_card.get("network") or {}).get("prefill", "none")
        raise InputError(float_path, f"its int8 twin returns NaN or infinite values on {broken} of "
                                     f"{len(int8_out)} check crops, so it was not written; a model with an "
                                     f"in-network prefill (this one: {prefill}) must stay float32")
    speeds = [crops_per_second(s, check_images, check_masks) for s in sessions]
    card = {**float_card, "name": float_card.get("name", float_path.stem) + ".int8", "precision": "int8",
            "quantized_from": {"file": float_path.name, "sha256": file_sha256(float_path)},
            "quantization": {"tool": f"onnxruntime {onnxruntime.__version__} quantize_static",
                             "format": "QOperator (QLinearConv)", "weights": "int8, per output channel",
                             "activations": "uint8", "calibration_method": "MinMax",
                             "convs_kept_float32": keep, "calibration": {**facts, "crops_used": crops},
                             "command": command, "seconds": round(time.perf_counter() - started, 1)},
            "int8_vs_float": {**agreement(float_out, int8_out, check_masks), "crops": int(len(check_images)),
                              "crops_per_s": {"float32": round(speeds[0], 1), "int8": round(speeds[1], 1),
                                              "batch": CALIBRATION_BATCH, "threads": threads,
                                              "note": "measured once at quantisation time; the machine is noisy"}},
            "validation": _validation(sessions[1], Path(val_set) if val_set is not None else None, float_card)}
    card.pop("held_out", None)  # the float model's; measure the twin with model-eval
    return card


def parse_slices(text: str | None) -> range | None:
    if text is None:
        return None
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise InputError("--slices", f"expected A:B (two integers), got {text!r}") from None
    if not 0 <= start < stop:
        raise InputError("--slices", f"expected 0 <= A < B, got {text!r}")
    return range(start, stop)


def describe(card: dict, out: Path) -> Sequence[str]:
    """Lines the CLI prints after quantising."""
    check = card["int8_vs_float"]
    speed = check["crops_per_s"]
    validation = card["validation"]
    lines = [f"wrote {out} and {card_path_for(out).name}",
             f"int8 vs float inside the holes of {check['crops']} pipeline crops: mean |d| "
             f"{check['mean_abs_in_holes']:.4f}, 99th percentile {check['p99_abs_in_holes']:.4f}, max "
             f"{check['max_abs_in_holes']:.4f}",
             f"speed (batch {speed['batch']}): float32 {speed['float32']:.1f} crops/s, int8 {speed['int8']:.1f} crops/s "
             f"({speed['int8'] / speed['float32']:.2f}x)"]
    if validation.get("model") and validation.get("biharmonic") and "note" not in validation:
        lines.append(f"validation ({validation['crops']} crops): int8 PSNR {validation['model']['psnr_hole']:.2f} dB, "
                     f"SSIM {validation['model']['ssim_hole']:.4f}; biharmonic {validation['biharmonic']['psnr_hole']:.2f} dB, "
                     f"{validation['biharmonic']['ssim_hole']:.4f}")
    return lines
