"""Inpainting circles and masks of one slice with a predictor, in fast or reference mode.

Both modes feed the same holes to the same predictor and return the same thing: the residual
``delta = composited - input`` on a fixed window of the slice (the hole's bounding box), from which
:mod:`autopaint_app.core.autopaint_scores` computes every score. They differ only in what the
network sees:

* ``reference`` (the paper): the whole slice with one hole per forward pass.
* ``fast``: a crop around the hole (circles: :meth:`PipelineParams.circle_crop_size`, 128 px for the
  lung; masks: the largest dilated mask's bounding box plus ``r`` of context on every side, rounded
  up to the size multiple, or the whole slice when that does not fit), several crops per forward
  pass. Crops are shifted, never padded, to stay inside the slice, so they hold only real pixels.

The scoring window is always inside the crop (asserted), so the score formula is the same in both
modes; only the network's output can differ, through the context it saw.

The functions are generators: they yield ``(stage, holes inpainted)`` after each predictor call
(a safe point to report progress or stop) and return their results (``StopIteration.value``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Generator

import numpy as np

from autopaint_app.core.autopaint_circles import Box, aligned_crop, disk_in_box
from autopaint_app.core.autopaint_params import PipelineParams, round_up
from autopaint_app.core.autopaint_scores import difference_maps

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Stats:
    """Counters of one run: seconds in the predictor (all, circles, masks) and in scoring, forward
    passes, holes inpainted."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.forward_passes = 0
        self.holes_inpainted = 0
        self.volume_level: float | None = None  # the volume rule's level (None: off)

    def as_dict(self) -> dict:
        return {"seconds": {k: round(v, 4) for k, v in self.seconds.items()},
                "forward_passes": self.forward_passes, "holes_inpainted": self.holes_inpainted,
                "volume_level": None if self.volume_level is None else round(self.volume_level, 4)}


def _predict(predictor: Predictor, images: np.ndarray, known: np.ndarray, stats: Stats, stage: str) -> np.ndarray:
    """One predictor call on ``images`` ``(B, C, h, w)`` and ``known`` ``(B, h, w)`` bool (1 = known).

    Its time is added to ``stats.seconds["inference"]`` and to ``stats.seconds[stage]``.
    """
    start = time.perf_counter()
    mask = known[:, None].astype(np.float32)
    output = np.asarray(predictor(images, mask), dtype=np.float32)
    seconds = time.perf_counter() - start
    stats.seconds["inference"] += seconds
    stats.seconds[stage] += seconds
    if output.shape != images.shape:
        raise ValueError(f"predictor returned shape {output.shape} for input {images.shape}")
    stats.forward_passes += 1
    stats.holes_inpainted += images.shape[0]
    return output


def _delta_in_window(output: np.ndarray, image: np.ndarray, hole: np.ndarray, source: Box, window: Box) -> np.ndarray:
    """``hole * (output - image)`` on ``window``; arrays are given on ``source`` (which contains ``window``)."""
    assert source.contains(window), (source, window)
    rows = slice(window.y0 - source.y0, window.y1 - source.y0)
    cols = slice(window.x0 - source.x0, window.x1 - source.x0)
    return (output[:, rows, cols] - image[:, rows, cols]) * hole[rows, cols]


