"""Wizard page 1: the case folders, what they hold, and why they cannot be used (before anything runs)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QLabel, QListWidget, QMessageBox, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWizardPage)
from superqt.utils import create_worker

from autopaint_app.core.errors import InputError
from autopaint_app.gui.wizard.data_preview import PREVIEW_CASES
from autopaint_app.gui.wizard.data_scan import DataSummary, scan_folders
from autopaint_app.gui.wizard.mosaic import MosaicView

COLUMNS = ("Case", "Modality", "Slices", "Label", "Healthy slices", "Status")


def scan_in_worker(scan_id: int, folders: list[str], flagged_healthy: bool) -> tuple[int, DataSummary]:
    """The scan a worker thread runs: (``scan_id``, summary with hole previews); never raises."""
    try:
        return scan_id, scan_folders(folders, flagged_healthy, previews=PREVIEW_CASES)
    except Exception as error:  # noqa: BLE001 - a library failure must reach the page, not vanish in the thread
        return scan_id, DataSummary(errors=[f"the scan failed: {type(error).__name__}: {error}"])


class DataPage(QWizardPage):
    """Folders of cases (any layout ``core.case.find_cases`` reads), scanned when the list changes.

    The scan (every case is read and validated, a few get a hole preview) runs in a worker thread;
    Next waits for it. Signals:
        scan_finished(): the table, split, messages and preview show the latest scan.
    """

    scan_finished = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setTitle("Data")
        self.setSubTitle("Folders of healthy (or labelled) PET/CT cases. Slices with tumour are left out; "
                         "validation uses whole patients the network never trains on.")
        self.folders = QListWidget()
        self.add_button = QPushButton("Add folder…")
        self.remove_button = QPushButton("Remove")
        self.resume_button = QPushButton("Resume an earlier run…")
        self.resume_button.setToolTip("Continue a stopped run from its checkpoint (choose its run.json)")
        self.tumour_free = QCheckBox("Cases without a tumour label are tumour-free (healthy scans)")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.split_label = QLabel()
        self.split_label.setWordWrap(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preview = MosaicView("Prepared slices with random training holes")
        self.preview.setMinimumHeight(160)
        self.summary = DataSummary()
        self.scanning = False
        self._scan_id = 0
        self._layout()
        self.add_button.clicked.connect(self._choose_folder)
        self.remove_button.clicked.connect(self._remove_selected)
        self.resume_button.clicked.connect(self._choose_run)
        self.tumour_free.toggled.connect(lambda _checked: self.rescan())

    def _layout(self) -> None:
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        buttons.addWidget(self.resume_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.folders, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.tumour_free)
        tables = QHBoxLayout()
        tables.addWidget(self.table, 3)
        tables.addWidget(self.preview, 2)
        layout.addLayout(tables, 3)
        layout.addWidget(self.split_label)
        layout.addWidget(self.message)

    # ------------------------------------------------------------------ folders
    def folder_list(self) -> list[str]:
        return [self.folders.item(i).text() for i in range(self.folders.count())]

    def add_folder(self, folder: str) -> None:
        """Add a folder (no duplicates) and rescan."""
        if folder and folder not in self.folder_list():
            self.folders.addItem(str(folder))
        self.rescan()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of cases (or of case folders)")
        if folder:
            self.add_folder(folder)

    def _choose_run(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "run.json of the run to resume", "", "Run settings (run.json)")
        if path:
            try:
                self.wizard().load_run(path)
            except InputError as error:
                QMessageBox.warning(self, "Cannot resume this run", str(error))

    def _remove_selected(self) -> None:
        for item in self.folders.selectedItems():
            self.folders.takeItem(self.folders.row(item))
        self.rescan()

    # ------------------------------------------------------------------ scan
    def rescan(self) -> None:
        """Scan the folders in a worker thread; a newer scan supersedes an older one's result."""
        self._scan_id += 1
        self.scanning = True
        self.message.setText("Scanning the folders (reading every case)…")
        self.completeChanged.emit()
        worker = create_worker(scan_in_worker, self._scan_id, self.folder_list(), self.tumour_free.isChecked())
        worker.returned.connect(self._on_scanned)
        worker.start()

    @Slot(object)
    def _on_scanned(self, result: tuple[int, DataSummary]) -> None:
        scan_id, summary = result
        if scan_id != self._scan_id:
            return  # the folders changed while this scan ran
        self.summary, self.scanning = summary, False
        self._show_summary()
        self._show_previews()
        self.completeChanged.emit()
        self.scan_finished.emit()

    def _show_previews(self) -> None:
        """One row per previewed case: each channel as prepared, then with the training holes."""
        previews = self.summary.previews
        rows = [[*preview.crop, *preview.with_holes] for preview in previews]
        coverage = (f"; hole coverage {100 * (1 - sum(p.mask.mean() for p in previews) / len(previews)):.0f} % "
                    f"(training batches: 25-30 %)" if previews else "")
        names = "+".join(c.upper() for c in previews[0].channels) if previews else ""
        self.preview.show_tiles(rows, f"{names} slices, lung windows, then with training holes{coverage}"
                                if previews else "No preview (no usable case yet)")

    def _show_summary(self) -> None:
        cases = self.summary.cases
        self.table.setRowCount(len(cases))
        for row, case in enumerate(cases):
            values = (case.case_id, "+".join(m.upper() for m in case.modalities) or "?", str(case.n_slices or "?"),
                      "yes" if case.has_label else "no",
                      "?" if case.healthy_slices is None else str(case.healthy_slices), case.problem or "usable")
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(value)
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        train, val = self.summary.split
        self.split_label.setText(f"Patient-wise split (seed 0): training {', '.join(train)} | validation "
                                 f"{', '.join(val)}" if val else "")
        lines = [f"<b style='color:#c0392b'>{text}</b>" for text in self.summary.errors]
        lines += [text for text in self.summary.notes]
        self.message.setText("<br>".join(lines))

    def isComplete(self) -> bool:
        return not self.scanning and bool(self.summary.usable) and not self.summary.errors

    def validatePage(self) -> bool:
        return self.isComplete()

    def load(self, run: dict) -> None:
        """Show a ``run.json``'s folders and tumour-free flag (resuming a run)."""
        self.folders.clear()
        cases = [entry if isinstance(entry, dict) else {"path": entry} for entry in run.get("cases", [])]
        self.tumour_free.blockSignals(True)
        self.tumour_free.setChecked(any(entry.get("healthy") for entry in cases))
        self.tumour_free.blockSignals(False)
        for entry in cases:
            self.folders.addItem(str(entry["path"]))
        self.rescan()

    def case_entries(self) -> list[dict]:
        """The run.json ``cases``: one entry per folder, with the tumour-free flag."""
        return [{"path": folder, "healthy": self.tumour_free.isChecked()} for folder in self.folder_list()]
