"""Training data: healthy axial slices of case folders, patient-wise split, random and fixed crops.

For each case (``core.case``): PET onto the CT grid, windows of the site preset, [0, 1], channels
in ``MODALITY_CHANNELS[modality]`` order (``("ct", "pet")``), all on the 512 x 512 working grid
(``core.preprocess.prepare_case``; ~1 mm pixels, so the paper's pixel sizes mean the same thing
for every case). Slices that meet the tumour label (or lie within ``tumour_margin_mm`` of it in
z, which keeps the PET blur of a lesion out too) are excluded; a case without a label is used only
when its folder is flagged healthy. Optionally only slices meeting the organ of interest are kept,
and crops are then centred in it most of the time: that is where the network must know anatomy.

Kept slices are cached as float16 ``(n, C, N, N)`` arrays (0.5 MB per channel and slice), at most
``max_slices`` (evenly spaced) per case, so memory stays bounded. Crop centres are drawn from
coarse ``CELL x CELL``-pixel maps of the body and of the organ of interest, never from empty air.
Arrays are numpy ``(C, y, x)`` per slice; nothing here imports torch. The slice exclusion, body maps
and crop windows live in ``core.slice_sampling``, shared with the held-out evaluation
(``core.model_eval``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autopaint_app.core.case import find_cases, load_case
from autopaint_app.core.errors import InputError
from autopaint_app.core.preprocess import prepare_case
from autopaint_app.core.presets import MODALITY_CHANNELS, SitePreset, get_preset
from autopaint_app.core.synthetic_pet import with_synthetic_pet
from autopaint_app.core.slice_sampling import (body_cells, coarse_cells, even_subset, healthy_slice_mask,
                                               ooi_slices, sample_window)
from autopaint_app.training.config import CaseEntry
from autopaint_app.training.masks import batch_masks

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class CaseSlices:
    """The healthy slices kept from one case.

    Attributes:
        case_id: Case name (``core.case``).
        patient_id: Split key (cases of one patient never straddle the split).
        slice_indices: int (n,), z index of each kept slice in the case.
        images: float16 (n, C, N, N) in [0, 1] on the working grid, channels in modality order.
        body_cells: bool (n, N / CELL, N / CELL), coarse body map per slice.
        ooi_cells: bool (n, N / CELL, N / CELL), coarse organ-of-interest map, or None.
        n_slices: Slices in the case.
        n_tumour_excluded: Slices excluded for meeting (or being near) the tumour label.
        forced_split: ``"train"``/``"val"`` when ``run.json`` forces the case's side, else None.
    """

    case_id: str
    patient_id: str
    slice_indices: np.ndarray
    images: np.ndarray
    body_cells: np.ndarray
    ooi_cells: np.ndarray | None
    n_slices: int
    n_tumour_excluded: int
    forced_split: str | None = None
    weight: float = 1.0
    synthetic_pet: bool = False

    def summary(self) -> dict:
        return {"case_id": self.case_id, "patient_id": self.patient_id, "slices": self.n_slices,
                "tumour_excluded": self.n_tumour_excluded, "kept": len(self.slice_indices),
                "forced_split": self.forced_split, "weight": self.weight, "synthetic_pet": self.synthetic_pet}


def load_case_slices(entry: CaseEntry, files, site: str, modality: str, restrict_to_ooi: bool = True,
                     tumour_margin_mm: float = 6.0, max_slices: int = 80,
                     preset: SitePreset | None = None) -> CaseSlices | None:
    """Load one case and keep its healthy slices on the working grid (see the module docstring).

    Args:
        entry: The ``run.json`` entry the case came from (healthy flag, patient id).
        files: ``core.case.CaseFiles`` of the case.
        site, modality: Preset (windows, OOI) and channels.
        restrict_to_ooi: Keep only slices meeting the organ of interest (when one is found).
        tumour_margin_mm: z margin around tumour slices also excluded.
        max_slices: At most this many slices kept, evenly spaced.
        preset: Windows to normalise with (``RunConfig.site_preset``); default the site's preset.

    Returns:
        The kept slices, or None (logged) when the case cannot serve: a channel the modality needs
        is missing, no label without the healthy flag, or no healthy slice left.

    Raises:
        InputError: unreadable case, or a PET that cannot be brought to SUV.
    """
    case = load_case(files)
    if entry.synthetic_pet:
        case = with_synthetic_pet(case)
    needed = MODALITY_CHANNELS[modality]
    have = {"ct": case.ct is not None, "pet": case.pet is not None}
    if not all(have[name] for name in needed):
        missing = [name.upper() for name in needed if not have[name]]
        logger.warning("case %s skipped: modality %s needs %s, the case has none", case.case_id, modality,
                       " and ".join(missing))
        return None
    if "pet" in needed and case.pet_units != "SUV":
        raise InputError(files.pet, f"PET is in {case.pet_units}, not SUV; convert it (autopaint-cli convert --suv)")
    reference = case.reference
    label = None if case.label is None else case.label.array
    healthy = healthy_slice_mask(label, reference.shape[0], float(reference.spacing[2]), tumour_margin_mm,
                                 entry.healthy)
    if healthy is None:
        logger.warning("case %s skipped: no tumour label and its folder is not flagged healthy", case.case_id)
        return None
    if label is None:
        logger.info("case %s has no tumour label; folder flagged healthy: every slice is used", case.case_id)
    preset = preset or get_preset(site)
    prepared = prepare_case(case.ct, case.pet, preset, modality)
    ooi_cells = None
    candidates = np.flatnonzero(healthy)
    if restrict_to_ooi:
        candidates, ooi_cells = ooi_slices(prepared, site, candidates, case.case_id, logger)
        if ooi_cells is None:
            logger.warning("case %s: no organ of interest found; all healthy slices kept", case.case_id)
    kept = even_subset(candidates, max_slices)
    if kept.size == 0:
        logger.warning("case %s skipped: no healthy slice left", case.case_id)
        return None
    images = prepared.channels[kept].astype(np.float16)
    if ooi_cells is not None:
        ooi_cells = coarse_cells(ooi_cells[kept])
    n_excluded = int((~healthy).sum())
    result = CaseSlices(case.case_id, entry.patient_id or case.case_id, kept, images,
                        body_cells(images, needed, preset), ooi_cells, reference.shape[0], n_excluded,
                        entry.split, entry.weight, entry.synthetic_pet)
    logger.info("case %s: %d slices, %d excluded near tumour, %d kept", case.case_id, reference.shape[0],
                n_excluded, kept.size)
    return result


def load_slices(entries: Sequence[CaseEntry], site: str, modality: str, restrict_to_ooi: bool = True,
                tumour_margin_mm: float = 6.0, max_slices: int = 80,
                preset: SitePreset | None = None) -> list[CaseSlices]:
    """Healthy slices of every case in every entry's folder (cases that cannot serve are logged).

    Raises:
        InputError: a folder holds no case, two cases share an id, or no case is usable.
    """
    found, seen = [], {}
    for entry in entries:
        cases = find_cases(entry.path)
        if not cases:
            raise InputError(entry.path, "no PET/CT case found in this folder")
        for files in cases:
            key = files.case_id if entry.patient_id is None else f"{entry.patient_id}/{files.case_id}"
            if key in seen:
                raise InputError(entry.path, f"case id {files.case_id!r} also in {seen[key]}; ids must be unique")
            seen[key] = entry.path
            slices = load_case_slices(entry, files, site, modality, restrict_to_ooi, tumour_margin_mm, max_slices,
                                      preset)
            if slices is not None:
                found.append(slices)
    if not found:
        raise InputError(entries[0].path if entries else None, "no usable healthy slice in any case")
    return found


def split_patients(patient_ids: Sequence[str], val_fraction: float, seed: int,
                   forced: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Deterministic patient-wise split: (train ids, validation ids), both sorted, disjoint.

    ``forced`` maps patient ids to ``"train"`` or ``"val"`` (held-out real patients, say); the other
    patients are split at random so that about ``val_fraction`` of all patients validate. At least
    one patient goes to each side.

    Raises:
        InputError: fewer than two distinct patients, or a patient forced to both sides.
    """
    unique = sorted(set(patient_ids))
    if len(unique) < 2:
        raise InputError(None, f"a patient-wise split needs at least 2 patients, got {unique}")
    forced = dict(forced or {})
    free = [pid for pid in unique if pid not in forced]
    forced_val = sorted(pid for pid, side in forced.items() if side == "val" and pid in unique)
    order = np.random.default_rng([seed, 2024]).permutation(len(free))
    wanted = max(1, round(val_fraction * len(unique))) - len(forced_val)
    n_val = max(0, min(len(free) - (0 if any(s == "train" for s in forced.values()) else 1), wanted))
    val = sorted(forced_val + [free[i] for i in order[:n_val]])
    train = sorted(set(unique) - set(val))
    if not train or not val:
        raise InputError(None, f"the split leaves no {'training' if not train else 'validation'} patient "
                               f"(patients {unique}, forced {forced})")
    return train, val


