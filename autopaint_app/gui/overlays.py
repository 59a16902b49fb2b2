"""Layer model: what is drawn over the slices, in which colour, how opaque, in which order.

A :class:`Layer` is one named thing to draw — the CT and PET base images, masks drawn as a fill or
an outline, and (when the pipeline lands) heat maps such as the residual. Each has visibility,
opacity, an RGB colour and a z-value (higher draws on top). The :class:`LayerModel` owns the
layers and their per-voxel data (numpy ``(z, y, x)`` on the reference grid); viewers and the
layers panel listen to its signals. New kinds of layer (candidate circles coloured by score, the
union mask, the dilated masks, the residual heat map) are added with :meth:`LayerModel.add_layer`
and drawn by the renderer registered for their ``kind`` in :data:`RENDERERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Signal
from scipy import ndimage

PLANES = ("axial", "coronal", "sagittal")

# Kinds of layer. "image" layers (CT, PET) are drawn by the viewers' base image items.
IMAGE, MASK_FILL, MASK_OUTLINE, HEATMAP = "image", "mask_fill", "mask_outline", "heatmap"
# Vector layers: ``data`` is a :class:`CircleData` (circles per axial slice, drawn in millimetres as
# pyqtgraph scatter items in the axial view), not a voxel array.
CIRCLES = "circles"
VECTOR_KINDS = frozenset({CIRCLES})


@dataclass
class Layer:
    """One drawable layer.

    Attributes:
        name: unique name shown in the layers panel.
        kind: :data:`IMAGE`, :data:`MASK_FILL`, :data:`MASK_OUTLINE`, :data:`HEATMAP` or a kind
            registered in :data:`RENDERERS`.
        colour: RGB 0-255 (masks), ignored for images and heat maps.
        opacity: 0..1.
        visible: drawn at all.
        z_value: stacking order; higher draws on top.
        data: ``(z, y, x)`` array on the reference grid, or None (nothing to draw yet).
        levels: value range mapped onto the colour map (heat maps).
    """

    name: str
    kind: str
    colour: tuple[int, int, int] = (255, 255, 255)
    opacity: float = 1.0
    visible: bool = True
    z_value: float = 10.0
    data: np.ndarray | None = None
    levels: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True, eq=False)
class SliceCircles:
    """Circles on one axial slice: centres as continuous voxel indices, radius in mm, one RGBA each.

    Attributes:
        rows, cols: ``(n,)`` float centre rows (y) and columns (x), voxel index units.
        radius_mm: circle radius in millimetres (same for all).
        colours: ``(n, 4)`` uint8 RGBA pen colours.
        width: pen width in screen pixels.
    """

    rows: np.ndarray
    cols: np.ndarray
    radius_mm: float
    colours: np.ndarray
    width: float = 1.0


class CircleData(dict):
    """Axial slice index -> :class:`SliceCircles` (slices without circles are absent)."""


def default_layers() -> list[Layer]:
    """The layers a freshly opened case has (pipeline layers are added later)."""
    return [
        Layer("CT", IMAGE, opacity=1.0, z_value=0.0),
        Layer("PET", IMAGE, opacity=0.5, z_value=1.0),
        Layer("Organ of interest", MASK_OUTLINE, colour=(80, 200, 255), opacity=0.8, z_value=10.0),
        Layer("Ground truth", MASK_OUTLINE, colour=(60, 230, 60), opacity=1.0, z_value=32.0),  # over the result
        Layer("Final mask", MASK_FILL, colour=(255, 60, 60), opacity=0.45, z_value=30.0),
        Layer("Final mask outline", MASK_OUTLINE, colour=(255, 60, 60), opacity=1.0, z_value=31.0),
        Layer("Rejected lesions", MASK_OUTLINE, colour=(170, 170, 170), opacity=0.9, z_value=29.0),
    ]


def take_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """2-D slice of a ``(z, y, x)`` volume: axial ``[z]`` -> (y, x); coronal ``[:, y]`` -> (z, x);
    sagittal ``[:, :, x]`` -> (z, y). Rows first, as pyqtgraph's row-major images expect."""
    if plane == "axial":
        return volume[index]
    if plane == "coronal":
        return volume[:, index, :]
    if plane == "sagittal":
        return volume[:, :, index]
    raise ValueError(f"unknown plane {plane!r}; expected one of {PLANES}")


