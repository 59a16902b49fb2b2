"""Tuning panel: site preset, model, modality, mode, detection parameters, threshold, live Dice.

The panel only gathers choices and calls :class:`~autopaint_app.gui.pipeline.PipelineSession`
setters; it redraws itself from the session's ``settings_changed`` / ``models_changed`` /
``metrics_updated`` signals. Pixel values are working-grid pixels (the paper's units, ~0.98 mm);
the millimetre equivalent is shown beside them once a case is open.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QMessageBox,
                               QPushButton, QSpinBox, QWidget)
from superqt import QLabeledDoubleSlider

from autopaint_app.core.errors import InputError
from autopaint_app.gui.autopaint_jobs import MODALITY_TITLES, case_modalities
from autopaint_app.gui.pipeline import PipelineSession

SITES = {"lung": "Lung", "hn": "Head and neck"}
MODES = {"fast": "Fast (local crops)", "reference": "Reference (whole slice)"}
# Search choice -> (title, the PipelineParams fields it sets).
SEARCHES = {
    "coarse-to-fine+neighbours": ("Coarse-to-fine + tumour's neighbour slices",
                                  {"circle_search": "coarse-to-fine", "complete_neighbours": True}),
    "coarse-to-fine": ("Coarse-to-fine only (fastest)", {"circle_search": "coarse-to-fine", "complete_neighbours": False}),
    "exhaustive": ("Exhaustive (every circle)", {"circle_search": "exhaustive"}),
}

FILE_ENTRY = "File…"
ALL_SLICES, CROSSHAIR_SLICE, CROSSHAIR_SLAB = "All OOI slices", "Crosshair slice", "Crosshair ± 5 slices"


def search_key(params) -> str:
    """The Search choice that describes ``params``."""
    if params.circle_search == "exhaustive":
        return "exhaustive"
    return "coarse-to-fine+neighbours" if params.complete_neighbours else "coarse-to-fine"


class TuningPanel(QGroupBox):
    """AutoPaint's controls: what to run with, and the re-segmentation sliders."""

    def __init__(self, session: PipelineSession, parent: QWidget | None = None):
        super().__init__("AutoPaint", parent)
        self.session = session
        self.site = QComboBox()
        for site, title in SITES.items():
            self.site.addItem(title, site)
        self.model = QComboBox()
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.modality = QComboBox()
        self.mode = QComboBox()
        for mode, title in MODES.items():
            self.mode.addItem(title, mode)
        self.search = QComboBox()
        for search, (title, _) in SEARCHES.items():
            self.search.addItem(title, search)
        self.search.setToolTip("fast mode's circle search: coarse-to-fine inpaints a quarter of the circles, then "
                               "the neighbourhoods of possible tumours, and (default) every circle of the slices next "
                               "to a slice with candidates, since a tumour continues along z; exhaustive inpaints "
                               "every circle, as the paper")
        self.radius = self._spin(2, 128, " px", "sliding-circle radius r (working pixels)")
        self.stride = self._spin(1, 181, " px", "distance between circle centres; at most r·√2")
        self.top_k = self._spin(1, 50, "", "at most this many candidate circles per slice")
        self.slices = QComboBox()
        self.slices.addItems([ALL_SLICES, CROSSHAIR_SLICE, CROSSHAIR_SLAB])
        self.min_radius = self._slider(0.0, 30.0, 1, "a slice keeps its inpainting only when its largest "
                                                     "residual blob is at least this radius (working pixels)")
        self.threshold = self._slider(0.0, 0.95, 2, "final mask = residual > threshold (unit intensity)")
        self.min_lesion = self._slider(0.0, 100.0, 2, "the final mask drops lesions (3-D) smaller than this "
                                                     "volume in ml; 0 = keep all, as the paper")
        self.run_button = QPushButton("Run AutoPaint")
        self.cancel_button = QPushButton("Cancel")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c0392b;")
        self.scores = QLabel("Dice / precision / recall: load a label to see them")
        self.scores.setObjectName("tuning_scores")
        self.scale = QLabel("")
        self._layout()
        self._connect()
        self._on_models_changed()
        self._on_settings_changed()

    @staticmethod
    def _spin(low: int, high: int, suffix: str, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setSuffix(suffix)
        spin.setToolTip(tip)
        spin.setKeyboardTracking(False)  # typing "27" is one change, not "2" then "27"
        return spin

    @staticmethod
    def _slider(low: float, high: float, decimals: int, tip: str) -> QLabeledDoubleSlider:
        slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        slider.setDecimals(decimals)
        slider.setRange(low, high)
        slider.setSingleStep(10 ** -decimals)
        slider.setToolTip(tip)
        return slider

    def _layout(self) -> None:
        form = QFormLayout(self)
        for label, widget in (("Site preset:", self.site), ("Model:", self.model), ("Modality:", self.modality),
                              ("Mode:", self.mode), ("Search:", self.search), ("Circle radius:", self.radius),
                              ("Stride:", self.stride),
                              ("Top-k:", self.top_k), ("Slices:", self.slices), ("", self.scale),
                              ("Min. tumour radius:", self.min_radius), ("Threshold:", self.threshold),
                              ("Min. lesion (ml):", self.min_lesion)):
            form.addRow(label, widget)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)
        form.addRow(self.scores)
        form.addRow(self.message)

    def _connect(self) -> None:
        s = self.session
        self.site.activated.connect(lambda i: s.set_site(self.site.itemData(i)))
        self.model.activated.connect(self._on_model_chosen)
        self.modality.activated.connect(lambda i: s.set_modality(self.modality.itemData(i)))
        self.mode.activated.connect(lambda i: self._set_params(mode=self.mode.itemData(i)))
        self.search.activated.connect(lambda i: self._set_params(**SEARCHES[self.search.itemData(i)][1]))
        self.radius.valueChanged.connect(lambda v: self._set_params(circle_radius_px=int(v)))
        self.stride.valueChanged.connect(lambda v: self._set_params(circle_stride_px=int(v)))
        self.top_k.valueChanged.connect(lambda v: self._set_params(top_k=int(v)))
        self.slices.activated.connect(self._on_slices_chosen)
        self.min_radius.valueChanged.connect(lambda v: self._set_params(min_tumour_radius_px=round(float(v), 1)))
        self.threshold.valueChanged.connect(lambda v: s.set_threshold(round(float(v), 2)))
        self.min_lesion.valueChanged.connect(lambda v: self._set_params(min_lesion_ml=round(float(v), 2)))
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(s.cancel)
        s.settings_changed.connect(self._on_settings_changed)
        s.models_changed.connect(self._on_models_changed)
        s.metrics_updated.connect(self._on_metrics_updated)
        s.run_started.connect(self._on_running_changed)
        s.run_finished.connect(self._on_running_changed)
        s.run_stopped.connect(self._on_running_changed)
        s.state.position_changed.connect(self._on_position_changed)

    # ------------------------------------------------------------------ actions
    def run(self) -> None:
        """Run AutoPaint with the current settings (a dialog names what is missing)."""
        self.message.setText("")
        try:
            self.session.run()
        except InputError as exc:
            QMessageBox.warning(self, "AutoPaint cannot run", str(exc))

    def _set_params(self, **changes) -> None:
        try:
            self.session.set_params(**changes)
            self.message.setText("")
        except ValueError as exc:
            self.message.setText(str(exc).replace("invalid pipeline parameters: ", ""))

    def _on_model_chosen(self, index: int) -> None:
        if self.model.itemText(index) == FILE_ENTRY:
            path, _ = QFileDialog.getOpenFileName(self, "Choose an inpainting model (its .json card beside it)",
                                                  "", "ONNX models (*.onnx)")
            if path:
                try:
                    self.session.add_model_file(path)
                except InputError as exc:
                    QMessageBox.warning(self, "Model unusable", str(exc))
            self._on_models_changed()
            return
        self.session.set_model(self.session.models[index])

    def _on_position_changed(self, *_) -> None:
        if self.slices.currentText() != ALL_SLICES:  # the slab follows the crosshair
            self._on_slices_chosen(self.slices.currentIndex())

    def _on_slices_chosen(self, index: int) -> None:
        text, state = self.slices.itemText(index), self.session.state
        if text == ALL_SLICES or state.shape is None:
            slices = None
        else:
            z, half = state.position[0], 0 if text == CROSSHAIR_SLICE else 5
            slices = tuple(range(max(z - half, 0), min(z + half + 1, state.shape[0])))
        if slices != self.session.slices:
            self.session.set_slices(slices)

    # ------------------------------------------------------------------ redraw from the session
    def _on_models_changed(self) -> None:
        self.model.blockSignals(True)
        self.model.clear()
        for choice in self.session.models:
            channels = "+".join(choice.channels).upper() if choice.channels else "any"
            self.model.addItem(f"{choice.name} ({channels})", choice.key)
        self.model.addItem(FILE_ENTRY)
        current = self.session.model
        self.model.setCurrentIndex(self.session.models.index(current) if current in self.session.models else -1)
        self.model.blockSignals(False)

    def _on_settings_changed(self) -> None:
        s, p = self.session, self.session.params
        loaded = s.state.loaded
        modalities = case_modalities(loaded) if loaded is not None else list(MODALITY_TITLES)
        widgets = (self.site, self.model, self.modality, self.mode, self.search, self.radius, self.stride, self.top_k,
                   self.min_radius, self.threshold, self.min_lesion)
        for widget in widgets:
            widget.blockSignals(True)
        self.site.setCurrentIndex(self.site.findData(s.site))
        self.modality.clear()
        for modality in modalities:
            self.modality.addItem(MODALITY_TITLES[modality], modality)
        self.modality.setCurrentIndex(self.modality.findData(s.modality))
        self.mode.setCurrentIndex(self.mode.findData(p.mode))
        self.search.setCurrentIndex(self.search.findData(search_key(p)))
        self.search.setEnabled(p.mode == "fast")  # reference mode always inpaints every circle
        if s.model in s.models:
            self.model.setCurrentIndex(s.models.index(s.model))
        self.radius.setValue(p.circle_radius_px)
        self.stride.setValue(p.circle_stride_px)
        self.top_k.setValue(p.top_k)
        self.min_radius.setValue(p.min_tumour_radius_px)
        self.threshold.setValue(s.threshold)
        self.min_lesion.setValue(p.min_lesion_ml)
        for widget in widgets:
            widget.blockSignals(False)
        if loaded is not None:
            mm = 500.0 / 512  # the working pixel of a typical CT; the exact one is the case's
            prepared = next(iter(s.prepared_cache.values()), None)
            if prepared is not None:
                mm = prepared.grid.pixel_size_mm
            self.scale.setText(f"r = {p.circle_radius_px * mm:.1f} mm, stride {p.circle_stride_px * mm:.1f} mm, "
                               f"min. radius {p.min_tumour_radius_px * mm:.1f} mm")
        self._on_running_changed()

    def _on_running_changed(self) -> None:
        has_case = self.session.state.loaded is not None
        self.run_button.setEnabled(has_case and not self.session.running)
        self.cancel_button.setEnabled(self.session.running)

    def _on_metrics_updated(self, values) -> None:
        if values is None:
            has_label = self.session.state.loaded is not None and self.session.state.loaded.case.label is not None
            self.scores.setText("Dice / precision / recall: " + ("run AutoPaint" if has_label else "no label loaded"))
            return
        self.scores.setText("Dice {dice:.3f} · precision {precision:.3f} · recall {recall:.3f}".format(**values))
