"""Opening cases: demo through the worker, drag-and-drop, recent list, bad input -> dialog, cancel."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from autopaint_app.core.errors import InputError
from autopaint_app.core.phantom import ensure_demo_case
from autopaint_app.gui import file_actions
from autopaint_app.gui.case_jobs import Progress, assign_roles, case_files_for, role_from_name

LOAD_TIMEOUT_MS = 30000


def test_demo_opens_through_worker_and_fills_header(window, qtbot):
    with qtbot.waitSignal(window.state.case_loaded, timeout=LOAD_TIMEOUT_MS):
        window.demo_action.trigger()
    state = window.state
    assert state.loaded.case.case_id == "demo_case"
    assert state.shape == (48, 256, 256)
    assert state.position == (24, 128, 128)  # centred
    assert state.loaded.suv.same_grid(state.loaded.case.ct)  # PET resampled onto the CT grid
    assert state.loaded.ooi is not None and state.loaded.ooi.sum() > 100000
    header = window.case_header.text()
    assert "Modality: PET-CT" in header and "PET units: SUV" in header and "Label: loaded" in header
    assert "256 x 256 x 48 voxels, 1.60 x 1.60 x 6.25 mm" in header
    assert window.windowTitle().endswith("demo_case")
    assert window.baseline_action.isEnabled() and not window.export_action.isEnabled()
    qtbot.waitUntil(lambda: not window.runner.is_busy, timeout=5000)
    assert window.progress.isHidden()
    recent = file_actions.recent_sources(window.settings)
    assert recent == [[str(ensure_demo_case().resolve())]]
    assert [a.text() for a in window.recent_menu.actions()] == [str(ensure_demo_case().resolve())]


def test_bad_file_shows_dialog_naming_it_and_window_stays_usable(window, qtbot, dialogs, tmp_path, demo_loaded):
    bad = tmp_path / "ct.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file")
    with qtbot.waitSignal(window.runner.job_finished, timeout=LOAD_TIMEOUT_MS):
        window.open_source(bad)
    texts = dialogs.texts("critical")
    assert len(texts) == 1 and str(bad) in texts[0] and "corrupt" in texts[0]
    assert window.state.loaded is None and not window.runner.is_busy
    assert window.open_files_action.isEnabled() and window.progress.isHidden()
    assert file_actions.recent_sources(window.settings) == []  # failures are not remembered
    # still usable: a good case opens afterwards, and the baseline runs on it
    window.state.set_loaded_case(demo_loaded)
    window.baseline_action.trigger()
    assert window.state.lesions


def test_missing_and_ambiguous_folders_are_errors(window, qtbot, dialogs, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ct.nii.gz").write_bytes(b"x")
    with qtbot.waitSignal(window.runner.job_finished, timeout=LOAD_TIMEOUT_MS):
        window.open_source(tmp_path)
    with qtbot.waitSignal(window.runner.job_finished, timeout=LOAD_TIMEOUT_MS):
        window.open_source(tmp_path / "missing.nii.gz")
    first, second = dialogs.texts("critical")
    assert first == f"{tmp_path}: holds 2 cases (a, b); open one case folder"
    assert second.startswith(f"{tmp_path / 'missing.nii.gz'}: ")


def test_dropping_files_assigns_roles_and_opens(window, qtbot):
    folder = ensure_demo_case()
    urls = [QUrl.fromLocalFile(str(folder / name)) for name in ("pet.nii.gz", "label.nii.gz", "ct.nii.gz")]
    mime = QMimeData()
    mime.setUrls(urls)
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.state.case_loaded, timeout=LOAD_TIMEOUT_MS):
        window.dropEvent(event)
    files = window.state.loaded.case.files
    assert (files.layout, files.ct.name, files.pet.name, files.label.name) == ("files", "ct.nii.gz", "pet.nii.gz",
                                                                               "label.nii.gz")
    assert files.case_id == "ct"
    assert len(file_actions.recent_sources(window.settings)[0]) == 3


def test_role_assignment_by_name_and_conflicts(tmp_path):
    assert [role_from_name(Path(n)) for n in ("CT.nii.gz", "patient_PET.nii", "SUV.nii.gz", "CT_mask.nii.gz",
                                                "case_0000.nii.gz", "case_0001.nii.gz", "ooi.nii.gz", "x.nii")] \
        == ["ct", "pet", "pet", "label", "ct", "pet", "ooi", None]
    files = assign_roles([tmp_path / "a_ct.nii.gz", tmp_path / "a_pet.nii.gz"])
    assert (files.ct.name, files.pet.name, files.pet_units) == ("a_ct.nii.gz", "a_pet.nii.gz", "SUV")
    with pytest.raises(InputError, match="both this file and ct1.nii.gz look like the CT"):
        assign_roles([tmp_path / "ct1.nii.gz", tmp_path / "ct2.nii.gz"])
    assert case_files_for(ensure_demo_case()).layout == "autopaint"


def test_cancel_stops_job_and_drops_its_result(window, qtbot):
    results, items = [], []

    def slow_job(steps):
        for step in range(steps):
            time.sleep(0.02)
            yield Progress(step + 1, steps, f"step {step + 1}")
        return "finished"

    with qtbot.waitSignal(window.runner.job_cancelled, timeout=10000):
        window.runner.run("Slow", slow_job, 500, on_item=items.append, on_result=results.append)
        qtbot.waitUntil(lambda: len(items) >= 3, timeout=5000)
        assert window.cancel_button.isVisible()
        window.cancel_button.click()
    qtbot.waitUntil(lambda: not window.runner.is_busy, timeout=5000)
    assert results == [] and 3 <= len(items) < 500
    assert window.progress.isHidden()


def test_progress_reports_eta(window, qtbot):
    reports = []
    window.runner.progress_changed.connect(lambda *args: reports.append(args))

    def job():
        for step in range(4):
            time.sleep(0.01)
            yield Progress(step + 1, 4, "working")
        return 1

    with qtbot.waitSignal(window.runner.job_finished, timeout=10000):
        window.runner.run("Job", job)
    assert [r[0] for r in reports] == [1, 2, 3, 4] and all(r[1] == 4 for r in reports)
    assert reports[0][3] > 0 and reports[-1][3] == 0.0  # seconds left: positive, then none
    assert np.isfinite(reports[0][3])


def test_entry_point_parses_its_options(capsys):
    from autopaint_app.gui.app import build_parser, main

    args = build_parser().parse_args(["--demo"])
    assert args.demo and args.paths == []
    assert build_parser().parse_args(["ct.nii.gz", "pet.nii.gz"]).paths == ["ct.nii.gz", "pet.nii.gz"]
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--demo" in capsys.readouterr().out
