"""Training wizard additions: hole preview from a background scan, measured cost, device probe, custom windows,
sample inpaintings on the Run page (real tiny runs through the backend)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWizard

from autopaint_app.core.holes import PAPER_BATCH_COVERAGE
from autopaint_app.core.inpaint_model import read_card
from autopaint_app.gui.wizard import TrainingWizard
from autopaint_app.gui.wizard import pages_data
from autopaint_app.training.config import load_run_config

TINY = {"widths": [8, 16, 16], "val_crops": 3, "vgg_downsample": 2, "threads": 1, "restrict_to_ooi": False,
        "max_slices_per_case": 4}


def _wizard(qtbot, tmp_path) -> TrainingWizard:
    wizard = TrainingWizard(models_folder=tmp_path / "models", overrides=TINY)
    qtbot.addWidget(wizard)
    wizard.show()
    return wizard


def _scanned(qtbot, wizard, folder) -> None:
    with qtbot.waitSignal(wizard.data_page.scan_finished, timeout=30000):
        wizard.data_page.add_folder(str(folder))


def _fake_python(tmp_path: Path, name: str, body: str) -> Path:
    script = tmp_path / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_scan_runs_in_a_worker_and_previews_slices_with_training_holes(qtbot, tmp_path, cases, monkeypatch):
    real_scan = pages_data.scan_folders

    def slow_scan(*args, **kwargs):
        import time

        time.sleep(0.8)  # a big folder: the GUI thread must keep serving events meanwhile
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(pages_data, "scan_folders", slow_scan)
    wizard = _wizard(qtbot, tmp_path)
    page = wizard.data_page
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(page.scanning))
    timer.start(50)
    with qtbot.waitSignal(page.scan_finished, timeout=30000):
        page.add_folder(str(cases))
        assert page.scanning and not page.isComplete() and page.message.text().startswith("Scanning")
    timer.stop()
    assert ticks.count(True) >= 5  # the event loop ran while the worker scanned
    assert page.isComplete() and page.table.rowCount() == 2

    previews = page.summary.previews
    assert [p.case_id for p in previews] == ["lung_2", "lung_3"] and previews[0].channels == ("ct", "pet")
    coverages = [1 - p.mask.mean() for p in previews]
    assert PAPER_BATCH_COVERAGE[0] <= np.mean(coverages) <= PAPER_BATCH_COVERAGE[1]  # the trainer's batches
    assert all(0.03 <= c <= 0.62 for c in coverages)
    mosaic = page.preview.mosaic  # rows: cases; columns: CT, PET, CT with holes, PET with holes
    assert mosaic.shape == (2 * 128 + 2, 4 * 128 + 3 * 2)
    ct, ct_holes = mosaic[:128, :128], mosaic[:128, 2 * 130:2 * 130 + 128]
    holes = previews[0].mask == 0
    assert np.all(ct_holes[holes] == 0) and ct[holes].mean() > 0.2  # body tissue under the holes
    assert np.array_equal(ct_holes[~holes], ct[~holes])
    assert "hole coverage" in page.preview.title.text


def test_measured_cost_appears_on_the_model_page(qtbot, tmp_path, cases, dialogs):
    wizard = _wizard(qtbot, tmp_path)
    _scanned(qtbot, wizard, cases)
    wizard.next()
    page = wizard.model_page
    page.crop.setValue(64)
    wizard.training_page.batch.setValue(2)
    page.estimate.button.click()
    assert not page.estimate.button.isEnabled() and page.estimate.label.text().startswith("Measuring")
    folder = Path(page.estimate._folder)
    assert json.loads((folder / "run.json").read_text())["batch_size"] == 2
    qtbot.waitUntil(lambda: page.estimate.button.isEnabled(), timeout=180000)
    record = page.estimate.record
    assert record is not None, page.estimate.label.text()
    # one training patient x 4 kept slices at batch 2
    assert record["steps_per_epoch"] == 2 and record["device"] == "cpu" and record["params"] > 1000
    text = page.estimate.label.text()
    assert f"{record['params']:,} parameters" in text and "per epoch" in text and "300 epochs" in text
    assert not folder.exists()  # the temporary run.json is gone, and nothing else was written


def test_device_list_offers_cuda_only_when_the_trainers_torch_sees_it(qtbot, tmp_path, cases):
    wizard = _wizard(qtbot, tmp_path)
    page = wizard.training_page
    answers = {"gpu": '{"event": "devices", "torch": "2.13.0+cu128", "cuda": true, "cuda_devices": ["NVIDIA A100"]}',
               "cpu": '{"event": "devices", "torch": "2.13.0+cpu", "cuda": false, "cuda_devices": []}'}
    for name, answer in answers.items():
        python = _fake_python(tmp_path, f"{name}_python.sh", f"echo '{answer}'\n")
        page.python.setText(str(python))
        with qtbot.waitSignal(page.device_probe.finished, timeout=10000):
            page.probe_devices()
        offered = [page.device.itemData(i) for i in range(page.device.count())]
        if name == "gpu":
            assert offered == ["cpu", "cuda"] and page.device.itemText(1) == "CUDA (NVIDIA A100)"
            assert "CUDA available (NVIDIA A100)" in page.device_note.text()
            page.device.setCurrentIndex(1)
            assert page.settings()["device"] == "cuda"
        else:
            assert offered == ["cpu"] and "no CUDA device" in page.device_note.text()
            assert page.settings()["device"] == "cpu"
    broken = _fake_python(tmp_path, "broken.sh", "echo 'ModuleNotFoundError: torch' >&2\nexit 1\n")
    page.python.setText(str(broken))
    with qtbot.waitSignal(page.device_probe.finished, timeout=10000):
        page.probe_devices()
    assert page.device.count() == 1 and "the device probe failed" in page.device_note.text()


def test_custom_windows_and_samples_from_a_real_tiny_run(qtbot, tmp_path, cases, dialogs):
    wizard = _wizard(qtbot, tmp_path)
    _scanned(qtbot, wizard, cases)
    wizard.next()
    model = wizard.model_page
    model.crop.setValue(64)
    editor = model.window_editor
    assert (editor.ct_low.value(), editor.ct_high.value()) == (-1000, 500) and not editor.ct_low.isEnabled()
    editor.custom.setChecked(True)
    editor.ct_low.setValue(-160)
    editor.ct_high.setValue(-200)
    assert not model.isComplete() and "CT window: the low end must be below the high end" in model.message.text()
    editor.ct_high.setValue(240)
    editor.suv_high.setValue(10)
    assert model.isComplete()
    wizard.next()
    page = wizard.training_page
    page.epochs1.setValue(2)
    page.epochs2.setValue(0)
    page.batch.setValue(2)
    page.steps.setValue(2)
    out_dir = tmp_path / "run"
    page.out_dir.setText(str(out_dir))
    wizard.next()
    run = wizard.run_page
    written = json.loads((out_dir / "run.json").read_text())
    assert written["ct_window"] == [-160, 240] and written["suv_window"] == [0, 10] and written["device"] == "cpu"
    assert load_run_config(out_dir / "run.json").site_preset.ct_window == (-160.0, 240.0)

    qtbot.waitUntil(lambda: run.samples_path is not None, timeout=120000)
    assert run.samples_path.name == "epoch_001.npz"
    # 3 fixed validation crops; per channel: input with holes | inpainted | truth, 64 px tiles
    assert run.samples_view.mosaic.shape == (3 * 64 + 2 * 2, 6 * 64 + 5 * 2)
    assert "Epoch 1" in run.samples_view.title.text
    qtbot.waitUntil(lambda: run.state in ("done", "failed"), timeout=180000)
    assert run.state == "done", run.error_label.text()
    assert run.samples_path.name == "epoch_002.npz"  # refreshed every epoch
    with np.load(run.samples_path) as samples:
        composite = samples["masks"] * samples["truth"] + (1 - samples["masks"]) * samples["output"]
    assert np.allclose(run.samples_view.mosaic[:64, 64 + 2:2 * 64 + 2], np.clip(composite[0, 0], 0, 1))

    card = json.loads((out_dir / "lung_petct_gconv_lap.json").read_text())
    assert card["ct_window"] == [-160, 240] and card["suv_window"] == [0, 10]
    assert read_card(out_dir / "lung_petct_gconv_lap.json").ct_window == (-160.0, 240.0)
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()


def test_start_from_accepts_a_shipped_model_or_checkpoint_and_names_what_is_wrong(qtbot, tmp_path):
    wizard = _wizard(qtbot, tmp_path)
    page = wizard.training_page
    page.out_dir.setText(str(tmp_path / "run"))
    assert page.isComplete() and "init_from" not in page.settings()  # empty: from scratch
    page.start_from.setText(str(tmp_path / "weights.txt"))
    assert not page.isComplete() and "weights.txt: start from a model (.onnx) or a training checkpoint (.pt)" in page.message.text()
    page.start_from.setText(str(tmp_path / "gone.pt"))
    assert not page.isComplete() and "gone.pt: file not found" in page.message.text()
    cardless = tmp_path / "cardless.onnx"
    cardless.write_bytes(b"onnx")
    page.start_from.setText(str(cardless))
    assert not page.isComplete() and "cardless.json: model card not found" in page.message.text()
    shipped = Path(__file__).resolve().parents[2] / "models" / "hn_petct_gconv_lap.onnx"
    page.start_from.setText(str(shipped))
    assert page.isComplete() and page.settings()["init_from"] == str(shipped)
    page.load({"out_dir": str(tmp_path / "other"), "init_from": str(tmp_path / "best.pt")})
    assert page.start_from.text() == str(tmp_path / "best.pt")


def _on_model_page(qtbot, tmp_path, cases):
    """A wizard that scanned ``cases`` and stands on the Model page with 64-px crops."""
    wizard = _wizard(qtbot, tmp_path)
    _scanned(qtbot, wizard, cases)
    wizard.next()
    wizard.model_page.crop.setValue(64)
    return wizard, wizard.model_page


def test_prefill_and_decoy_lesions_reach_run_json_and_come_back(qtbot, tmp_path, cases):
    wizard, model = _on_model_page(qtbot, tmp_path, cases)
    assert model.isComplete() and not {"prefill", "prefill_channels", "rim_lesions"} & set(model.settings())
    model.prefill.setCurrentIndex(model.prefill.findData("biharmonic"))
    model.decoys.setValue(50)
    assert model.settings()["prefill"] == "biharmonic" and model.settings()["rim_lesions"] == 0.5
    model.arch.setCurrentIndex(model.arch.findData("pconv"))
    assert not model.isComplete() and "The prefill needs a gated network" in model.message.text()
    model.arch.setCurrentIndex(model.arch.findData("gconv_lap"))
    model.prefill.setCurrentIndex(model.prefill.findData("biharmonic-pet"))
    model.modality.setCurrentIndex(model.modality.findData("pet"))
    assert not model.isComplete() and "Biharmonic on PET only needs the PET-CT modality" in model.message.text()
    model.modality.setCurrentIndex(model.modality.findData("petct"))
    assert model.isComplete()
    assert {k: model.settings()[k] for k in ("prefill", "prefill_channels")} == {
        "prefill": "biharmonic", "prefill_channels": ["pet"]}
    wizard.training_page.out_dir.setText(str(tmp_path / "run"))
    settings = wizard.run_settings()
    settings["cases"] = [str(cases)]
    assert _load_run_config_from(settings, tmp_path).rim_lesions == 0.5  # the trainer accepts what the page wrote
    # A run.json with a prefill the list does not offer is kept as it is (a resume must not change it).
    model.load({"prefill": "harmonic", "rim_lesions": 0.3})
    assert model.prefill.currentText() == "As in run.json: harmonic" and model.settings()["prefill"] == "harmonic"
    assert model.settings()["rim_lesions"] == 0.3 and "prefill_channels" not in model.settings()
    model.load({"prefill": "biharmonic", "prefill_channels": ["pet"]})
    assert model.prefill.currentData() == "biharmonic-pet" and "rim_lesions" not in model.settings()


def test_smoothness_augmentation_reaches_run_json_and_comes_back(qtbot, tmp_path, cases):
    wizard, model = _on_model_page(qtbot, tmp_path, cases)
    assert not {"pet_smoothing_px", "ct_smoothing_px"} & set(model.settings())   # off: the paper's training
    model.smoothing["pet"].setValue(3.5)
    model.smoothing["ct"].setValue(1.2)
    assert model.isComplete()
    assert model.settings()["pet_smoothing_px"] == [0.0, 3.5] and model.settings()["ct_smoothing_px"] == [0.0, 1.2]
    model.modality.setCurrentIndex(model.modality.findData("pet"))
    assert not model.isComplete() and "CT smoothing needs a modality with CT" in model.message.text()
    model.smoothing["ct"].setValue(0.0)
    assert model.isComplete() and "ct_smoothing_px" not in model.settings()
    wizard.training_page.out_dir.setText(str(tmp_path / "run"))
    settings = wizard.run_settings()
    settings["cases"] = [str(cases)]
    assert _load_run_config_from(settings, tmp_path).pet_smoothing_px == (0.0, 3.5)  # the trainer accepts it
    # A run.json's own lower bound survives a round trip through the page (a resume must not change it).
    model.load({"modality": "petct", "pet_smoothing_px": [0.5, 2.0]})
    assert model.smoothing["pet"].value() == 2.0 and model.settings()["pet_smoothing_px"] == [0.5, 2.0]
    assert model.smoothing["ct"].value() == 0.0


def _load_run_config_from(settings: dict, folder: Path):
    path = folder / "wizard_run.json"
    path.write_text(json.dumps(settings))
    return load_run_config(path)
