"""Viewers: right slice, physical aspect, linked crosshair, wheel/slider, W/L presets, fusion, read-out."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from autopaint_app.gui.state import CT_PRESETS


def _click_voxel(qtbot, view, z, y, x):
    """Left-click the centre of voxel (z, y, x) in a view, as a user would."""
    col, row = view.scene_point_of(z, y, x)
    scene = view.view_box.mapViewToScene(pg_point(col, row))
    widget_pos = view.graphics.mapFromScene(scene)
    qtbot.mouseClick(view.graphics.viewport(), Qt.MouseButton.LeftButton, pos=widget_pos)


def pg_point(x, y):
    from PySide6.QtCore import QPointF

    return QPointF(x, y)


def test_views_show_the_crosshair_slices(demo_window):
    state, viewer = demo_window.state, demo_window.viewer
    ct = state.loaded.case.ct.array
    state.set_position(30, 100, 140)
    assert np.array_equal(viewer["axial"].items["CT"].image, ct[30])
    assert np.array_equal(viewer["coronal"].items["CT"].image, ct[:, 100, :])
    assert np.array_equal(viewer["sagittal"].items["CT"].image, ct[:, :, 140])
    assert np.array_equal(viewer["axial"].items["PET"].image, state.loaded.suv.array[30])
    assert viewer["axial"].slider.value() == 30 and viewer["coronal"].slider.value() == 100
    assert viewer["axial"].title.text() == "Axial  31/48"


def test_pixels_are_scaled_to_millimetres(demo_window):
    viewer = demo_window.viewer
    sx, sy, sz = demo_window.state.loaded.case.ct.spacing  # (1.6, 1.6, 6.25) mm
    expected = {"axial": (sx, sy), "coronal": (sx, sz), "sagittal": (sy, sz)}
    for plane, (scale_cols, scale_rows) in expected.items():
        for name in ("CT", "PET", "Final mask"):
            transform = viewer[plane].items[name].transform()
            assert (transform.m11(), transform.m22()) == pytest.approx((scale_cols, scale_rows), rel=1e-6)
        assert viewer[plane].view_box.state["aspectLocked"] == 1.0  # 1 mm across = 1 mm down
    # the coronal image is 48 slices x 6.25 mm = 300 mm tall and 256 x 1.6 = 409.6 mm wide
    rect = viewer["coronal"].items["CT"].mapRectToView(viewer["coronal"].items["CT"].boundingRect())
    assert (rect.width(), rect.height()) == pytest.approx((409.6, 300.0), rel=1e-5)


def test_clicking_axial_moves_coronal_and_sagittal(demo_window, qtbot):
    state, viewer = demo_window.state, demo_window.viewer
    qtbot.waitExposed(demo_window)
    _click_voxel(qtbot, viewer["axial"], 24, 90, 170)
    assert state.position == (24, 90, 170)
    assert viewer["coronal"].slider.value() == 90 and viewer["sagittal"].slider.value() == 170
    assert np.array_equal(viewer["sagittal"].items["CT"].image, state.loaded.case.ct.array[:, :, 170])
    col, row = viewer["coronal"].scene_point_of(*state.position)
    assert viewer["coronal"].v_line.value() == pytest.approx(col) and viewer["coronal"].h_line.value() == pytest.approx(row)
    assert col == pytest.approx(170.5 * 1.6, rel=1e-6) and row == pytest.approx(24.5 * 6.25)
    _click_voxel(qtbot, viewer["sagittal"], 10, 60, 170)  # sagittal: rows z, columns y
    assert state.position == (10, 60, 170)


def test_wheel_and_slider_step_slices(demo_window):
    state, viewer = demo_window.state, demo_window.viewer
    start = state.position
    viewer["axial"].view_box.slice_stepped.emit(1)
    assert state.position == (start[0] + 1, start[1], start[2])
    viewer["coronal"].slider.setValue(7)
    assert state.position[1] == 7
    viewer["axial"].step_slice(-1000)  # clipped at the first slice
    assert state.position[0] == 0


def test_window_level_presets_and_free_range(demo_window):
    state, panel, viewer = demo_window.state, demo_window.display_panel, demo_window.viewer
    panel.ct_preset.setCurrentText("Lung")
    assert state.ct_levels == CT_PRESETS["Lung"] == (-1350.0, 150.0)
    assert tuple(viewer["axial"].items["CT"].levels) == pytest.approx((-1350.0, 150.0))
    panel.ct_preset.setCurrentText("Bone")
    assert tuple(viewer["sagittal"].items["CT"].levels) == pytest.approx((-500.0, 1300.0))
    panel.ct_range.setValue((-200.0, 300.0))  # free adjustment
    assert state.ct_levels == (-200.0, 300.0) and panel.ct_preset.currentText() == "Custom"
    panel.pet_range.setValue((1.0, 8.0))
    assert tuple(viewer["coronal"].items["PET"].levels) == pytest.approx((1.0, 8.0))
    panel.pet_preset.setCurrentText("SUV 0-12")
    assert state.pet_levels == (0.0, 12.0) and tuple(panel.pet_range.value()) == (0.0, 12.0)


def test_fusion_slider_blends_ct_and_pet(demo_window):
    state, panel, viewer = demo_window.state, demo_window.display_panel, demo_window.viewer
    for value in (0, 25, 100):
        panel.fusion.setValue(value)
        assert state.fusion == pytest.approx(value / 100)
        for plane in ("axial", "coronal", "sagittal"):
            assert viewer[plane].items["PET"].opacity() == pytest.approx(value / 100)
            assert viewer[plane].items["CT"].opacity() == 1.0
    assert demo_window.layers_panel.sliders["PET"].value() == 100  # layers panel shows the same opacity
    demo_window.layers_panel.sliders["PET"].setValue(40)
    assert panel.fusion.value() == 40


def test_readout_shows_hu_suv_and_mm_for_the_hovered_voxel(demo_window):
    state, view = demo_window.state, demo_window.viewer["axial"]
    z, y, x = 24, 120, 100
    state.set_position(z, 0, 0)
    col, row = view.scene_point_of(z, y, x)
    view._on_scene_moved(view.view_box.mapViewToScene(pg_point(col, row)))
    ct, suv = state.loaded.case.ct, state.loaded.suv.array
    point = ct.index_to_physical(np.array([x, y, z], dtype=float))
    text = demo_window.readout.text()
    assert f"HU {ct.array[z, y, x]:.0f}" in text and f"SUV {suv[z, y, x]:.2f}" in text
    assert "mm ({:.1f}, {:.1f}, {:.1f})".format(*point) in text
    assert "mm (-44.0, -12.0, -266.9)" in text  # x -204 + 100 * 1.6, y -204 + 120 * 1.6, z -416.875 + 24 * 6.25
    view._on_scene_moved(view.view_box.mapViewToScene(pg_point(-50.0, -50.0)))
    assert demo_window.readout.text() == ""


def test_layers_panel_toggles_overlay_visibility(demo_window):
    view, panel = demo_window.viewer["axial"], demo_window.layers_panel
    assert panel.checks["Ground truth"].isEnabled() and not panel.checks["Final mask"].isEnabled()
    assert view.items["Organ of interest"].isVisible()
    panel.checks["Organ of interest"].setChecked(False)
    assert not view.items["Organ of interest"].isVisible()
    panel.sliders["Ground truth"].setValue(30)
    assert view.items["Ground truth"].opacity() == pytest.approx(0.3)
