"""The autoinpainting job the GUI's worker runs: prepare the case, load the model, run, map slices.

No Qt here (like :mod:`autopaint_app.gui.case_jobs`): :func:`autopaint_steps` is a plain generator,
so a test or script can iterate it. Everything slow happens inside it, in the worker thread:
preparing the working grid, opening the ONNX session, the pipeline itself
(:func:`autopaint_app.core.autopaint.run_autopaint`), mapping each finished slice onto the case
grid for drawing, and the final residual volume and mask. The GUI thread only copies results.

Its headless twin is ``autopaint-cli segment`` (:mod:`autopaint_app.core.segment`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator

import numpy as np

from autopaint_app.core.autopaint import AutopaintResult, PipelineParams, run_autopaint
from autopaint_app.core.autopaint import Progress as PipelineProgress
from autopaint_app.core.autopaint_overlays import SliceOverlay, slice_overlay
from autopaint_app.core.errors import InputError
from autopaint_app.core.preprocess import PreparedCase, prepare_case
from autopaint_app.core.presets import MODALITY_CHANNELS, preset_for_model
from autopaint_app.gui.case_jobs import LoadedCase, MaskLesions, Progress, mask_lesions

MODALITY_TITLES = {"petct": "PET-CT", "pet": "PET", "ct": "CT"}
PROVIDER_TITLES = {"CPUExecutionProvider": "CPU", "CUDAExecutionProvider": "CUDA",
                   "TensorrtExecutionProvider": "TensorRT"}


@dataclass(frozen=True, eq=False)
class ModelChoice:
    """An entry of the model list: an ONNX file (card beside it) or an in-memory predictor.

    Attributes:
        name: shown in the list.
        path: the ``.onnx`` file, or None.
        predictor: a ready predictor callable (tests, the screenshot script), or None.
        channels: the model's input channels when known (from its card), e.g. ``("ct", "pet")``.
    """

    name: str
    path: Path | None = None
    predictor: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    channels: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        return str(self.path) if self.path is not None else f"memory:{self.name}"


@dataclass(frozen=True)
class RunRequest:
    """What to run: the tuning panel's choices at the time the run starts."""

    site: str
    modality: str
    params: PipelineParams
    model: ModelChoice
    threshold: float
    slices: tuple[int, ...] | None = None


@dataclass(frozen=True, eq=False)
class ModelReady:
    """The predictor is loaded (``provider`` is what really runs it, e.g. ``"CPU"``)."""

    key: str
    predictor: Any
    provider: str


@dataclass(frozen=True, eq=False)
class PreparedReady:
    """The case is on the working grid for ``(site, modality)``."""

    key: tuple[str, str]
    prepared: PreparedCase


@dataclass(frozen=True, eq=False)
class SliceReady:
    """A slice finished: its overlay on the case grid and the pipeline's progress."""

    overlay: SliceOverlay
    progress: PipelineProgress


@dataclass(frozen=True, eq=False)
class RunOutcome:
    """The job's return value: the result, its mask at the requested threshold (case grid) and the
    mask's lesions (measured in the worker: labelling a whole CT would stall the window)."""

    result: AutopaintResult
    mask: np.ndarray
    provider: str
    lesions: MaskLesions


def provider_title(predictor) -> str:
    """Friendly name of what runs a predictor: "CPU", "CUDA", ... or "in-memory predictor"."""
    provider = getattr(predictor, "provider", None)
    if provider is None:
        return "in-memory predictor"
    return PROVIDER_TITLES.get(provider, str(provider))


def load_predictor(model: ModelChoice):
    """The predictor of a model choice (opens the ONNX session; raises InputError for a bad model)."""
    if model.predictor is not None:
        return model.predictor
    if model.path is None:
        raise InputError(None, "no model chosen; put one in models/ or choose a file")
    from autopaint_app.core.inpaint_model import InpaintModel  # onnxruntime only when a model is used

    return InpaintModel.load(model.path)


def case_modalities(loaded: LoadedCase) -> list[str]:
    """The modalities a case can run: PET-CT, PET, CT as far as it has the images."""
    case = loaded.case
    has = {"ct": case.ct is not None, "pet": loaded.suv is not None}
    return [m for m in ("petct", "pet", "ct") if all(has[c] for c in MODALITY_CHANNELS[m])]