def inpaint_circles(image: np.ndarray, ooi: np.ndarray, centres: np.ndarray, predictor: Predictor,
                    params: PipelineParams, size_multiple: int, stats: Stats
                    ) -> Generator[tuple[str, int], None, tuple[np.ndarray, np.ndarray]]:
    """Inpaint every circle of a slice and score it.

    Args:
        image: the slice, ``(C, H, W)`` float32 in [0, 1].
        ooi: boolean ``(H, W)``; scores are means over the circle's pixels inside the OOI.
        centres: ``(n, 2)`` ``(y, x)`` circle centres.
        predictor: image ``(B, C, h, w)``, mask ``(B, 1, h, w)`` -> inpainted ``(B, C, h, w)``.
        params: pipeline parameters (radius, mode, batch size, crop rule, feature scales).
        size_multiple: the network's size multiple (fast-mode crops are multiples of it).
        stats: counters updated in place.

    Yields:
        ``("circles", circles inpainted so far)`` after each predictor call.

    Returns:
        ``(intensity, texture)`` mean differences per circle, float64 ``(n,)`` each (texture zeros
        when ``params.texture == "none"``).
    """
    shape = image.shape[1:]
    radius = params.circle_radius_px
    fast = params.mode == "fast"
    batch = params.batch_size if fast else 1
    crop = params.circle_crop_size(size_multiple)
    intensity = np.zeros(len(centres))
    texture = np.zeros(len(centres))
    for start in range(0, len(centres), batch):
        chunk = centres[start:start + batch]
        sources = [aligned_crop(Box.of_circle(c, radius, shape), (crop, crop), shape, size_multiple) if fast
                   else Box(0, 0, *shape) for c in chunk]
        holes = [disk_in_box(c, radius, box) for c, box in zip(chunk, sources)]
        images = np.stack([image[(slice(None),) + box.slices] for box in sources])
        output = _predict(predictor, images, ~np.stack(holes), stats, "circles")
        started = time.perf_counter()
        windows = [Box.of_circle(c, radius, shape) for c in chunk]
        deltas = [_delta_in_window(output[i], images[i], holes[i], sources[i], windows[i]) for i in range(len(chunk))]
        measured = [ooi[w.slices] & disk_in_box(c, radius, w) for c, w in zip(chunk, windows)]
        for i, (mean_intensity, mean_texture) in _score_windows(deltas, measured, params).items():
            intensity[start + i], texture[start + i] = mean_intensity, mean_texture
        stats.seconds["scoring"] += time.perf_counter() - started
        yield "circles", start + len(chunk)
    return intensity, texture


def _score_windows(deltas: list[np.ndarray], measured: list[np.ndarray], params: PipelineParams
                   ) -> dict[int, tuple[float, float]]:
    """Mean intensity and texture difference inside each measured region; same-shape windows batched."""
    sigmas = params.feature_sigmas_px if params.texture != "none" else None
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, delta in enumerate(deltas):
        groups[delta.shape].append(i)
    scores = {}
    for members in groups.values():
        intensity, texture = difference_maps(np.stack([deltas[i] for i in members]), sigmas)
        for j, i in enumerate(members):
            inside = measured[i]
            count = max(int(inside.sum()), 1)
            scores[i] = (float(intensity[j][inside].sum() / count), float(texture[j][inside].sum() / count))
    return scores


def mask_crop(window: Box, params: PipelineParams, size_multiple: int, shape: tuple[int, int]) -> Box:
    """Fast-mode crop for the union/dilated masks: ``window`` + ``r`` context, rounded up, inside the
    slice, on the network's grid (:func:`aligned_crop`)."""
    margin = params.mask_margin_px
    size = (round_up(window.shape[0] + 2 * margin, size_multiple), round_up(window.shape[1] + 2 * margin, size_multiple))
    return aligned_crop(window, size, shape, size_multiple)


def inpaint_masks(image: np.ndarray, masks: list[np.ndarray], predictor: Predictor, params: PipelineParams,
                  size_multiple: int, stats: Stats) -> Generator[tuple[str, int], None, tuple[Box, list[np.ndarray]]]:
    """Inpaint each of ``masks`` (the union and its dilations, growing) independently.

    Args:
        image: the slice, ``(C, H, W)``.
        masks: boolean ``(H, W)`` holes, each contained in the last one.
        predictor, params, size_multiple, stats: as for :func:`inpaint_circles`.

    Yields:
        ``("masks", masks inpainted so far)`` after each predictor call.

    Returns:
        ``(window, deltas)``: the bounding box of the largest mask and, per mask, ``composited -
        input`` on it, ``(C, h, w)`` float32.
    """
    shape = image.shape[1:]
    window = Box.of_mask(masks[-1])
    if window is None:
        raise ValueError("inpaint_masks needs a non-empty mask")
    fast = params.mode == "fast"
    source = mask_crop(window, params, size_multiple, shape) if fast else Box(0, 0, *shape)
    batch = params.batch_size if fast else 1
    crop_image = image[(slice(None),) + source.slices]
    deltas = []
    for start in range(0, len(masks), batch):
        holes = [m[source.slices] for m in masks[start:start + batch]]
        images = np.repeat(crop_image[None], len(holes), axis=0)
        output = _predict(predictor, images, ~np.stack(holes), stats, "masks")
        deltas += [_delta_in_window(output[i], crop_image, holes[i], source, window) for i in range(len(holes))]
        yield "masks", start + len(holes)
    return window, deltas
