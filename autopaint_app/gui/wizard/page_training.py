"""Wizard page 3: epochs, batch, seed, where the weights start (from scratch, a shipped model or a run's
checkpoint), VGG16 weights, the device (CPU, or CUDA when the trainer's torch sees one), the trainer's Python
and the run folder.

The device list comes from a probe run with the trainer's interpreter (``python -m
autopaint_app.training.devices``, see ``probes.py``): the GUI never imports torch, and a GPU machine's
Python answers for its own torch.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QWidget, QWizardPage)

from autopaint_app.core.errors import InputError
from autopaint_app.core.inpaint_model import card_path_for, read_card
from autopaint_app.gui.wizard.pages_model import RANDOM_VGG_TEXT, _shown_without_problems, _spin, default_runs_dir
from autopaint_app.gui.wizard.probes import DEVICE_PROBE_ARGS, JsonLineProcess


START_SUFFIXES = (".onnx", ".pt")
START_HELP = ("Empty: from scratch. A shipped model (models/*.onnx with its card; its BN layers come back "
              "folded, so every BN stays frozen) or a run's checkpoint (checkpoints/best.pt) to fine-tune; "
              "channels are matched by name, the network size must be the same.")


def start_problems(text: str) -> list[str]:
    """Why a "Start from" entry cannot start a run (empty = from scratch is fine)."""
    if not text:
        return []
    path = Path(text)
    if path.suffix.lower() not in START_SUFFIXES:
        return [f"{text}: start from a model (.onnx) or a training checkpoint (.pt)"]
    if not path.is_file():
        return [f"{text}: file not found"]
    if path.suffix.lower() == ".onnx":
        try:
            card = read_card(card_path_for(path))
        except InputError as error:
            return [str(error)]
        if "network" not in card.raw:
            return [f"{card_path_for(path)}: model card has no 'network' section; this model cannot be fine-tuned"]
    return []


class TrainingPage(QWizardPage):
    """Epochs per phase, batch size, steps per epoch, seed, start weights, VGG16 weights, device, interpreter,
    run folder."""

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
        self.start_from = QLineEdit()
        self.start_from.setPlaceholderText("from scratch (optional: a model .onnx or a checkpoint .pt to fine-tune)")
        self.start_from.setToolTip(START_HELP)
        self.vgg = QLineEdit()
        self.vgg.setPlaceholderText("optional torchvision VGG16 state dict (.pth)")
        self.vgg_note = QLabel(RANDOM_VGG_TEXT)
        self.vgg_note.setWordWrap(True)
        self.device = QComboBox()
        self.device.addItem("CPU", "cpu")
        self.device_note = QLabel()
        self.device_note.setWordWrap(True)
        self.device_probe = JsonLineProcess(self)
        self.probed_python: str | None = None  # the interpreter the device list belongs to
        self.wanted_device = "cpu"  # a loaded run.json's device, chosen once the probe offers it
        self.python = QLineEdit(sys.executable)
        self.python.setToolTip("Python that runs the trainer (needs torch and autopaint_app), e.g. a GPU machine's.")
        self.out_dir = QLineEdit(str(default_runs_dir() / time.strftime("run_%Y%m%d_%H%M%S")))
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.resuming = False  # set by TrainingWizard.load_run: the run folder's checkpoint is continued
        self._layout()
        self.vgg.textChanged.connect(self._on_vgg_changed)
        self.device_probe.finished.connect(self._on_devices_probed)
        self.python.editingFinished.connect(self.probe_devices)
        self.device.activated.connect(lambda _index: setattr(self, "wanted_device", self.device.currentData()))
        for edit in (self.start_from, self.vgg, self.python, self.out_dir):
            edit.textChanged.connect(lambda _text: self.completeChanged.emit())
        for spin in (self.epochs1, self.epochs2):
            spin.valueChanged.connect(lambda _value: self.completeChanged.emit())

    @staticmethod
    def _with_browse(edit: QLineEdit, choose) -> QWidget:
        browse = QPushButton("Browse…")
        browse.clicked.connect(choose)
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        row.addWidget(browse)
        return holder

    def _layout(self) -> None:
        form = QFormLayout(self)
        for label, widget in (("Epochs, phase 1 (lr 1e-4):", self.epochs1),
                              ("Epochs, phase 2 (lr 5e-5, encoder BN frozen):", self.epochs2),
                              ("Batch size:", self.batch), ("Steps per epoch:", self.steps), ("Seed:", self.seed),
                              ("Start from:", self._with_browse(self.start_from, self._choose_start)),
                              ("VGG16 weights:", self._with_browse(self.vgg, self._choose_vgg)), ("", self.vgg_note), ("Device:", self.device), ("", self.device_note),
                              ("Python for the trainer:", self.python), ("Run folder:", self.out_dir),
                              ("", self.message)):
            form.addRow(label, widget)

    def initializePage(self) -> None:
        self.probe_devices()

    # ------------------------------------------------------------------ devices
    def probe_devices(self) -> None:
        """Ask the trainer's Python which devices its torch sees (CPU always; CUDA when present)."""
        python = self.python.text().strip()
        if python == self.probed_python or not python:
            return
        self.probed_python = python
        self._offer_devices([])
        self.device_note.setText(f"Asking {python} which devices its torch sees…")
        self.device_probe.start(python, DEVICE_PROBE_ARGS, timeout_ms=120000)

    def _on_devices_probed(self, record: dict, error: str) -> None:
        if error:
            self.device_note.setText(f"CPU only: the device probe failed ({error.splitlines()[0]}).")
            return
        names = record.get("cuda_devices") or (["CUDA device"] if record.get("cuda") else [])
        self._offer_devices(names if record.get("cuda") else [])
        self.device_note.setText(f"torch {record.get('torch')}: " + (
            f"CUDA available ({', '.join(names)})." if record.get("cuda") else "no CUDA device; training runs on CPU."))

    def _offer_devices(self, cuda_names: list[str]) -> None:
        """CPU, plus CUDA when the probe found a device; keeps (or restores) the wanted device when offered."""
        wanted = self.wanted_device
        self.device.clear()
        self.device.addItem("CPU", "cpu")
        if cuda_names:
            self.device.addItem(f"CUDA ({cuda_names[0]})", "cuda")
        index = self.device.findData(wanted)
        self.device.setCurrentIndex(max(0, index))

    def _choose_start(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Start from", "", "Models and checkpoints (*.onnx *.pt)")
        if path:
            self.start_from.setText(path)

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
        found += start_problems(self.start_from.text().strip())
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
        self.start_from.setText(run.get("init_from") or "")
        self.vgg.setText(run.get("vgg_weights") or "")
        self.wanted_device = run.get("device") or "cpu"
        self.device.setCurrentIndex(max(0, self.device.findData(self.wanted_device)))
        self.out_dir.setText(str(run["out_dir"]))

    def settings(self) -> dict:
        values = {"epochs_phase1": self.epochs1.value(), "epochs_phase2": self.epochs2.value(),
                  "batch_size": self.batch.value(), "seed": self.seed.value(), "out_dir": self.out_dir.text().strip(),
                  "device": self.device.currentData()}
        if self.steps.value():
            values["steps_per_epoch"] = self.steps.value()
        if self.start_from.text().strip():
            values["init_from"] = self.start_from.text().strip()
        if self.vgg.text().strip():
            values["vgg_weights"] = self.vgg.text().strip()
        return values
