"""Autoinpainting for unsupervised tumour segmentation (paper section 2.5), as a cancellable generator.

Per axial slice of the organ of interest (OOI), on the 512 x 512 working grid:

1. circles of radius ``r`` on a stride-``s`` grid covering the slice's OOI
   (:func:`~autopaint_app.core.autopaint_circles.circle_centres`);
2. every circle inpainted; its intensity and texture differences
   (:mod:`~autopaint_app.core.autopaint_scores`) combined into a robust score; the circles that stand
   out from their slice (median + ``outlier_k`` robust SDs), at most ``top_k``, and from the whole
   run's circles (``volume_outlier_k``, :func:`volume_outliers`; our addition) are the candidates.
   All slices are searched first (phase 1), then decided (phase 2);
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
from dataclasses import dataclass, replace

import numpy as np

from autopaint_app.core.autopaint_circles import Box, circle_centres, dilated_masks, union_of_circles
from autopaint_app.core.autopaint_engine import Predictor, Stats, inpaint_masks
from autopaint_app.core.autopaint_params import PipelineParams
from autopaint_app.core.autopaint_result import AutopaintResult, SliceResult
from autopaint_app.core.autopaint_scores import (choose_mask, combined_scores, difference_maps, outlier_level,
                                                 select_outliers)
from autopaint_app.core.autopaint_search import (CircleSearch, Gate, Screening, complete_circles, refine_circles,
                                                 screen_circles, search_circles)
from autopaint_app.core.errors import InputError
from autopaint_app.core.preprocess import PreparedCase
from autopaint_app.core.presets import MODALITY_CHANNELS

__all__ = ["PipelineParams", "Progress", "AutopaintResult", "SliceResult", "run_autopaint", "autopaint",
           "search_slice", "decide_slice", "slice_candidates", "searched_result", "volume_gate", "volume_outliers",
           "neighbours_to_complete",
           "working_ooi"]

DEFAULT_SIZE_MULTIPLE = 32
# Share of a run's time spent searching circles (phase 1), for progress bars: measured 85-95 % on
# the lung phantoms (a slice's circles vs its six mask inpaintings).
SEARCH_SHARE = 0.9
# Share of a two-pass coarse-to-fine search spent screening (phase 1a), for progress bars: healthy
# slices cost the screening alone, so most of it.
SCREEN_SHARE = 0.8
# Fewest searched slices for the volume rule (:func:`volume_outliers`): with the 3-slice runs of a
# known lesion the volume's own statistics are the tumour's.
VOLUME_RULE_MIN_SLICES = 10
# What a step of run_autopaint returns when the run was asked to stop midway.
STOPPED = object()


@dataclass(frozen=True)
class Progress:
    """A safe point of a run.

    Attributes:
        stage: ``"circles"`` / ``"masks"`` (after a predictor call), ``"searched"`` (a slice's circles
            are scored, phase 1), ``"slice"`` (a slice finished, phase 2) or ``"done"`` (the last
            item; ``result`` is set).
        slice_index: working slice ``z`` being processed (None when done).
        slices_done, slices_total: finished (phase 2) and total slices of the run.
        holes_inpainted: holes (circles and masks) inpainted so far in the run.
        elapsed_s: wall time since the run started.
        result: the :class:`AutopaintResult`, on the ``"done"`` item only.
        slice_result: the slice's :class:`SliceResult` on ``"searched"`` (circles and scores only)
            and ``"slice"`` items (everything), so a viewer can draw intermediates as they come.
        slices_searched: slices whose circles are inpainted and scored (phase 1).
        slices_screened: slices whose screening circles are inpainted (phase 1a of a two-pass
            coarse-to-fine search, stage ``"screened"``, whose ``slice_result`` holds those circles;
            0 throughout a one-pass search).
    """

    stage: str
    slice_index: int | None
    slices_done: int
    slices_total: int
    holes_inpainted: int
    elapsed_s: float
    result: AutopaintResult | None = None
    slice_result: SliceResult | None = None
    slices_searched: int = 0
    slices_screened: int = 0

    @property
    def fraction(self) -> float:
        """Finished share of the run, in [0, 1]: the circle search (phase 1) is ~90 % of the work,
        and in a two-pass search the screening is ``SCREEN_SHARE`` of the search."""
        if self.slices_total == 0:
            return 1.0
        search = self.slices_searched
        if self.slices_screened:
            search = SCREEN_SHARE * self.slices_screened + (1 - SCREEN_SHARE) * self.slices_searched
        return (SEARCH_SHARE * search + (1 - SEARCH_SHARE) * self.slices_done) / self.slices_total


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


def search_slice(image: np.ndarray, ooi: np.ndarray, z: int, predictor: Predictor, params: PipelineParams,
                 size_multiple: int, stats: Stats) -> Generator[tuple[str, int], None, SliceResult]:
    """Step 2's inpainting of one slice: every circle (or a coarse-to-fine subset) inpainted and scored.

    Args:
        image: the slice, ``(C, H, W)`` float32 in [0, 1].
        ooi: boolean ``(H, W)``.
        z: slice index (recorded only).
        predictor, params, size_multiple, stats: see :func:`run_autopaint`.

    Yields:
        ``(stage, holes_inpainted_in_this_stage)`` after each predictor call.

    Returns:
        A :class:`SliceResult` with the inpainted circles and their scores, no candidates yet.
    """
    centres = circle_centres(ooi, params.circle_radius_px, params.circle_stride_px)
    if len(centres) == 0:
        return searched_result(z, image.shape[1:], centres, None, params)
    search = yield from search_circles(image, ooi, centres, predictor, params, size_multiple, stats)
    return searched_result(z, image.shape[1:], centres, search, params)


def searched_result(z: int, shape: tuple[int, int], centres: np.ndarray, search: CircleSearch | None,
                     params: PipelineParams) -> SliceResult:
    """The :class:`SliceResult` of a slice's inpainted circles (``search``; None: no circle), no candidates yet."""
    if search is None or len(search.indices) == 0:
        empty = np.zeros(0)
        return SliceResult(z, shape, np.zeros((0, 2), dtype=int), empty, empty, empty, np.zeros(0, dtype=int))
    intensity, texture, population = search.intensity, search.texture, search.population
    scores = combined_scores(intensity, texture if params.texture != "none" else None, population)
    healthy = float(np.median((intensity + texture)[population]))
    return SliceResult(z, shape, centres[search.indices], intensity, texture, scores, np.zeros(0, dtype=int),
                       healthy, population=population, volume_population=search.volume_population)