def _coloured(where: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    rgba = np.zeros(where.shape + (4,), dtype=np.uint8)
    rgba[where] = (*colour, 255)
    return rgba


def render_fill(layer: Layer, slice2d: np.ndarray) -> np.ndarray:
    """RGBA ``(rows, cols, 4)``: the mask's voxels in the layer colour, the rest transparent."""
    return _coloured(slice2d > 0, layer.colour)


def render_outline(layer: Layer, slice2d: np.ndarray) -> np.ndarray:
    """RGBA ``(rows, cols, 4)``: the mask's boundary voxels (mask minus its erosion)."""
    inside = slice2d > 0
    edge = inside & ~ndimage.binary_erosion(inside, border_value=0)
    return _coloured(edge, layer.colour)


_HEAT_LUT = pg.colormap.get("inferno").getLookupTable(0.0, 1.0, 256, alpha=False)


def render_heatmap(layer: Layer, slice2d: np.ndarray) -> np.ndarray:
    """RGBA ``(rows, cols, 4)``: values over ``layer.levels`` through the inferno map, alpha
    rising with the value so low values stay see-through."""
    low, high = layer.levels
    unit = np.clip((slice2d.astype(np.float32) - low) / max(high - low, 1e-12), 0.0, 1.0)
    index = (unit * 255).astype(np.uint8)
    rgba = np.empty(slice2d.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = _HEAT_LUT[index]
    rgba[..., 3] = index
    return rgba


RENDERERS: dict[str, Callable[[Layer, np.ndarray], np.ndarray]] = {
    MASK_FILL: render_fill,
    MASK_OUTLINE: render_outline,
    HEATMAP: render_heatmap,
}


def render_layer_slice(layer: Layer, plane: str, index: int) -> np.ndarray | None:
    """The layer's RGBA image for one slice, or None when it has no data or is an image/vector layer."""
    if layer.data is None or layer.kind == IMAGE or layer.kind in VECTOR_KINDS:
        return None
    return RENDERERS[layer.kind](layer, take_slice(layer.data, plane, index))


class LayerModel(QObject):
    """The ordered layers of the open case.

    Signals:
        layer_changed(name): visibility, opacity or colour changed (cheap: no re-render).
        layer_data_changed(name): the layer's voxels changed (viewers re-render its slices).
        layer_slices_changed(name, slices): only these axial slices of the layer changed in place
            (a ``frozenset`` of z; the axial view skips the redraw unless it shows one of them).
        layers_reset(): layers were added or the case changed (panels rebuild their rows).
    """

    layer_changed = Signal(str)
    layer_data_changed = Signal(str)
    layer_slices_changed = Signal(str, object)
    layers_reset = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._layers: dict[str, Layer] = {layer.name: layer for layer in default_layers()}

    def __iter__(self):
        return iter(sorted(self._layers.values(), key=lambda layer: -layer.z_value))

    def __getitem__(self, name: str) -> Layer:
        return self._layers[name]

    def __contains__(self, name: str) -> bool:
        return name in self._layers

    def names(self) -> list[str]:
        """Layer names, top-most first."""
        return [layer.name for layer in self]

    def add_layer(self, layer: Layer) -> None:
        """Add (or replace) a layer, e.g. the pipeline's candidate circles or residual heat map."""
        if layer.kind not in RENDERERS and layer.kind != IMAGE and layer.kind not in VECTOR_KINDS:
            raise ValueError(f"no renderer for layer kind {layer.kind!r}")
        self._layers[layer.name] = layer
        self.layers_reset.emit()

    def set_data(self, name: str, data: np.ndarray | None) -> None:
        """Replace a layer's voxels (``(z, y, x)`` on the reference grid, or None to clear)."""
        self._layers[name].data = data
        self.layer_data_changed.emit(name)

    def set_visible(self, name: str, visible: bool) -> None:
        if self._layers[name].visible != bool(visible):
            self._layers[name].visible = bool(visible)
            self.layer_changed.emit(name)

    def set_opacity(self, name: str, opacity: float) -> None:
        opacity = float(min(max(opacity, 0.0), 1.0))
        if self._layers[name].opacity != opacity:
            self._layers[name].opacity = opacity
            self.layer_changed.emit(name)

    def touch(self, names, slices=None) -> None:
        """Say that the data of ``names`` changed in place (e.g. slices of a growing volume).

        Args:
            names: layer names.
            slices: the axial slices (z) that changed, or None when any may have.
        """
        for name in names:
            if slices is None:
                self.layer_data_changed.emit(name)
            else:
                self.layer_slices_changed.emit(name, frozenset(int(z) for z in slices))

    def clear_data(self) -> None:
        """Forget every layer's voxels (a new case is opening)."""
        for name, layer in self._layers.items():
            if layer.data is not None:
                layer.data = None
                self.layer_data_changed.emit(name)
