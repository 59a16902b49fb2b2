"""Wizard page 2: the network (site, windows, modality, architecture, size, crop) and its measured cost.

Also the small widget helpers the other wizard pages share.
"""

from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QSpinBox,
                               QWidget, QWizardPage)

from autopaint_app.core.presets import MODALITY_CHANNELS, get_preset
from autopaint_app.gui.wizard.estimate_panel import EstimatePanel

SITES = {"lung": "Lung", "hn": "Head and neck"}
MODALITY_TITLES = {"petct": "PET-CT", "ct": "CT", "pet": "PET"}
ARCHITECTURES = {"gconv_lap": "GConv-Lap (paper, default)", "gconv": "GConv (comparison)",
                 "pconv": "PConv (comparison)"}
SIZES = {"compact": "Compact (CPU friendly)", "light": "Light (4x faster circle search, 4 levels; found fewer tumours in our lung test)",
         "paper": "Paper (64…512 channels, 8 levels)"}
# Crops must be multiples of the U-Net's 2 ** depth (training.networks: compact 5 levels, light 4, paper 8).
SIZE_MULTIPLE = {"compact": 32, "light": 16, "paper": 256}
# run.json "prefill" / "prefill_channels": the output layer corrects a smooth fill of the holes (README, Models).
PREFILLS = {"none": "None: the paper's output layer (PET-CT default)",
            "biharmonic": "Biharmonic, every channel (our PET models; in PET-CT it fills best, segments worse)",
            "biharmonic-pet": "Biharmonic on PET only (PET-CT research)"}
# What each choice writes into run.json (one table for writing and for reading a run.json back).
PREFILL_RUN_KEYS = {"none": {}, "biharmonic": {"prefill": "biharmonic"},
                    "biharmonic-pet": {"prefill": "biharmonic", "prefill_channels": ["pet"]}}
PREFILL_HELP = ("A parameter-free biharmonic fill of the holes inside the network, which the output layer corrects. "
                "It fills real scans best, but it carries a tumour on a circle's rim into the circle; decoy "
                "lesions (below) bring most of the segmentation back (README, Models, session 14).")
DECOY_HELP = ("Share of training crops that get a synthetic lesion (soft-tissue CT, FDG uptake) on the known rim "
              "of a hole, the healthy slice kept as the target under the hole: the network learns to paint "
              "healthy tissue next to a tumour. 0 = the paper's training.")
SMOOTHING_HELP = ("Largest blur (Gaussian sigma, working-grid pixels) applied to a training crop's {name}, input and "
                  "target alike; each crop draws its sigma from 0 to this. Real reconstructions are smoother than "
                  "the phantoms (PET about 2.5x, chest CT up to 4x): 3.5 px for PET and 1.2 px for CT span them "
                  "(README, Models, session 15). 0 = the crops as they are.")
RANDOM_VGG_TEXT = ("No file: torch's cached ImageNet VGG16 weights are used when present, otherwise the "
                   "perceptual and style terms use random-seeded features (they still regularise, but are not "
                   "ImageNet features). The Run page says which one the trainer used.")


def _combo(items: dict[str, str]) -> QComboBox:
    combo = QComboBox()
    for key, title in items.items():
        combo.addItem(title, key)
    return combo


