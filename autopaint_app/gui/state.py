"""AppState: the open case, its overlays and the review decisions; views listen, never own.

Habit 4 of ARCHITECTURE.md (napari's model -> view): widgets call the setters here, the setters
call core and emit past-tense signals, and every view redraws from the state in its
``_on_<thing>_changed`` slot. All arrays are numpy ``(z, y, x)`` on the reference grid (the CT's,
the PET's without a CT); positions are voxel indices ``(z, y, x)``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from autopaint_app.core import baselines
from autopaint_app.core.lesions import LesionStats
from autopaint_app.core.review import accepted_mask
from autopaint_app.gui.case_jobs import LoadedCase, MaskLesions, mask_lesions
from autopaint_app.gui.overlays import LayerModel

# Window/level presets as (low, high) display ranges: CT in HU, PET in SUV.
CT_PRESETS = {
    "Lung": (-1350.0, 150.0),           # W 1500, L -600
    "Mediastinum": (-125.0, 225.0),      # W 350, L 50
    "Soft tissue": (-160.0, 240.0),      # W 400, L 40
    "Bone": (-500.0, 1300.0),            # W 1800, L 400
}
PET_PRESETS = {"SUV 0-12": (0.0, 12.0)}
DEFAULT_CT_PRESET, DEFAULT_PET_PRESET = "Mediastinum", "SUV 0-12"


class AppState(QObject):
    """The current case and result.

    Signals:
        case_loaded(): a new case is open (``loaded`` set, mask cleared, position centred).
        ooi_changed(): the organ of interest changed.
        mask_changed(): a new result mask (lesions renumbered, every lesion accepted).
        lesion_decision_changed(label, accepted): one lesion was accepted or rejected.
        position_changed(z, y, x): the crosshair moved (voxel indices).
        levels_changed(): CT or PET display range changed.
    """

    case_loaded = Signal()
    ooi_changed = Signal()
    mask_changed = Signal()
    lesion_decision_changed = Signal(int, bool)
    position_changed = Signal(int, int, int)
    levels_changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.layers = LayerModel(self)
        self.loaded: LoadedCase | None = None
        self.mask: np.ndarray | None = None
        self.mask_source = ""
        self.lesion_labels: np.ndarray | None = None
        self.lesions: list[LesionStats] = []
        self.rejected: set[int] = set()
        self.position: tuple[int, int, int] = (0, 0, 0)
        self.ct_levels = CT_PRESETS[DEFAULT_CT_PRESET]
        self.pet_levels = PET_PRESETS[DEFAULT_PET_PRESET]

    # ------------------------------------------------------------------ case
    @property
    def shape(self) -> tuple[int, int, int] | None:
        """Reference grid shape ``(z, y, x)``, or None without a case."""
        return None if self.loaded is None else self.loaded.reference.shape

    @property
    def has_suv(self) -> bool:
        """True when the PET is in SUV (baselines and lesion SUVs need it)."""
        return self.loaded is not None and self.loaded.has_suv

    def set_loaded_case(self, loaded: LoadedCase) -> None:
        """Show a newly loaded case: images, OOI and label layers; no result mask yet."""
        self.loaded = None  # views skip per-layer redraws until the whole case is in place
        self.layers.clear_data()
        case = loaded.case
        self.layers.set_data("CT", None if case.ct is None else case.ct.array)
        self.layers.set_data("PET", None if loaded.suv is None else loaded.suv.array)
        self.layers.set_data("Organ of interest", loaded.ooi)
        self.layers.set_data("Ground truth", None if case.label is None else case.label.array > 0)
        self._clear_mask()
        self.loaded = loaded
        self.position = tuple(int(n) // 2 for n in loaded.reference.shape)
        self.case_loaded.emit()
        self.position_changed.emit(*self.position)

    def set_ooi(self, loaded: LoadedCase) -> None:
        """Same case with another organ of interest (e.g. after switching site)."""
        self.loaded = loaded
        self.layers.set_data("Organ of interest", loaded.ooi)
        self.ooi_changed.emit()

    # ------------------------------------------------------------------ result mask and review
    def set_mask(self, mask: np.ndarray | None, source: str, lesions: MaskLesions | None = None) -> None:
        """A new result mask ``(z, y, x)`` on the reference grid: lesions numbered, all accepted.

        Args:
            mask: boolean mask, or None to clear.
            source: what made it (shown in the lesion panel), e.g. "Baseline: SUV >= 2.5".
            lesions: the mask's lesions when a worker already measured them
                (:func:`~autopaint_app.gui.case_jobs.mask_lesions`); else measured here.
        """
        if mask is None:
            self._clear_mask()
        else:
            mask = np.asarray(mask).astype(bool, copy=False)
            if mask.shape != self.shape:
                raise ValueError(f"mask shape {mask.shape} differs from the case grid {self.shape}")
            lesions = lesions if lesions is not None else mask_lesions(mask, self.loaded)
            self.mask, self.mask_source = mask, source
            self.lesion_labels, self.lesions = lesions.labels, list(lesions.table)
            self.rejected = set()
            self._update_mask_layers()
        self.mask_changed.emit()

    def _clear_mask(self) -> None:
        self.mask, self.mask_source, self.lesion_labels, self.lesions, self.rejected = None, "", None, [], set()
        self._update_mask_layers()

    def baseline_mask(self, threshold: float = baselines.SUV_THRESHOLD) -> np.ndarray:
        """SUV >= threshold inside the OOI (the whole volume when there is no OOI); core twin:
        :func:`autopaint_app.core.baselines.suv_threshold`.

        Raises:
            ValueError: no case, or its PET is not in SUV.
        """
        if not self.has_suv:
            raise ValueError("the SUV baseline needs a PET in SUV units")
        ooi = self.loaded.ooi if self.loaded.ooi is not None else np.ones(self.shape, dtype=bool)
        return baselines.suv_threshold(self.loaded.suv.array, ooi, threshold)

    def set_lesion_accepted(self, label: int, accepted: bool) -> None:
        """Accept or reject lesion ``label`` (1-based); rejected lesions stay out of the export."""
        self.set_lesions_accepted([label], accepted)

    def set_lesions_accepted(self, labels, accepted: bool) -> None:
        """Accept or reject several lesions at once (one overlay update)."""
        known = {lesion.label for lesion in self.lesions}
        changed = []
        for label in (int(label) for label in labels):
            if label not in known:
                raise ValueError(f"no lesion {label}")
            if accepted == (label in self.rejected):
                (self.rejected.discard if accepted else self.rejected.add)(label)
                changed.append(label)
        if changed:
            self._update_mask_layers()
        for label in changed:
            self.lesion_decision_changed.emit(label, accepted)

    def accepted_mask(self) -> np.ndarray | None:
        """The result mask without rejected lesions, boolean ``(z, y, x)``; None without a mask."""
        if self.lesion_labels is None:
            return None
        return accepted_mask(self.lesion_labels, self.rejected)

    def refresh_mask_layers(self) -> None:
        """Redraw the mask layers from the current mask (after a live preview borrowed them)."""
        self._update_mask_layers()

    def _update_mask_layers(self) -> None:
        kept = self.accepted_mask()
        rejected = None
        if self.lesion_labels is not None and self.rejected:
            rejected = np.isin(self.lesion_labels, sorted(self.rejected))
        self.layers.set_data("Final mask", kept)
        self.layers.set_data("Final mask outline", kept)
        self.layers.set_data("Rejected lesions", rejected)

    # ------------------------------------------------------------------ navigation and display
    def set_position(self, z: int, y: int, x: int) -> None:
        """Move the crosshair to voxel ``(z, y, x)`` (clipped to the grid)."""
        if self.shape is None:
            return
        position = tuple(int(min(max(v, 0), n - 1)) for v, n in zip((z, y, x), self.shape))
        if position != self.position:
            self.position = position
            self.position_changed.emit(*position)

    def jump_to_lesion(self, label: int) -> None:
        """Centre the crosshair on a lesion's hottest voxel (its centroid without SUV)."""
        lesion = next(lesion for lesion in self.lesions if lesion.label == label)
        target = lesion.hottest_zyx or tuple(int(round(c)) for c in lesion.centroid_zyx)
        self.set_position(*target)

    def set_ct_levels(self, low: float, high: float) -> None:
        self.ct_levels = (float(low), float(high))
        self.levels_changed.emit()

    def set_pet_levels(self, low: float, high: float) -> None:
        self.pet_levels = (float(low), float(high))
        self.levels_changed.emit()

    @property
    def fusion(self) -> float:
        """PET-CT fusion: 0 = CT only, 1 = PET only (the PET layer's opacity over the CT)."""
        return self.layers["PET"].opacity

    def set_fusion(self, value: float) -> None:
        self.layers.set_opacity("PET", value)

    def voxel_readout(self, z: int, y: int, x: int) -> str:
        """Status-bar text for voxel ``(z, y, x)``: HU, SUV and the physical position in mm (LPS)."""
        if self.loaded is None:
            return ""
        case, parts = self.loaded.case, [f"voxel (x {x}, y {y}, z {z})"]
        point = self.loaded.reference.index_to_physical(np.array([x, y, z], dtype=float))
        parts.append("mm ({:.1f}, {:.1f}, {:.1f})".format(*point))
        if case.ct is not None:
            parts.append(f"HU {float(case.ct.array[z, y, x]):.0f}")
        if self.loaded.suv is not None:
            unit = "SUV" if self.has_suv else (case.pet_units or "PET")
            parts.append(f"{unit} {float(self.loaded.suv.array[z, y, x]):.2f}")
        return "   ".join(parts)
