"""The training wizard: Data → Model → Training → Run → Finish, driving the backend as a child process.

The wizard writes the ``run.json`` it uses into the run folder (``autopaint-cli train --config
run.json`` reproduces the run headless) and never imports torch or ``autopaint_app.training``.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QStandardPaths, Signal
from PySide6.QtWidgets import QMessageBox, QWizard

from autopaint_app.core.errors import InputError

from autopaint_app.gui.wizard.page_finish import FinishPage
from autopaint_app.gui.wizard.page_run import RunPage
from autopaint_app.gui.wizard.pages_data import DataPage
from autopaint_app.gui.wizard.page_training import TrainingPage
from autopaint_app.gui.wizard.pages_model import ModelPage


def user_models_folder() -> Path:
    """``<app data>/models``: the user's model folder the tuning panel lists (``gui.pipeline.model_folders``)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".autopaint") / "models"


class TrainingWizard(QWizard):
    """Train, validate and install an inpainting model.

    Args:
        models_folder: Where the finished model is installed (default :func:`user_models_folder`).
        overrides: Extra ``run.json`` keys merged last (e.g. ``widths`` for a tiny test network).

    Signals:
        model_installed(str): the installed ``.onnx`` path (the main window refreshes its model list).
    """

    model_installed = Signal(str)

    def __init__(self, parent=None, models_folder: str | Path | None = None, overrides: dict | None = None):
        super().__init__(parent)
        self.setWindowTitle("Train a model")
        self.models_folder = Path(models_folder) if models_folder is not None else user_models_folder()
        self.overrides = dict(overrides or {})
        self._run_to_load: dict | None = None  # a run.json waiting for the Data page's scan (load_run)
        self.data_page, self.model_page, self.training_page = DataPage(), ModelPage(), TrainingPage()
        self.run_page, self.finish_page = RunPage(), FinishPage()
        self.training_page.setCommitPage(True)
        self.training_page.setButtonText(QWizard.WizardButton.CommitButton, "Train")
        for page in (self.data_page, self.model_page, self.training_page, self.run_page, self.finish_page):
            self.addPage(page)
        self.currentIdChanged.connect(self._on_page_changed)
        self.resize(1100, 800)

    def _on_page_changed(self, _page_id: int) -> None:
        if self.currentPage() is self.model_page:
            self.model_page.set_modalities(self.data_page.summary.modalities)

    def python(self) -> str:
        return self.training_page.python.text().strip()

    def run_settings(self) -> dict:
        """The ``run.json`` content from the pages (plus :attr:`overrides`)."""
        settings = {"cases": self.data_page.case_entries(), **self.model_page.settings(),
                    **self.training_page.settings(), "export": True}
        settings.update(self.overrides)
        return settings

    def write_run_config(self) -> Path:
        """Write ``<run folder>/run.json`` (the run's record and its CLI twin) and return its path."""
        settings = self.run_settings()
        out_dir = Path(settings["out_dir"])
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "run.json"
        path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        return path

    # ------------------------------------------------------------------ resuming a stopped run
    def load_run(self, run_json: str | Path) -> None:
        """Fill the pages from a run's ``run.json`` and continue it from its checkpoint.

        Keys the pages do not show (e.g. ``widths``) are kept as :attr:`overrides`. Once the Data
        page's scan (a worker thread) is in, walks the pages (each still validated); the Run page
        starts with ``--resume`` when ``<run folder>/checkpoints/latest.pt`` exists.

        Raises:
            InputError: unreadable ``run.json``, or it names no case folders or run folder.
        """
        path = Path(run_json)
        try:
            run = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(path, f"not a readable run.json ({error})") from None
        if not isinstance(run, dict) or not run.get("cases") or not run.get("out_dir"):
            raise InputError(path, "run.json needs 'cases' and 'out_dir'")
        out_dir = Path(run["out_dir"])
        run["out_dir"] = str(out_dir if out_dir.is_absolute() else (path.parent / out_dir).resolve())
        shown = {"site", "modality", "arch", "size", "train_crop", "epochs_phase1", "epochs_phase2",
                 "batch_size", "steps_per_epoch", "seed", "vgg_weights", "out_dir", "export", "device",
                 "ct_window", "suv_window", "prefill", "prefill_channels", "rim_lesions",
                 "pet_smoothing_px", "ct_smoothing_px"}
        # 'cases' is kept verbatim (patient ids, relative paths): the trainer refuses a resume when it changes
        self.overrides = {**self.overrides, **{k: v for k, v in run.items() if k not in shown}}
        if self.run_page.backend.running:
            raise InputError(path, "a training is running in this wizard; stop it first")
        self.restart()  # back to the Data page (the Run page is past a commit page: Back cannot reach it)
        entries = [entry if isinstance(entry, dict) else {"path": entry} for entry in run["cases"]]
        self.training_page.resuming = True
        if self._run_to_load is None:
            self.data_page.scan_finished.connect(self._walk_loaded_run)
        self._run_to_load = run
        self.data_page.load({"cases": [{**entry, "path": str(path.parent / entry["path"])} for entry in entries]})

    def _walk_loaded_run(self) -> None:
        """Second half of :meth:`load_run`, once the Data page has scanned the run's folders."""
        self.data_page.scan_finished.disconnect(self._walk_loaded_run)
        run, self._run_to_load = self._run_to_load, None
        for page, fill in ((self.data_page, None), (self.model_page, self.model_page.load),
                           (self.training_page, self.training_page.load)):
            if fill is not None:
                fill(run)
            if self.currentPage() is not page or not page.isComplete():
                return  # the page explains what is wrong
            self.next()

    # ------------------------------------------------------------------ closing mid-run
    def ask_stop_training(self) -> bool:
        """While training runs, ask whether to stop it; True when the wizard may close."""
        if not self.run_page.backend.running:
            return True
        answer = QMessageBox.question(self, "Training is running",
                                      "Stop the training? The checkpoint is saved; you can resume it later "
                                      "(autopaint-cli train --config run.json --resume).")
        if answer != QMessageBox.StandardButton.Yes:
            return False
        backend = self.run_page.backend
        backend.stop()
        if backend.process is not None and not backend.process.waitForFinished(30000):
            backend.kill()
        return True

    def cancel_probes(self) -> None:
        """Stop a running device probe or cost estimate (short child processes of the pages)."""
        self.training_page.device_probe.cancel()
        self.model_page.estimate.cancel()

    def done(self, result: int) -> None:
        self.cancel_probes()
        super().done(result)

    def reject(self) -> None:
        if self.ask_stop_training():
            super().reject()

    def closeEvent(self, event) -> None:
        if self.ask_stop_training():
            self.cancel_probes()
            super().closeEvent(event)
        else:
            event.ignore()
