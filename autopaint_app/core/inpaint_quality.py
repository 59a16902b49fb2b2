"""Inpainting quality on the fixed validation set: the network and the biharmonic baseline.

Metrics come from ``core.metrics`` (MSE, PSNR, SSIM on [0, 1] data, ``data_range = 1``), each
twice: inside the holes (``*_hole``) and over the whole crop (``*_whole``). Both methods are scored
on the composite image (prediction in the holes, the known pixels elsewhere), which is what
inpainting delivers and what ``skimage.restoration.inpaint_biharmonic`` returns; in the holes the
composite is the raw prediction. All channels are pooled: a batch (n, C, H, W) is scored as the
stack of its n * C grey images (SSIM slice by slice, as the paper does). Numpy only: it lives in core
so the trainer (``training.evaluation`` re-exports it), the export's model card and the held-out
evaluation (``core.model_eval``) score with the same code.
"""

from __future__ import annotations

import numpy as np
from skimage.restoration import inpaint_biharmonic

from autopaint_app.core import metrics

METRIC_NAMES = ("mse_hole", "psnr_hole", "ssim_hole", "mse_whole", "psnr_whole", "ssim_whole")


def composite(prediction: np.ndarray, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Known pixels from ``images``, holes from ``prediction``; (n, C, H, W), masks (n, 1, H, W)."""
    return masks * images + (1.0 - masks) * prediction


def inpainting_metrics(prediction: np.ndarray, images: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """MSE/PSNR/SSIM of ``composite(prediction)`` against ``images``, in the holes and whole.

    Args:
        prediction: float (n, C, H, W) in [0, 1], the raw network output (or an inpainted image).
        images: float (n, C, H, W) in [0, 1], the ground truth.
        masks: float (n, 1, H, W), 1 = known, 0 = hole; at least one hole pixel in the batch.

    Returns:
        ``{name: value for name in METRIC_NAMES}`` (PSNR in dB).
    """
    n, c, h, w = images.shape
    result = composite(np.asarray(prediction, dtype=np.float64), images.astype(np.float64), masks)
    stack_pred, stack_true = result.reshape(n * c, h, w), images.reshape(n * c, h, w).astype(np.float64)
    holes = np.broadcast_to(masks < 0.5, images.shape).reshape(n * c, h, w)
    return {"mse_hole": metrics.mse(stack_pred, stack_true, mask=holes),
            "psnr_hole": metrics.psnr(stack_pred, stack_true, mask=holes),
            "ssim_hole": metrics.ssim(stack_pred, stack_true, mask=holes),
            "mse_whole": metrics.mse(stack_pred, stack_true),
            "psnr_whole": metrics.psnr(stack_pred, stack_true),
            "ssim_whole": metrics.ssim(stack_pred, stack_true)}


def biharmonic_inpaint(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``inpaint_biharmonic`` per crop and per channel; (n, C, H, W) float64, holes filled.

    Raises:
        ValueError: ``images`` is not (n, C, H, W) or ``masks`` not (n, 1, H, W) (a single crop
            passed as (C, H, W) would otherwise index rows as masks and fill nothing).
    """
    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim != 4 or masks.shape != (images.shape[0], 1) + images.shape[2:]:
        raise ValueError(f"expected images (n, C, H, W) and masks (n, 1, H, W), got {images.shape} and {masks.shape}")
    out = np.array(images, dtype=np.float64)
    for i in range(images.shape[0]):
        holes = masks[i, 0] < 0.5
        if not holes.any():
            continue
        for c in range(images.shape[1]):
            out[i, c] = inpaint_biharmonic(out[i, c], holes)
    return np.clip(out, 0.0, 1.0)


def biharmonic_metrics(images: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """The baseline's ``inpainting_metrics`` on the same crops and holes."""
    return inpainting_metrics(biharmonic_inpaint(images, masks), images, masks)


def validation_set_report(predict, val_set, batch_size: int = 8) -> dict:
    """A model (``predict(images, masks) -> outputs``) and biharmonic on a training run's ``val_set.npz``.

    The card section both the export and the int8 twin record (``validation``): crops, patients,
    sources, and the two sets of metrics on the same crops and holes.

    Raises:
        OSError, KeyError, ValueError: the file is missing, not an npz, or lacks images/masks/sources.
    """
    with np.load(val_set) as stored:
        images, masks, sources = stored["images"], stored["masks"], stored["sources"].tolist()
    outputs = np.concatenate([predict(images[i:i + batch_size], masks[i:i + batch_size])
                              for i in range(0, len(images), batch_size)])
    return {"crops": len(images), "crop_size": int(images.shape[-1]), "patients": sorted({s.split(":")[0] for s in sources}),
            "sources": sources, "scored_on": "composite (prediction in holes, known pixels elsewhere); channels pooled",
            "model": inpainting_metrics(outputs, images, masks), "biharmonic": biharmonic_metrics(images, masks)}
