"""Training wizard: data checks, a real tiny training through the QProcess (cancel, resume, install), failures."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QWizard

from autopaint_app.core.inpaint_model import InpaintModel
from autopaint_app.core.io import Volume, write_volume
from autopaint_app.gui.wizard import TrainingWizard
from autopaint_app.gui.wizard.data_scan import scan_folders

# A tiny network and data budget (tests/training/test_train.py's TINY): seconds per epoch on CPU.
TINY = {"widths": [8, 16, 16], "val_crops": 2, "vgg_downsample": 2, "threads": 1, "restrict_to_ooi": False,
        "max_slices_per_case": 4}


def _volume(array, spacing=(3.9, 3.9, 20.0)) -> Volume:
    return Volume(np.asarray(array), spacing=spacing, origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))


def _write_case(folder: Path, ct=True, pet=True, label=None) -> Path:
    folder.mkdir(parents=True)
    shape = (12, 32, 32)
    if ct:
        write_volume(_volume(np.full(shape, -500, np.int16)), folder / "ct.nii.gz")
    if pet:
        write_volume(_volume(np.ones(shape, np.float32)), folder / "pet.nii.gz")
    if label is not None:
        write_volume(_volume(np.full(shape, label, np.uint8)), folder / "label.nii.gz")
    return folder


def _wizard(qtbot, tmp_path, **kwargs) -> TrainingWizard:
    wizard = TrainingWizard(models_folder=tmp_path / "models", overrides=TINY, **kwargs)
    qtbot.addWidget(wizard)
    wizard.show()
    return wizard


def add_folder_and_wait(qtbot, page, folder) -> None:
    """Add a folder to the Data page and wait for its scan (a worker thread) to arrive."""
    with qtbot.waitSignal(page.scan_finished, timeout=30000):
        page.add_folder(str(folder))


def _to_run_page(qtbot, wizard, folder, out_dir, python=None, steps=6, epochs=(1, 1)) -> None:
    add_folder_and_wait(qtbot, wizard.data_page, folder)
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.next()
    wizard.model_page.crop.setValue(64)
    wizard.next()
    page = wizard.training_page
    page.epochs1.setValue(epochs[0])
    page.epochs2.setValue(epochs[1])
    page.batch.setValue(2)
    page.steps.setValue(steps)
    page.out_dir.setText(str(out_dir))
    if python is not None:
        page.python.setText(str(python))
    assert page.isComplete(), page.message.text()
    wizard.next()
    assert wizard.currentPage() is wizard.run_page


def test_data_page_lists_cases_split_and_offers_only_their_modalities(qtbot, tmp_path, cases):
    wizard = _wizard(qtbot, tmp_path)
    page = wizard.data_page
    assert not page.isComplete() and not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    add_folder_and_wait(qtbot, page, cases)
    rows = [[page.table.item(r, c).text() for c in range(page.table.columnCount())]
            for r in range(page.table.rowCount())]
    assert rows == [["lung_2", "CT+PET", "12", "yes", "12", "usable"],
                    ["lung_3", "CT+PET", "12", "yes", "12", "usable"]]
    assert "training lung_2 | validation lung_3" in page.split_label.text() and page.isComplete()
    wizard.next()
    titles = [wizard.model_page.modality.itemText(i) for i in range(wizard.model_page.modality.count())]
    assert titles == ["PET-CT", "CT", "PET"] and wizard.model_page.arch.currentData() == "gconv_lap"
    wizard.model_page.size.setCurrentIndex(wizard.model_page.size.findData("paper"))
    assert not wizard.model_page.isComplete() and "multiples of 256 px" in wizard.model_page.message.text()
    wizard.model_page.size.setCurrentIndex(wizard.model_page.size.findData("light"))
    assert wizard.model_page.isComplete()  # the default 128-px crop is a multiple of the light net's 16
    wizard.model_page.size.setCurrentIndex(wizard.model_page.size.findData("compact"))
    assert wizard.model_page.isComplete() and wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.next()
    training = wizard.training_page
    assert "random-seeded features" in training.vgg_note.text() and training.device.currentText() == "CPU"
    training.vgg.setText(str(tmp_path / "missing.pth"))
    assert not training.isComplete() and "VGG16 weights file not found" in training.message.text()


def test_data_page_explains_bad_data(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert scan_folders([empty]).errors == [f"{empty}: no PET/CT case found in this folder"]

    broken = tmp_path / "broken"
    (broken / "a").mkdir(parents=True)
    (broken / "a" / "ct.nii.gz").write_bytes(b"not a volume")
    summary = scan_folders([broken])
    assert summary.cases[0].problem.startswith("unreadable") and "No readable case" in summary.errors[0]

    tumour = tmp_path / "tumour"
    for name in ("a", "b"):
        _write_case(tumour / name, label=1)
    summary = scan_folders([tumour])
    assert summary.cases[0].problem == "no healthy slice: every axial slice holds tumour"
    assert summary.errors[0].startswith("No healthy slice to train on")

    unlabelled = tmp_path / "unlabelled"
    for name in ("a", "b"):
        _write_case(unlabelled / name)
    assert "not marked tumour-free" in scan_folders([unlabelled]).cases[0].problem
    flagged = scan_folders([unlabelled], flagged_healthy=True)
    assert not flagged.errors and flagged.modalities == ("petct", "ct", "pet") and flagged.cases[0].healthy_slices == 12

    mixed = tmp_path / "mixed"
    _write_case(mixed / "ct_only", pet=False, label=0)
    _write_case(mixed / "pet_only", ct=False, label=0)
    summary = scan_folders([mixed])
    assert summary.modalities == () and "Mixed modalities with nothing in common" in summary.errors[0]
    partial = tmp_path / "partial"
    _write_case(partial / "ct_only", pet=False, label=0)
    _write_case(partial / "both", label=0)
    summary = scan_folders([partial])
    assert summary.modalities == ("ct",) and summary.notes[0].startswith("Mixed modalities")


def test_train_cancel_resume_finish_installs_a_loadable_model(qtbot, tmp_path, cases, window, dialogs, monkeypatch):
    models = tmp_path / "models"  # stands in for <app data>/models, which the tuning panel lists
    monkeypatch.setattr("autopaint_app.gui.wizard.wizard.user_models_folder", lambda: models)
    monkeypatch.setattr("autopaint_app.gui.pipeline.model_folders", lambda: [models])
    window.train_action.trigger()
    wizard = window.training_wizard
    wizard.overrides = TINY
    installed = []
    wizard.model_installed.connect(installed.append)
    out_dir = tmp_path / "run"
    _to_run_page(qtbot, wizard, cases, out_dir)
    run = wizard.run_page
    written = json.loads((out_dir / "run.json").read_text())
    assert written["widths"] == [8, 16, 16] and written["epochs_phase1"] == 1 and written["cases"] == [
        {"path": str(cases), "healthy": False}] and "autopaint-cli train --config" in run.cli_label.text()
    assert wizard.button(QWizard.WizardButton.BackButton).isHidden() or not wizard.button(
        QWizard.WizardButton.BackButton).isEnabled()

    qtbot.waitUntil(lambda: "total" in run.loss_curves and len(run.loss_curves["total"].getData()[0]) >= 1,
                    timeout=60000)
    assert run.progress.maximum() == 12 and run.eta_label.text().startswith("ETA")
    run.cancel_button.click()
    qtbot.waitUntil(lambda: run.state == "stopped", timeout=30000)
    assert (out_dir / "checkpoints" / "latest.pt").is_file()
    assert run.status.text().startswith("Cancelled: checkpoint kept") and run.pause_button.text() == "Resume"
    assert not run.isComplete()

    run.pause_button.click()  # Resume: --resume from latest.pt ...
    assert run.state == "running" and "--resume" in run.log.toPlainText()
    wizard.close()  # ... but close the wizard mid-run (answer Yes: stop) and resume the run later
    assert dialogs.texts("question") and not run.backend.running and not wizard.isVisible()
    assert (out_dir / "checkpoints" / "latest.pt").is_file()

    wizard = window.open_training_wizard()
    wizard.model_installed.connect(installed.append)
    wizard.load_run(out_dir / "run.json")
    run = wizard.run_page
    qtbot.waitUntil(lambda: wizard.currentPage() is run, timeout=30000)  # after the Data page's scan
    assert wizard.currentPage() is run and run.state == "running" and "--resume" in run.log.toPlainText()
    assert json.loads((out_dir / "run.json").read_text()) == written  # the same run, continued
    qtbot.waitUntil(lambda: run.state in ("done", "failed"), timeout=240000)  # 2 cores, shared
    assert run.state == "done", run.error_label.text() + run.log.toPlainText()[-2000:]
    assert len(run.val_curves["psnr_hole"].getData()[0]) >= 1 and len(run.loss_curves["total"].getData()[0]) >= 6

    wizard.next()
    assert wizard.currentPage() is wizard.finish_page
    model_path = tmp_path / "models" / "lung_petct_gconv_lap.onnx"
    assert installed == [str(model_path)] and model_path.with_suffix(".json").is_file()
    figures = wizard.finish_page.figures.text()
    assert "Biharmonic" in figures and "exported ONNX model" in figures and "PSNR in holes" in figures
    model = InpaintModel.load(model_path)
    assert model.card.channels == ("ct", "pet")
    assert [m.name for m in window.pipeline.models] == ["lung_petct_gconv_lap"]
    combo = window.tuning_panel.model
    assert [combo.itemText(i) for i in range(combo.count())][0].startswith("lung_petct_gconv_lap")


def _fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake_python.sh"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_killed_backend_shows_last_log_lines_and_closing_asks(qtbot, tmp_path, cases, dialogs):
    python = _fake_python(tmp_path, "echo 'INFO loading case lung_2' >&2\n"
                                    "echo '{\"event\": \"start\", \"total_steps\": 10, \"split\": {}}'\n"
                                    "exec sleep 60\n")
    wizard = _wizard(qtbot, tmp_path)
    _to_run_page(qtbot, wizard, cases, tmp_path / "run", python=python)
    run = wizard.run_page
    qtbot.waitUntil(lambda: run.start_event is not None, timeout=10000)
    dialogs.answer = dialogs.answer.No
    wizard.reject()
    assert dialogs.texts("question") and wizard.isVisible() and run.backend.running
    run.backend.process.kill()
    qtbot.waitUntil(lambda: run.state == "failed", timeout=10000)
    assert "was killed or crashed" in run.error_label.text() and "INFO loading case lung_2" in run.error_label.text()
    assert not run.pause_button.isEnabled()  # no checkpoint to resume from


def test_closing_mid_run_and_confirming_stops_the_backend(qtbot, tmp_path, cases, dialogs):
    python = _fake_python(tmp_path, "echo '{\"event\": \"start\", \"total_steps\": 10}'\nexec sleep 60\n")
    wizard = _wizard(qtbot, tmp_path)
    _to_run_page(qtbot, wizard, cases, tmp_path / "run", python=python)
    run = wizard.run_page
    qtbot.waitUntil(lambda: run.start_event is not None, timeout=10000)
    wizard.close()
    assert dialogs.texts("question")[0].startswith("Stop the training?")
    assert not wizard.isVisible() and not run.backend.running and run.state == "stopped"
    assert "before the first training step" in run.status.text()


def test_a_backend_ignoring_the_stop_is_killed_and_reported(qtbot, tmp_path, cases):
    python = _fake_python(tmp_path, "trap '' TERM\necho '{\"event\": \"start\", \"total_steps\": 10}'\n"
                                    "exec sleep 60\n")
    wizard = _wizard(qtbot, tmp_path)
    wizard.run_page.backend.kill_after_ms = 300
    _to_run_page(qtbot, wizard, cases, tmp_path / "run", python=python)
    run = wizard.run_page
    qtbot.waitUntil(lambda: run.start_event is not None, timeout=10000)
    run.cancel_button.click()
    assert run.state == "stopping" and not run.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: run.state == "failed", timeout=10000)
    assert "did not stop within 0.3 s of the stop request; killed" in run.error_label.text()


def test_main_window_close_asks_while_the_wizard_trains(qtbot, tmp_path, cases, window, dialogs):
    python = _fake_python(tmp_path, "echo '{\"event\": \"start\", \"total_steps\": 10}'\nexec sleep 60\n")
    wizard = window.open_training_wizard()
    _to_run_page(qtbot, wizard, cases, tmp_path / "run", python=python)
    qtbot.waitUntil(lambda: wizard.run_page.start_event is not None, timeout=10000)
    dialogs.answer = dialogs.answer.No
    window.close()
    assert window.isVisible() and wizard.run_page.backend.running and len(dialogs.texts("question")) == 1
    dialogs.answer = dialogs.answer.Yes
    window.close()
    assert not window.isVisible() and not wizard.run_page.backend.running


def test_crashed_backend_reports_its_exit_and_traceback(qtbot, tmp_path, cases):
    python = _fake_python(tmp_path, "echo 'Traceback (most recent call last):' >&2\n"
                                    "echo 'RuntimeError: out of memory' >&2\nexit 3\n")
    wizard = _wizard(qtbot, tmp_path)
    _to_run_page(qtbot, wizard, cases, tmp_path / "run", python=python)
    qtbot.waitUntil(lambda: wizard.run_page.state == "failed", timeout=10000)
    text = wizard.run_page.error_label.text()
    assert "exited with code 3" in text and "RuntimeError: out of memory" in text
