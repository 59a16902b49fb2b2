"""Which circles of a slice get inpainted: exhaustive or coarse-to-fine search (fast mode).

Exhaustive (the paper, and always in reference mode): every circle of the stride-``s`` grid
(:func:`~autopaint_app.core.autopaint_circles.circle_centres`).

Coarse-to-fine (fast mode, opt-in: ``PipelineParams.circle_search``): the decisions only depend on the circles that stand out
(score above ``median + outlier_k x spread``, :func:`~autopaint_app.core.autopaint_scores.select_outliers`),
and circles ``s`` apart overlap by more than half, so their scores change smoothly across the grid.

1. *Screen*: inpaint the circles on every other grid row and column (stride ``2 s``, a quarter of
   them), plus any circle with no such neighbour (OOI borders), so every circle of the grid is
   within one grid step (``<= s sqrt(2)``) of a screened one. The screened circles are an evenly
   spread sample of the slice: they alone give the median and spread of every robust score, as
   the whole grid does in an exhaustive search.
2. *Refine*: a circle is promising when its score exceeds ``median + (outlier_k - screen_margin) x
   spread``; the not yet inpainted grid neighbours of every promising circle are inpainted, and so
   on from the promising ones among them (a flood fill through promising circles), until no new
   neighbour is left. An outlier's best screened neighbour scores at most ``screen_margin`` below
   it in practice (measured drop <= 1.3 spread on the lung phantom with the dev model), so every
   outlier, and each outlier's neighbourhood, is inpainted and the kept top-k are the ones an
   exhaustive search picks. Healthy slices cost only the screening (~1/4 of the circles).

Known limit: the median and MAD come from ~1/4 of the circles, so the outlier threshold moves by a
fraction of a spread; a circle at the margin can flip (seen on a 128-px disc case: exhaustive level
6.14, screened 7.24, circle 6.23). That is why it is not the default yet.

The result lists the inpainted circles only (raster order) and which of them form the statistics
population (the screened ones; all of them in an exhaustive search).
"""

from __future__ import annotations

from collections.abc import Generator
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
        population: ``(m,)`` bool; True for the circles the robust statistics are taken from.
    """

    indices: np.ndarray
    intensity: np.ndarray
    texture: np.ndarray
    population: np.ndarray


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


def search_circles(image: np.ndarray, ooi: np.ndarray, centres: np.ndarray, predictor: Predictor,
                   params: PipelineParams, size_multiple: int, stats: Stats
                   ) -> Generator[tuple[str, int], None, CircleSearch]:
    """Inpaint the circles the search needs (see the module docstring).

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
    keys = grid_keys(centres, params.circle_stride_px, image.shape[1:])
    table = neighbour_table(keys)
    screened = screening_mask(keys, table)
    intensity, texture = np.zeros(n), np.zeros(n)
    done = np.zeros(n, dtype=bool)
    todo, level = np.flatnonzero(screened), None
    use_texture = params.texture != "none"
    while todo.size:
        found = yield from inpaint_circles(image, ooi, centres[todo], predictor, params, size_multiple, stats)
        intensity[todo], texture[todo] = found
        done[todo] = True
        scores = combined_scores(intensity, texture if use_texture else None, screened)
        if level is None:   # screening round: the statistics of the slice
            level = outlier_level(scores, params.outlier_k - params.screen_margin, screened)
        promising = todo[scores[todo] > level]
        around = table[promising].ravel()
        around = np.unique(around[around >= 0])
        todo = around[~done[around]]
    indices = np.flatnonzero(done)
    return CircleSearch(indices, intensity[indices], texture[indices], screened[indices])
