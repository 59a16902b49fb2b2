"""The main window: viewers in the middle, case/display/layers on the left, lesions below.

Opening (file dialog, drop, recent list, demo) and every slow step run in the JobRunner's worker
thread; failures arrive as ``job_failed`` and are shown as a dialog naming the file and problem.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, QSignalBlocker, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar,
                               QPushButton, QScrollArea, QTabWidget, QVBoxLayout, QWidget)

from autopaint_app.core.errors import InputError
from autopaint_app.core.phantom import ensure_demo_case
from autopaint_app.core.presets import BODY_REGION, SITE_REGION
from autopaint_app.gui import file_actions
from autopaint_app.gui.case_jobs import LoadedCase, open_case_steps, recompute_ooi_steps
from autopaint_app.gui.panels import CaseHeader, DisplayPanel, LayersPanel, LesionPanel
from autopaint_app.gui.panels.tuning import TuningPanel
from autopaint_app.gui.pipeline import PipelineSession
from autopaint_app.gui.state import AppState
from autopaint_app.gui.viewers import OrthoViewer
from autopaint_app.gui.workers import JobCrashed, JobRunner

APP_TITLE = "AutoPaint Studio"
SITES = {"lung": "Lung", "hn": "Head and neck"}


class MainWindow(QMainWindow):
    """AutoPaint Studio's window.

    Args:
        state: the application state (a fresh one by default).
        settings: where recent cases are kept (default: the user's QSettings for the app).
    """

    def __init__(self, state: AppState | None = None, settings: QSettings | None = None):
        super().__init__()
        self.state = state or AppState(self)
        self.settings = settings or QSettings("AutoPaint", APP_TITLE)
        self.runner = JobRunner(self)
        self.pipeline = PipelineSession(self.state, self.runner, self)
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.resize(1500, 950)
        self.viewer = OrthoViewer(self.state)
        self.setCentralWidget(self.viewer)
        self._build_docks()
        self._build_status_bar()
        self._build_actions()
        self._connect()
        self._update_enabled()

    # ------------------------------------------------------------------ construction
    def _build_docks(self) -> None:
        self.case_header = CaseHeader(self.state)
        self.display_panel = DisplayPanel(self.state)
        self.layers_panel = LayersPanel(self.state)
        self.tuning_panel = TuningPanel(self.pipeline)
        self.side_tabs = QTabWidget()  # layers first: the pipeline's overlays are what a run shows
        self.side_tabs.addTab(self.layers_panel, "Layers")
        self.side_tabs.addTab(self.display_panel, "Display")
        side = QWidget()
        column = QVBoxLayout(side)
        for panel in (self.case_header, self.tuning_panel, self.side_tabs):
            column.addWidget(panel)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(340)
        left = QDockWidget("Case and display", self)
        left.setObjectName("case_dock")
        left.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, left)
        self.lesion_panel = LesionPanel(self.state)
        bottom = QDockWidget("Lesions", self)
        bottom.setObjectName("lesion_dock")
        bottom.setWidget(self.lesion_panel)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, bottom)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.resizeDocks([bottom], [240], Qt.Orientation.Vertical)

    def _build_status_bar(self) -> None:
        self.readout = QLabel("")
        self.job_label = QLabel("")
        self.provider_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_jobs)
        bar = self.statusBar()
        bar.addWidget(self.readout, 1)
        bar.addPermanentWidget(self.provider_label)
        bar.addPermanentWidget(self.job_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        self.progress.hide()
        self.cancel_button.hide()

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        return action

    def _build_actions(self) -> None:
        self.open_files_action = self._action("Open files…", self.choose_files, QKeySequence.StandardKey.Open,
                                              "CT, PET and optional label/OOI files (or one DICOM folder)")
        self.open_folder_action = self._action("Open case folder…", self.choose_folder, "Ctrl+Shift+O")
        self.demo_action = self._action("Demo case", self.open_demo, "Ctrl+D", "the embedded lung PET-CT phantom")
        self.load_mask_action = self._action("Load result mask…", self.choose_mask)
        self.baseline_action = self._action("Baseline: SUV ≥ 2.5", self.run_baseline, "Ctrl+B",
                                            "SUV ≥ 2.5 inside the organ of interest as the result mask")
        self.run_action = self._action("Run AutoPaint", self.tuning_panel.run, "Ctrl+R",
                                       "segment the organ of interest by self-inpainting (background job)")
        self.export_action = self._action("Export…", self.choose_export_folder, "Ctrl+E",
                                          "accepted lesions, lesion table, and the run's residual and "
                                          "inpainted volumes")
        self.screenshot_action = self._action("Save screenshot…", self.choose_screenshot_path, "Ctrl+Shift+S")
        self.quit_action = self._action("Quit", self.close, QKeySequence.StandardKey.Quit)
        self.train_action = self._action("Train a model…", self.open_training_wizard, None,
                                         "train an inpainting model on your healthy cases and install it")
        menu = self.menuBar().addMenu("&File")
        for action in (self.open_files_action, self.open_folder_action, self.demo_action):
            menu.addAction(action)
        self.recent_menu = menu.addMenu("Open recent")
        menu.addSeparator()
        for action in (self.load_mask_action, self.export_action, self.screenshot_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        segment = self.menuBar().addMenu("&Segment")
        segment.addAction(self.run_action)
        segment.addAction(self.baseline_action)
        segment.addAction(self.train_action)
        site_menu = segment.addMenu("Organ of interest")
        self.site_actions = QActionGroup(self)
        for site, title in SITES.items():
            action = QAction(title, self, checkable=True)
            action.setData(site)
            action.triggered.connect(lambda _=False, site=site: self.change_site(site))
            self.site_actions.addAction(action)
            site_menu.addAction(action)
        site_menu.addSeparator()
        self.body_ooi_action = QAction("Whole body (lesions elsewhere, cropped volumes)", self, checkable=True)
        self.body_ooi_action.setStatusTip("circles anywhere in the body, a circle radius inside the field of view; "
                                          "the site still chooses the model and circle sizes")
        self.body_ooi_action.toggled.connect(
            lambda checked: self.change_ooi_region(BODY_REGION if checked else SITE_REGION))
        site_menu.addAction(self.body_ooi_action)
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        for action in (self.open_files_action, self.open_folder_action, self.demo_action, self.run_action,
                       self.baseline_action, self.export_action, self.screenshot_action):
            toolbar.addAction(action)
        self._rebuild_recent_menu()

    def _connect(self) -> None:
        for view in self.viewer.views.values():
            view.hovered.connect(self._on_voxel_hovered)
            view.left.connect(lambda: self.readout.setText(""))
        self.runner.job_started.connect(self._on_job_started)
        self.runner.progress_changed.connect(self._on_progress_changed)
        self.runner.job_failed.connect(self._on_job_failed)
        self.runner.job_cancelled.connect(lambda name: self.statusBar().showMessage(f"{name} cancelled", 5000))
        self.runner.job_finished.connect(self._on_job_finished)
        self.state.case_loaded.connect(self._on_case_loaded)
        self.state.ooi_changed.connect(self._sync_ooi_actions)
        self.runner.job_failed.connect(self._sync_ooi_actions)
        self.runner.job_cancelled.connect(self._sync_ooi_actions)
        self.state.mask_changed.connect(self._update_enabled)
        self.pipeline.status_changed.connect(self.provider_label.setText)
        # the site preset also decides the automatic organ of interest (lung fields / neck box)
        self.tuning_panel.site.activated.connect(lambda i: self.change_site(self.tuning_panel.site.itemData(i)))
        self.pipeline.run_finished.connect(lambda: self.statusBar().showMessage("AutoPaint finished", 5000))

    def open_training_wizard(self):
        """Show the training wizard; a model it installs appears in the tuning panel at once."""
        from autopaint_app.gui.wizard import TrainingWizard  # pyqtgraph pages only when asked for

        self.training_wizard = TrainingWizard(self)
        self.training_wizard.model_installed.connect(lambda _path: self.pipeline.refresh_models())
        self.training_wizard.show()
        return self.training_wizard

    # ------------------------------------------------------------------ opening cases
    def open_source(self, source: str | os.PathLike | list) -> None:
        """Open a case folder, one file or several files in the worker (errors become dialogs)."""
        paths = [str(p) for p in (source if isinstance(source, (list, tuple)) else [source])]
        self._pending_source = paths
        self.runner.run("Opening case", open_case_steps, paths if len(paths) > 1 else paths[0],
                        on_result=self._on_case_opened)

    def open_demo(self) -> None:
        """Open the embedded demo case (made on first use)."""
        try:
            folder = ensure_demo_case()
        except (InputError, OSError) as exc:
            QMessageBox.critical(self, "Demo case unavailable", str(exc))
            return
        self.open_source(folder)

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open CT, PET, label and OOI files", "",
                                                "Volumes (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd);;All files (*)")
        if files:
            self.open_source(files)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a case folder or a DICOM series folder")
        if folder:
            self.open_source(folder)

    def _on_case_opened(self, loaded: LoadedCase) -> None:
        self.state.set_loaded_case(loaded)
        file_actions.remember_source(self.settings, getattr(self, "_pending_source", []) or [])
        self._rebuild_recent_menu()
        for note in loaded.notes:
            self.statusBar().showMessage(note, 8000)

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        sources = file_actions.recent_sources(self.settings)
        for source in sources:
            action = self.recent_menu.addAction(file_actions.source_title(source))
            action.triggered.connect(lambda _=False, source=source: self.open_source(source))
        self.recent_menu.setEnabled(bool(sources))

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_source(paths)

    # ------------------------------------------------------------------ organ of interest, masks
    def change_site(self, site: str) -> None:
        """Recompute the automatic organ of interest for ``site`` (same region) in the worker."""
        loaded = self.state.loaded
        if loaded is None or site == loaded.site and loaded.ooi is not None:
            return
        self.runner.run("Organ of interest", recompute_ooi_steps, loaded, site, loaded.ooi_region,
                        on_result=self.state.set_ooi)

    def change_ooi_region(self, region: str) -> None:
        """The site's organ or the whole body as organ of interest, recomputed in the worker."""
        loaded = self.state.loaded
        if loaded is None or region == loaded.ooi_region:
            return
        self.runner.run("Organ of interest", recompute_ooi_steps, loaded, loaded.site, region,
                        on_result=self.state.set_ooi)

    def run_baseline(self) -> None:
        """Result mask = SUV ≥ 2.5 inside the organ of interest (core.baselines.suv_threshold)."""
        try:
            mask = self.state.baseline_mask()
        except ValueError as exc:
            QMessageBox.warning(self, "Baseline unavailable", str(exc))
            return
        self.state.set_mask(mask, "Baseline: SUV ≥ 2.5")

    def choose_mask(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a result mask on the CT grid", "",
                                              "Volumes (*.nii *.nii.gz *.nrrd *.mha);;All files (*)")
        if path and self.state.loaded is not None:
            self.runner.run("Loading mask", file_actions.read_mask_steps, path, self.state.loaded.reference,
                            on_result=lambda mask: self.state.set_mask(mask, f"Mask: {Path(path).name}"))

    # ------------------------------------------------------------------ export and screenshot
    def choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the accepted lesions and the lesion table to")
        if folder:
            self.export_to(folder)

    def export_to(self, folder: str | os.PathLike) -> dict[str, Path] | None:
        """Export accepted lesions (NIfTI, CT grid) and the lesion table (CSV), and when the mask comes
        from an AutoPaint run, its residual and inpainted volumes; asks before replacing."""
        result, prepared = self.pipeline.export_inputs()
        written = file_actions.export_case_review(self, self.state, folder, result, prepared,
                                                  self.pipeline.params.min_tumour_radius_px)
        if written:
            self.statusBar().showMessage("Exported " + ", ".join(p.name for p in written.values()), 8000)
        return written

    def choose_screenshot_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save a screenshot of the views", "autopaint_view.png",
                                              "PNG image (*.png)")
        if path:
            self.save_screenshot(path if path.lower().endswith(".png") else path + ".png")

    def save_screenshot(self, path: str | os.PathLike) -> Path | None:
        """The three views as PNG; asks before replacing a file."""
        path = Path(path)
        if not file_actions.confirm_overwrite(self, [path]):
            return None
        try:
            written = file_actions.save_png(self.viewer.grab(), path, overwrite=True)
        except InputError as exc:
            QMessageBox.critical(self, "Screenshot failed", str(exc))
            return None
        self.statusBar().showMessage(f"Saved {written}", 8000)
        return written

    # ------------------------------------------------------------------ slots
    def _on_case_loaded(self) -> None:
        loaded = self.state.loaded
        self.setWindowTitle(f"{APP_TITLE} — {loaded.case.case_id}")
        self._sync_ooi_actions()
        self._update_enabled()

    def _sync_ooi_actions(self, *_unused) -> None:
        """Check the menu's site and region of the organ of interest in use (after a change, a failure, a cancel)."""
        loaded = self.state.loaded
        if loaded is None:
            return
        for action in self.site_actions.actions():
            action.setChecked(action.data() == loaded.site)
        with QSignalBlocker(self.body_ooi_action):  # showing the state must not recompute it
            self.body_ooi_action.setChecked(loaded.ooi_region == BODY_REGION)

    def _on_voxel_hovered(self, z: int, y: int, x: int) -> None:
        self.readout.setText(self.state.voxel_readout(z, y, x))

    def _on_job_started(self, name: str) -> None:
        self.job_label.setText(name)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_button.show()

    def _on_progress_changed(self, done: int, total: int, message: str, eta_s: float) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        eta = "" if eta_s != eta_s else f" — about {eta_s:.0f} s left"  # NaN: no estimate yet
        self.job_label.setText(message + eta)

    def _on_job_failed(self, name: str, exc: Exception) -> None:
        text = str(exc) if isinstance(exc, (InputError, JobCrashed)) else f"{type(exc).__name__}: {exc}"
        QMessageBox.critical(self, f"{name} failed", text)

    def _on_job_finished(self, name: str, seconds: float) -> None:
        if not self.runner.is_busy:
            self.progress.hide()
            self.cancel_button.hide()
            self.job_label.setText(f"{name}: {seconds:.1f} s")

    def cancel_jobs(self) -> None:
        """The status bar's Cancel: stop AutoPaint (previous result back) or whatever job runs."""
        if self.pipeline.running:
            self.pipeline.cancel()
        else:
            self.runner.cancel()

    def _update_enabled(self) -> None:
        has_case = self.state.loaded is not None
        self.run_action.setEnabled(has_case)
        self.baseline_action.setEnabled(has_case and self.state.has_suv)
        self.load_mask_action.setEnabled(has_case)
        self.export_action.setEnabled(self.state.mask is not None)
        self.screenshot_action.setEnabled(has_case)
        for action in self.site_actions.actions():
            action.setEnabled(has_case)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        wizard = getattr(self, "training_wizard", None)
        if wizard is not None and not wizard.ask_stop_training():  # a running training is not killed silently
            event.ignore()
            return
        self.pipeline.cancel()
        self.runner.cancel()
        self.pipeline.reseg_runner.cancel()
        self.runner.wait_idle(3000)
        super().closeEvent(event)
