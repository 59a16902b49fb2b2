"""AutoPaint in the window: live overlays, re-thresholding without inference, re-runs, cancel, Dice,
export of residual/inpainted volumes, a tiny ONNX model on the CPU, and the event-loop stall."""

from __future__ import annotations

import os

import numpy as np
import pytest

from autopaint_app.core import metrics
from autopaint_app.core.autopaint_overlays import CHOSEN_BIT, LEVEL_BITS, working_to_case_index
from autopaint_app.core.io import read_volume
from autopaint_app.gui.autopaint_jobs import ModelChoice
from autopaint_app.gui.pipeline_layers import CANDIDATES, CHOSEN, RESIDUAL, TOP_K, UNION, score_colours
from tests.core.tiny_onnx import build_model, write_card
from tests.gui.pipeline_fakes import TUMOUR_SLICES, MedianFill, StallProbe, run_and_wait, use_fake


@pytest.fixture
def fake(demo_window) -> MedianFill:
    return use_fake(demo_window)


@pytest.fixture
def ran(demo_window, fake, qtbot):
    """The demo window after one AutoPaint run on the tumour slices."""
    run_and_wait(qtbot, demo_window)
    return demo_window


def test_overlays_fill_in_slice_by_slice(demo_window, fake, qtbot, dialogs):
    layers, seen = demo_window.state.layers, []

    def record(z):  # what the layers hold when each slice arrives
        seen.append((z, sorted(layers[CANDIDATES].data), int((layers[RESIDUAL].data != 0).any(axis=(1, 2)).sum())))

    demo_window.pipeline.slice_processed.connect(record)
    run_and_wait(qtbot, demo_window)
    assert dialogs.calls == []
    assert [z for z, _, _ in seen] == list(TUMOUR_SLICES)
    # phase 1 draws every slice's scored circles before phase 2 decides the slices one by one
    assert [circles for _, circles, _ in seen] == [list(TUMOUR_SLICES)] * len(TUMOUR_SLICES)
    residual_counts = [count for _, _, count in seen]
    assert residual_counts == sorted(residual_counts) and residual_counts[0] <= 1
    result = demo_window.pipeline.result
    assert sorted(result.slices) == list(TUMOUR_SLICES)
    with_candidates = [z for z, s in result.slices.items() if s.has_candidates]
    assert with_candidates, "the median fill should flag the tumour circles"
    z = with_candidates[0]
    s = result.slices[z]
    levels = layers[UNION].data[z]
    assert layers[UNION].data is layers[CHOSEN].data  # one label volume for union, dilations, chosen
    assert (levels & LEVEL_BITS).max() == 1 + len(result.params.dilation_widths_px)
    assert ((levels & CHOSEN_BIT) > 0).any() and s.chosen is not None
    # the final mask: the core's, handed to the lesion review
    state = demo_window.state
    assert np.array_equal(state.mask, result.mask(result.params.threshold))
    assert state.mask_source.startswith("AutoPaint (median fill")
    assert demo_window.lesion_panel.table.rowCount() == len(state.lesions) > 0
    # circles in the axial view: in millimetres, one per circle, top-k on top
    state.set_position(z, 128, 128)
    view = demo_window.viewer["axial"]
    scatter = view.items[CANDIDATES]
    assert len(scatter.data) == len(s.centres) and len(view.items[TOP_K].data) == len(s.candidates)
    rows_cols = working_to_case_index(result.grid, s.centres[:1])[0]
    expected_mm = ((rows_cols[1] + 0.5) * 1.6, (rows_cols[0] + 0.5) * 1.6)
    assert (scatter.data["x"][0], scatter.data["y"][0]) == pytest.approx(expected_mm, rel=1e-6)
    assert scatter.opts["size"] == pytest.approx(2 * 27 * result.grid.pixel_size_mm)
    assert view.items[RESIDUAL].isVisible() and view.items[RESIDUAL].image.shape == (256, 256, 4)
    assert "median fill on in-memory predictor" in demo_window.provider_label.text()
    assert "last run" in demo_window.provider_label.text()


