"""Autoinpainting for unsupervised tumour segmentation (paper section 2.5), as a cancellable generator.

Per axial slice of the organ of interest (OOI), on the 512 x 512 working grid:

1. circles of radius ``r`` on a stride-``s`` grid covering the slice's OOI
   (:func:`~autopaint_app.core.autopaint_circles.circle_centres`);
2. every circle inpainted; its intensity and texture differences
   (:mod:`~autopaint_app.core.autopaint_scores`) combined into a robust score; the circles that stand
   out (median + 3 MAD), at most ``top_k``, are the candidates;
3. the union of the candidates and its five dilations inpainted; the dilation rule picks one;
4. residual ``|input - inpainted|``, minimum-size criterion, slices stacked; the mask is
   ``residual > threshold`` on the case grid (:class:`~autopaint_app.core.autopaint_result.AutopaintResult`).

Modes (:mod:`~autopaint_app.core.autopaint_engine`): ``reference`` inpaints every hole on the whole
slice, one per forward pass; ``fast`` inpaints local crops, batched. Both take the same decisions
with the same formulas; only the network's context differs.

Usage::

    run = run_autopaint(prepared, ooi, model, params)
    for progress in run:                 # stop iterating (or close()) to cancel; nothing is written
        print(progress.fraction)
    result = progress.result             # also the generator's return value

Core never writes files; a cancelled run leaves nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass

import numpy as np

from autopaint_app.core.autopaint_circles import Box, circle_centres, dilated_masks, union_of_circles
from autopaint_app.core.autopaint_engine import Predictor, Stats, inpaint_masks
from autopaint_app.core.autopaint_params import PipelineParams
from autopaint_app.core.autopaint_result import AutopaintResult, SliceResult
from autopaint_app.core.autopaint_scores import choose_mask, combined_scores, difference_maps, select_outliers
from autopaint_app.core.autopaint_search import search_circles
from autopaint_app.core.errors import InputError
from autopaint_app.core.preprocess import PreparedCase
from autopaint_app.core.presets import MODALITY_CHANNELS

__all__ = ["PipelineParams", "Progress", "AutopaintResult", "SliceResult", "run_autopaint", "autopaint",
           "process_slice", "working_ooi"]

DEFAULT_SIZE_MULTIPLE = 32


@dataclass(frozen=True)
class Progress:
    """A safe point of a run.

    Attributes:
        stage: ``"circles"`` / ``"masks"`` (after a predictor call), ``"slice"`` (a slice finished) or
            ``"done"`` (the last item; ``result`` is set).
        slice_index: working slice ``z`` being processed (None when done).
        slices_done, slices_total: finished and total slices of the run.
        holes_inpainted: holes (circles and masks) inpainted so far in the run.
        elapsed_s: wall time since the run started.
        result: the :class:`AutopaintResult`, on the ``"done"`` item only.
        slice_result: the finished slice's :class:`SliceResult`, on ``"slice"`` items only (so a
            viewer can draw each slice's intermediates as they come).
    """

    stage: str
    slice_index: int | None
    slices_done: int
    slices_total: int
    holes_inpainted: int
    elapsed_s: float
    result: AutopaintResult | None = None
    slice_result: SliceResult | None = None

    @property
    def fraction(self) -> float:
        """Finished share of the slices, in [0, 1]."""
        return 1.0 if self.slices_total == 0 else self.slices_done / self.slices_total


def working_ooi(prepared: PreparedCase, ooi: np.ndarray) -> np.ndarray:
    """The OOI (boolean ``(z, y, x)`` on the case grid) on the working grid, ``(z, N, N)`` (nearest)."""
    ooi = np.asarray(ooi)
    if ooi.shape != prepared.reference.shape:
        raise InputError(prepared.reference.source or None,
                         f"OOI shape {ooi.shape} differs from the case grid {prepared.reference.shape}")
    return prepared.grid.to_working(ooi.astype(np.uint8), order=0).array > 0


def _check_predictor(predictor: Predictor, prepared: PreparedCase) -> int:
    """The predictor's size multiple; its channels (when it states them) must match the case."""
    expected = MODALITY_CHANNELS[prepared.modality]
    channels = getattr(predictor, "channels", None)
    if channels is not None and tuple(channels) != tuple(expected):
        raise InputError(getattr(predictor, "path", None),
                         f"the model takes channels {list(channels)} but the case was prepared for modality "
                         f"{prepared.modality} ({list(expected)})")
    return int(getattr(predictor, "size_multiple", DEFAULT_SIZE_MULTIPLE))


def process_slice(image: np.ndarray, ooi: np.ndarray, z: int, predictor: Predictor, params: PipelineParams,
                  size_multiple: int, stats: Stats) -> Generator[tuple[str, int], None, SliceResult]:
    """Steps 2-4 of the pipeline on one slice (before the size criterion, which the result applies).

    Args:
        image: the slice, ``(C, H, W)`` float32 in [0, 1].
        ooi: boolean ``(H, W)``.
        z: slice index (recorded only).
        predictor, params, size_multiple, stats: see :func:`run_autopaint`.

    Yields:
        ``(stage, holes_inpainted_in_this_stage)`` after each predictor call.

    Returns:
        The :class:`SliceResult` with every intermediate; its circles are the inpainted ones (all
        of the grid, or those a coarse-to-fine search visited: :mod:`.autopaint_search`).
    """
    shape = image.shape[1:]
    centres = circle_centres(ooi, params.circle_radius_px, params.circle_stride_px)
    empty = np.zeros(len(centres))
    if len(centres) == 0:
        return SliceResult(z, shape, centres, empty, empty, empty, np.zeros(0, dtype=int))
    search = yield from search_circles(image, ooi, centres, predictor, params, size_multiple, stats)
    centres, population = centres[search.indices], search.population
    intensity, texture = search.intensity, search.texture
    use_texture = params.texture != "none"
    scores = combined_scores(intensity, texture if use_texture else None, population)
    candidates = select_outliers(scores, intensity, params.outlier_k, params.top_k, params.min_intensity_difference,
                                 population)
    healthy = float(np.median((intensity + texture)[population]))
    result = SliceResult(z, shape, centres, intensity, texture, scores, candidates, healthy)
    if candidates.size == 0:
        return result
    masks = dilated_masks(union_of_circles(centres[candidates], params.circle_radius_px, shape),
                          params.dilation_widths_px)
    window, deltas = yield from inpaint_masks(image, masks, predictor, params, size_multiple, stats)
    return _finish_slice(result, image, ooi, masks, window, deltas, params)


