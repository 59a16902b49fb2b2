"""The autoinpainting layers: candidate circles, top-k circles, union, dilations, chosen mask, residual.

They fill in slice by slice: the worker maps each finished slice onto the case grid
(:func:`autopaint_app.core.autopaint_overlays.slice_overlay`) and :class:`PipelineOverlays` copies
those small 2-D results into the layers' volumes on the GUI thread. The union, the dilations and
the chosen mask share one uint8 label volume (``core.autopaint_overlays.mask_levels`` encoding), so
a run costs one byte per voxel for the three of them plus two bytes for the residual (float16: it
is only drawn; exports come from the result itself).

Slices that arrive while a redraw is pending are drawn together (:meth:`PipelineOverlays.redraw_pending`,
timed by the session), and the axial view redraws only when one of them is its shown slice.

A run writes into fresh volumes; the previous run's are kept until the new run finishes, so a
cancelled run can put them back (:meth:`PipelineOverlays.restore_previous`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from scipy import ndimage

from autopaint_app.core.autopaint_overlays import CHOSEN_BIT, LEVEL_BITS, SliceOverlay
from autopaint_app.gui.overlays import (CIRCLES, HEATMAP, RENDERERS, CircleData, Layer, LayerModel,
                                        SliceCircles, _coloured, render_outline)

CANDIDATES, TOP_K, UNION, DILATIONS, CHOSEN, RESIDUAL = ("Candidate circles", "Top-k circles", "Union mask",
                                                         "Dilated masks", "Chosen mask", "Residual")
PIPELINE_LAYERS = (CANDIDATES, TOP_K, UNION, DILATIONS, CHOSEN, RESIDUAL)
UNION_FILL, LEVEL_RINGS, CHOSEN_OUTLINE = "levels_union", "levels_rings", "levels_chosen"

# Circle scores are robust z-units (core.autopaint_scores.combined_scores): colour them over this range.
SCORE_RANGE = (-2.0, 10.0)
_SCORE_LUT = pg.colormap.get("viridis").getLookupTable(0.0, 1.0, 256, alpha=False)
# Ring colours of the nested masks: union (1) orange through the largest dilation (6) violet.
_RING_COLOURS = np.array([(0, 0, 0), (255, 150, 40), (235, 110, 90), (215, 80, 140), (185, 60, 190),
                          (150, 60, 230), (110, 70, 255)], dtype=np.uint8)
TOP_K_COLOUR = (255, 235, 0)


def pipeline_layers() -> list[Layer]:
    """The pipeline's layers (under the final mask, z 20-25; ground truth stays on top)."""
    return [
        Layer(CANDIDATES, CIRCLES, colour=(60, 180, 140), opacity=0.4, z_value=20.0),
        Layer(TOP_K, CIRCLES, colour=TOP_K_COLOUR, opacity=1.0, z_value=21.0),
        Layer(UNION, UNION_FILL, colour=(255, 150, 40), opacity=0.3, z_value=22.0),
        Layer(DILATIONS, LEVEL_RINGS, opacity=0.8, z_value=23.0),
        Layer(CHOSEN, CHOSEN_OUTLINE, colour=(0, 255, 255), opacity=1.0, z_value=24.0),
        Layer(RESIDUAL, HEATMAP, opacity=0.8, z_value=25.0, levels=(0.0, 0.5)),
    ]


def render_union(layer: Layer, slice2d: np.ndarray) -> np.ndarray:
    """RGBA: pixels of the union of the candidate circles (level 1) in the layer colour."""
    return _coloured((slice2d & LEVEL_BITS) == 1, layer.colour)


def render_rings(layer: Layer, slice2d: np.ndarray) -> np.ndarray:
    """RGBA: the outline of every nested mask (union and dilations), coloured by its level."""
    levels = slice2d & LEVEL_BITS
    rgba = np.zeros(slice2d.shape + (4,), dtype=np.uint8)
    top = int(levels.max())
    for level in range(top, 0, -1):  # smaller masks drawn last, on top
        inside = (levels > 0) & (levels <= level)
        edge = inside & ~ndimage.binary_erosion(inside, border_value=0)
        rgba[edge] = (*_RING_COLOURS[min(level, len(_RING_COLOURS) - 1)], 255)
    return rgba


def render_chosen(layer: Layer, slice2d: np.ndarray) -> np.ndarray:
    """RGBA: the outline of the mask the dilation rule chose."""
    return render_outline(layer, (slice2d & CHOSEN_BIT) > 0)


RENDERERS.update({UNION_FILL: render_union, LEVEL_RINGS: render_rings, CHOSEN_OUTLINE: render_chosen})


