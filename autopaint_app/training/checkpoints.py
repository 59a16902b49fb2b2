"""Training checkpoints: atomic saves, ``weights_only=True`` loads, network config round trip.

A checkpoint is a dict of tensors and plain Python containers only (so ``torch.load(...,
weights_only=True)`` can read it without running pickled code):

- ``format``: ``CHECKPOINT_FORMAT``;
- ``model``, ``optimizer``: state dicts;
- ``network``: ``NetworkConfig`` as a dict (``network_to_dict``);
- ``run_config``: ``RunConfig.to_dict()``; ``command``: the command line that started the run;
- ``epoch`` (epochs fully done), ``step_in_epoch`` (steps done in the next one), ``global_step``,
  ``phase`` (1 or 2);
- ``torch_rng`` (ByteTensor), ``numpy_rng`` (the sampler's bit-generator state as JSON text);
- ``best`` (``{"metric", "value", "epoch"}``), ``history`` (per-epoch dicts of floats),
  ``split`` (``{"train": [...], "val": [...]}`` patient ids), ``cases`` (per-case summaries),
  ``wall_time_s`` (training seconds so far, over all sessions), ``vgg_weights`` (source),
  ``biharmonic`` (baseline metrics on the validation set), ``val_metrics`` (this checkpoint's).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from autopaint_app.core.errors import InputError
from autopaint_app.core.presets import MODALITY_CHANNELS
from autopaint_app.training.networks import NetworkConfig

CHECKPOINT_FORMAT = "autopaint-train-1"


def network_to_dict(config: NetworkConfig) -> dict:
    return {"arch": config.arch, "in_channels": config.in_channels, "widths": list(config.widths),
            "depth": config.depth, "kernels": list(config.kernels), "use_bn": config.use_bn,
            "prefill": config.prefill,
            "prefill_channels": None if config.prefill_channels is None else list(config.prefill_channels)}


def network_from_dict(data: dict) -> NetworkConfig:
    chosen = data.get("prefill_channels")  # absent before per-channel prefills: every channel
    return NetworkConfig(data["arch"], int(data["in_channels"]), tuple(data["widths"]), int(data["depth"]),
                         tuple(data["kernels"]), bool(data["use_bn"]), str(data.get("prefill", "none")),
                         None if chosen is None else tuple(int(c) for c in chosen))


def rng_state_text(rng: np.random.Generator) -> str:
    """The generator's full state as JSON text (PCG64's 128-bit ints survive as JSON ints)."""
    return json.dumps(rng.bit_generator.state)


def restore_rng(text: str) -> np.random.Generator:
    state = json.loads(text)
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file beside it, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        torch.save(state, temporary)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the run from other users
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        InputError: missing, unreadable or not an AutoPaint training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or foreign file is a user-input problem
        raise InputError(path, f"not a readable checkpoint ({error})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, f"not an AutoPaint training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def initialise_from(model, path: str | os.PathLike, channels: tuple[str, ...]) -> str:
    """Copy a checkpoint's network weights into ``model`` (fine-tuning start), matching channels by name.

    ``path`` may also be a shipped ``.onnx`` model with its card (``onnx_import``): its BN layers
    come back folded, so every BN of ``model`` is then frozen for good (``freeze_all_bn``).

    The source may have other image channels (a PET-CT source for a CT model): the first encoder
    layer's input weights and the head's input/output weights are picked per channel name; every
    other tensor must match exactly. Returns a short description for the log.

    Raises:
        InputError: unreadable checkpoint, another architecture/width, or a channel the source lacks.
    """
    if Path(path).suffix.lower() == ".onnx":
        from autopaint_app.training.onnx_import import state_from_onnx  # needs the onnx package

        state = state_from_onnx(path)
    else:
        state = load_checkpoint(path)
    source_config = network_from_dict(state["network"]) if "network" in state else None
    source_channels = _checkpoint_channels(state)
    if source_config is not None and (source_config.arch != model.config.arch
                                      or tuple(source_config.widths) != tuple(model.config.widths)):
        raise InputError(path, f"network {source_config.arch} {list(source_config.widths)} cannot start a "
                               f"{model.config.arch} {list(model.config.widths)} run")
    missing = [name for name in channels if name not in source_channels]
    if missing:
        raise InputError(path, f"the checkpoint has channels {list(source_channels)}, not {missing}")
    pick = [source_channels.index(name) for name in channels]
    source, target = state["model"], model.state_dict()
    n_src = len(source_channels)
    adopted = {}
    for key, tensor in target.items():
        value = source.get(key)
        if value is None:
            raise InputError(path, f"the checkpoint has no weight {key!r}")
        adapted = _adapt_channels(key, value, pick, n_src, model.config.widths[0])
        value = value if adapted is None else adapted
        if value.shape != tensor.shape:
            raise InputError(path, f"weight {key!r} has shape {tuple(source[key].shape)}, "
                                       f"expected {tuple(tensor.shape)}")
        adopted[key] = value
    note = ""
    restart = _channels_to_restart(model.config, source_config, channels, source_channels)
    if restart:
        # The source head predicts whole intensities there, or corrections to another prefill; here
        # it corrects this prefill's logit, so those output rows start at zero (the output starts as
        # the prefill). The other channels keep the source's head rows.
        rows = [channels.index(name) for name in restart]
        adopted = {key: (_zero_rows(value, rows) if key.startswith("head.") else value)
                   for key, value in adopted.items()}
        whole = len(restart) == len(channels)
        note = f"; head zeroed for the {model.config.prefill} prefill" + ("" if whole else f" ({', '.join(restart)})")
    model.load_state_dict(adopted)
    if state.get("bn_folded") or state.get("all_bn_frozen"):  # an exported model, or a run started from one
        model.freeze_all_bn()
        note += "; BN folded by the export: every BN layer frozen"
    return f"channels {list(source_channels)} -> {list(channels)}{note}"


def _channels_to_restart(config: NetworkConfig, source_config: NetworkConfig | None, channels: tuple[str, ...],
                         source_channels: list[str]) -> list[str]:
    """Names of the channels this network prefills that the source did not prefill the same way."""
    def prefilled(network: NetworkConfig | None, names) -> set[str]:
        if network is None or network.prefill == "none":
            return set()
        return {names[c] for c in network.prefilled if c < len(names)}

    same_kind = source_config is not None and source_config.prefill == config.prefill
    kept = prefilled(source_config, source_channels) if same_kind else set()
    return [name for name in channels if name in prefilled(config, channels) - kept]


def _zero_rows(value, rows: list[int]):
    """The head tensor with the output channels ``rows`` zeroed (weights: dim 0; bias: entries)."""
    value = value.clone()
    value[rows] = 0.0
    return value


def _checkpoint_channels(state: dict) -> list[str]:
    modality = (state.get("run_config") or {}).get("modality")
    return list(MODALITY_CHANNELS.get(modality, ()))


def _adapt_channels(key: str, value, pick: list[int], n_src: int, width: int):
    """Channel-dependent tensors: the first encoder layer (input = image channels [+ GConv's mask])
    and the head (input = ``width`` decoder features + image channels [+ mask]; output = channels)."""
    if key.startswith("encoder.0.") and key.endswith("weight") and value.dim() == 4:
        mask_columns = list(range(n_src, value.shape[1]))
        return value[:, pick + mask_columns].clone()
    if key.startswith("head.") and key.endswith("bias"):
        return value[pick].clone()
    if key.startswith("head.") and key.endswith("weight") and value.dim() == 4:
        columns = list(range(width)) + [width + i for i in pick] + list(range(width + n_src, value.shape[1]))
        return value[pick][:, columns].clone()
    return None