def test_coronal_and_sagittal_views_show_circle_chords_and_masks(ran):
    """A circle crossing the crosshair row is a segment in the coronal view: its chord, in mm, at its
    slice's height, in its score colour; planes missing every circle show none."""
    state, result, viewer = ran.state, ran.pipeline.result, ran.viewer
    sx, sy, sz = state.loaded.case.ct.spacing  # (1.6, 1.6, 6.25) mm
    radius_mm = result.params.circle_radius_px * result.grid.pixel_size_mm
    z = TUMOUR_SLICES[1]
    centres = working_to_case_index(result.grid, result.slices[z].centres)  # (n, 2) continuous (row, col)
    row, col = centres[len(centres) // 2]
    y0 = int(round(row))
    state.set_position(z, y0, int(round(col)))
    chords = viewer["coronal"].items[CANDIDATES].chords
    half = np.sqrt(radius_mm ** 2 - ((y0 - row) * sy) ** 2)
    expected = [(col + 0.5) * sx - half, (z + 0.5) * sz, (col + 0.5) * sx + half, (z + 0.5) * sz]
    match = np.flatnonzero(np.all(np.isclose(chords.segments, expected, atol=1e-6), axis=1))
    assert len(match) == 1 and half > radius_mm - 1.0
    index_in_slice = len(centres) // 2
    assert np.array_equal(chords.colours[match[0]], score_colours(result.slices[z].scores)[index_in_slice])
    crossing = sum(int((np.abs((y0 - working_to_case_index(result.grid, result.slices[k].centres)[:, 0]) * sy)
                        < radius_mm).sum()) for k in TUMOUR_SLICES)
    assert len(chords) == crossing and set(chords.segments[:, 1]) == {(k + 0.5) * sz for k in TUMOUR_SLICES}
    assert viewer["coronal"].items[CANDIDATES].isVisible()
    # the kept (top-k) circles: thick chords where the plane crosses the best one
    best_row = working_to_case_index(result.grid, result.slices[z].centres[result.slices[z].candidates[:1]])[0, 0]
    state.set_position(z, int(round(best_row)), int(round(col)))
    top_k = viewer["coronal"].items[TOP_K].chords
    assert 0 < len(top_k) <= len(viewer["coronal"].items[CANDIDATES].chords) and top_k.width == 2.5
    state.set_position(z, y0, int(round(col)))
    # sagittal: the same circle cut along its column
    x0 = int(round(col))
    sagittal = viewer["sagittal"].items[CANDIDATES].chords
    half = np.sqrt(radius_mm ** 2 - ((x0 - col) * sx) ** 2)
    expected = [(row + 0.5) * sy - half, (z + 0.5) * sz, (row + 0.5) * sy + half, (z + 0.5) * sz]
    assert np.all(np.isclose(sagittal.segments, expected, atol=1e-6), axis=1).sum() == 1
    # a plane that misses every circle: nothing drawn
    state.set_position(z, 0, 0)
    assert len(viewer["coronal"].items[CANDIDATES].chords) == 0
    assert not viewer["coronal"].items[CANDIDATES].isVisible()
    # the raster layers show in the coronal plane too (through the best kept circle), on the run's slices only
    state.set_position(z, int(round(best_row)), x0)
    for name in (RESIDUAL, UNION):
        image = viewer["coronal"].items[name].image
        assert image.shape == (48, 256, 4) and viewer["coronal"].items[name].isVisible()
        drawn_rows = np.flatnonzero(image[..., 3].any(axis=1))
        assert len(drawn_rows) and set(drawn_rows) <= set(TUMOUR_SLICES)


def test_threshold_and_min_radius_resegment_without_inference(ran, fake, qtbot):
    state, panel, result = ran.state, ran.tuning_panel, ran.pipeline.result
    calls = fake.calls
    panel.threshold.setValue(0.3)
    assert ran.pipeline.threshold == 0.3
    assert np.array_equal(state.mask, result.mask(0.3)) and state.mask_source.endswith("threshold 0.30, min radius 7 px)")
    panel.threshold.setValue(0.05)
    assert np.array_equal(state.mask, result.mask(0.05))
    with qtbot.waitSignal(ran.pipeline.segmentation_updated, timeout=10000):
        panel.min_radius.setValue(25.0)
    assert np.array_equal(state.mask, result.mask(0.05, 25.0))
    assert not state.mask.any() or result.kept_slices(min_radius_px=25.0)
    assert fake.calls == calls  # no inference at all
    assert ran.pipeline.result is result


def test_radius_change_reruns_detection_once(ran, fake, qtbot):
    first, calls, started = ran.pipeline.result, fake.calls, []
    ran.pipeline.run_started.connect(lambda: started.append(1))
    with qtbot.waitSignal(ran.pipeline.run_finished, timeout=30000):
        ran.tuning_panel.radius.setValue(22)
        ran.tuning_panel.radius.setValue(20)  # within the debounce pause: one run
    assert len(started) == 1 and fake.calls > calls
    assert ran.pipeline.result is not first and ran.pipeline.result.params.circle_radius_px == 20
    z = next(iter(ran.pipeline.result.slices))
    assert ran.state.layers[CANDIDATES].data[z].radius_mm == pytest.approx(20 * first.grid.pixel_size_mm)
    ran.tuning_panel.stride.setValue(40)  # 40 > 20 * sqrt(2): refused, said in the panel
    assert "circle_stride_px" in ran.tuning_panel.message.text() and ran.pipeline.params.circle_stride_px == 15


def test_cancel_mid_run_keeps_the_previous_result(ran, fake, qtbot):
    pipeline, state = ran.pipeline, ran.state
    result, mask, lesions = pipeline.result, state.mask, list(state.lesions)
    previous_levels = state.layers[UNION].data
    with qtbot.waitSignal(pipeline.slice_processed, timeout=30000):
        ran.tuning_panel.run()
    with qtbot.waitSignal(pipeline.slice_processed, timeout=30000):
        ran.tuning_panel.run()  # supersedes the partial run: the finished one stays "previous"
    assert pipeline.running and ran.cancel_button.isVisible()
    assert state.layers[UNION].data is not previous_levels  # the live run's own volumes
    with qtbot.waitSignal(pipeline.run_stopped, timeout=5000):
        ran.cancel_button.click()
    assert ran.runner.wait_idle(10000)
    qtbot.wait(50)  # queued late items, if any, arrive now and must be ignored
    assert not pipeline.running and pipeline.result is result
    assert state.mask is mask and state.lesions == lesions
    assert state.layers[UNION].data is previous_levels
    assert np.array_equal(state.layers["Final mask"].data, state.accepted_mask())
    assert ran.tuning_panel.run_button.isEnabled() and not ran.tuning_panel.cancel_button.isEnabled()
    calls = fake.calls
    qtbot.wait(100)
    assert fake.calls == calls


def test_dice_precision_recall_update_live(ran):
    state, panel = ran.state, ran.tuning_panel
    truth = state.loaded.case.label.array > 0

    def expected():
        mask = state.accepted_mask()
        return (f"Dice {metrics.dice(mask, truth):.3f} · precision {metrics.precision(mask, truth):.3f} · "
                f"recall {metrics.recall(mask, truth):.3f}")

    assert panel.scores.text() == expected()
    before = panel.scores.text()
    panel.threshold.setValue(0.02)
    assert panel.scores.text() == expected() != before
    state.set_lesion_accepted(state.lesions[0].label, False)  # rejecting a lesion counts too
    assert panel.scores.text() == expected()


def test_export_writes_residual_and_inpainted_on_the_ct_grid(ran, tmp_path, dialogs):
    written = ran.export_to(tmp_path)
    assert set(written) == {"mask", "table", "residual", "inpainted_ct", "inpainted_pet"}
    ct = ran.state.loaded.case.ct
    result = ran.pipeline.result
    for key in ("mask", "residual", "inpainted_ct", "inpainted_pet"):
        volume = read_volume(written[key])
        assert volume.shape == ct.shape
        assert (volume.spacing, volume.origin, volume.direction) == (ct.spacing, ct.origin, ct.direction)
    residual = read_volume(written["residual"]).array
    assert residual.dtype == np.float32 and np.array_equal(residual, result.residual_volume().array)
    assert np.array_equal(read_volume(written["mask"]).array > 0, residual > result.params.threshold)
    inpainted_ct = read_volume(written["inpainted_ct"]).array
    changed = inpainted_ct != ct.array.astype(np.float32)
    assert changed.any() and np.isin(np.flatnonzero(changed.any(axis=(1, 2))), TUMOUR_SLICES).all()
    assert ran.export_to(tmp_path) is not None  # second time: asked once, answer Yes
    assert len(dialogs.texts("question")) == 1 and "residual" in dialogs.texts("question")[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written.values())


def test_tiny_onnx_model_runs_on_the_cpu(demo_window, qtbot, tmp_path, dialogs):
    model = tmp_path / "tiny_petct_fill.onnx"
    build_model(model)
    write_card(model.with_suffix(".json"))
    choice = demo_window.pipeline.add_model_file(model)
    assert choice.channels == ("ct", "pet") and demo_window.tuning_panel.model.currentText().startswith(
        "tiny_petct_fill (CT+PET)")
    demo_window.pipeline.set_slices((38,))
    run_and_wait(qtbot, demo_window, timeout_ms=60000)
    assert dialogs.calls == []
    assert demo_window.pipeline.provider == "CPU"
    assert demo_window.provider_label.text().startswith("Model: tiny_petct_fill on CPU · last run")
    assert sorted(demo_window.pipeline.result.slices) == [38]


def test_window_stays_responsive_during_a_run(demo_window, qtbot, capsys):
    """Longest gap between 10 ms timer ticks while a cost-matched run works, its end included: the GUI
    thread's own work between two ticks (CPU time, independent of the machine's load) must stay
    within the 100 ms target; the wall-clock gap (what the user sees, load included) is printed."""
    fake = use_fake(demo_window, MedianFill(seconds_per_item=0.002))
    probe = StallProbe()
    run_and_wait(qtbot, demo_window, timeout_ms=60000)
    qtbot.wait(300)  # the end of the run (final mask, lesion table, redraws) counts too
    wall, cpu = probe.stop()
    with capsys.disabled():
        print(f"\nevent-loop stall during AutoPaint: longest {wall.max() * 1000:.0f} ms wall "
              f"(p99 {np.percentile(wall, 99) * 1000:.0f} ms), GUI-thread work {cpu.max() * 1000:.0f} ms, "
              f"over {len(wall)} ticks, {fake.items} holes, load {os.getloadavg()[0]:.1f}")
    assert len(wall) > 50 and fake.calls > 0
    # Inference, mapping, lesion measuring or too much drawing on the GUI thread fails this. The wall
    # gap is not asserted: on 2 cores shared with a training run it reaches ~1 s while this is ~20 ms.
    assert cpu.max() <= 0.1


def test_failures_are_dialogs_and_leave_the_state_alone(ran, dialogs, qtbot):
    pipeline, state = ran.pipeline, ran.state
    result, mask = pipeline.result, state.mask
    pipeline.set_modality("pet")  # the fake model takes CT+PET
    ran.run_action.trigger()
    pipeline.set_modality("petct")
    assert "takes CT+PET but the modality is PET" in dialogs.texts("warning")[0] and not pipeline.running

    def broken(image, mask):  # RuntimeError: what superqt would swallow without the runner's wrapper
        raise RuntimeError("GPU fell off the bus")

    pipeline.add_model(ModelChoice("broken", predictor=broken, channels=("ct", "pet")))
    with qtbot.waitSignal(pipeline.run_stopped, timeout=30000):
        ran.run_action.trigger()
    assert dialogs.texts("critical") == ["RuntimeError: GPU fell off the bus"]
    assert pipeline.result is result and state.mask is mask and not pipeline.running


def test_min_lesion_volume_drops_small_lesions_without_inference(ran, fake, qtbot):
    from autopaint_app.core.lesions import lesion_table

    state, panel, result, pipeline = ran.state, ran.tuning_panel, ran.pipeline.result, ran.pipeline
    calls = fake.calls
    spacing = state.loaded.reference.spacing
    volumes = [row.volume_ml for row in lesion_table(state.mask, None, spacing)]
    assert volumes  # the fake finds the demo tumour (about 52 ml)
    before = state.mask.copy()
    below, above = round(min(volumes) - 1, 2), round(max(volumes) + 1, 2)
    with qtbot.waitSignal(pipeline.segmentation_updated, timeout=10000):
        panel.min_lesion.setValue(above)  # larger than every lesion: nothing left
    assert pipeline.params.min_lesion_ml == above and not state.mask.any()
    assert state.mask_source.endswith(f"lesions ≥ {above:g} ml)")
    with qtbot.waitSignal(pipeline.segmentation_updated, timeout=10000):
        panel.min_lesion.setValue(below)  # smaller than every lesion: the mask of the run
    assert np.array_equal(state.mask, before)
    assert np.array_equal(state.mask, result.mask(pipeline.threshold, pipeline.params.min_tumour_radius_px,
                                                  min_lesion_ml=below))
    assert fake.calls == calls  # no inference
    pipeline.set_site("hn")  # a new site preset keeps the user's minimum lesion volume
    assert pipeline.params.min_lesion_ml == below
