"""Held-out evaluation of an inpainting model against ``skimage.restoration.inpaint_biharmonic``.

``autopaint-cli model-eval`` uses it to fill model cards and the README's quality table. For each
case: the tumour-free axial slices (``core.slice_sampling.healthy_slice_mask``, the trainer's rule,
with its z margin), those meeting the organ of interest, fixed random crops of the card's training
crop size drawn the trainer's way (centred in the OOI mostly, else in the body), and fixed random
holes from the trainer's generator (``core.holes.batch_masks``, 25-30 % coverage per case). The
model (any predictor, e.g. :class:`~autopaint_app.core.inpaint_model.InpaintModel`) and the
biharmonic baseline fill the same holes; both are scored on the composite with
``core.inpaint_quality`` (channels pooled), per case, per crop (wins) and pooled over all cases,
and per channel (``by_channel``). With ``synthetic_pet`` a CT-only case gets a PET made from its CT
(``core.synthetic_pet``), so a PET-CT model can be scored on a real CT.

Crops and holes depend only on the seed, the case id and the crop size, never on the other cases
given. Arrays: images float32 ``(n, C, crop, crop)`` in [0, 1], masks ``(n, 1, crop, crop)``,
1 = known, 0 = hole. Numpy only (the model runs through ONNX Runtime in ``core.inpaint_model``).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autopaint_app.core.case import CaseFiles, load_case
from autopaint_app.core.errors import InputError
from autopaint_app.core.holes import batch_masks, hole_coverage
from autopaint_app.core.inpaint_quality import biharmonic_inpaint, inpainting_metrics
from autopaint_app.core.preprocess import prepare_case
from autopaint_app.core.presets import MODALITY_CHANNELS, get_preset
from autopaint_app.core.slice_sampling import (body_cells, coarse_cells, even_subset, healthy_slice_mask,
                                               ooi_slices, sample_window)
from autopaint_app.core.synthetic_pet import with_synthetic_pet

logger = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]
HOLE_METRICS = ("mse_hole", "psnr_hole", "ssim_hole")
WIN_METRICS = {"psnr_hole": 1, "ssim_hole": 1, "mse_hole": -1}  # +1: higher is better


@dataclass(frozen=True)
class EvalSettings:
    """How crops are drawn.

    Attributes:
        crop: Crop side in pixels on the working grid (the card's ``train_crop``).
        crops_per_case: Crops (and holes) per case.
        seed: Seeds every case's crops and holes (with the case id).
        flagged_healthy: Cases without a tumour label are tumour free (else they are skipped).
        tumour_margin_mm: Slices within this z distance of a tumour slice are excluded too.
        max_slices: Healthy slices kept per case, evenly spaced (bounds memory).
        restrict_to_ooi: Only slices meeting the organ of interest (when one is found).
        synthetic_pet: CT-only cases get a PET synthesised from their CT (``core.synthetic_pet``);
            cases with a PET keep theirs.
    """

    crop: int = 128
    crops_per_case: int = 32
    seed: int = 0
    flagged_healthy: bool = False
    tumour_margin_mm: float = 6.0
    max_slices: int = 80
    restrict_to_ooi: bool = True
    synthetic_pet: bool = False

    def __post_init__(self) -> None:
        if self.crop < 8 or self.crops_per_case < 1:
            raise InputError("model-eval options", f"crop must be >= 8 px and crops >= 1, got {self.crop}, "
                                                   f"{self.crops_per_case}")


@dataclass(frozen=True, eq=False)
class CaseCrops:
    """The fixed crops and holes of one case.

    Attributes:
        case_id: Case name.
        images: float32 (n, C, crop, crop) in [0, 1], channels in modality order.
        masks: float32 (n, 1, crop, crop), 1 = known, 0 = hole.
        slice_indices: int (n,), z index of each crop's slice.
        n_slices: Axial slices in the case.
        n_tumour_excluded: Slices excluded for meeting (or being near) the tumour label.
        n_healthy_used: Healthy slices the crops were drawn from.
        channels: Channel names in order (``("ct", "pet")``).
        synthetic_pet: The PET channel was synthesised from the CT.
    """

    case_id: str
    images: np.ndarray
    masks: np.ndarray
    slice_indices: np.ndarray
    n_slices: int
    n_tumour_excluded: int
    n_healthy_used: int
    channels: tuple[str, ...] = ("ct", "pet")
    synthetic_pet: bool = False


def modality_of(channels: Sequence[str]) -> str:
    """``("ct",)`` -> ``"ct"``, ``("pet",)`` -> ``"pet"``, ``("ct", "pet")`` -> ``"petct"``."""
    for name, wanted in MODALITY_CHANNELS.items():
        if tuple(channels) == wanted:
            return name
    raise ValueError(f"no modality has channels {tuple(channels)}")


def case_rng(seed: int, case_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the case id (stable across runs and platforms)."""
    return np.random.default_rng([seed, zlib.crc32(case_id.encode("utf-8"))])


def case_crops(files: CaseFiles, site: str, modality: str, settings: EvalSettings) -> CaseCrops | str:
    """Load one case and draw its fixed crops and holes.

    Returns:
        The crops, or the reason (a sentence) why the case cannot serve: a channel the modality
        needs is missing, no label without ``flagged_healthy``, or no healthy slice left.

    Raises:
        InputError: unreadable case, a PET that is not in SUV, or slices smaller than the crop.
    """
    case = load_case(files)
    needed = MODALITY_CHANNELS[modality]
    synthetic = settings.synthetic_pet and "pet" in needed and case.pet is None and case.ct is not None
    if synthetic:
        case = with_synthetic_pet(case)
    have = {"ct": case.ct is not None, "pet": case.pet is not None}
    missing = [name.upper() for name in needed if not have[name]]
    if missing:
        return f"modality {modality} needs {' and '.join(missing)}, the case has none"
    if "pet" in needed and case.pet_units != "SUV":
        raise InputError(files.pet, f"PET is in {case.pet_units}, not SUV; convert it (autopaint-cli convert --suv)")
    label = None if case.label is None else case.label.array
    n_slices = case.reference.shape[0]
    healthy = healthy_slice_mask(label, n_slices, float(case.reference.spacing[2]), settings.tumour_margin_mm,
                                 settings.flagged_healthy)
    if healthy is None:
        return "no tumour label and --healthy not given"
    prepared = prepare_case(case.ct, case.pet, get_preset(site), modality)
    candidates, ooi_working = np.flatnonzero(healthy), None
    if settings.restrict_to_ooi:
        candidates, ooi_working = ooi_slices(prepared, site, candidates, case.case_id, logger)
    kept = even_subset(candidates, settings.max_slices)
    if kept.size == 0:
        return "no healthy slice left (tumour exclusion and organ of interest)"
    slices = prepared.channels[kept].astype(np.float32)
    if settings.crop > min(slices.shape[-2:]):
        raise InputError(files.ct or files.pet, f"working slices are {slices.shape[-2]}x{slices.shape[-1]} px, "
                                                f"smaller than the {settings.crop}-px crop")
    body = body_cells(slices, needed, site)
    ooi_cells = coarse_cells(ooi_working[kept]) if ooi_working is not None else None
    rng = case_rng(settings.seed, case.case_id)
    images, picks = [], rng.integers(len(kept), size=settings.crops_per_case)
    for pick in picks:
        ooi = ooi_cells[pick] if ooi_cells is not None else None
        images.append(sample_window(slices[pick], ooi, body[pick], settings.crop, rng))
    masks = batch_masks(settings.crops_per_case, settings.crop, rng)
    return CaseCrops(case.case_id, np.stack(images), masks, kept[picks], n_slices, int((~healthy).sum()),
                     int(kept.size), needed, synthetic)


def _hole_only(scores: dict) -> dict:
    return {name: float(scores[name]) for name in HOLE_METRICS}


def _wins(model_rows: list[dict], baseline_rows: list[dict]) -> dict:
    """Crops on which the model is strictly better than the baseline, per metric."""
    return {name: int(sum(sign * (m[name] - b[name]) > 0 for m, b in zip(model_rows, baseline_rows)))
            for name, sign in WIN_METRICS.items()}


def channel_scores(prediction: np.ndarray, baseline: np.ndarray, images: np.ndarray, masks: np.ndarray,
                   channels: Sequence[str]) -> dict:
    """Hole metrics of model and baseline per channel (``{"ct": {"model": .., "biharmonic": ..}, ...}``).

    Pooled figures mix a CT and a PET whose errors differ tenfold; these say which channel gains.
    """
    return {name: {"model": _hole_only(inpainting_metrics(prediction[:, c:c + 1], images[:, c:c + 1], masks)),
                   "biharmonic": _hole_only(inpainting_metrics(baseline[:, c:c + 1], images[:, c:c + 1], masks))}
            for c, name in enumerate(channels)}


def score_crops(predictor: Predictor, crops: CaseCrops) -> dict:
    """Run the model and the biharmonic baseline on the same crops and holes; score both.

    Returns:
        JSON-ready dict: ``model`` / ``biharmonic`` (hole and whole-crop MSE, PSNR dB, SSIM over the
        case's crops), ``wins`` (crops the model wins per hole metric), ``per_crop`` rows, timings,
        and the raw outputs under ``_outputs`` for pooling (removed by :func:`evaluate_model`).
    """
    started = time.perf_counter()
    prediction = np.asarray(predictor(crops.images, crops.masks), dtype=np.float32)
    if prediction.shape != crops.images.shape:
        raise InputError(None, f"the model returned shape {prediction.shape} for input {crops.images.shape}")
    model_s = time.perf_counter() - started
    started = time.perf_counter()
    baseline = biharmonic_inpaint(crops.images, crops.masks)
    baseline_s = time.perf_counter() - started
    model_rows, baseline_rows = [], []
    for i in range(len(crops.images)):
        one = slice(i, i + 1)
        model_rows.append(_hole_only(inpainting_metrics(prediction[one], crops.images[one], crops.masks[one])))
        baseline_rows.append(_hole_only(inpainting_metrics(baseline[one], crops.images[one], crops.masks[one])))
    per_crop = [{"slice": int(z), "hole_coverage": round(hole_coverage(crops.masks[i]), 4), "model": m,
                 "biharmonic": b} for i, (z, m, b) in enumerate(zip(crops.slice_indices, model_rows, baseline_rows))]
    return {"case_id": crops.case_id, "crops": len(crops.images), "slices": crops.n_slices,
            "tumour_excluded": crops.n_tumour_excluded, "healthy_slices_used": crops.n_healthy_used,
            "hole_coverage": round(hole_coverage(crops.masks), 4),
            "model": inpainting_metrics(prediction, crops.images, crops.masks),
            "biharmonic": inpainting_metrics(baseline, crops.images, crops.masks),
            "wins": _wins(model_rows, baseline_rows), "synthetic_pet": crops.synthetic_pet,
            "by_channel": channel_scores(prediction, baseline, crops.images, crops.masks, crops.channels),
            "model_seconds": round(model_s, 3),
            "biharmonic_seconds": round(baseline_s, 3), "per_crop": per_crop,
            "_outputs": (crops.images, crops.masks, prediction, baseline, model_rows, baseline_rows, crops.channels)}


def pooled_scores(case_scores: Sequence[dict]) -> dict:
    """Metrics over every crop of every scored case (one pooled set, as the card's validation)."""
    parts = [score["_outputs"] for score in case_scores]
    images, masks, prediction, baseline = (np.concatenate([p[k] for p in parts]) for k in range(4))
    model_rows = [row for p in parts for row in p[4]]
    baseline_rows = [row for p in parts for row in p[5]]
    return {"cases": len(case_scores), "crops": len(images), "hole_coverage": round(hole_coverage(masks), 4),
            "model": inpainting_metrics(prediction, images, masks),
            "biharmonic": inpainting_metrics(baseline, images, masks),
            "wins": _wins(model_rows, baseline_rows),
            "by_channel": channel_scores(prediction, baseline, images, masks, parts[0][6])}


def evaluate_model(predictor: Predictor, cases: Sequence[CaseFiles], site: str, modality: str,
                   settings: EvalSettings, report: Callable[[str], None] | None = None) -> dict:
    """Score ``predictor`` against the biharmonic baseline on held-out crops of ``cases``.

    Args:
        predictor: ``(image (n, C, h, w), mask (n, 1, h, w)) -> (n, C, h, w)`` in [0, 1].
        cases: The cases to draw crops from.
        site, modality: Preset (windows, organ of interest) and channels.
        settings: Crop size, crops per case, seed and slice rules.
        report: Called with one line per case (progress), or None.

    Returns:
        JSON-ready dict: ``cases`` (per-case scores), ``pooled``, ``skipped`` (case id and reason).

    Raises:
        InputError: no case could serve, or a case is unreadable.
    """
    scored, skipped = [], []
    for number, files in enumerate(cases, start=1):
        crops = case_crops(files, site, modality, settings)
        if isinstance(crops, str):
            skipped.append({"case_id": files.case_id, "reason": crops})
            line = f"case {number}/{len(cases)} {files.case_id}: skipped ({crops})"
        else:
            scored.append(score_crops(predictor, crops))
            line = f"case {number}/{len(cases)} {files.case_id}: {len(crops.images)} crops scored"
        if report is not None:
            report(line)
    if not scored:
        reasons = "; ".join(f"{s['case_id']}: {s['reason']}" for s in skipped)
        where = Path(cases[0].ct or cases[0].pet).parent if cases else None
        raise InputError(where, f"no case could be scored ({reasons})")
    pooled = pooled_scores(scored)
    for score in scored:
        del score["_outputs"]
    return {"cases": scored, "pooled": pooled, "skipped": skipped}