def sample_crop(case: CaseSlices, index: int, crop: int, rng: np.random.Generator) -> np.ndarray:
    """One float32 (C, crop, crop) crop of slice ``index``, centred in the OOI (mostly) or body."""
    ooi = case.ooi_cells[index] if case.ooi_cells is not None else None
    return sample_window(case.images[index], ooi, case.body_cells[index], crop, rng)


class CropSampler:
    """Random training crops, every kept slice equally likely (times its case's ``weight``).

    Args:
        cases: Training cases.
        crop: Crop side in pixels.
    """

    def __init__(self, cases: Sequence[CaseSlices], crop: int) -> None:
        if not cases:
            raise InputError(None, "no training case")
        self.cases = list(cases)
        self.crop = crop
        self._ends = np.cumsum([len(c.slice_indices) for c in self.cases])
        weights = np.concatenate([np.full(len(c.slice_indices), c.weight) for c in self.cases])
        # Unweighted runs keep drawing with integers(): their crop stream (and resumes) stay as before.
        self._slice_p = None if np.all(weights == 1.0) else weights / weights.sum()

    @property
    def n_slices(self) -> int:
        return int(self._ends[-1])

    def batch(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(images float32 (n, C, crop, crop) in [0, 1], masks float32 (n, 1, crop, crop), 1 = known)."""
        if self._slice_p is None:
            picks = rng.integers(self.n_slices, size=n)
        else:
            picks = rng.choice(self.n_slices, size=n, p=self._slice_p)
        crops = []
        for pick in picks:
            case_index = int(np.searchsorted(self._ends, pick, side="right"))
            start = self._ends[case_index - 1] if case_index else 0
            crops.append(sample_crop(self.cases[case_index], int(pick - start), self.crop, rng))
        return np.stack(crops), batch_masks(n, self.crop, rng)


@dataclass(frozen=True, eq=False)
class ValidationSet:
    """Fixed validation crops and holes (seeded), so metrics compare across epochs and models.

    Attributes:
        images: float32 (n, C, crop, crop) in [0, 1].
        masks: float32 (n, 1, crop, crop), 1 = known, 0 = hole.
        sources: (case_id, slice z index) of each crop.
    """

    images: np.ndarray
    masks: np.ndarray
    sources: tuple[tuple[str, int], ...]


def fixed_validation_set(cases: Sequence[CaseSlices], n: int, crop: int, seed: int) -> ValidationSet:
    """``n`` crops cycling over the validation cases (each patient weighs the same), fixed holes."""
    if not cases:
        raise InputError(None, "no validation case")
    rng = np.random.default_rng([seed, 7])
    images, sources = [], []
    for i in range(n):
        case = cases[i % len(cases)]
        index = int(rng.integers(len(case.slice_indices)))
        images.append(sample_crop(case, index, crop, rng))
        sources.append((case.case_id, int(case.slice_indices[index])))
    return ValidationSet(np.stack(images), batch_masks(n, crop, rng), tuple(sources))