def volume_gate(screenings: dict[int, Screening], params: PipelineParams) -> Gate | None:
    """The volume rule's verdict in advance, for the coarse-to-fine refinement (None: rule off).

    Why: a candidate must stand out from the whole run's circles (:func:`volume_outliers`), and
    in a coarse-to-fine search that rule's median and MAD come from the screening circles only,
    all of which are known once every slice is screened. So the rule's level is known before any
    refinement, and refining around a circle that cannot come near it (lowered by
    ``volume_screen_margin``) mostly finds circles the decision will drop. Healthy slices then cost
    the screening alone instead of a flood around their own "most different" circles. The margin
    is a trade: replaying the search on the exhaustive differences of five lung PET-CT phantoms,
    1.5 inpaints ~30 % of the grid but loses tumour slices whose screened neighbours look healthy
    to the volume (union of candidate circles vs the one-pass search: Dice 0.50 on one case),
    2.5 inpaints ~40 % and takes the one-pass search's decisions on 4 of the 5 (README, Performance).

    Returns:
        ``gate(intensity, texture) -> bool array``: True where a circle's volume score exceeds
        ``median + (volume_outlier_k - volume_screen_margin) x spread``; None when the volume rule is off
        (``volume_outlier_k == 0`` or fewer than ``VOLUME_RULE_MIN_SLICES`` slices with circles).
    """
    found = [s.found() for s in screenings.values() if s.done.any()]
    if params.volume_outlier_k == 0 or len(found) < VOLUME_RULE_MIN_SLICES:
        return None
    intensity = np.concatenate([f.intensity[f.population] for f in found])
    texture = np.concatenate([f.texture[f.population] for f in found]) if params.texture != "none" else None
    population = np.arange(len(intensity))
    level = outlier_level(combined_scores(intensity, texture), params.volume_outlier_k - params.volume_screen_margin)

    def gate(circle_intensity: np.ndarray, circle_texture: np.ndarray) -> np.ndarray:
        scores = combined_scores(np.concatenate([intensity, circle_intensity]),
                                 None if texture is None else np.concatenate([texture, circle_texture]), population)
        return scores[len(intensity):] > level

    return gate


