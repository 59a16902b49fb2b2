"""Wizard page 5: final validation next to biharmonic, and the exported model installed for the app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWizardPage

from autopaint_app.core.errors import InputError

FIGURES = (("psnr_hole", "PSNR in holes (dB)", "{:.2f}"), ("ssim_hole", "SSIM in holes", "{:.4f}"),
           ("mse_hole", "MSE in holes", "{:.5f}"))


def install_model(onnx_path: str | Path, models_folder: str | Path) -> Path:
    """Copy an exported model and its card into ``models_folder`` under a free name.

    ``<site>_<modality>_<arch>.onnx`` when free, else ``<stem>_2.onnx``, ``_3``… (still matching the
    ``<site>_<modality>_*`` pattern the model lookup uses). Returns the installed ``.onnx`` path.

    Raises:
        InputError: the model or its card is missing, or the folder cannot be written.
    """
    onnx_path, folder = Path(onnx_path), Path(models_folder)
    card = onnx_path.with_suffix(".json")
    for source in (onnx_path, card):
        if not source.is_file():
            raise InputError(source, "exported model file not found")
    stem, number = onnx_path.stem, 1
    target = folder / f"{stem}.onnx"
    while target.exists() or target.with_suffix(".json").exists():
        number += 1
        target = folder / f"{stem}_{number}.onnx"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(card, target.with_suffix(".json"))
        shutil.copyfile(onnx_path, target)
    except OSError as error:
        raise InputError(folder, f"cannot install the model here ({error.strerror})") from None
    return target


def figures_table(model: dict, biharmonic: dict) -> str:
    """HTML table: the model's validation figures next to biharmonic inpainting on the same holes."""
    rows = "".join(f"<tr><td>{title}</td><td align='right'>{_fmt(fmt, model.get(key))}</td>"
                   f"<td align='right'>{_fmt(fmt, biharmonic.get(key))}</td></tr>" for key, title, fmt in FIGURES)
    return f"<table cellpadding='4'><tr><th></th><th>Model</th><th>Biharmonic</th></tr>{rows}</table>"


def _fmt(fmt: str, value) -> str:
    return "–" if value is None else fmt.format(value)


class FinishPage(QWizardPage):
    """Shows the card's validation (ONNX model vs biharmonic) and installs the model on entry."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setTitle("Finish")
        self.figures = QLabel()
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.installed: Path | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(self.figures)
        layout.addWidget(self.result)
        layout.addStretch(1)

    def initializePage(self) -> None:
        wizard = self.wizard()
        done = wizard.run_page.done_event or {}
        onnx = done.get("onnx")
        if not onnx:
            self.result.setText("The run exported no model (run.json 'export' is off).")
            return
        model, biharmonic, source = self._validation(Path(onnx), wizard.run_page)
        self.figures.setText(f"<b>Validation ({source})</b>" + figures_table(model, biharmonic))
        try:
            self.installed = install_model(onnx, wizard.models_folder)
        except InputError as error:
            self.result.setText(f"<b style='color:#c0392b'>Not installed: {error}</b>")
            return
        self.result.setText(f"Model card written beside the model. Installed as {self.installed}; the tuning "
                            f"panel lists it now. Training run, checkpoints and log: {done.get('checkpoint')}")
        wizard.model_installed.emit(str(self.installed))

    @staticmethod
    def _validation(onnx: Path, run_page) -> tuple[dict, dict, str]:
        """The card's ONNX validation when present, else the last epoch's (PyTorch) figures."""
        try:
            validation = json.loads(onnx.with_suffix(".json").read_text(encoding="utf-8")).get("validation") or {}
        except (OSError, ValueError):
            validation = {}
        if validation.get("model"):
            source = "exported ONNX model, fixed validation holes"
            return validation["model"], validation.get("biharmonic") or {}, source
        last = run_page.epochs[-1] if run_page.epochs else {}
        return last.get("val") or {}, last.get("biharmonic") or {}, "last epoch"
