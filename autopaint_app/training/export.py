"""ONNX export of a training checkpoint, checked against PyTorch, with its model card.

``autopaint-cli export --checkpoint CKPT --out models/<site>_<modality>_<arch>.onnx``

The exported graph obeys the contract of ``models/`` (issue 3, section 5): inputs ``image``
float32 (N, C, H, W) in [0, 1] (channels in the card's order, ``("ct", "pet")``) and ``mask``
float32 (N, 1, H, W) (1 = known, 0 = hole); output ``inpainted`` float32 (N, C, H, W) in [0, 1],
the raw prediction; N, H and W dynamic, H and W multiples of ``size_multiple``. torch's default
(dynamo) exporter, opset 18 (opset 17 through it produces an invalid Split). The file is checked
with ONNX Runtime (CPU) against PyTorch at two sizes; the largest absolute difference goes in the
card. The card (same name, ``.json``) also carries the validation of the ONNX model and of
``skimage.restoration.inpaint_biharmonic`` on the run's fixed validation crops and holes
(``val_set.npz`` of the run folder).

This module imports onnxruntime for the check (the export tool runs outside the app; the app's
inference lives in ``core.inpaint_model``).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from autopaint_app.core.errors import InputError, OutputExistsError
from autopaint_app.core.io import write_json
from autopaint_app.core.presets import MODALITY_CHANNELS, get_preset
from autopaint_app.training import checkpoints as ckpt
from autopaint_app.core.inpaint_quality import validation_set_report
from autopaint_app.training.networks import NAMED_WIDTHS, InpaintingUNet, NetworkConfig, build_network, count_parameters
from autopaint_app.training.progress import json_safe

OPSET = 18
CARD_VERSION = 1
onnxruntime.set_default_logger_severity(4)  # onnxruntime-gpu's CUDA fallback noise on CPU machines


def model_from_checkpoint(state: dict) -> InpaintingUNet:
    """The network of a checkpoint, weights loaded, in eval mode."""
    model = build_network(ckpt.network_from_dict(state["network"]))
    model.load_state_dict(state["model"])
    return model.eval()


def onnx_bytes(model: InpaintingUNet) -> bytes:
    """Serialized ONNX model (dynamo exporter, opset 18, dynamic N/H/W)."""
    step = model.config.size_multiple
    example = (torch.rand(2, model.config.in_channels, 2 * step, 2 * step), torch.ones(2, 1, 2 * step, 2 * step))
    batch, height, width = (torch.export.Dim(name) for name in ("batch", "height", "width"))
    axes = {0: batch, 2: height, 3: width}
    with warnings.catch_warnings():
        # The exporter's own chatter about torch internals, not about this model.
        warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        program = torch.onnx.export(model, example, None, input_names=["image", "mask"],
                                    output_names=["inpainted"], opset_version=OPSET, verbose=False,
                                    dynamic_shapes={"image": axes, "mask": axes})
    proto = program.model_proto
    for node in proto.graph.node:  # the exporter's per-node stack traces: bytes, no behaviour
        node.doc_string = ""
        del node.metadata_props[:]
    return proto.SerializeToString()


def cpu_session(model_bytes: bytes) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])


def onnx_parity(session: onnxruntime.InferenceSession, model: InpaintingUNet, seed: int = 0) -> float:
    """Largest |ONNX Runtime - PyTorch| on random images and holes at two sizes (and batch sizes)."""
    step, channels = model.config.size_multiple, model.config.in_channels
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for n, h, w in ((2, 2 * step, 2 * step), (1, 3 * step, 4 * step)):
        image = torch.rand(n, channels, h, w, generator=generator)
        mask = (torch.rand(n, 1, h, w, generator=generator) > 0.3).float()
        with torch.no_grad():
            expected = model(image, mask).numpy()
        (got,) = session.run(["inpainted"], {"image": image.numpy(), "mask": mask.numpy()})
        if got.shape != expected.shape:
            raise RuntimeError(f"ONNX output shape {got.shape} differs from PyTorch's {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def _validation(session, val_set: Path | None, state: dict, batch_size: int = 8) -> dict:
    """Model (through ONNX Runtime) and biharmonic metrics on the run's fixed validation set."""
    if val_set is None or not val_set.is_file():
        return {"crops": None, "model": state.get("val_metrics"), "biharmonic": state.get("biharmonic"),
                "note": "validation set file not found; metrics copied from the checkpoint"}
    return validation_set_report(lambda images, masks: session.run(["inpainted"], {"image": images, "mask": masks})[0],
                                 val_set, batch_size)


