"""Lesion review panel: connected components of the result mask with their statistics.

Each row is one lesion (:func:`autopaint_app.core.lesions.lesion_table`); its check box accepts or
rejects it (rejected lesions stay out of the export); clicking a row moves the crosshair to the
lesion's hottest voxel. Sorted by volume, largest first; the lesion number is kept in each row's
first cell (``Qt.UserRole``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from autopaint_app.core.lesions import LesionStats
from autopaint_app.gui.state import AppState

COLUMNS = ("Keep", "Lesion", "Volume (ml)", "SUVmax", "SUVmean", "SUVpeak", "TLG (SUV·ml)", "Axial slices")


class NumberItem(QTableWidgetItem):
    """A read-only cell showing a number with fixed decimals and sorting by its value ("–" = none)."""

    def __init__(self, value: float | None, decimals: int):
        super().__init__("–" if value is None else f"{float(value):.{decimals}f}")
        self.value = -float("inf") if value is None else float(value)
        self.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, NumberItem):
            return self.value < other.value
        return super().__lt__(other)


def lesion_cells(lesion: LesionStats) -> list[QTableWidgetItem]:
    """The row's cells; the first holds the accept check box and the lesion number (UserRole)."""
    keep = QTableWidgetItem()
    keep.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable)
    keep.setCheckState(Qt.CheckState.Checked)
    keep.setData(Qt.ItemDataRole.UserRole, lesion.label)
    slices = QTableWidgetItem(f"{lesion.z_range[0] + 1}–{lesion.z_range[1] + 1}")
    slices.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    return [keep, NumberItem(lesion.label, 0), NumberItem(lesion.volume_ml, 2),
            NumberItem(lesion.suv_max, 2), NumberItem(lesion.suv_mean, 2), NumberItem(lesion.suv_peak, 2),
            NumberItem(lesion.tlg, 1), slices]


class LesionPanel(QWidget):
    """Table of lesions with accept/reject check boxes and jump-to-lesion on click."""

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.summary = QLabel("No result mask yet. Run a baseline or the pipeline.")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.accept_all = QPushButton("Accept all")
        self.reject_all = QPushButton("Reject all")
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_all)
        buttons.addWidget(self.reject_all)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.cellClicked.connect(self._on_cell_clicked)
        self.accept_all.clicked.connect(lambda: self._decide_all(True))
        self.reject_all.clicked.connect(lambda: self._decide_all(False))
        state.mask_changed.connect(self._on_mask_changed)
        state.case_loaded.connect(self._on_mask_changed)
        state.lesion_decision_changed.connect(self._on_lesion_decision_changed)

    def row_of(self, label: int) -> int:
        """Table row showing lesion ``label`` (rows are sorted, so not ``label - 1``)."""
        for row in range(self.table.rowCount()):
            if self.label_at(row) == label:
                return row
        raise KeyError(label)

    def label_at(self, row: int) -> int:
        return int(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole))

    def _on_mask_changed(self) -> None:
        self.table.blockSignals(True)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(0)
        for lesion in self.state.lesions:
            row = self.table.rowCount()
            self.table.insertRow(row)
            for column, item in enumerate(lesion_cells(lesion)):
                self.table.setItem(row, column, item)
        self.table.setSortingEnabled(True)
        self.table.sortItems(2, Qt.SortOrder.DescendingOrder)
        self.table.resizeColumnsToContents()
        self.table.blockSignals(False)
        self._update_summary()

    def _update_summary(self) -> None:
        lesions = self.state.lesions
        if self.state.mask is None:
            self.summary.setText("No result mask yet. Run a baseline or the pipeline.")
            return
        kept = [lesion for lesion in lesions if lesion.label not in self.state.rejected]
        volume = sum(lesion.volume_ml for lesion in kept)
        self.summary.setText(f"{self.state.mask_source}: {len(lesions)} lesions, {len(kept)} kept "
                             f"({volume:.1f} ml). Uncheck a lesion to leave it out of the export.")

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == 0:
            label = int(item.data(Qt.ItemDataRole.UserRole))
            self.state.set_lesion_accepted(label, item.checkState() == Qt.CheckState.Checked)

    def _on_lesion_decision_changed(self, label: int, accepted: bool) -> None:
        item = self.table.item(self.row_of(label), 0)
        state = Qt.CheckState.Checked if accepted else Qt.CheckState.Unchecked
        if item.checkState() != state:
            self.table.blockSignals(True)
            item.setCheckState(state)
            self.table.blockSignals(False)
        self._update_summary()

    def _on_cell_clicked(self, row: int, column: int) -> None:
        if column != 0:
            self.state.jump_to_lesion(self.label_at(row))

    def _decide_all(self, accepted: bool) -> None:
        self.state.set_lesions_accepted([lesion.label for lesion in self.state.lesions], accepted)
