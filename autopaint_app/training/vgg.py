"""VGG16 feature extractor (pool1, pool2, pool3) for the perceptual and style losses.

The layers are defined here (no torchvision dependency) with torchvision's indices, so a
torchvision ``vgg16`` state dict (keys ``features.0.weight`` ...) loads directly. ImageNet weights
cannot be downloaded on the training machines: they are taken from a user-given file or from the
torch hub cache (``<torch hub dir>/checkpoints/vgg16-397923af.pth``) when present; otherwise the
layers get a fixed, seeded random initialisation (``VGG_RANDOM_SEED``), which is logged as a
warning and reported by ``VGG16Features.weights_source`` (``"imagenet"`` or ``"random-seeded"``)
for the model card.

Grey images: a 1-channel medical image is repeated to 3 channels and ImageNet-normalised. A
2-channel (CT, PET) image is run as two separate grey images, so each modality gets its own
features and Gram matrices (its own structures); the losses average over channels, which keeps
their scale, and so the paper's weights, the same for CT, PET and PET-CT.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from autopaint_app.core.errors import InputError

logger = logging.getLogger(__name__)

HUB_FILENAME = "vgg16-397923af.pth"
VGG_RANDOM_SEED = 16  # fixed so that every "random-seeded" loss network is the same one
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's vgg16 "features" up to pool3: conv channels, "M" = 2x2 max-pool.
_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")
POOL_INDICES = (4, 9, 16)  # indices of pool1, pool2, pool3 in ``features``


def default_weights_path() -> Path:
    """Where torchvision caches the ImageNet VGG16 weights (may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / HUB_FILENAME


class VGG16Features(nn.Module):
    """Frozen VGG16 layers up to pool3 returning the three pooling outputs.

    Build it with ``load_vgg16_features``; the parameters never require gradients, but gradients
    flow through to the input.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        self.weights_source = "random-seeded"
        self.weights_path: Path | None = None

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """image: (N, C, H, W) in [0, 1], any C -> [pool1, pool2, pool3] of the N*C grey images.

        Returns:
            Three tensors (N*C, 64, H/2, W/2), (N*C, 128, H/4, W/4), (N*C, 256, H/8, W/8);
            row ``n * C + c`` belongs to sample n, channel c.
        """
        n, c, h, w = image.shape
        grey = image.reshape(n * c, 1, h, w).expand(-1, 3, -1, -1)
        x = (grey - self.mean) / self.std
        pools = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in POOL_INDICES:
                pools.append(x)
        return pools


def _seeded_init(model: VGG16Features) -> None:
    # torchvision's VGG initialisation, drawn from a private generator (global RNG untouched).
    generator = torch.Generator().manual_seed(VGG_RANDOM_SEED)
    for module in model.features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                    generator=generator)
            nn.init.zeros_(module.bias)


def _load_state(model: VGG16Features, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable/corrupt file is a user-input problem
        raise InputError(path, f"not a readable torch state dict ({error})") from error
    wanted = model.state_dict().keys()
    missing = [key for key in wanted if key not in state]
    if missing:
        raise InputError(path, f"not a torchvision VGG16 state dict (missing {missing[0]!r})")
    try:
        model.load_state_dict({key: state[key] for key in wanted})
    except RuntimeError as error:
        raise InputError(path, f"VGG16 weights of the wrong shape ({error})") from error


def load_vgg16_features(weights_path: str | Path | None = None,
                        use_hub_cache: bool = True) -> VGG16Features:
    """Build the frozen VGG16 feature extractor with the best weights available.

    Args:
        weights_path: A torchvision-format VGG16 state dict. If given, it must load (no fallback).
        use_hub_cache: Without ``weights_path``, try ``default_weights_path()`` first.

    Returns:
        The model in eval mode with ``weights_source`` = ``"imagenet"`` (a file was loaded) or
        ``"random-seeded"`` and ``weights_path`` = the file loaded or None.

    Raises:
        InputError: ``weights_path`` is missing, unreadable or not VGG16 weights.
    """
    model = VGG16Features()
    path = Path(weights_path) if weights_path is not None else None
    if path is None and use_hub_cache and default_weights_path().is_file():
        path = default_weights_path()
    if path is not None:
        if not path.is_file():
            raise InputError(path, "VGG16 weights file not found")
        _load_state(model, path)
        model.weights_source, model.weights_path = "imagenet", path
        logger.info("VGG16 loss network: ImageNet weights from %s", path)
    else:
        _seeded_init(model)
        logger.warning("VGG16 loss network: no ImageNet weights (looked for %s); using a random "
                       "initialisation with seed %d - perceptual/style losses use random features",
                       default_weights_path(), VGG_RANDOM_SEED)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()
