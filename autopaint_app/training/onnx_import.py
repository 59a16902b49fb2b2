"""Read a shipped ONNX model back into a trainable network (fine-tuning a model whose checkpoint is gone).

The exporter folds every batch normalisation into the convolution before it: the feature branch
``conv_f`` (no bias of its own) and its BN become one convolution with weights ``W' = W * g / s``
and a new initializer ``<name>.conv_f.weight_bias`` = ``beta - mean * g / s`` (``s = sqrt(var +
eps)``). That is exactly a BN in eval mode with ``mean = 0``, ``var = 1 - eps``, ``gamma = 1`` and
``beta = weight_bias`` after a convolution with weights ``W'``, so the network is rebuilt that way
and reproduces the ONNX model to float rounding. The original batch statistics are lost, so such a
network must keep **every** BN in eval mode while it trains (``InpaintingUNet.set_bn_frozen("all")``):
batch statistics would replace the folded identity with something the weights were never trained
for. The affine parameters still learn.

The architecture comes from the card beside the model (``network``); a card without it (the
int8 twins, foreign models) is refused by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from autopaint_app.core.errors import InputError
from autopaint_app.core.inpaint_model import card_path_for, read_card
from autopaint_app.training.checkpoints import network_from_dict, network_to_dict
from autopaint_app.training.networks import build_network

FOLDED_BIAS_SUFFIX = "_bias"  # "<layer>.conv_f.weight" + this = the folded BN shift


def _initializers(path: Path) -> dict[str, np.ndarray]:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise InputError(path, "reading an ONNX model's weights needs the onnx package (pip install onnx)") from None
    try:
        model = onnx.load(str(path))
    except Exception as error:  # a corrupt or foreign file is a user-input problem
        raise InputError(path, f"not a readable ONNX model ({error})") from None
    return {item.name: numpy_helper.to_array(item) for item in model.graph.initializer}


def state_from_onnx(path: str | os.PathLike) -> dict:
    """A checkpoint-like dict for ``checkpoints.initialise_from``: ``model`` (a state dict),
    ``network`` (config dict), ``run_config`` (``{"modality": ...}``) and ``bn_folded`` (True).

    Raises:
        InputError: missing model or card, a card without ``network``, a quantized model, or an
            initializer missing or of another shape (the message names the file and the weight).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model not found")
    card = read_card(card_path_for(path))
    if "network" not in card.raw or "modality" not in card.raw:
        raise InputError(card_path_for(path), "model card has no 'network'/'modality' section: only models "
                                              "exported by autopaint-cli export can be fine-tuned")
    if card.raw.get("precision", "float32") != "float32":
        raise InputError(path, f"precision {card.raw['precision']!r}: only float32 models can be fine-tuned "
                               "(use the float model it was made from)")
    try:
        network = network_from_dict(card.raw["network"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(card_path_for(path), f"model card 'network' is not a network configuration ({error})") from None
    weights = _initializers(path)
    target = build_network(network).state_dict()
    state = {}
    for key, tensor in target.items():
        state[key] = _weight_for(key, tensor, weights, network.use_bn, path)
    return {"model": state, "network": network_to_dict(network), "run_config": {"modality": card.raw["modality"]},
            "bn_folded": bool(network.use_bn)}


def _weight_for(key: str, tensor: torch.Tensor, weights: dict[str, np.ndarray], use_bn: bool,
                path: Path) -> torch.Tensor:
    layer, _, leaf = key.rpartition(".")
    if use_bn and layer.endswith(".bn"):
        conv_f = layer[:-len(".bn")] + ".conv_f.weight"
        eps = 1e-5  # nn.BatchNorm2d's default, which every network here uses
        if leaf == "weight":
            return torch.ones_like(tensor)
        if leaf == "bias":
            return _tensor(conv_f + FOLDED_BIAS_SUFFIX, tensor, weights, path)
        if leaf == "running_mean":
            return torch.zeros_like(tensor)
        if leaf == "running_var":
            return torch.full_like(tensor, 1.0 - eps)
        return torch.zeros_like(tensor)  # num_batches_tracked
    return _tensor(key, tensor, weights, path)


def _tensor(name: str, like: torch.Tensor, weights: dict[str, np.ndarray], path: Path) -> torch.Tensor:
    value = weights.get(name)
    if value is None:
        raise InputError(path, f"the model has no weight {name!r} (not exported from this network)")
    if tuple(value.shape) != tuple(like.shape):
        raise InputError(path, f"weight {name!r} has shape {tuple(value.shape)}, expected {tuple(like.shape)}")
    return torch.from_numpy(np.array(value, dtype=np.float32))
