"""PET smoothness augmentation: train on the range of reconstructions real scanners deliver.

Why: the phantoms' PET carries counting noise at one level (core/phantom.py), but clinical PETs
come out of the reconstruction anywhere from noisy (OSEM, no post-filter) to very smooth (RAMLA,
post-filtered). Measured on the working grid (mean |discrete Laplacian| over the mean, 128-px
crops): lung phantoms 0.038, the real whole-body PET of HN-CHUS-052 in the chest 0.0095. A
network that only saw the phantoms' texture paints it into the holes of a smooth real PET, where a
smooth fill would have been right (README, Models, session 15).

Each training crop's PET channel is blurred by a Gaussian whose sigma (working-grid pixels) is drawn
uniformly from a range, input and target alike: the crop stands for a scan from a smoother
reconstruction, so the hole loss still asks for that scan's own tissue. CT channels are untouched.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def smooth_pet(images: np.ndarray, channels: tuple[str, ...], sigma_px: tuple[float, float],
               rng: np.random.Generator) -> np.ndarray:
    """A copy of ``images`` (n, C, H, W) with each crop's PET channel blurred by sigma ~ U(sigma_px).

    A sigma below 0.05 px leaves the crop as it is (the phantom's own texture stays in the mix).
    """
    low, high = sigma_px
    if not 0.0 <= low <= high:
        raise ValueError(f"PET smoothing range must be 0 <= low <= high px, got {sigma_px}")
    if "pet" not in channels:
        return images
    out = images.copy()
    pet = channels.index("pet")
    for i in range(images.shape[0]):
        sigma = float(rng.uniform(low, high))
        if sigma >= 0.05:
            # "nearest" keeps a crop's border level (no dark frame from zero padding).
            out[i, pet] = ndi.gaussian_filter(images[i, pet], sigma, mode="nearest")
    return out
