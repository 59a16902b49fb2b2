"""Sample inpaintings of fixed validation holes, written at the end of every epoch for the wizard.

``<out_dir>/samples/epoch_NNN.npz`` holds the first ``SAMPLE_COUNT`` crops of the run's fixed
validation set (``data.fixed_validation_set``: same crops and holes every epoch, so the pictures
show the network learning) with arrays:

- ``truth``: float32 (n, C, H, W) in [0, 1], the crops;
- ``masks``: float32 (n, 1, H, W), 1 = known pixel, 0 = hole;
- ``holes``: the network input, ``truth * masks`` (holes at 0);
- ``output``: float32 (n, C, H, W), the raw network prediction (not composited);
- ``channels``: channel names, e.g. ``["ct", "pet"]``; ``epoch``: int.

Written atomically (temporary file beside it, then ``os.replace``) so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

SAMPLE_COUNT = 4


def samples_path(out_dir: str | os.PathLike, epoch: int) -> Path:
    """``<out_dir>/samples/epoch_NNN.npz`` (epoch counted from 1)."""
    return Path(out_dir) / "samples" / f"epoch_{epoch:03d}.npz"


@torch.no_grad()
def predict_samples(model: torch.nn.Module, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The network's raw output on ``images`` (n, C, H, W) with ``masks`` (n, 1, H, W), in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    output = model(torch.from_numpy(images).to(device), torch.from_numpy(masks).to(device))
    model.train(was_training)
    return output.cpu().numpy().astype(np.float32)


def write_samples(model: torch.nn.Module, images: np.ndarray, masks: np.ndarray, channels: tuple[str, ...],
                  out_dir: str | os.PathLike, epoch: int, count: int = SAMPLE_COUNT) -> Path:
    """Inpaint the first ``count`` validation crops and write them (see the module docstring).

    Args:
        model: The network (its train/eval mode is restored afterwards).
        images: float32 (n, C, H, W) in [0, 1], the fixed validation crops.
        masks: float32 (n, 1, H, W), their fixed holes (1 = known).
        channels: Channel names in network order.
        out_dir: The run folder.
        epoch: Epoch just finished (from 1).
        count: Crops to keep.

    Returns:
        The written ``.npz`` path.
    """
    truth = np.ascontiguousarray(images[:count], dtype=np.float32)
    kept_masks = np.ascontiguousarray(masks[:count], dtype=np.float32)
    output = predict_samples(model, truth, kept_masks)
    path = samples_path(out_dir, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    os.close(handle)
    try:
        np.savez_compressed(temporary, truth=truth, masks=kept_masks, holes=truth * kept_masks, output=output,
                            channels=np.array(channels), epoch=np.array(epoch))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path
