"""Decoy lesions on the rim of training holes: teach the network to paint healthy tissue next to a tumour.

Why: at test time a circle that covers part of a tumour has tumour on its rim. A network whose
output starts from a smooth fill of the rim (the biharmonic prefill) carries that tumour into the
circle, so tumour circles stop standing out (README, Models, sessions 12-13). Training on healthy
slices never shows it a lesion on a hole's rim, so it never learns to stop the fill there.

This adds, to a share of the training crops, one synthetic lesion centred near the edge of a hole
and drawn **only on the known pixels**. The target inside the hole stays the healthy slice, so the
hole loss asks for healthy tissue however hot or dense the rim is, which is what AutoPaint wants
of a circle. No label is used: the lesions are made here (soft-tissue CT, FDG uptake of a tumour),
the slices stay the healthy ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from autopaint_app.core.preprocess import normalise

# Tumour appearance, a little wider than the phantoms paint it (core/phantom_tumours.py: soft tissue
# 30-50 HU, FDG 3-15 SUV) and inside the SUV window, so the network does not learn one exact look.
LESION_HU = (20.0, 60.0)
LESION_HU_NOISE = 12.0
LESION_SUV = (3.0, 12.0)
PET_BLUR_PX = (1.0, 2.5)
# Body test for the lesion's centre: no lesion in the air around the patient.
BODY_HU = -900.0
BODY_SUV = 0.3
# Lung parenchyma for the "near_lung" region: aerated lung is well below soft tissue.
LUNG_HU = -500.0
# Where a decoy may sit. "body": anywhere in the patient. "near_lung": within reach of aerated lung
# (the largest decoy radius), where lung tumours and the nodes next to them are, so the heart and
# the rest of the mediastinum stay healthy rim. Meant to give back the PET fill of hot healthy
# organs, where a lung PET-CT model loses most to biharmonic; 600 steps of it did not (README,
# Models, session 15), so "body" stays the default.
REGIONS = ("body", "near_lung")


@dataclass(frozen=True)
class RimLesionSettings:
    """Where and how large the decoys are.

    Attributes:
        probability: Share of training crops that get one decoy lesion.
        radius_px: ``(smallest, largest)`` radius on the working grid (the site's tumour sizes).
        channels: Network channel names in order, e.g. ``("ct", "pet")``.
        ct_window: CT window of the data in HU, to write the lesion's HU in [0, 1].
        suv_window: SUV window of the data.
        region: One of ``REGIONS``; ``"near_lung"`` needs a CT channel.
    """

    probability: float
    radius_px: tuple[float, float]
    channels: tuple[str, ...]
    ct_window: tuple[float, float]
    suv_window: tuple[float, float]
    region: str = "body"

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"decoy region must be one of {REGIONS}, got {self.region!r}")
        if self.region == "near_lung" and "ct" not in self.channels:
            raise ValueError("decoy region 'near_lung' finds the lung on CT; the channels have no CT")


def settings_for(probability: float, channels, preset, region: str = "body") -> RimLesionSettings:
    """Decoys sized like the site's tumours: from the minimum tumour radius to 90 % of the circle."""
    radius = (float(max(2, preset.min_tumour_radius_px)), 0.9 * float(preset.circle_radius_px))
    return RimLesionSettings(probability, radius, tuple(channels), tuple(preset.ct_window), tuple(preset.suv_window),
                             region)


def add_rim_lesions(images: np.ndarray, masks: np.ndarray, settings: RimLesionSettings,
                    rng: np.random.Generator) -> np.ndarray:
    """A copy of ``images`` (n, C, H, W) with decoys on the known pixels of a share of the crops.

    ``masks`` (n, 1, H, W): 1 = known, 0 = hole. The hole pixels are never changed.
    """
    out = images.copy()
    for i in range(images.shape[0]):
        if rng.random() >= settings.probability:
            continue
        centre = _rim_point(images[i], masks[i, 0], settings, rng)
        if centre is None:
            continue
        _paint(out[i], masks[i, 0], centre, settings, rng)
    return out


def _body(image: np.ndarray, settings: RimLesionSettings) -> np.ndarray:
    body = np.zeros(image.shape[1:], dtype=bool)
    for c, name in enumerate(settings.channels):
        if name == "ct":
            body |= image[c] > normalise(BODY_HU, settings.ct_window)
        else:
            body |= image[c] > normalise(BODY_SUV, settings.suv_window)
    return body


def allowed_centres(image: np.ndarray, settings: RimLesionSettings) -> np.ndarray:
    """(H, W) bool: pixels of the crop ``image`` (C, H, W) where a decoy may be centred."""
    allowed = _body(image, settings)
    if settings.region == "near_lung":
        lung = image[settings.channels.index("ct")] < normalise(LUNG_HU, settings.ct_window)
        lung &= allowed  # aerated lung lies inside the body; the air around the patient does not count
        if not lung.any():
            return np.zeros_like(allowed)
        allowed &= ndi.distance_transform_edt(~lung) <= settings.radius_px[1]
    return allowed


def _rim_point(image: np.ndarray, mask: np.ndarray, settings: RimLesionSettings,
               rng: np.random.Generator) -> tuple[int, int] | None:
    """A known pixel touching a hole, where the region allows; None when the crop has none."""
    known = mask > 0.5
    rim = known & ~ndi.binary_erosion(known, border_value=1) & allowed_centres(image, settings)
    ys, xs = np.nonzero(rim)
    if ys.size == 0:
        return None
    pick = int(rng.integers(ys.size))
    return int(ys[pick]), int(xs[pick])


def _paint(image: np.ndarray, mask: np.ndarray, centre: tuple[int, int], settings: RimLesionSettings,
           rng: np.random.Generator) -> None:
    """Blend one irregular ellipse into ``image`` (C, H, W) in place, known pixels only."""
    height, width = mask.shape
    radius = rng.uniform(*settings.radius_px)
    # The centre moves off the rim by a normal offset of half a radius (SD): into the hole (a rim
    # of tumour around part of the hole) or away from it (a tumour touching the hole's edge).
    offset = rng.normal(0.0, 0.5 * radius, size=2)
    cy, cx = centre[0] + offset[0], centre[1] + offset[1]
    aspect = rng.uniform(0.6, 1.0)
    angle = rng.uniform(0.0, np.pi)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / radius
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / (radius * aspect)
    # Lobulated outline: the radius wobbles with a smooth random field.
    wobble = ndi.gaussian_filter(rng.normal(0.0, 1.0, size=(height, width)), radius / 2.0)
    wobble *= 0.15 / max(1e-6, float(np.abs(wobble).max()))
    inside = (np.sqrt(u * u + v * v) <= 1.0 + wobble).astype(np.float32)
    if inside.sum() < 4:
        return
    known = mask > 0.5
    for c, name in enumerate(settings.channels):
        if name == "ct":
            hu = rng.uniform(*LESION_HU) + rng.normal(0.0, LESION_HU_NOISE, size=(height, width))
            weight = ndi.gaussian_filter(inside, 0.7)
            target = normalise(hu, settings.ct_window)
        else:
            suv = rng.uniform(*LESION_SUV) * (1.0 + 0.25 * ndi.gaussian_filter(rng.normal(size=(height, width)), 2.0))
            weight = ndi.gaussian_filter(inside, rng.uniform(*PET_BLUR_PX))
            target = normalise(suv, settings.suv_window)
            # Uptake adds to the background's, never lowers it.
            target = np.maximum(target, image[c])
        blended = image[c] + weight * (target - image[c])
        image[c] = np.where(known, np.clip(blended, 0.0, 1.0), image[c]).astype(image.dtype)
