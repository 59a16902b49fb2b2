"""Smoothness augmentation: train on the range of reconstructions real scanners deliver.

Why: the phantoms carry noise at one level (core/phantom.py), but clinical scans come out of the
reconstruction anywhere from noisy to very smooth (PET: OSEM without post-filter to RAMLA with one;
CT: sharp to soft-tissue kernels). Measured on the working grid (mean |discrete Laplacian| in the
[0, 1] window, 128-px crops, session 15):
- PET: lung phantoms 0.0015; the real whole-body PET of HN-CHUS-052, 0.0006 in its upper chest;
- CT: lung phantoms 0.063; the real chest CTs lung1 / lung2 0.016 / 0.017, HN-CHUS-052 0.054.
A network that only saw the phantoms' texture paints it into the holes of a smooth real scan, where
a smooth fill would have been right: on HN-CHUS-052's upper chest the shipped lung PET-CT model's PET
channel scored 38.2 dB against 43.6 for biharmonic (README, Models, session 15).

Each training crop's channel is blurred by a Gaussian whose sigma (working-grid pixels) is drawn
uniformly from a range, input and target alike: the crop stands for a scan from a smoother
reconstruction, so the hole loss still asks for that scan's own tissue.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

# Below this sigma a blur would change nothing visible; the crop keeps the phantom's own texture.
MIN_SIGMA_PX = 0.05


def smooth_channel(images: np.ndarray, channels: tuple[str, ...], name: str, sigma_px: tuple[float, float],
                   rng: np.random.Generator) -> np.ndarray:
    """A copy of ``images`` (n, C, H, W) with each crop's channel ``name`` blurred by sigma ~ U(sigma_px).

    One sigma is drawn per crop (also when it is too small to blur), so the random stream does not
    depend on the images. ``images`` is returned as is when ``name`` is not one of ``channels``.
    """
    low, high = sigma_px
    if not 0.0 <= low <= high:
        raise ValueError(f"{name.upper()} smoothing range must be 0 <= low <= high px, got {sigma_px}")
    if name not in channels:
        return images
    out = images.copy()
    c = channels.index(name)
    for i in range(images.shape[0]):
        sigma = float(rng.uniform(low, high))
        if sigma >= MIN_SIGMA_PX:
            # "nearest" keeps a crop's border level (no dark frame from zero padding).
            out[i, c] = ndi.gaussian_filter(images[i, c], sigma, mode="nearest")
    return out