def score_colours(scores: np.ndarray) -> np.ndarray:
    """RGBA ``(n, 4)`` uint8 for circle scores through viridis over :data:`SCORE_RANGE`."""
    low, high = SCORE_RANGE
    index = (np.clip((np.asarray(scores, dtype=float) - low) / (high - low), 0.0, 1.0) * 255).astype(np.uint8)
    colours = np.full((len(index), 4), 255, dtype=np.uint8)
    colours[:, :3] = _SCORE_LUT[index]
    return colours


@dataclass
class OverlayData:
    """One run's drawable volumes ``(z, y, x)`` on the case grid and its circles per slice."""

    levels: np.ndarray
    residual: np.ndarray
    preview: np.ndarray
    candidates: CircleData = field(default_factory=CircleData)
    top_k: CircleData = field(default_factory=CircleData)
    slices: int = 0
    finished: bool = False

    @classmethod
    def empty(cls, shape: tuple[int, int, int]) -> "OverlayData":
        return cls(np.zeros(shape, np.uint8), np.zeros(shape, np.float16), np.zeros(shape, bool))


class PipelineOverlays:
    """Writes a run's slices into the pipeline layers of a :class:`LayerModel`.

    Args:
        layers: the model to add the pipeline layers to and to fill.
    """

    def __init__(self, layers: LayerModel):
        self.layers = layers
        for layer in pipeline_layers():
            if layer.name not in layers:
                layers.add_layer(layer)
        self.current: OverlayData | None = None
        self.previous: OverlayData | None = None
        self.pending: set[int] = set()  # slices written but not yet redrawn

    def begin(self, shape: tuple[int, int, int]) -> None:
        """A run starts: fresh empty volumes. The shown ones are kept as ``previous`` when they are a
        finished run's (a superseded partial run is dropped; the last finished one stays)."""
        if self.current is not None and self.current.finished:
            self.previous = self.current
        self.current = OverlayData.empty(shape)
        self._show(self.current)

    def add(self, overlay: SliceOverlay, threshold: float) -> None:
        """Copy one finished slice into the current volumes (the first one is drawn at once, the
        others by :meth:`redraw_pending`)."""
        data, z = self.current, overlay.z
        if overlay.levels is not None:
            data.levels[z] = overlay.levels
        if overlay.residual is not None:
            data.residual[z] = overlay.residual.astype(np.float16)
        preview = overlay.mask(threshold)
        if preview is not None:
            data.preview[z] = preview
        rows, cols = overlay.centres_yx[:, 0], overlay.centres_yx[:, 1]
        if len(rows):
            data.candidates[z] = SliceCircles(rows, cols, overlay.radius_mm, score_colours(overlay.scores))
        if overlay.candidates.size:
            top = overlay.candidates
            colours = np.tile(np.array([*TOP_K_COLOUR, 255], dtype=np.uint8), (top.size, 1))
            data.top_k[z] = SliceCircles(rows[top], cols[top], overlay.radius_mm, colours, width=2.5)
        data.slices += 1
        if data.slices == 1:
            self._show(data)
        else:
            self.pending.add(z)

    def redraw_pending(self, also: tuple[str, ...] = ()) -> None:
        """Redraw the slices added since the last redraw in the pipeline layers and ``also`` (e.g. the
        live mask preview's)."""
        if self.pending:
            slices, self.pending = frozenset(self.pending), set()
            self.layers.touch(PIPELINE_LAYERS + tuple(also), slices)

    def finish(self) -> None:
        """The run finished: its volumes stay, the previous run's are dropped."""
        self.current.finished = True
        self.previous = None

    def restore_previous(self) -> None:
        """The run was cancelled or failed: show the previous run's layers again (or none)."""
        self.current, self.previous = self.previous, None
        self._show(self.current)

    def clear(self) -> None:
        """A new case: forget every run."""
        self.current = self.previous = None
        self._show(None)

    @property
    def preview(self) -> np.ndarray | None:
        """The current run's live mask preview, boolean ``(z, y, x)``, or None."""
        return None if self.current is None else self.current.preview

    def _show(self, data: OverlayData | None) -> None:
        self.pending = set()
        has = data is not None and data.slices > 0
        values = {CANDIDATES: data.candidates, TOP_K: data.top_k, UNION: data.levels, DILATIONS: data.levels,
                  CHOSEN: data.levels, RESIDUAL: data.residual} if has else dict.fromkeys(PIPELINE_LAYERS)
        for name, value in values.items():
            self.layers.set_data(name, value)
