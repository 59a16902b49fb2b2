"""Which circles of a slice get inpainted: exhaustive or coarse-to-fine search (fast mode).

Exhaustive (the paper, and always in reference mode): every circle of the stride-``s`` grid
(:func:`~autopaint_app.core.autopaint_circles.circle_centres`).

Coarse-to-fine (fast mode, opt-in: ``PipelineParams.circle_search``): the decisions only depend
on the circles that stand out (score above ``median + outlier_k x spread``,
:func:`~autopaint_app.core.autopaint_scores.select_outliers`), and circles ``s`` apart overlap by
more than half, so their scores change smoothly across the grid.

1. *Screen* (:func:`screen_circles`): inpaint the circles on every other grid row and column
   (stride ``2 s``, a quarter of them), plus any circle with no such neighbour (OOI borders), so
   every circle of the grid is within one grid step (``<= s sqrt(2)``) of a screened one. The
   screened circles are an evenly spread sample of the slice: they alone give the median and
   spread of every robust score, as the whole grid does in an exhaustive search.
2. *Refine* (:func:`refine_circles`): a circle is promising when its score exceeds ``median +
   (outlier_k - screen_margin) x spread``; the not yet inpainted grid neighbours of every promising
   circle are inpainted, and so on from the promising ones among them (a flood fill through
   promising circles), until no new neighbour is left. An outlier's best screened neighbour scores
   at most ``screen_margin`` below it in practice (measured drop <= 1.3 spread on the lung phantom
   with the dev model), so every outlier, and each outlier's neighbourhood, is inpainted and the
   kept top-k are the ones an exhaustive search picks. Not always: a small tumour seen by one
   grid circle can leave its screened neighbours near the slice's median (measured on a lung
   phantom: 8.5 on the tumour's circle, 0.1 and 1.8 on its two screened neighbours).

With the volume rule on, the pipeline screens every slice before refining any
(``autopaint.run_autopaint``), because the volume rule's statistics are then known: a circle is
promising only if it could also pass the volume rule (``autopaint.volume_gate``), so a healthy
slice costs its screening alone instead of a flood around its own "most different" circles; the
slice's best circle is still followed uphill when it passes the slice rule (see
:func:`refine_circles`).

Known limits, why it is opt-in: the median and MAD come from ~1/4 of the circles (a spatially
correlated sample: 7-13 % off the whole grid's on a lung phantom), so a circle at the margin of a
threshold can flip (seen on a 128-px disc case: exhaustive level 6.14, screened 7.24, circle
6.23), and a small tumour can be missed (above). Measured agreement in the README (Performance).

The result lists the inpainted circles only (raster order) and which of them form the statistics
population (the screened ones; all of them in an exhaustive search).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from autopaint_app.core.autopaint_circles import grid_positions
from autopaint_app.core.autopaint_engine import Predictor, Stats, inpaint_circles
from autopaint_app.core.autopaint_params import PipelineParams
from autopaint_app.core.autopaint_scores import combined_scores, outlier_level

# The 3 x 3 grid neighbourhood (the circle itself included), as (dy, dx) grid steps.
NEIGHBOUR_STEPS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


@dataclass(frozen=True)
class CircleSearch:
    """The inpainted circles of one slice.

    Attributes:
        indices: ``(m,)`` increasing indices into the slice's full grid of centres.
        intensity, texture: ``(m,)`` mean differences of those circles.
        population: ``(m,)`` bool; True for the circles the slice's robust statistics are taken from.
        volume_population: ``(m,)`` bool, the circles the volume rule's statistics take from this
            slice (None: ``population``).
    """

    indices: np.ndarray
    intensity: np.ndarray
    texture: np.ndarray
    population: np.ndarray
    volume_population: np.ndarray | None = None


def grid_keys(centres: np.ndarray, stride: int, shape: tuple[int, int]) -> np.ndarray:
    """Integer grid coordinates ``(n, 2)`` (row, column of the stride grid) of ``centres`` ``(n, 2)``."""
    offsets = np.array([grid_positions(shape[0], stride)[0], grid_positions(shape[1], stride)[0]])
    return (np.asarray(centres, dtype=int) - offsets) // stride


def neighbour_table(keys: np.ndarray) -> np.ndarray:
    """``(n, 9)`` index of each circle's 3 x 3 grid neighbours among ``keys`` (-1 where absent)."""
    if len(keys) == 0:
        return np.zeros((0, len(NEIGHBOUR_STEPS)), dtype=int)
    lookup = np.full(tuple(keys.max(axis=0) + 3), -1, dtype=int)
    lookup[keys[:, 0] + 1, keys[:, 1] + 1] = np.arange(len(keys))
    return np.stack([lookup[keys[:, 0] + 1 + dy, keys[:, 1] + 1 + dx] for dy, dx in NEIGHBOUR_STEPS], axis=1)


