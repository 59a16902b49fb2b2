"""Layers panel: one row per layer with a visibility check box, a colour swatch and an opacity slider."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QGridLayout, QGroupBox, QLabel, QSlider, QWidget

from autopaint_app.gui.overlays import IMAGE
from autopaint_app.gui.state import AppState


class LayersPanel(QGroupBox):
    """Edits visibility and opacity through the LayerModel; rows grey out while a layer has no data."""

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__("Layers", parent)
        self.state = state
        self.grid = QGridLayout(self)
        self.grid.setColumnStretch(2, 1)
        self.checks: dict[str, QCheckBox] = {}
        self.sliders: dict[str, QSlider] = {}
        self._rebuild()
        state.layers.layers_reset.connect(self._rebuild)
        state.layers.layer_changed.connect(self._on_layer_changed)
        state.layers.layer_data_changed.connect(self._on_layer_changed)

    def _rebuild(self) -> None:
        while self.grid.count():
            widget = self.grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.checks.clear()
        self.sliders.clear()
        for row, layer in enumerate(self.state.layers):
            check = QCheckBox(layer.name)
            check.setChecked(layer.visible)
            check.toggled.connect(lambda on, name=layer.name: self.state.layers.set_visible(name, on))
            swatch = QLabel()
            swatch.setFixedSize(14, 14)
            colour = "transparent" if layer.kind == IMAGE else "rgb({},{},{})".format(*layer.colour)
            swatch.setStyleSheet(f"background: {colour}; border: 1px solid #888;")
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setValue(round(layer.opacity * 100))
            slider.setToolTip(f"{layer.name} opacity")
            slider.valueChanged.connect(lambda value, name=layer.name: self.state.layers.set_opacity(name, value / 100))
            self.grid.addWidget(check, row, 0)
            self.grid.addWidget(swatch, row, 1)
            self.grid.addWidget(slider, row, 2)
            self.checks[layer.name], self.sliders[layer.name] = check, slider
            self._on_layer_changed(layer.name)

    def _on_layer_changed(self, name: str) -> None:
        if name not in self.checks:
            return
        layer = self.state.layers[name]
        check, slider = self.checks[name], self.sliders[name]
        for widget, value in ((check, layer.visible), (slider, round(layer.opacity * 100))):
            widget.blockSignals(True)
            widget.setChecked(value) if widget is check else widget.setValue(value)
            widget.blockSignals(False)
        has_data = layer.data is not None
        check.setEnabled(has_data)
        slider.setEnabled(has_data)
