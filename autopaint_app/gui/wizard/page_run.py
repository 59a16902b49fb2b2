"""Wizard page 4: the training process, live — loss curves, validation curves, progress with ETA, sample
inpaintings of fixed validation holes (refreshed every epoch from the ``samples`` file the trainer names
in its ``epoch`` event), log.

Pause and Cancel both send SIGTERM: the trainer finishes its step, saves ``latest.pt`` and says
``stopped``; Resume restarts it with ``--resume`` on the same ``run.json``. A failed backend shows
its exit and last log lines on the page (never a frozen wizard).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout,
                               QWizardPage)

from autopaint_app.gui.wizard.backend_process import BackendProcess
from autopaint_app.gui.wizard.mosaic import MosaicView

LOSS_COLOURS = {"total": "w", "valid": "c", "hole": "m", "perceptual": "y", "style_out": "g", "style_comp": "b",
                "tv": (255, 128, 0), "lap": "r"}
VAL_METRICS = {"psnr_hole": "PSNR holes (dB)", "ssim_hole": "SSIM holes", "mse_hole": "MSE holes"}
LOG_LINES = 2000


def format_eta(seconds) -> str:
    if seconds is None:
        return "ETA …"
    seconds = round(seconds)
    return f"ETA {seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def sample_rows(samples) -> list[list[np.ndarray]]:
    """Mosaic rows of a ``samples/epoch_NNN.npz``: per crop and channel, input with holes | inpainted | truth.

    The inpainted tile is the network output inside the holes and the known pixels outside (what
    the pipeline uses); arrays are (n, C, H, W) with masks (n, 1, H, W), 1 = known.
    """
    truth, masks, output = samples["truth"], samples["masks"], samples["output"]
    composite = masks * truth + (1 - masks) * output
    return [[tile for c in range(truth.shape[1]) for tile in (truth[i, c] * masks[i, 0], composite[i, c], truth[i, c])]
            for i in range(len(truth))]


def _number(value) -> str:
    return "–" if value is None else f"{value:.4g}"


class RunPage(QWizardPage):
    """Runs the backend on the wizard's ``run.json`` as soon as the page opens.

    Signals:
        state_changed(str): ``"running"``, ``"stopping"``, ``"stopped"``, ``"done"`` or ``"failed"``.
    """

    state_changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setTitle("Run")
        self.backend = BackendProcess(parent=self)
        self.config_path: Path | None = None
        self.state = "idle"
        self.start_event: dict | None = None
        self.epochs: list[dict] = []
        self.done_event: dict | None = None
        self.cancelled = False
        self._build()
        self.backend.event.connect(self._on_event)
        self.backend.log_line.connect(self._log)
        self.backend.finished.connect(self._on_finished)
        self.pause_button.clicked.connect(self._pause_or_resume)
        self.cancel_button.clicked.connect(self.cancel)

    def _build(self) -> None:
        self.loss_plot = pg.PlotWidget(title="Training loss terms per step")
        self.loss_plot.addLegend(offset=(-5, 5))
        self.loss_plot.setLogMode(y=True)
        self.val_plot = pg.GraphicsLayoutWidget()  # one plot per metric: their scales differ by decades
        self.loss_curves: dict[str, pg.PlotDataItem] = {}
        self.loss_data: dict[str, tuple[list, list]] = {}
        self.val_plots, self.val_curves = {}, {}
        for row, (key, title) in enumerate(VAL_METRICS.items()):
            plot = self.val_plot.addPlot(row=row, col=0, title=f"Validation {title} (dashed: biharmonic)")
            self.val_plots[key] = plot
            self.val_curves[key] = plot.plot([], [], pen="y", symbol="o", symbolSize=5)
        self.biharmonic_lines: list = []
        self.samples_view = MosaicView("Fixed validation holes: after the first epoch")
        self.samples_path: Path | None = None
        self.progress = QProgressBar()
        self.progress.setFormat("%p%")
        self.eta_label = QLabel(format_eta(None))
        self.status = QLabel("Not started.")
        self.status.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c0392b")
        self.cli_label = QLabel()
        self.cli_label.setWordWrap(True)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(LOG_LINES)
        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Cancel training")
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.val_plot)
        plots.addWidget(self.samples_view)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.eta_label)
        bar.addWidget(self.pause_button)
        bar.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(plots, 3)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        layout.addWidget(self.error_label)
        layout.addWidget(self.cli_label)
        layout.addWidget(self.log, 2)

    # ------------------------------------------------------------------ control
    def initializePage(self) -> None:
        wizard = self.wizard()
        self.config_path = wizard.write_run_config()
        self.backend.python = wizard.python()
        self.cli_label.setText(f"Run settings: {self.config_path}  (headless twin: "
                               f"autopaint-cli train --config {self.config_path})")
        self.start(resume=wizard.training_page.resuming and self.checkpoint_path().is_file())

    def start(self, resume: bool) -> None:
        """Start (or with ``resume`` continue) the backend on :attr:`config_path`."""
        self.error_label.clear()
        self.cancelled = False
        self._set_state("running")
        self.status.setText("Resuming from the checkpoint…" if resume else "Loading the cases…")
        self.backend.start(self.config_path, resume=resume)

    def stop(self) -> None:
        """Clean stop (SIGTERM): the trainer saves ``latest.pt`` and reports ``stopped``."""
        if self.backend.running:
            self._set_state("stopping")
            self.status.setText("Stopping after the current step (the checkpoint is saved)…")
            self.backend.stop()

    def cancel(self) -> None:
        self.cancelled = True
        self.stop()

    def _pause_or_resume(self) -> None:
        if self.state == "running":
            self.stop()
        elif self.state in ("stopped", "failed") and self.checkpoint_path().is_file():
            self.start(resume=True)

    def checkpoint_path(self) -> Path:
        return Path(self.wizard().run_settings()["out_dir"]) / "checkpoints" / "latest.pt"

    def _set_state(self, state: str) -> None:
        self.state = state
        can_resume = state in ("stopped", "failed") and self.checkpoint_path().is_file()
        self.pause_button.setText("Resume" if state in ("stopped", "failed") else "Pause")
        self.pause_button.setEnabled(state == "running" or can_resume)
        self.cancel_button.setEnabled(state == "running")
        self.state_changed.emit(state)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.state == "done"

    # ------------------------------------------------------------------ backend output
    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)

    def _on_event(self, record: dict) -> None:
        handler = {"start": self._on_start, "step": self._on_step, "epoch": self._on_epoch}.get(record["event"])
        if handler is not None:
            handler(record)
        elif record["event"] == "done":
            self.done_event = record
        elif record["event"] == "error":
            self._log(f"error: {record.get('message')}")

    def _on_start(self, record: dict) -> None:
        self.start_event = record
        self.progress.setRange(0, max(1, int(record.get("total_steps") or 1)))
        split = record.get("split") or {}
        self._log(f"split: training {split.get('train')} | validation {split.get('val')}; "
                  f"{record.get('train_slices')} training slices; VGG16 features: {record.get('vgg_weights')}")
        self.status.setText(f"Training ({record.get('steps_per_epoch')} steps per epoch; VGG16 features: "
                            f"{record.get('vgg_weights')}).")
        self._draw_biharmonic(record.get("biharmonic") or {})

    def _on_step(self, record: dict) -> None:
        step = record["global_step"]
        for name, value in (record.get("losses") or {}).items():
            if value is None or value <= 0:
                continue  # log axis: a zero term (e.g. no Laplacian term) has nothing to draw
            xs, ys = self.loss_data.setdefault(name, ([], []))
            xs.append(step)
            ys.append(value)
            if name not in self.loss_curves:
                self.loss_curves[name] = self.loss_plot.plot([], [], name=name, pen=LOSS_COLOURS.get(name, "w"))
            self.loss_curves[name].setData(xs, ys)
        self.progress.setValue(step)
        self.eta_label.setText(format_eta(record.get("eta_s")))
        self.status.setText(f"Phase {record['phase']}, epoch {record['epoch']}, step {record['step']}/"
                            f"{record['steps_per_epoch']}, loss {record['losses'].get('total', float('nan')):.4f}")

    def _on_epoch(self, record: dict) -> None:
        self.epochs.append(record)
        val = record.get("val") or {}
        for key, curve in self.val_curves.items():
            points = [(e["epoch"], e["val"][key]) for e in self.epochs if e.get("val", {}).get(key) is not None]
            curve.setData([p[0] for p in points], [p[1] for p in points])
        figures = ", ".join(f"{title} {_number(val.get(key))}" for key, title in VAL_METRICS.items())
        self._log(f"epoch {record['epoch']}: validation {figures}")
        if record.get("samples"):
            self._show_samples(Path(record["samples"]), record["epoch"])

    def _show_samples(self, path: Path, epoch: int) -> None:
        """Draw the epoch's sample inpaintings (a missing or unreadable file is logged, never raised)."""
        try:
            with np.load(path) as samples:
                rows = sample_rows(samples)
                channels = "/".join(str(name).upper() for name in samples["channels"])
        except (OSError, ValueError, KeyError) as error:
            self._log(f"sample inpaintings of epoch {epoch} unreadable: {path} ({error})")
            return
        self.samples_path = path
        self.samples_view.show_tiles(rows, f"Epoch {epoch}, fixed validation holes ({channels}): "
                                           f"input | inpainted | truth")

    def _draw_biharmonic(self, metrics: dict) -> None:
        for plot, line in self.biharmonic_lines:
            plot.removeItem(line)
        dashed = pg.mkPen("c", style=Qt.PenStyle.DashLine)
        self.biharmonic_lines = [(self.val_plots[key], self.val_plots[key].addLine(y=metrics[key], pen=dashed))
                                 for key in VAL_METRICS if metrics.get(key) is not None]

    def _on_finished(self, outcome: str, message: str) -> None:
        if outcome == "done":
            self.progress.setValue(self.progress.maximum())
            self.status.setText("Training finished; the model was exported. Next: install it.")
        elif outcome == "stopped":
            kept = self.checkpoint_path().is_file()
            what = "Cancelled" if self.cancelled else "Paused"
            where = (f"checkpoint kept at {self.checkpoint_path()}; Resume continues from it" if kept
                     else "no checkpoint")
            self.status.setText(f"{what}: {where}. {message}".strip())
        else:
            self.error_label.setText(message)
            self.status.setText("The training backend failed" + (
                "; Resume continues from the last checkpoint." if self.checkpoint_path().is_file() else "."))
        self._set_state(outcome)