def screening_mask(keys: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Bool ``(n,)``: circles on even grid rows and columns, plus every circle none of whose
    neighbours is one of those (so each circle is within one grid step of a screened circle)."""
    coarse = (keys[:, 0] % 2 == 0) & (keys[:, 1] % 2 == 0)
    padded = np.append(coarse, False)                       # index -1 (absent) reads False
    return coarse | ~padded[table].any(axis=1)


@dataclass
class Screening:
    """A slice's coarse-to-fine search in progress: its grid, the circles inpainted so far, their differences.

    Attributes:
        table: ``(n, 9)`` grid neighbours (:func:`neighbour_table`).
        screened: ``(n,)`` bool, the screening circles (the statistics population).
        intensity, texture: ``(n,)`` differences (0 where not inpainted yet).
        done: ``(n,)`` bool, the circles inpainted so far.
    """

    table: np.ndarray
    screened: np.ndarray
    intensity: np.ndarray
    texture: np.ndarray
    done: np.ndarray

    def found(self) -> CircleSearch:
        """The inpainted circles so far, as a :class:`CircleSearch`."""
        indices = np.flatnonzero(self.done)
        return CircleSearch(indices, self.intensity[indices], self.texture[indices], self.screened[indices])


# A gate tells, from circles' (intensity, texture) differences, which ones could still stand out
# from the whole volume (see ``autopaint.volume_gate``); refinement only spreads from those.
Gate = Callable[[np.ndarray, np.ndarray], np.ndarray]


def recorded_inpainter(differences: dict[tuple[int, int], tuple[float, float]]):
    """A circle inpainter (``inpaint_circles``' signature) that returns recorded differences.

    ``differences`` maps a centre ``(y, x)`` to its ``(intensity, texture)``. Fast-mode crops are
    fixed per circle, so an exhaustive run's differences let a search be replayed without the
    network (``benchmarks/bench_search.py``, tests).
    """

    def inpaint(image, ooi, centres, predictor, params, size_multiple, stats):
        yield "circles", len(centres)
        found = [differences[(int(y), int(x))] for y, x in centres]
        return np.array([f[0] for f in found]), np.array([f[1] for f in found])

    return inpaint


def screen_circles(image: np.ndarray, ooi: np.ndarray, centres: np.ndarray, predictor: Predictor,
                   params: PipelineParams, size_multiple: int, stats: Stats, inpaint=inpaint_circles
                   ) -> Generator[tuple[str, int], None, Screening]:
    """Coarse-to-fine step 1: inpaint the screening circles of a slice (see the module docstring).

    Args: as for :func:`search_circles`; ``inpaint`` is the circle inpainter (a generator with
    :func:`~autopaint_app.core.autopaint_engine.inpaint_circles`' signature; a replay of recorded
    differences in ``benchmarks/bench_search.py`` and the tests).
    """
    n = len(centres)
    keys = grid_keys(centres, params.circle_stride_px, image.shape[1:])
    table = neighbour_table(keys)
    screened = screening_mask(keys, table)
    screening = Screening(table, screened, np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool))
    todo = np.flatnonzero(screened)
    found = yield from inpaint(image, ooi, centres[todo], predictor, params, size_multiple, stats)
    screening.intensity[todo], screening.texture[todo] = found
    screening.done[todo] = True
    return screening


def refine_circles(screening: Screening, image: np.ndarray, ooi: np.ndarray, centres: np.ndarray,
                   predictor: Predictor, params: PipelineParams, size_multiple: int, stats: Stats,
                   gate: Gate | None = None, inpaint=inpaint_circles) -> Generator[tuple[str, int], None, CircleSearch]:
    """Coarse-to-fine step 2: inpaint, round after round, the grid neighbours of the promising circles.

    A circle is promising when its slice score exceeds ``median + (outlier_k - screen_margin) x
    spread`` of the screening circles and, when a ``gate`` is given, the gate passes it too
    (``inpaint``: as for :func:`screen_circles`). The
    slice's best circle so far is promising whatever the gate says when it passes the slice rule
    itself (``outlier_k``): a small tumour seen by one grid circle is only half seen by the
    screened neighbours around it, which can look healthy to the volume (measured: a 10-slice
    lung phantom's tumour edge scored 12.9 on its own circle, 4.5 on its best screened
    neighbour), and following the slice's maximum uphill still reaches it. ``screening`` is
    updated in place.
    """
    use_texture = params.texture != "none"
    s = screening
    scores = combined_scores(s.intensity, s.texture if use_texture else None, s.screened)
    level = outlier_level(scores, params.outlier_k - params.screen_margin, s.screened)
    slice_rule = outlier_level(scores, params.outlier_k, s.screened)
    frontier = np.flatnonzero(s.done)
    while frontier.size:
        promising = frontier[scores[frontier] > level]
        if gate is not None and promising.size:
            promising = promising[gate(s.intensity[promising], s.texture[promising])]
            done = np.flatnonzero(s.done)
            best = done[np.argmax(scores[done])]
            if scores[best] > slice_rule and best in frontier:
                promising = np.union1d(promising, [best])
        around = s.table[promising].ravel()
        around = np.unique(around[around >= 0])
        todo = around[~s.done[around]]
        if todo.size == 0:
            break
        found = yield from inpaint(image, ooi, centres[todo], predictor, params, size_multiple, stats)
        s.intensity[todo], s.texture[todo] = found
        s.done[todo] = True
        scores = combined_scores(s.intensity, s.texture if use_texture else None, s.screened)
        frontier = todo
    return s.found()


def complete_circles(screening: Screening, image: np.ndarray, ooi: np.ndarray, centres: np.ndarray,
                     predictor: Predictor, params: PipelineParams, size_multiple: int, stats: Stats,
                     inpaint=inpaint_circles) -> Generator[tuple[str, int], None, CircleSearch]:
    """Inpaint every circle of the slice that the search has not inpainted yet (``screening`` updated in place).

    Used for the slices next to a slice with candidates (``autopaint.neighbours_to_complete``).
    The completed slice is then judged as an exhaustive search judges it: its own median/MAD come
    from every circle (``population``). The volume rule's statistics still take the screening
    circles only (``volume_population``), so its level is exactly that of the search without
    completion and no other slice's decision moves. Why both: a first version counted every
    completed circle in the volume statistics too (20-phantom lung PET-CT cohort [Dice] 0.527
    against 0.539 without completion: the small tumours of lung_513 and lung_514 lost because the
    volume level rose); keeping the screening circles for both left demo slice 37 without a
    candidate (best score 4.48 in units of its 45 screening circles, 5.32 in units of all 184, as
    the exhaustive search sees it).
    """
    s = screening
    todo = np.flatnonzero(~s.done)
    if todo.size:
        found = yield from inpaint(image, ooi, centres[todo], predictor, params, size_multiple, stats)
        s.intensity[todo], s.texture[todo] = found
        s.done[todo] = True
    indices = np.flatnonzero(s.done)
    return CircleSearch(indices, s.intensity[indices], s.texture[indices], np.ones(len(indices), dtype=bool),
                        s.screened[indices])


def search_circles(image: np.ndarray, ooi: np.ndarray, centres: np.ndarray, predictor: Predictor,
                   params: PipelineParams, size_multiple: int, stats: Stats
                   ) -> Generator[tuple[str, int], None, CircleSearch]:
    """Inpaint the circles the search needs, in one go (see the module docstring).

    Args:
        image: the slice, ``(C, H, W)``; ooi: boolean ``(H, W)``; centres: ``(n, 2)`` ``(y, x)``
            full-stride grid centres of the slice (raster order).
        predictor, params, size_multiple, stats: as for
            :func:`~autopaint_app.core.autopaint_engine.inpaint_circles`.

    Yields:
        ``("circles", circles inpainted in the current round)`` after each predictor call.

    Returns:
        The :class:`CircleSearch`.
    """
    n = len(centres)
    if not params.coarse_to_fine:
        intensity, texture = yield from inpaint_circles(image, ooi, centres, predictor, params, size_multiple, stats)
        return CircleSearch(np.arange(n), intensity, texture, np.ones(n, dtype=bool))
    screening = yield from screen_circles(image, ooi, centres, predictor, params, size_multiple, stats)
    return (yield from refine_circles(screening, image, ooi, centres, predictor, params, size_multiple, stats))