def decide_slice(searched: SliceResult, image: np.ndarray, ooi: np.ndarray, predictor: Predictor,
                 params: PipelineParams, size_multiple: int, stats: Stats, volume_scores: np.ndarray | None = None,
                 volume_level: float | None = None) -> Generator[tuple[str, int], None, SliceResult]:
    """Steps 2 (selection) to 4 of one searched slice (before the size criterion, which the result applies).

    Candidates: the slice's outliers (:func:`select_outliers`) whose score also stands out from
    the whole run's circles (``volume_scores > volume_level``, see :func:`volume_outliers`), when
    a volume level is given, at most ``top_k`` of them. Then the union and its dilations are
    inpainted and the rule picks one.

    Yields:
        ``(stage, holes_inpainted_in_this_stage)`` after each predictor call.
    """
    if len(searched.centres) == 0:
        return searched
    candidates = slice_candidates(searched, params, volume_scores, volume_level)
    result = replace(searched, candidates=candidates)
    if candidates.size == 0:
        return result
    shape = image.shape[1:]
    masks = dilated_masks(union_of_circles(result.centres[candidates], params.circle_radius_px, shape),
                          params.dilation_widths_px)
    window, deltas = yield from inpaint_masks(image, masks, predictor, params, size_multiple, stats)
    return _finish_slice(result, image, ooi, masks, window, deltas, params)


def slice_candidates(searched: SliceResult, params: PipelineParams, volume_scores: np.ndarray | None = None,
                     volume_level: float | None = None) -> np.ndarray:
    """Step 2's selection: indices of the searched slice's candidate circles, best first (see :func:`decide_slice`)."""
    # The volume rule says which circles may be candidates before the top-k cap is applied, so
    # that a circle the volume rule rejects never takes the place of one it accepts.
    eligible = volume_scores > volume_level if volume_level is not None and volume_scores is not None else None
    return select_outliers(searched.scores, searched.intensity, params.outlier_k, params.top_k,
                           params.min_intensity_difference, searched.population, eligible)


def neighbours_to_complete(searched: dict[int, SliceResult], todo: list[int], params: PipelineParams
                           ) -> Generator[int, None, None]:
    """Slices next to a slice with candidates, not yet completed: yielded one by one for
    :func:`~autopaint_app.core.autopaint_search.complete_circles`, re-deciding after each (so a
    tumour found on a completed slice pulls in the next one along z).

    Why: coarse-to-fine misses a small tumour's slice when the grid circle that sees it was never
    inpainted (its screened neighbours look healthy), and such slices sit next to the slices where
    the same tumour was found (demo case, int8 twin: slice 37 lost between kept slices 36 and 38).
    The caller replaces ``searched[z]`` before asking for the next slice. Only with
    the volume rule on: without it every slice has candidates.
    """
    wanted, completed = set(todo), set()
    while True:
        volume_scores, level = volume_outliers(searched, params)
        if level is None:
            return
        found = {z for z, s in searched.items()
                 if len(s.centres) and slice_candidates(s, params, volume_scores.get(z), level).size}
        pending = sorted(n for z in found for n in (z - 1, z + 1)
                         if n in wanted and n not in found and n not in completed)
        if not pending:
            return
        completed.add(pending[0])
        yield pending[0]