def _spin(low: int, high: int, value: int, step: int = 1, suffix: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setSuffix(suffix)
    return spin


def default_runs_dir() -> Path:
    """``<app data>/training_runs`` (where run folders go unless the user picks another)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".autopaint") / "training_runs"



def _shown_without_problems(label, problems: list[str]) -> bool:
    """Show ``problems`` in red on ``label``; True when there are none (a page's isComplete)."""
    label.setText("<br>".join(f"<b style='color:#c0392b'>{p}</b>" for p in problems))
    return not problems

def _double(low: float, high: float, suffix: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(1)
    spin.setSuffix(suffix)
    return spin


class WindowEditor(QWidget):
    """CT window (HU) and SUV window, low/high each; follows the site preset until "custom" is ticked."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.custom = QCheckBox("Custom window")
        self.custom.setToolTip("Override the site preset's CT and SUV windows (recorded in run.json and the model "
                               "card; inference normalises with the card's windows)")
        self.ct_low, self.ct_high = _double(-3000, 3000, " HU"), _double(-3000, 3000, " HU")
        self.suv_low, self.suv_high = _double(0, 100, " SUV"), _double(0, 100, " SUV")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.custom)
        for label, spin in (("CT", self.ct_low), ("to", self.ct_high), ("  PET", self.suv_low), ("to", self.suv_high)):
            row.addWidget(QLabel(label))
            row.addWidget(spin)
        row.addStretch(1)
        self.custom.toggled.connect(self._on_custom_toggled)
        self._on_custom_toggled(False)

    def follow_preset(self, site: str) -> None:
        """Show the preset's windows (unless custom values are being edited)."""
        if not self.custom.isChecked():
            preset = get_preset(site)
            self.set_windows(preset.ct_window, preset.suv_window)

    def set_windows(self, ct_window, suv_window) -> None:
        for spin, value in zip((self.ct_low, self.ct_high, self.suv_low, self.suv_high), (*ct_window, *suv_window)):
            spin.setValue(float(value))

    def windows(self) -> dict:
        """``{"ct_window": [low, high], "suv_window": [low, high]}`` when custom, else ``{}``."""
        if not self.custom.isChecked():
            return {}
        return {"ct_window": [self.ct_low.value(), self.ct_high.value()],
                "suv_window": [self.suv_low.value(), self.suv_high.value()]}

    def problems(self) -> list[str]:
        found = []
        for name, low, high in (("CT", self.ct_low, self.ct_high), ("SUV", self.suv_low, self.suv_high)):
            if self.custom.isChecked() and low.value() >= high.value():
                found.append(f"{name} window: the low end must be below the high end.")
        return found

    def _on_custom_toggled(self, checked: bool) -> None:
        for spin in (self.ct_low, self.ct_high, self.suv_low, self.suv_high):
            spin.setEnabled(checked)


class ModelPage(QWizardPage):
    """Site preset and windows, modality (only those every usable case has), architecture, size, crop size, and the
    measured cost of the run (parameters, time per epoch)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setTitle("Model")
        self.setSubTitle("The site preset sets the CT/SUV windows and the organ of interest; a custom window "
                         "keeps the site's organ of interest.")
        self.site = _combo(SITES)
        self.window_editor = WindowEditor()
        self.window_editor.follow_preset(self.site.currentData())
        self.modality = QComboBox()
        self.arch = _combo(ARCHITECTURES)
        self.size = _combo(SIZES)
        self.crop = _spin(64, 512, 128, step=64, suffix=" px")
        self.crop.setToolTip("Side of the square training crops on the 512 px working grid (multiple of 64).")
        self.prefill = _combo(PREFILLS)
        self.prefill.setToolTip(PREFILL_HELP)
        self._custom_prefill: dict = {}
        self.decoys = _spin(0, 100, 0, step=10, suffix=" % of crops")
        self.decoys.setToolTip(DECOY_HELP)
        # run.json "pet_smoothing_px" / "ct_smoothing_px" = [low, high]; the page edits high (low kept from a run.json).
        self.smoothing = {name: _double(0.0, 10.0, f" px ({name.upper()})") for name in ("pet", "ct")}
        self._smoothing_low = {"pet": 0.0, "ct": 0.0}
        smoothing_row = QWidget()
        smoothing_layout = QHBoxLayout(smoothing_row)
        smoothing_layout.setContentsMargins(0, 0, 0, 0)
        for name, spin in self.smoothing.items():
            spin.setSingleStep(0.5)
            spin.setToolTip(SMOOTHING_HELP.format(name=name.upper()))
            spin.valueChanged.connect(lambda _value: self.completeChanged.emit())
            smoothing_layout.addWidget(spin)
        self.estimate = EstimatePanel(self._estimate_settings)
        self.message = QLabel()
        self.message.setWordWrap(True)
        form = QFormLayout(self)
        for label, widget in (("Site preset:", self.site), ("Windows:", self.window_editor),
                              ("Modality:", self.modality), ("Architecture:", self.arch), ("Size:", self.size),
                              ("Training crop:", self.crop), ("Fill start (prefill):", self.prefill),
                              ("Decoy lesions on hole rims:", self.decoys),
                              ("Smoother scans, up to:", smoothing_row), ("Cost:", self.estimate),
                              ("", self.message)):
            form.addRow(label, widget)
        self.site.currentIndexChanged.connect(lambda _index: self.window_editor.follow_preset(self.site.currentData()))
        self.size.currentIndexChanged.connect(lambda _index: self.completeChanged.emit())
        self.crop.valueChanged.connect(lambda _value: self.completeChanged.emit())
        for combo in (self.prefill, self.arch, self.modality):
            combo.currentIndexChanged.connect(lambda _index: self.completeChanged.emit())
        self.window_editor.custom.toggled.connect(self._on_custom_toggled)
        for spin in (self.window_editor.ct_low, self.window_editor.ct_high, self.window_editor.suv_low,
                     self.window_editor.suv_high):
            spin.valueChanged.connect(lambda _value: self.completeChanged.emit())

    def _on_custom_toggled(self, checked: bool) -> None:
        if not checked:
            self.window_editor.follow_preset(self.site.currentData())
        self.completeChanged.emit()

    def _estimate_settings(self) -> tuple[str, dict]:
        wizard = self.wizard()
        return wizard.python(), wizard.run_settings()

    def set_modalities(self, modalities: tuple[str, ...]) -> None:
        """Offer only the modalities the data has (PET-CT first)."""
        current = self.modality.currentData()
        self.modality.clear()
        for name in modalities:
            self.modality.addItem(MODALITY_TITLES[name], name)
        if current in modalities:
            self.modality.setCurrentIndex(modalities.index(current))

    def problems(self) -> list[str]:
        """Why Next is refused (shown on the page)."""
        found = [] if self.modality.count() else ["No modality is common to the cases (see the Data page)."]
        multiple = SIZE_MULTIPLE[self.size.currentData()]
        if self.crop.value() % multiple:
            found.append(f"The {self.size.currentData()} network needs crops that are multiples of {multiple} px.")
        choice = self.prefill.currentData()
        if choice != "none" and self.arch.currentData() == "pconv":
            found.append("The prefill needs a gated network (GConv-Lap or GConv), not PConv.")
        if choice == "biharmonic-pet" and self.modality.currentData() != "petct":
            found.append("Biharmonic on PET only needs the PET-CT modality.")
        for name, spin in self.smoothing.items():
            if spin.value() > 0 and name not in MODALITY_CHANNELS.get(self.modality.currentData(), ()):
                found.append(f"{name.upper()} smoothing needs a modality with {name.upper()} "
                             f"(set it to 0 px for {MODALITY_TITLES.get(self.modality.currentData(), 'this data')}).")
        return found + self.window_editor.problems()

    def isComplete(self) -> bool:
        return _shown_without_problems(self.message, self.problems())

    def load(self, run: dict) -> None:
        """Select a ``run.json``'s site, windows, modality, architecture, size and crop (resuming a run)."""
        for combo, key in ((self.site, "site"), (self.modality, "modality"), (self.arch, "arch"), (self.size, "size")):
            index = combo.findData(run.get(key))
            if index >= 0:
                combo.setCurrentIndex(index)
        self.crop.setValue(int(run.get("train_crop", self.crop.value())))
        self._select_prefill({key: run[key] for key in ("prefill", "prefill_channels")
                              if run.get(key) and run.get(key) != "none"})
        self.decoys.setValue(round(100 * float(run.get("rim_lesions") or 0.0)))
        for name, spin in self.smoothing.items():
            low, high = run.get(f"{name}_smoothing_px") or (0.0, 0.0)
            self._smoothing_low[name] = float(low)
            spin.setValue(float(high))
        if run.get("ct_window") or run.get("suv_window"):
            preset = get_preset(self.site.currentData())
            self.window_editor.custom.setChecked(True)
            self.window_editor.set_windows(run.get("ct_window") or preset.ct_window,
                                           run.get("suv_window") or preset.suv_window)

    def settings(self) -> dict:
        return {"site": self.site.currentData(), "modality": self.modality.currentData(),
                "arch": self.arch.currentData(), "size": self.size.currentData(), "train_crop": self.crop.value(),
                **self.window_editor.windows(), **self._prefill_settings(), **self._smoothing_settings()}

    def _smoothing_settings(self) -> dict:
        """run.json's pet_smoothing_px / ct_smoothing_px, only when set (the paper trains without)."""
        return {f"{name}_smoothing_px": [min(self._smoothing_low[name], spin.value()), spin.value()]
                for name, spin in self.smoothing.items() if spin.value() > 0}

    def _select_prefill(self, wanted: dict) -> None:
        """Show a run.json's prefill keys; a prefill the list does not offer (harmonic, CT only) is kept as it is."""
        choice = next((name for name, keys in PREFILL_RUN_KEYS.items() if keys == wanted), None)
        if choice is None:
            choice = "custom"
            self._custom_prefill = dict(wanted)
            channels = wanted.get("prefill_channels")
            title = f"As in run.json: {wanted.get('prefill', 'none')}" + (f" on {', '.join(channels)}" if channels else "")
            if self.prefill.findData("custom") < 0:
                self.prefill.addItem(title, "custom")
            self.prefill.setItemText(self.prefill.findData("custom"), title)
        self.prefill.setCurrentIndex(self.prefill.findData(choice))

    def _prefill_settings(self) -> dict:
        """run.json's prefill, prefill_channels and rim_lesions (only the ones that differ from the paper)."""
        choice = self.prefill.currentData()
        values = copy.deepcopy(self._custom_prefill if choice == "custom" else PREFILL_RUN_KEYS[choice])
        if self.decoys.value():
            values["rim_lesions"] = self.decoys.value() / 100.0
        return values