def to_progress(item) -> Progress | None:
    """Progress-bar view of the job's items (JobRunner ``to_progress``)."""
    if isinstance(item, Progress):
        return item
    if isinstance(item, SliceReady):
        p = item.progress
        if p.stage == "screened":
            text = f"AutoPaint: screening slice {p.slices_screened}/{p.slices_total}, {p.holes_inpainted} holes inpainted"
        elif p.stage == "searched":
            text = f"AutoPaint: circles of slice {p.slices_searched}/{p.slices_total}, {p.holes_inpainted} holes inpainted"
        else:
            text = f"AutoPaint: deciding slice {p.slices_done}/{p.slices_total}, {p.holes_inpainted} holes inpainted"
        return Progress(round(1000 * p.fraction), 1000, text)
    return None


def autopaint_steps(loaded: LoadedCase, request: RunRequest, prepared_cache: dict, model_cache: dict
                    ) -> Generator[Any, None, RunOutcome]:
    """Run the pipeline on the open case, yielding what the GUI draws as it comes.

    Args:
        loaded: the open case (CT, PET on the CT grid as SUV, OOI on the case grid).
        request: site, modality, parameters, model, threshold and slices.
        prepared_cache: ``(site, modality, ct_window, suv_window) -> PreparedCase`` already made
            (read only here).
        model_cache: ``ModelChoice.key -> predictor`` already loaded (read only here).

    Yields:
        :class:`Progress` while preparing, :class:`PreparedReady` and :class:`ModelReady` when
        something new was made (the GUI caches them), then :class:`SliceReady` per finished slice.

    Returns:
        :class:`RunOutcome` (the generator's return value).

    Raises:
        InputError: no organ of interest, a modality the case lacks, a bad model or a model whose
            channels differ from the modality.
    """
    if loaded.ooi is None:
        raise InputError(None, "no organ of interest: choose a site in Segment > Organ of interest or load an OOI file")
    if request.modality not in case_modalities(loaded):
        raise InputError(None, f"the case has no {MODALITY_TITLES[request.modality]} images")
    # The model first: a model trained with custom windows (its card) must see the case normalised
    # the same way, so the windows are part of the prepared-case cache key.
    predictor = model_cache.get(request.model.key)
    if predictor is None:
        yield Progress(0, 0, f"AutoPaint: loading {request.model.name}")
        predictor = load_predictor(request.model)
        yield ModelReady(request.model.key, predictor, provider_title(predictor))
    preset = preset_for_model(request.site, getattr(predictor, "card", None))
    key = (request.site, request.modality, preset.ct_window, preset.suv_window)
    prepared = prepared_cache.get(key)
    if prepared is None:
        yield Progress(0, 0, f"AutoPaint: preparing the {MODALITY_TITLES[request.modality]} working grid")
        case = loaded.case
        prepared = prepare_case(case.ct, loaded.suv, preset, request.modality)
        yield PreparedReady(key, prepared)
    result = None
    for item in run_autopaint(prepared, loaded.ooi, predictor, request.params, request.slices):
        if item.slice_result is not None:
            yield SliceReady(slice_overlay(item.slice_result, prepared.grid, request.params), item)
        result = item.result
    yield Progress(1, 2, "AutoPaint: residual on the case grid")
    mask = result.mask(request.threshold)
    yield Progress(2, 2, "AutoPaint: measuring the lesions")
    return RunOutcome(result, mask, provider_title(predictor), mask_lesions(mask, loaded))


def resegment_steps(result: AutopaintResult, threshold: float, min_radius_px: float, loaded: LoadedCase,
                    min_lesion_ml: float = 0.0) -> Generator[Progress, None, tuple[np.ndarray, MaskLesions]]:
    """The mask of a finished run at another threshold / minimum radius / minimum lesion volume (no
    inference) and its lesions, as a job."""
    yield Progress(0, 1, "re-segmenting from the stored residuals")
    mask = result.mask(threshold, min_radius_px, min_lesion_ml=min_lesion_ml)
    lesions = mask_lesions(mask, loaded)
    yield Progress(1, 1, "re-segmented")
    return mask, lesions


def models_in(folders: list[os.PathLike]) -> list[Path]:
    """``*.onnx`` files with a same-name ``.json`` card in ``folders`` (name order, no duplicates)."""
    found: dict[Path, None] = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_dir():
            for path in sorted(folder.glob("*.onnx")):
                if path.with_suffix(".json").is_file():
                    found[path.resolve()] = None
    return list(found)
