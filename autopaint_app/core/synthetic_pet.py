"""A plausible healthy FDG PET synthesised from a CT, for training on CT-only scans.

A PET or PET-CT inpainting network learns from healthy slices with both channels. Real CTs without a
PET (chest CTs, the ``lung_ct`` set) still carry what the phantoms lack: real body outlines, fat,
muscle and bone texture. ``synthetic_pet_from_ct`` gives such a CT a PET channel the way the
phantoms make theirs (``core.phantom``): a background SUV per tissue inside the body, read here from the CT
number (air 0, lung 0.5, fat 0.3, soft tissue 0.7-0.9, marrow 1.3, cortical bone 0.4: the phantoms'
``phantom_tissues`` values), mild heterogeneity, the scanner's 6 mm FWHM blur and signal-dependent
counting noise. It has no organ uptake (heart, glands, brain), so it teaches the CT channel real
anatomy while keeping the PET channel a background the network already knows; run.json marks
such cases ``"synthetic_pet": true`` and the model card records it.

The result lies on the CT's own grid (origin, spacing and direction copied), in SUV, float32.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import replace

import numpy as np
from scipy import ndimage as ndi

from autopaint_app.core.case import Case
from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume
from autopaint_app.core.ooi_morphology import BlockGrid, body_parts_from_ct

# CT number (HU) -> background SUV, linear in between. The plateaux are the phantoms' tissues
# (phantom_tissues._DEFAULTS); the ramps between them act as partial-volume mixing.
_HU_ANCHORS = np.array([-1100.0, -960.0, -900.0, -500.0, -200.0, -60.0, 10.0, 90.0, 180.0, 280.0, 600.0,
                        1500.0], np.float32)
_SUV_ANCHORS = np.array([0.0, 0.0, 0.5, 0.5, 0.3, 0.3, 0.7, 0.9, 1.3, 1.3, 0.4, 0.0], np.float32)

logger = logging.getLogger(__name__)

PET_FWHM_MM = 6.0          # as the phantoms' scanner
_NOISE_GRAIN_MM = 2.4      # correlation length of the counting noise (0.6 PET pixels of 4 mm)


def background_suv(hu: np.ndarray) -> np.ndarray:
    """Healthy background SUV for each CT number (float32, same shape)."""
    return np.interp(hu.astype(np.float32), _HU_ANCHORS, _SUV_ANCHORS).astype(np.float32)


def _seed_of(ct: Volume, seed: int | None) -> int:
    # Deterministic per scan when no seed is given: the same CT always gets the same PET.
    if seed is not None:
        return int(seed)
    return zlib.crc32(np.ascontiguousarray(ct.array[:, ::16, ::16]).tobytes())


def _smooth_unit_noise(rng: np.random.Generator, shape, sigma_mm: float, sy: float, sx: float) -> np.ndarray:
    """Gaussian noise smoothed in-plane by ``sigma_mm``, rescaled to unit SD (float32)."""
    noise = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (0.0, sigma_mm / sy, sigma_mm / sx),
                                mode="wrap")
    return noise / max(float(noise.std()), 1e-6)


def synthetic_pet_from_ct(ct: Volume, seed: int | None = None, noise: bool = True) -> Volume:
    """A healthy FDG PET (SUV) on the CT's grid, synthesised from its CT numbers.

    Args:
        ct: CT in HU.
        seed: Noise and heterogeneity seed; default derived from the CT's voxels (deterministic).
        noise: Add counting noise (off: the blurred background activity alone).

    Raises:
        InputError: the CT holds no finite value.
    """
    hu = ct.array
    if not np.isfinite(hu).any():
        raise InputError(ct.source or None, "the CT holds no finite value; cannot synthesise a PET from it")
    hu = np.nan_to_num(hu.astype(np.float32), nan=-1000.0, posinf=3000.0, neginf=-1000.0)
    rng = np.random.default_rng(_seed_of(ct, seed))
    sx, sy, sz = (float(s) for s in ct.spacing)
    # No activity outside the body: the couch and blankets have CT numbers of tissue, not uptake.
    body = body_parts_from_ct(hu, BlockGrid(1, hu.shape, (sz, sy, sx)))
    activity = background_suv(hu) * body
    activity *= 1.0 + 0.06 * _smooth_unit_noise(rng, hu.shape, 8.0, sy, sx)   # mild physiological heterogeneity
    sigma_mm = PET_FWHM_MM / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    signal = ndi.gaussian_filter(activity, (sigma_mm / sz, sigma_mm / sy, sigma_mm / sx), mode="nearest")
    signal = np.clip(signal, 0.0, None)
    if noise:
        gain = float(rng.uniform(0.02, 0.04))             # SUV variance per SUV, as the phantoms
        grain = _smooth_unit_noise(rng, hu.shape, _NOISE_GRAIN_MM, sy, sx)
        signal = np.clip(signal + np.sqrt(gain * signal) * grain, 0.0, None)
    return Volume(signal.astype(np.float32), ct.spacing, ct.origin, ct.direction,
                  source=f"synthetic PET from {ct.source}" if ct.source else "synthetic PET",
                  meta={"synthetic_pet": True})


def with_synthetic_pet(case: Case) -> Case:
    """The case with a PET synthesised from its CT, in SUV (run.json ``"synthetic_pet"``, model-eval
    ``--synthetic-pet``).

    Raises:
        InputError: the case has its own PET (never replaced silently), or has no CT.
    """
    if case.pet is not None:
        raise InputError(case.files.pet, "the case has its own PET; 'synthetic_pet' is for CT-only cases, drop it")
    if case.ct is None:
        raise InputError(case.files.label or case.files.ooi, "'synthetic_pet' needs a CT; the case has none")
    logger.info("case %s: PET synthesised from its CT (tissue background, no organ uptake)", case.case_id)
    return replace(case, pet=synthetic_pet_from_ct(case.ct), pet_units="SUV")
