"""Case header: which case is open — patient/series facts, modalities, grid, SUV status."""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QWidget

from autopaint_app.gui.case_jobs import LoadedCase
from autopaint_app.gui.state import AppState


def suv_status(loaded: LoadedCase) -> str:
    """How the PET values were obtained, in words (e.g. "SUV (body weight, from DICOM tags)")."""
    case = loaded.case
    if case.pet is None:
        return "no PET"
    if case.pet_units == "SUV":
        conversion = case.pet.meta.get("suv")
        return "SUV (body weight, from DICOM tags)" if conversion else "SUV (as stored in the file)"
    if case.pet_units == "BQML":
        return "Bq/ml, not SUV (give weight and dose to convert)"
    return f"{case.pet_units or 'unknown units'}, not SUV"


def case_summary(loaded: LoadedCase) -> list[tuple[str, str]]:
    """Rows ``(label, text)`` for the header: case, layout, series, modalities, grid, SUV status."""
    case, reference = loaded.case, loaded.reference
    rows = [("Case", case.case_id), ("Layout", case.files.layout)]
    for name, volume in (("CT", case.ct), ("PET", case.pet)):
        if volume is None:
            continue
        facts = [volume.meta.get(key) for key in ("seriesdescription", "manufacturer") if volume.meta.get(key)]
        size = " x ".join(str(n) for n in volume.size_xyz)
        spacing = " x ".join(f"{s:.2f}" for s in volume.spacing)
        rows.append((name, "; ".join([*facts, f"{size} voxels, {spacing} mm"])))
    modalities = [name for name, v in (("CT", case.ct), ("PET", case.pet)) if v is not None]
    rows.append(("Modality", "PET-CT" if len(modalities) == 2 else modalities[0]))
    rows.append(("PET units", suv_status(loaded)))
    rows.append(("Label", "loaded" if case.label is not None else "none"))
    ooi_ml = "none" if loaded.ooi is None else f"{loaded.ooi.sum() * reference.voxel_volume_ml:.0f} ml ({loaded.site})"
    rows.append(("Organ of interest", ooi_ml))
    return rows


class CaseHeader(QGroupBox):
    """Shows :func:`case_summary` of the open case."""

    def __init__(self, state: AppState, parent: QWidget | None = None):
        super().__init__("Case", parent)
        self.state = state
        self.form = QFormLayout(self)
        self.form.addRow(QLabel("No case open. Drop a case folder or files here, or open the demo case."))
        state.case_loaded.connect(self._on_case_loaded)
        state.ooi_changed.connect(self._on_case_loaded)

    def _on_case_loaded(self) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        for label, text in case_summary(self.state.loaded):
            value = QLabel(text)
            value.setWordWrap(True)
            value.setObjectName(f"case_{label.lower().replace(' ', '_')}")
            self.form.addRow(f"{label}:", value)

    def text(self) -> str:
        """Everything the header shows, one row per line (for tests and the clipboard)."""
        lines = []
        for row in range(self.form.rowCount()):
            label = self.form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            field = self.form.itemAt(row, QFormLayout.ItemRole.FieldRole)
            parts = [item.widget().text() for item in (label, field) if item is not None and item.widget()]
            lines.append(" ".join(parts))
        return "\n".join(lines)
