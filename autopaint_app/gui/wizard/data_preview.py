"""The Data page's preview: a few prepared slices with random training holes (what the network learns).

A tumour-free axial slice of a case goes through the same preparation as training (``core.preprocess``:
PET onto the CT grid, site windows, [0, 1], the 512 x 512 working grid), a ``crop``-pixel window around
the body centre is cut out, and the holes come from the trainer's own generator
(``core.holes.batch_masks``, re-exported as ``training.masks``), drawn as one batch so that their mean
coverage is the paper's 25-30 %. Pure numpy on ``core``: no Qt, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autopaint_app.core.case import Case
from autopaint_app.core.holes import batch_masks
from autopaint_app.core.io import Volume
from autopaint_app.core.preprocess import prepare_case
from autopaint_app.core.presets import LUNG, SitePreset

PREVIEW_CASES = 3
PREVIEW_CROP = 128  # the trainer's default crop (RunConfig.train_crop)
BODY_LEVEL = 0.1  # unit-range level above which a pixel counts as body when centring the crop


@dataclass(frozen=True)
class HolePreview:
    """One previewed crop.

    Attributes:
        case_id: The case it comes from.
        z: Axial slice index in the case.
        channels: Channel names, e.g. ``("ct", "pet")``.
        crop: float32 (C, S, S) in [0, 1] on the working grid.
        mask: float32 (S, S), 1 = known pixel, 0 = hole.
    """

    case_id: str
    z: int
    channels: tuple[str, ...]
    crop: np.ndarray
    mask: np.ndarray

    @property
    def with_holes(self) -> np.ndarray:
        """The network's input: (C, S, S) with the holes at 0."""
        return self.crop * self.mask[None]


def _one_slice(volume: Volume, z: int) -> Volume:
    """Axial slice ``z`` of ``volume`` as a one-slice volume at its physical place."""
    origin = volume.index_to_physical(np.array([0.0, 0.0, float(z)]))
    return Volume(volume.array[z:z + 1], volume.spacing, tuple(float(v) for v in origin), volume.direction,
                  volume.source)


def preview_slice_index(case: Case) -> int:
    """The middle tumour-free axial slice (the middle slice when the case has no label)."""
    n = case.reference.shape[0]
    if case.label is None:
        return n // 2
    free = np.flatnonzero(~case.label.array.reshape(n, -1).any(axis=1))
    return int(free[len(free) // 2]) if free.size else n // 2


def prepared_crop(case: Case, z: int, crop: int = PREVIEW_CROP,
                  preset: SitePreset = LUNG) -> tuple[tuple[str, ...], np.ndarray]:
    """(channels, float32 (C, crop, crop)) of slice ``z``, prepared as for training, around the body centre."""
    modality = "petct" if case.ct is not None and case.pet is not None else ("ct" if case.ct is not None else "pet")
    if case.ct is not None:
        prepared = prepare_case(_one_slice(case.ct, z), case.pet, preset, modality)
    else:
        prepared = prepare_case(None, _one_slice(case.pet, z), preset, modality)
    image = prepared.channels[0]  # (C, N, N)
    body = image.mean(axis=0) > BODY_LEVEL
    size = image.shape[-1]
    rows, cols = np.nonzero(body)
    centre = (int(rows.mean()), int(cols.mean())) if rows.size else (size // 2, size // 2)
    top, left = (int(np.clip(c - crop // 2, 0, size - crop)) for c in centre)
    channels = ("ct", "pet") if modality == "petct" else (modality,)
    return channels, np.ascontiguousarray(image[:, top:top + crop, left:left + crop], dtype=np.float32)


def with_training_holes(crops: list[tuple[str, int, tuple[str, ...], np.ndarray]], seed: int = 0) -> list[HolePreview]:
    """Attach one batch of training holes to ``(case_id, z, channels, crop)`` entries (same crop size)."""
    if not crops:
        return []
    size = crops[0][3].shape[-1]
    masks = batch_masks(len(crops), size, np.random.default_rng([seed, 11]))
    return [HolePreview(case_id, z, channels, crop, masks[i, 0])
            for i, (case_id, z, channels, crop) in enumerate(crops)]
