"""Display panel: CT window/level presets, SUV range, free adjustment and PET-CT fusion."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QSlider, QWidget
from superqt import QLabeledDoubleRangeSlider

from autopaint_app.gui.state import CT_PRESETS, DEFAULT_CT_PRESET, PET_PRESETS, AppState

CUSTOM = "Custom"
CT_RANGE_HU = (-1400.0, 3000.0)  # wide enough for the lung preset's lower end
PET_RANGE_SUV = (0.0, 30.0)


class DisplayPanel(QGroupBox):
    """Window/level and fusion controls; they only call AppState setters and follow its signals."""

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__("Display", parent)
        self.state = state
        self.ct_preset = QComboBox()
        self.ct_preset.addItems([*CT_PRESETS, CUSTOM])
        self.ct_preset.setCurrentText(DEFAULT_CT_PRESET)
        self.ct_range = self._range_slider(CT_RANGE_HU, state.ct_levels, decimals=0)
        self.pet_preset = QComboBox()
        self.pet_preset.addItems([*PET_PRESETS, CUSTOM])
        self.pet_range = self._range_slider(PET_RANGE_SUV, state.pet_levels, decimals=1)
        self.fusion = QSlider(Qt.Orientation.Horizontal)
        self.fusion.setRange(0, 100)
        self.fusion.setValue(round(state.fusion * 100))
        self.fusion.setToolTip("0 = CT only, 1 = PET only")
        self.fusion_label = QLabel()
        form = QFormLayout(self)
        form.addRow("CT window:", self.ct_preset)
        form.addRow("HU range:", self.ct_range)
        form.addRow("PET window:", self.pet_preset)
        form.addRow("SUV range:", self.pet_range)
        form.addRow("Fusion (CT -> PET):", self.fusion)
        form.addRow("", self.fusion_label)
        self.ct_preset.currentTextChanged.connect(self.apply_ct_preset)
        self.pet_preset.currentTextChanged.connect(self.apply_pet_preset)
        self.ct_range.valueChanged.connect(self._on_ct_range_moved)
        self.pet_range.valueChanged.connect(self._on_pet_range_moved)
        self.fusion.valueChanged.connect(lambda value: state.set_fusion(value / 100.0))
        state.levels_changed.connect(self._on_levels_changed)
        state.layers.layer_changed.connect(self._on_layer_changed)
        self._on_layer_changed("PET")

    @staticmethod
    def _range_slider(bounds, value, decimals: int) -> QLabeledDoubleRangeSlider:
        slider = QLabeledDoubleRangeSlider(Qt.Orientation.Horizontal)
        slider.setDecimals(decimals)
        slider.setRange(*bounds)
        slider.setValue(value)
        return slider

    def apply_ct_preset(self, name: str) -> None:
        """Set the CT display range to a named preset (Custom keeps the current range)."""
        if name in CT_PRESETS:
            self.state.set_ct_levels(*CT_PRESETS[name])

    def apply_pet_preset(self, name: str) -> None:
        if name in PET_PRESETS:
            self.state.set_pet_levels(*PET_PRESETS[name])

    def _on_ct_range_moved(self, value) -> None:
        if tuple(value) != self.state.ct_levels:
            self.state.set_ct_levels(*value)

    def _on_pet_range_moved(self, value) -> None:
        if tuple(value) != self.state.pet_levels:
            self.state.set_pet_levels(*value)

    def _on_levels_changed(self) -> None:
        for slider, levels, combo, presets in ((self.ct_range, self.state.ct_levels, self.ct_preset, CT_PRESETS),
                                               (self.pet_range, self.state.pet_levels, self.pet_preset, PET_PRESETS)):
            slider.blockSignals(True)
            slider.setValue(levels)
            slider.blockSignals(False)
            matching = next((name for name, preset in presets.items() if preset == levels), CUSTOM)
            combo.blockSignals(True)
            combo.setCurrentText(matching)
            combo.blockSignals(False)

    def _on_layer_changed(self, name: str) -> None:
        if name != "PET":
            return
        self.fusion.blockSignals(True)
        self.fusion.setValue(round(self.state.fusion * 100))
        self.fusion.blockSignals(False)
        self.fusion_label.setText(f"{self.state.fusion:.2f}  (0 = CT only, 1 = PET only)")
