"""Lesion review and export: baseline table, jump to lesion, reject -> excluded, overwrite prompt, PNG."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from autopaint_app.core import baselines
from autopaint_app.core.io import read_volume
from autopaint_app.core.lesions import lesion_table


@pytest.fixture
def baseline_window(demo_window):
    demo_window.baseline_action.trigger()
    return demo_window


def test_baseline_table_matches_core_lesion_table(baseline_window):
    state, panel = baseline_window.state, baseline_window.lesion_panel
    loaded = state.loaded
    expected_mask = baselines.suv_threshold(loaded.suv.array, loaded.ooi)
    expected = lesion_table(expected_mask, loaded.suv.array, loaded.case.ct.spacing)
    assert np.array_equal(state.mask, expected_mask) and state.lesions == expected
    table = panel.table
    assert table.rowCount() == len(expected) == 73
    for lesion in expected:
        row = panel.row_of(lesion.label)
        cells = [table.item(row, column).text() for column in range(1, 8)]
        assert cells == [str(lesion.label), f"{lesion.volume_ml:.2f}", f"{lesion.suv_max:.2f}",
                         f"{lesion.suv_mean:.2f}", f"{lesion.suv_peak:.2f}", f"{lesion.tlg:.1f}",
                         f"{lesion.z_range[0] + 1}–{lesion.z_range[1] + 1}"]
    largest = max(expected, key=lambda lesion: lesion.volume_ml)
    assert panel.label_at(0) == largest.label  # sorted by volume, largest first
    assert "Baseline: SUV ≥ 2.5: 73 lesions, 73 kept" in panel.summary.text()
    assert baseline_window.export_action.isEnabled()


def test_clicking_a_row_jumps_to_the_lesion(baseline_window, qtbot):
    state, panel = baseline_window.state, baseline_window.lesion_panel
    lesion = state.lesions[panel.label_at(0) - 1]
    rect = panel.table.visualItemRect(panel.table.item(0, 2))
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert state.position == lesion.hottest_zyx
    assert baseline_window.viewer["axial"].slider.value() == lesion.hottest_zyx[0]


def test_rejected_lesion_is_left_out_of_the_export(baseline_window, tmp_path, dialogs):
    state, panel = baseline_window.state, baseline_window.lesion_panel
    largest = panel.label_at(0)
    panel.table.item(0, 0).setCheckState(Qt.CheckState.Unchecked)  # the user unticks "Keep"
    assert state.rejected == {largest}
    assert "73 lesions, 72 kept" in panel.summary.text()
    view = baseline_window.viewer["axial"]
    state.jump_to_lesion(largest)
    assert view.items["Rejected lesions"].isVisible()

    written = baseline_window.export_to(tmp_path)
    assert dialogs.calls == []  # nothing to replace, nothing asked
    mask = read_volume(written["mask"])
    ct = state.loaded.case.ct
    assert mask.shape == ct.shape
    assert (mask.spacing, mask.origin, mask.direction) == (ct.spacing, ct.origin, ct.direction)
    assert mask.array.dtype == np.uint8
    rejected_voxels = state.lesion_labels == largest
    assert not mask.array[rejected_voxels].any()
    assert np.array_equal(mask.array > 0, state.mask & ~rejected_voxels)
    with open(written["table"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 73
    assert [row["lesion"] for row in rows if row["accepted"] == "False"] == [str(largest)]
    assert written["mask"].name == "demo_case_mask.nii.gz" and written["table"].name == "demo_case_lesions.csv"


def test_export_asks_before_overwriting(baseline_window, tmp_path, dialogs):
    first = baseline_window.export_to(tmp_path)
    before = first["mask"].read_bytes()
    baseline_window.lesion_panel.reject_all.click()
    dialogs.answer = QMessageBox.StandardButton.No
    assert baseline_window.export_to(tmp_path) is None
    assert len(dialogs.texts("question")) == 1 and str(first["mask"]) in dialogs.texts("question")[0]
    assert first["mask"].read_bytes() == before  # declined: untouched
    dialogs.answer = QMessageBox.StandardButton.Yes
    second = baseline_window.export_to(tmp_path)
    assert not read_volume(second["mask"]).array.any()  # every lesion rejected -> empty mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_case_lesions.csv", "demo_case_mask.nii.gz"]


def test_screenshot_is_written_as_png(demo_window, tmp_path, dialogs):
    path = demo_window.save_screenshot(tmp_path / "view.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    assert demo_window.save_screenshot(tmp_path / "view.png") is not None  # default answer Yes
    assert len(dialogs.texts("question")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.png"]  # no temporary files left


def test_export_without_mask_says_so(demo_window, tmp_path, dialogs):
    assert demo_window.export_to(tmp_path) is None
    assert dialogs.texts("information") == ["There is no result mask yet."]
    assert list(tmp_path.iterdir()) == []