class _relay:
    """Iterate a generator and keep its return value in ``.value`` (``yield from`` for a for-loop)."""

    def __init__(self, generator):
        self.generator = generator
        self.value = None

    def __iter__(self):
        self.value = yield from self.generator


def _finish_slice(result: SliceResult, image: np.ndarray, ooi: np.ndarray, masks: list[np.ndarray], window: Box,
                  deltas: list[np.ndarray], params: PipelineParams) -> SliceResult:
    """Dilation rule, final inpainting and raw residual of a slice with candidates."""
    sigmas = params.feature_sigmas_px if params.texture != "none" else None
    inside = ooi[window.slices]
    measured = masks[-1][window.slices] & inside  # one fixed region for all six masks
    differences, areas = [], []
    for mask, delta in zip(masks, deltas):
        intensity, texture = difference_maps(delta, sigmas)
        differences.append(float((intensity + texture)[measured].sum()))
        areas.append(int((mask[window.slices] & inside).sum()))
    chosen = choose_mask(differences, areas, result.healthy_level, params.dilation_tolerance)
    delta = deltas[chosen]
    inpainted = image[(slice(None),) + window.slices] + delta
    residual = (np.abs(delta).max(axis=0) * inside).astype(np.float32)
    return SliceResult(result.z, result.shape, result.centres, result.intensity, result.texture, result.scores,
                       result.candidates, result.healthy_level, window, masks[0][window.slices].copy(),
                       np.asarray(differences), np.asarray(areas), chosen, inpainted.astype(np.float32), residual)


def run_autopaint(prepared: PreparedCase, ooi: np.ndarray, predictor: Predictor, params: PipelineParams | None = None,
                  slices: Iterable[int] | None = None, should_stop: Callable[[], bool] | None = None
                  ) -> Generator[Progress, None, AutopaintResult | None]:
    """Run the pipeline on a prepared case, yielding progress at safe points.

    Args:
        prepared: the case (``prepared.channels`` ``(z, C, N, N)`` in [0, 1] on the working grid).
        ooi: boolean OOI ``(z, y, x)`` on the case grid (``compute_ooi``'s output).
        predictor: image ``(B, C, h, w)``, mask ``(B, 1, h, w)`` (1 = known) -> inpainted
            ``(B, C, h, w)``; an :class:`~autopaint_app.core.inpaint_model.InpaintModel` or a fake.
            Its ``size_multiple`` attribute (default 32) sizes the fast-mode crops.
        params: pipeline parameters; default: the paper's for ``prepared.preset``.
        slices: slice indices to process (default: every slice where the OOI is non-empty).
        should_stop: polled at every safe point; when it returns True the run ends, returning None.

    Yields:
        :class:`Progress`; the last one (stage ``"done"``) carries the result.

    Returns:
        The :class:`AutopaintResult`, or None when stopped. Closing the generator (or simply not
        iterating further) also cancels; nothing is written either way.
    """
    params = params if params is not None else PipelineParams.from_preset(prepared.preset)
    size_multiple = _check_predictor(predictor, prepared)
    ooi_w = working_ooi(prepared, ooi)
    depth = ooi_w.shape[0]
    wanted = list(range(depth) if slices is None else slices)
    if any(not 0 <= z < depth for z in wanted):
        raise ValueError(f"slice indices must be in [0, {depth}), got {wanted}")
    todo = [z for z in sorted(set(wanted)) if ooi_w[z].any()]
    stats, started, done, results = Stats(), time.perf_counter(), 0, {}

    def progress(stage, z, result=None, slice_result=None) -> Progress:
        return Progress(stage, z, done, len(todo), stats.holes_inpainted, time.perf_counter() - started, result,
                        slice_result)

    for z in todo:
        work = _relay(process_slice(prepared.channels[z], ooi_w[z], z, predictor, params, size_multiple, stats))
        for stage, _ in work:
            if should_stop is not None and should_stop():
                return None
            yield progress(stage, z)
        results[z] = work.value
        done += 1
        if should_stop is not None and should_stop():
            return None
        yield progress("slice", z, slice_result=results[z])
    stats.seconds["total"] = time.perf_counter() - started
    result = AutopaintResult(params, prepared.grid, prepared.reference, prepared.channels,
                             MODALITY_CHANNELS[prepared.modality], prepared.preset, ooi_w, results, stats.as_dict())
    yield progress("done", None, result)
    return result


def autopaint(prepared: PreparedCase, ooi: np.ndarray, predictor: Predictor, params: PipelineParams | None = None,
              slices: Iterable[int] | None = None) -> AutopaintResult:
    """Run :func:`run_autopaint` to the end and return its result (no progress reporting)."""
    progress = None
    for progress in run_autopaint(prepared, ooi, predictor, params, slices):
        pass
    return progress.result
