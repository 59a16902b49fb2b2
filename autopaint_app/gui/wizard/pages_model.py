"""Wizard pages 2 and 3: the network (site, modality, architecture, size, crop) and the training settings."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QSpinBox, QWidget, QWizardPage)

SITES = {"lung": "Lung", "hn": "Head and neck"}
MODALITY_TITLES = {"petct": "PET-CT", "ct": "CT", "pet": "PET"}
ARCHITECTURES = {"gconv_lap": "GConv-Lap (paper, default)", "gconv": "GConv (comparison)",
                 "pconv": "PConv (comparison)"}
SIZES = {"compact": "Compact (CPU friendly)", "paper": "Paper (64…512 channels, 8 levels)"}
# Crops must be multiples of the U-Net's 2 ** depth (training.networks: compact 5 levels, paper 8).
SIZE_MULTIPLE = {"compact": 32, "paper": 256}
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

class ModelPage(QWizardPage):
    """Site preset, modality (only those every usable case has), architecture, size, crop size."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setTitle("Model")
        self.setSubTitle("The site preset sets the CT/SUV windows and the organ of interest.")
        self.site = _combo(SITES)
        self.modality = QComboBox()
        self.arch = _combo(ARCHITECTURES)
        self.size = _combo(SIZES)
        self.crop = _spin(64, 512, 128, step=64, suffix=" px")
        self.crop.setToolTip("Side of the square training crops on the 512 px working grid (multiple of 64).")
        self.message = QLabel()
        self.message.setWordWrap(True)
        form = QFormLayout(self)
        for label, widget in (("Site preset:", self.site), ("Modality:", self.modality),
                              ("Architecture:", self.arch), ("Size:", self.size), ("Training crop:", self.crop),
                              ("", self.message)):
            form.addRow(label, widget)
        self.size.currentIndexChanged.connect(lambda _index: self.completeChanged.emit())
        self.crop.valueChanged.connect(lambda _value: self.completeChanged.emit())

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
        return found

    def isComplete(self) -> bool:
        return _shown_without_problems(self.message, self.problems())

    def load(self, run: dict) -> None:
        """Select a ``run.json``'s site, modality, architecture, size and crop (resuming a run)."""
        for combo, key in ((self.site, "site"), (self.modality, "modality"), (self.arch, "arch"), (self.size, "size")):
            index = combo.findData(run.get(key))
            if index >= 0:
                combo.setCurrentIndex(index)
        self.crop.setValue(int(run.get("train_crop", self.crop.value())))

    def settings(self) -> dict:
        return {"site": self.site.currentData(), "modality": self.modality.currentData(),
                "arch": self.arch.currentData(), "size": self.size.currentData(), "train_crop": self.crop.value()}


class TrainingPage(QWizardPage):
    """Epochs per phase, batch size, steps per epoch, seed, VGG16 weights, device, interpreter, run folder."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setTitle("Training")
        self.setSubTitle("Paper: 150 + 150 epochs, lr 1e-4 then 5e-5 with the encoder BN frozen, batch 8.")
        self.epochs1 = _spin(0, 10000, 150)
        self.epochs2 = _spin(0, 10000, 150)
        self.batch = _spin(1, 256, 8)
        self.steps = _spin(0, 100000, 0)
        self.steps.setSpecialValueText("one pass over the training slices")
        self.seed = _spin(0, 2**31 - 1, 0)
        self.vgg = QLineEdit()
        self.vgg.setPlaceholderText("optional torchvision VGG16 state dict (.pth)")
        self.vgg_note = QLabel(RANDOM_VGG_TEXT)
        self.vgg_note.setWordWrap(True)
        self.device = QComboBox()
        self.device.addItem("CPU", "cpu")
        self.device.setToolTip("The backend trains on CPU; CUDA detection is not implemented yet.")
        self.python = QLineEdit(sys.executable)
        self.python.setToolTip("Python that runs the trainer (needs torch and autopaint_app), e.g. a GPU machine's.")
        self.out_dir = QLineEdit(str(default_runs_dir() / time.strftime("run_%Y%m%d_%H%M%S")))
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.resuming = False  # set by TrainingWizard.load_run: the run folder's checkpoint is continued
        self._layout()
        self.vgg.textChanged.connect(self._on_vgg_changed)
        for edit in (self.vgg, self.python, self.out_dir):
            edit.textChanged.connect(lambda _text: self.completeChanged.emit())
        for spin in (self.epochs1, self.epochs2):
            spin.valueChanged.connect(lambda _value: self.completeChanged.emit())

    def _layout(self) -> None:
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._choose_vgg)
        vgg_row = QWidget()
        row = QHBoxLayout(vgg_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.vgg, 1)
        row.addWidget(browse)
        form = QFormLayout(self)
        for label, widget in (("Epochs, phase 1 (lr 1e-4):", self.epochs1),
                              ("Epochs, phase 2 (lr 5e-5, encoder BN frozen):", self.epochs2),
                              ("Batch size:", self.batch), ("Steps per epoch:", self.steps), ("Seed:", self.seed),
                              ("VGG16 weights:", vgg_row), ("", self.vgg_note), ("Device:", self.device),
                              ("Python for the trainer:", self.python), ("Run folder:", self.out_dir),
                              ("", self.message)):
            form.addRow(label, widget)

    def _choose_vgg(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "VGG16 weights", "", "PyTorch weights (*.pth *.pt)")
        if path:
            self.vgg.setText(path)

    def _on_vgg_changed(self, text: str) -> None:
        self.vgg_note.setText(f"ImageNet features from {text}" if text.strip() else RANDOM_VGG_TEXT)

    def problems(self) -> list[str]:
        """Why Next is refused (shown on the page)."""
        found = []
        if self.epochs1.value() + self.epochs2.value() < 1:
            found.append("At least one epoch is needed.")
        vgg = self.vgg.text().strip()
        if vgg and not Path(vgg).is_file():
            found.append(f"{vgg}: VGG16 weights file not found")
        python = self.python.text().strip()
        if not python or not (Path(python).is_file() and os.access(python, os.X_OK)):
            found.append(f"{python or '(empty)'}: not an executable Python interpreter")
        out = Path(self.out_dir.text().strip() or ".")
        if not self.out_dir.text().strip():
            found.append("Choose a run folder.")
        elif (out / "checkpoints" / "latest.pt").exists() and not self.resuming:
            found.append(f"{out}: holds a training run already; choose a new run folder")
        return found

    def isComplete(self) -> bool:
        return _shown_without_problems(self.message, self.problems())

    def load(self, run: dict) -> None:
        """Fill the fields from a ``run.json`` dict (resuming a run)."""
        for spin, key in ((self.epochs1, "epochs_phase1"), (self.epochs2, "epochs_phase2"),
                          (self.batch, "batch_size"), (self.steps, "steps_per_epoch"), (self.seed, "seed")):
            if run.get(key) is not None:
                spin.setValue(int(run[key]))
        self.vgg.setText(run.get("vgg_weights") or "")
        self.out_dir.setText(str(run["out_dir"]))

    def settings(self) -> dict:
        values = {"epochs_phase1": self.epochs1.value(), "epochs_phase2": self.epochs2.value(),
                  "batch_size": self.batch.value(), "seed": self.seed.value(), "out_dir": self.out_dir.text().strip()}
        if self.steps.value():
            values["steps_per_epoch"] = self.steps.value()
        if self.vgg.text().strip():
            values["vgg_weights"] = self.vgg.text().strip()
        return values
