"""Axial, coronal and sagittal slice views with a linked crosshair and PET-CT fusion.

Each :class:`SliceView` shows one plane of the reference grid through pyqtgraph ImageItems. Pixels
are scaled to millimetres by the items' QTransform (habit 10: no stretched pixels; the view box
locks the aspect ratio at 1 mm = 1 mm). Scene coordinates are therefore millimetres from the
grid's first voxel corner along the plane's two axes:

* axial: rows y, columns x, scale (spacing x, spacing y), y downwards (anterior at the top);
* coronal: rows z, columns x, scale (spacing x, spacing z), z upwards (head at the top);
* sagittal: rows z, columns y, scale (spacing y, spacing z), z upwards.

Interaction: left click sets the crosshair (all views follow through AppState), left drag pans,
right drag or Ctrl+wheel zooms, the wheel and the slider step through slices.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTransform
from PySide6.QtWidgets import QLabel, QSlider, QVBoxLayout, QHBoxLayout, QWidget

from autopaint_app.gui.circle_items import SegmentsItem, circle_chords
from autopaint_app.gui.overlays import CIRCLES, IMAGE, PLANES, render_layer_slice, take_slice
from autopaint_app.gui.state import AppState

# Which voxel axis (0 z, 1 y, 2 x) each plane slices through, and which axes are its rows/columns.
SLICE_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}
ROW_COL_AXES = {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}
PET_LUT = pg.colormap.get("CET-L3").getLookupTable(0.0, 1.0, 256, alpha=False)


class SliceViewBox(pg.ViewBox):
    """ViewBox whose plain wheel steps slices (Ctrl+wheel keeps pyqtgraph's zoom)."""

    slice_stepped = Signal(int)

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - overrides pyqtgraph
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if delta:
            self.slice_stepped.emit(1 if delta > 0 else -1)
        ev.accept()


class SliceView(QWidget):
    """One plane of the case: base images, overlay layers, crosshair, slice slider.

    Signals:
        hovered(z, y, x): the mouse is over this voxel.
        left(): the mouse left the image.
    """

    hovered = Signal(int, int, int)
    left = Signal()

    def __init__(self, state: AppState, plane: str, parent: QWidget | None = None):
        super().__init__(parent)
        if plane not in PLANES:
            raise ValueError(f"unknown plane {plane!r}")
        self.state, self.plane = state, plane
        self.slice_axis, (self.row_axis, self.col_axis) = SLICE_AXIS[plane], ROW_COL_AXES[plane]
        self.spacing_cols_rows = (1.0, 1.0)
        self.spacing_zyx = (1.0, 1.0, 1.0)
        self._build()
        state.case_loaded.connect(self._on_case_loaded)
        state.position_changed.connect(self._on_position_changed)
        state.levels_changed.connect(self._on_levels_changed)
        state.layers.layer_changed.connect(self._on_layer_changed)
        state.layers.layer_data_changed.connect(self._on_layer_data_changed)
        state.layers.layer_slices_changed.connect(self._on_layer_slices_changed)
        state.layers.layers_reset.connect(self._on_layers_reset)

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        self.view_box = SliceViewBox(lockAspect=True, invertY=self.plane == "axial", enableMenu=False)
        self.graphics = pg.GraphicsView(background="k")
        self.graphics.setCentralItem(self.view_box)
        self.graphics.setMinimumSize(160, 160)
        self.items: dict[str, pg.ImageItem] = {}
        self._sync_layer_items()
        pen = pg.mkPen((255, 220, 0, 170), width=1)
        self.v_line = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.h_line = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        for line in (self.v_line, self.h_line):
            line.setZValue(1000)
            self.view_box.addItem(line, ignoreBounds=True)
        self.title = QLabel(self.plane.capitalize())
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._on_slider_moved)
        self.view_box.slice_stepped.connect(self.step_slice)
        self.graphics.scene().sigMouseClicked.connect(self._on_scene_clicked)
        self.graphics.scene().sigMouseMoved.connect(self._on_scene_moved)
        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.slider, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.graphics, 1)

    def _sync_layer_items(self) -> None:
        """One item per layer (created for new layers, e.g. when the pipeline adds its own): an
        ImageItem in voxel units for rasters; for circles a ScatterPlotItem in millimetres (axial)
        or a SegmentsItem of their chords (coronal, sagittal)."""
        for layer in self.state.layers:
            if layer.name not in self.items:
                if layer.kind == CIRCLES:
                    item = (pg.ScatterPlotItem(pxMode=False, symbol="o", brush=pg.mkBrush(0, 0, 0, 0))
                            if self.plane == "axial" else SegmentsItem())
                    self.view_box.addItem(item, ignoreBounds=True)
                else:
                    item = pg.ImageItem(axisOrder="row-major")
                    self.view_box.addItem(item)
                self.items[layer.name] = item
            self.items[layer.name].setZValue(layer.z_value)

    def _set_pixel_transforms(self) -> None:
        for name, item in self.items.items():
            if isinstance(item, pg.ImageItem):
                item.setTransform(self.pixel_transform())

    # ------------------------------------------------------------------ geometry
    @property
    def slice_index(self) -> int:
        return self.state.position[self.slice_axis]

    @property
    def slice_count(self) -> int:
        return 0 if self.state.shape is None else self.state.shape[self.slice_axis]

    def pixel_transform(self) -> QTransform:
        """Image pixel -> scene millimetres for this plane."""
        return QTransform.fromScale(*self.spacing_cols_rows)

    def voxel_at(self, scene_x: float, scene_y: float) -> tuple[int, int, int] | None:
        """Voxel ``(z, y, x)`` under a point in view (mm) coordinates, or None outside the grid."""
        if self.state.shape is None:
            return None
        col = int(np.floor(scene_x / self.spacing_cols_rows[0]))
        row = int(np.floor(scene_y / self.spacing_cols_rows[1]))
        voxel = list(self.state.position)
        voxel[self.row_axis], voxel[self.col_axis] = row, col
        if not all(0 <= v < n for v, n in zip(voxel, self.state.shape)):
            return None
        return tuple(voxel)

    def scene_point_of(self, z: int, y: int, x: int) -> tuple[float, float]:
        """View (mm) coordinates of a voxel's centre in this plane."""
        voxel = (z, y, x)
        return ((voxel[self.col_axis] + 0.5) * self.spacing_cols_rows[0],
                (voxel[self.row_axis] + 0.5) * self.spacing_cols_rows[1])

    # ------------------------------------------------------------------ slots
    def _on_case_loaded(self) -> None:
        spacing_zyx = tuple(float(s) for s in self.state.loaded.reference.spacing[::-1])
        self.spacing_zyx = spacing_zyx
        self.spacing_cols_rows = (float(spacing_zyx[self.col_axis]), float(spacing_zyx[self.row_axis]))
        self._set_pixel_transforms()
        self.slider.blockSignals(True)
        self.slider.setRange(0, self.slice_count - 1)
        self.slider.setValue(self.slice_index)
        self.slider.blockSignals(False)
        self.slider.setEnabled(True)
        self._redraw_all()
        self._on_levels_changed()
        shape = self.state.shape
        width = shape[self.col_axis] * self.spacing_cols_rows[0]
        height = shape[self.row_axis] * self.spacing_cols_rows[1]
        self.view_box.setRange(xRange=(0, width), yRange=(0, height), padding=0.02)

    def _on_position_changed(self, z: int, y: int, x: int) -> None:
        if self.state.loaded is None:
            return
        if self.slider.value() != self.slice_index or not hasattr(self, "_shown_index") \
                or self._shown_index != self.slice_index:
            self.slider.blockSignals(True)
            self.slider.setValue(self.slice_index)
            self.slider.blockSignals(False)
            self._redraw_all()
        col, row = self.scene_point_of(z, y, x)
        self.v_line.setPos(col)
        self.h_line.setPos(row)
        self.title.setText(f"{self.plane.capitalize()}  {self.slice_index + 1}/{self.slice_count}")

    def _on_levels_changed(self) -> None:
        self.items["CT"].setLevels(self.state.ct_levels)
        self.items["PET"].setLevels(self.state.pet_levels)

    def _on_layer_changed(self, name: str) -> None:
        layer, item = self.state.layers[name], self.items.get(name)
        if item is not None:
            item.setOpacity(layer.opacity)
            item.setVisible(layer.visible and layer.data is not None)

    def _on_layer_data_changed(self, name: str) -> None:
        if self.state.loaded is not None:
            self._redraw_layer(name)

    def _on_layer_slices_changed(self, name: str, slices: frozenset) -> None:
        # An axial slice change shows in the axial view only when it is the shown slice; every
        # coronal and sagittal plane crosses it.
        if self.state.loaded is not None and (self.plane != "axial" or self.slice_index in slices):
            self._redraw_layer(name)

    def _on_layers_reset(self) -> None:
        self._sync_layer_items()
        self._set_pixel_transforms()
        if self.state.loaded is not None:
            self._redraw_all()

    def _on_slider_moved(self, value: int) -> None:
        position = list(self.state.position)
        position[self.slice_axis] = value
        self.state.set_position(*position)

    def step_slice(self, step: int) -> None:
        """Move ``step`` slices through this plane (mouse wheel)."""
        position = list(self.state.position)
        position[self.slice_axis] += step
        self.state.set_position(*position)

    def _on_scene_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.state.loaded is None:
            return
        point = self.view_box.mapSceneToView(event.scenePos())
        voxel = self.voxel_at(point.x(), point.y())
        if voxel is not None:
            self.state.set_position(*voxel)

    def _on_scene_moved(self, scene_pos) -> None:
        if self.state.loaded is None:
            return
        point = self.view_box.mapSceneToView(scene_pos)
        voxel = self.voxel_at(point.x(), point.y())
        if voxel is None:
            self.left.emit()
        else:
            self.hovered.emit(*voxel)

    # ------------------------------------------------------------------ drawing
    def _redraw_all(self) -> None:
        self._shown_index = self.slice_index
        for name in self.items:
            self._redraw_layer(name)

    def _redraw_layer(self, name: str) -> None:
        layer, item = self.state.layers[name], self.items[name]
        if layer.data is None:
            item.clear()
            item.setVisible(False)
            return
        if layer.kind == CIRCLES:
            self._draw_circles(item, layer)
            return
        if layer.kind == IMAGE:
            levels = self.state.ct_levels if name == "CT" else self.state.pet_levels
            item.setImage(take_slice(layer.data, self.plane, self.slice_index), autoLevels=False, levels=levels)
            if name == "PET":
                item.setLookupTable(PET_LUT)
        else:
            item.setImage(render_layer_slice(layer, self.plane, self.slice_index), autoLevels=False,
                          levels=(0, 255))
        item.setOpacity(layer.opacity)
        item.setVisible(layer.visible)

    def _draw_circles(self, item, layer) -> None:
        """Axial: the shown slice's circles, centres and diameters in mm. Coronal and sagittal:
        the chord of every circle the plane cuts (:func:`~autopaint_app.gui.circle_items.circle_chords`)."""
        if self.plane != "axial":
            chords = circle_chords(layer.data, self.plane, self.slice_index, self.spacing_zyx)
            item.set_chords(chords)
            item.setOpacity(layer.opacity)
            item.setVisible(layer.visible and len(chords) > 0)
            return
        circles = layer.data.get(self.slice_index)
        if circles is None:
            item.clear()
            item.setVisible(False)
            return
        col_mm, row_mm = self.spacing_cols_rows
        pens = [pg.mkPen(tuple(int(v) for v in colour), width=circles.width) for colour in circles.colours]
        item.setData(x=(circles.cols + 0.5) * col_mm, y=(circles.rows + 0.5) * row_mm,
                     size=2.0 * circles.radius_mm, pen=pens)
        item.setOpacity(layer.opacity)
        item.setVisible(layer.visible)


class OrthoViewer(QWidget):
    """The three linked views side by side: axial large on the left, coronal and sagittal stacked."""

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.views = {plane: SliceView(state, plane) for plane in PLANES}
        right = QVBoxLayout()
        right.addWidget(self.views["coronal"], 1)
        right.addWidget(self.views["sagittal"], 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.views["axial"], 2)
        layout.addLayout(right, 1)

    def __getitem__(self, plane: str) -> SliceView:
        return self.views[plane]