def volume_outliers(searched: dict[int, SliceResult], params: PipelineParams
                    ) -> tuple[dict[int, np.ndarray], float | None]:
    """Scores of every circle against the whole run's circles, and the level a candidate must pass.

    Why: the paper's rule compares a circle with the other circles of *its* slice, so every slice
    has its "most different" circles, and in healthy slices these are wherever the network inpaints
    worst (measured on the demo case with the shipped lung PET-CT model: all 48 slices had
    candidates and all passed the size criterion; Dice 0.30). A tumour stands out from the whole
    volume too. Each circle's intensity and texture differences are put in robust units over
    every circle of the run (median/MAD, as :func:`combined_scores` does per slice) and a candidate
    must exceed ``median + volume_outlier_k x spread`` of those volume scores as well.

    The rule needs a volume: with fewer than ``VOLUME_RULE_MIN_SLICES`` searched slices (e.g. a
    run restricted to the few slices of a known lesion) the "rest of the volume" may be mostly
    tumour, so the rule is off and the per-slice rule decides alone.

    Returns:
        ``({z: volume score per circle}, level)``; level None when the rule is off
        (``volume_outlier_k == 0`` or too few slices).
    """
    zs = [z for z, s in searched.items() if len(s.centres)]
    if params.volume_outlier_k == 0 or len(zs) < VOLUME_RULE_MIN_SLICES:
        return {}, None
    intensity = np.concatenate([searched[z].intensity for z in zs])
    texture = np.concatenate([searched[z].texture for z in zs])
    population = np.concatenate([searched[z].volume_population_mask() for z in zs])
    scores = combined_scores(intensity, texture if params.texture != "none" else None, population)
    level = outlier_level(scores, params.volume_outlier_k, population)
    split = np.cumsum([len(searched[z].centres) for z in zs])[:-1]
    return dict(zip(zs, np.split(scores, split))), level


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
    return replace(result, window=window, union=masks[0][window.slices].copy(),
                   mask_differences=np.asarray(differences), mask_areas=np.asarray(areas), chosen=chosen,
                   inpainted=inpainted.astype(np.float32), residual=residual)


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
    stats, started, searched, done, results = Stats(), time.perf_counter(), {}, 0, {}
    screened, shape = 0, prepared.channels.shape[2:]

    def progress(stage, z, result=None, slice_result=None) -> Progress:
        return Progress(stage, z, done, len(todo), stats.holes_inpainted, time.perf_counter() - started, result,
                        slice_result, len(searched), screened)

    def stopped() -> bool:
        return should_stop is not None and should_stop()

    def step(generator, z):
        """Relay one step's ``(stage, n)`` items as Progress; its value, or ``STOPPED`` when asked to stop."""
        work = _relay(generator)
        for stage, _ in work:
            if stopped():
                return STOPPED
            yield progress(stage, z)
        return work.value

    # Phase 1: every slice's circles (most of the work); phase 2 needs all their scores.
    if params.coarse_to_fine and params.volume_outlier_k > 0:
        # 1a: screen every slice; 1b: refine each slice where the slice and volume rules both allow.
        screenings, centres = {}, {}
        for z in todo:
            centres[z] = circle_centres(ooi_w[z], params.circle_radius_px, params.circle_stride_px)
            screening = yield from step(screen_circles(prepared.channels[z], ooi_w[z], centres[z], predictor, params,
                                                       size_multiple, stats), z)
            if screening is STOPPED:
                return None
            screenings[z], screened = screening, screened + 1
            yield progress("screened", z, slice_result=searched_result(z, shape, centres[z], screening.found(), params))
        gate = volume_gate(screenings, params)
        for z in todo:
            found = yield from step(refine_circles(screenings[z], prepared.channels[z], ooi_w[z], centres[z], predictor,
                                                   params, size_multiple, stats, gate), z)
            if found is STOPPED:
                return None
            searched[z] = searched_result(z, shape, centres[z], found, params)
            yield progress("searched", z, slice_result=searched[z])
        # 1c: a tumour continues along z; the slices next to a slice with candidates get every circle
        if params.complete_neighbours:
            for z in neighbours_to_complete(searched, todo, params):
                found = yield from step(complete_circles(screenings[z], prepared.channels[z], ooi_w[z], centres[z],
                                                         predictor, params, size_multiple, stats), z)
                if found is STOPPED:
                    return None
                searched[z] = searched_result(z, shape, centres[z], found, params)
                yield progress("searched", z, slice_result=searched[z])
    else:
        for z in todo:
            result = yield from step(search_slice(prepared.channels[z], ooi_w[z], z, predictor, params, size_multiple,
                                                  stats), z)
            if result is STOPPED:
                return None
            searched[z] = result
            yield progress("searched", z, slice_result=result)  # circles and scores, no decision yet
    volume_scores, level = volume_outliers(searched, params)
    stats.volume_level = level
    # Phase 2: candidates, union and dilations, residual; each finished slice is reported.
    for z in todo:
        result = yield from step(decide_slice(searched[z], prepared.channels[z], ooi_w[z], predictor, params,
                                              size_multiple, stats, volume_scores.get(z), level), z)
        if result is STOPPED:
            return None
        results[z] = result
        done += 1
        if stopped():
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