def size_name(config: NetworkConfig) -> str:
    """The named size the network is (a run may give its widths explicitly), else ``"custom"``."""
    for name in NAMED_WIDTHS:
        named = NetworkConfig.named(name)
        if (tuple(config.widths), tuple(config.kernels)) == (named.widths, named.kernels):
            return name
    return "custom"


def build_card(state: dict, model: InpaintingUNet, parity: float, validation: dict) -> dict:
    """The model card (issue 3, section 5) of a checkpoint."""
    run = state["run_config"]
    preset = get_preset(run["site"])
    history = state.get("history", [])
    return {
        "card_version": CARD_VERSION, "name": f"{run['site']}_{run['modality']}_{run['arch']}",
        "architecture": run["arch"], "network": state["network"], "size": size_name(model.config),
        "site": run["site"], "modality": run["modality"], "channels": list(MODALITY_CHANNELS[run["modality"]]),
        # the run's own windows when it overrode the preset's: inference must normalise the same way
        "ct_window": list(run.get("ct_window") or preset.ct_window),
        "suv_window": list(run.get("suv_window") or preset.suv_window),
        "size_multiple": model.config.size_multiple, "params": count_parameters(model),
        "train_crop": run["train_crop"],
        "inputs": {"image": "float32 (N, C, H, W) in [0, 1], channels in 'channels' order",
                   "mask": "float32 (N, 1, H, W), 1 = known pixel, 0 = hole"},
        "outputs": {"inpainted": "float32 (N, C, H, W) in [0, 1], raw prediction (not composited)"},
        "training": {
            "cases": state.get("cases"), "train_patients": state["split"]["train"],
            "val_patients": state["split"]["val"], "epochs_phase1": run["epochs_phase1"],
            "epochs_phase2": run["epochs_phase2"], "epochs_done": state["epoch"],
            "checkpoint_epoch": state["epoch"], "steps_per_epoch": state.get("steps_per_epoch"),
            "global_step": state["global_step"], "batch_size": run["batch_size"], "lr1": run["lr1"],
            "lr2": run["lr2"], "wall_time_s": round(float(state["wall_time_s"]), 1),
            "best": state.get("best"), "command": state.get("command"), "config": run,
            "history": [{"epoch": h["epoch"], "phase": h["phase"], "train_total": h["train"].get("total"),
                         "val_psnr_hole": h["val"]["psnr_hole"], "val_ssim_hole": h["val"]["ssim_hole"]}
                        for h in history]},
        "vgg_weights": state.get("vgg_weights"), "validation": validation,
        "onnx_opset": OPSET, "onnx_parity_max_abs": parity, "torch_version": torch.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _write_bytes_atomic(data: bytes, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False,
                      val_set: str | os.PathLike | None = None) -> dict:
    """Export ``checkpoint`` to ``out`` (.onnx) and its card (same name, .json); returns the card.

    Args:
        checkpoint: A training checkpoint (``best.pt`` / ``latest.pt``).
        out: Target ``.onnx`` path; the card goes to ``out`` with suffix ``.json``.
        overwrite: Replace existing files (otherwise refuse before any work).
        val_set: The run's ``val_set.npz``; default ``<run folder>/val_set.npz`` beside
            ``checkpoints/``.

    Raises:
        InputError: bad checkpoint or output path. OutputExistsError: a target exists.
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise InputError(out, "the model file must end in .onnx")
    card_path = out.with_suffix(".json")
    for target in (out, card_path):
        if target.exists() and not overwrite:
            raise OutputExistsError(target)
    state = ckpt.load_checkpoint(checkpoint)
    if "model" not in state:
        raise InputError(checkpoint, "checkpoint holds no model weights")
    model = model_from_checkpoint(state)
    model_bytes = onnx_bytes(model)
    session = cpu_session(model_bytes)
    parity = onnx_parity(session, model)
    val_path = Path(val_set) if val_set is not None else Path(checkpoint).resolve().parent.parent / "val_set.npz"
    card = json_safe(build_card(state, model, parity, _validation(session, val_path, state)))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(out.parent, f"cannot create output folder ({error.strerror})") from None
    _write_bytes_atomic(model_bytes, out)
    write_json(card, card_path, overwrite=True)
    return card
