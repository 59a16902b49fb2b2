"""The Model page's cost estimate: parameters and time per epoch, measured by the backend on real steps.

The wizard's current settings go into a temporary ``run.json`` (``export`` off, ``out_dir`` in the
temporary folder, which the estimate never writes to) and ``<python> -m autopaint_app.training
--estimate`` runs it with the trainer's interpreter and device; the JSON answer is shown here.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from autopaint_app.gui.wizard.probes import JsonLineProcess, estimate_args

ESTIMATE_STEPS = 3


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 5 s"``, ``"2 h 7 min"``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds // 60 % 60} min"


def describe_estimate(record: dict) -> str:
    """One paragraph for the user from the backend's ``estimate`` record."""
    params = record["params"]
    size = f"{params / 1e6:.2f} M" if params >= 1e5 else f"{params:,}"
    return (f"{size} parameters. Measured on {record['device'].upper()} at batch {record['batch_size']}: "
            f"{record['seconds_per_step']:.3g} s per step x {record['steps_per_epoch']} steps "
            f"+ {record['validation_s']:.3g} s validation = {format_duration(record['seconds_per_epoch'])} per epoch; "
            f"{record['total_epochs']} epochs = {format_duration(record['seconds_total'])}.")


class EstimatePanel(QWidget):
    """A button that measures the configured run and a label with the answer.

    Args:
        settings: Returns ``(python, run settings dict)`` of the wizard as it stands.

    Attributes:
        record: The last ``estimate`` record (None before one arrived or after a failure).
    """

    def __init__(self, settings: Callable[[], tuple[str, dict]], parent=None):
        super().__init__(parent)
        self.settings = settings
        self.button = QPushButton("Measure")
        self.button.setToolTip("Load the cases and time a few real training steps with the trainer's Python "
                               "(batch size and device from the Training page)")
        self.label = QLabel("Parameters and time per epoch: press Measure (loads the cases, runs a few steps).")
        self.label.setWordWrap(True)
        self.record: dict | None = None
        self.process = JsonLineProcess(self)
        self._folder: str | None = None
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.button)
        row.addWidget(self.label, 1)
        self.button.clicked.connect(self.start)
        self.process.finished.connect(self._on_finished)

    def start(self) -> None:
        """Write the temporary run.json and start the backend's estimate."""
        python, run = self.settings()
        self._cleanup()
        self._folder = tempfile.mkdtemp(prefix="autopaint_estimate_")
        config = Path(self._folder) / "run.json"
        config.write_text(json.dumps({**run, "out_dir": str(Path(self._folder) / "run"), "export": False}),
                          encoding="utf-8")
        self.record = None
        self.button.setEnabled(False)
        self.label.setText(f"Measuring: loading the cases, then {ESTIMATE_STEPS} training steps…")
        self.process.start(python, estimate_args(str(config), ESTIMATE_STEPS), working_dir=self._folder)

    def cancel(self) -> None:
        self.process.cancel()
        self._cleanup()
        self.button.setEnabled(True)

    def _on_finished(self, record: dict, error: str) -> None:
        self._cleanup()
        self.button.setEnabled(True)
        if error or record.get("event") != "estimate":
            text = html.escape(error or f"unexpected answer {record}").replace("\n", "<br>")
            self.label.setText(f"<span style='color:#c0392b'>No estimate: {text}</span>")
            return
        self.record = record
        self.label.setText(describe_estimate(record))

    def _cleanup(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
