"""Networks, masks and the loss fit together: a few Adam steps lower the total loss."""

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from autopaint_app.training.losses import InpaintingLoss
from autopaint_app.training.masks import batch_masks
from autopaint_app.training.networks import NetworkConfig, build_network
from autopaint_app.training.vgg import load_vgg16_features


def _smooth_images(n, size, rng):
    noise = rng.random((n, 1, size, size))
    smooth = np.stack([gaussian_filter(img, sigma=(0, 6, 6)) for img in noise])
    low, high = smooth.min(axis=(1, 2, 3), keepdims=True), smooth.max(axis=(1, 2, 3),
                                                                       keepdims=True)
    return torch.from_numpy(((smooth - low) / (high - low)).astype(np.float32))


def test_twenty_adam_steps_lower_the_total_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = _smooth_images(4, 64, rng)
    masks = torch.from_numpy(batch_masks(4, 64, rng))
    model = build_network(NetworkConfig.with_widths((8, 16, 32)))
    criterion = InpaintingLoss(vgg=load_vgg16_features(use_hub_cache=False))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(20):
        total, terms = criterion(model(images, masks), images, masks)
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        history.append(terms)
    with torch.no_grad():
        _, final = criterion(model(images, masks), images, masks)
    assert set(final) == {"valid", "hole", "perceptual", "style_out", "style_comp", "tv", "lap",
                          "total"}
    assert final["total"] < 0.7 * history[0]["total"]
    assert final["hole"] < history[0]["hole"]
