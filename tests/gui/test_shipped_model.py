"""AutoPaint in the window with the shipped lung PET-CT model on a small phantom (issue 5, item 8).

The model is the default one of the models folder (``models/``, or ``$AUTOPAINT_MODELS_DIR``) for
fast mode, which the app runs: ``core.model_store.default_model_path("lung", "petct", precision="auto")``
(the int8 twin when one is installed). The run is restricted to the phantom's
slice with the most tumour and to a stride of one radius (about a third of the default circles),
so it stays fast on a busy 2-core machine.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from autopaint_app.core.model_store import default_model_path
from autopaint_app.core.phantom import make_phantom, write_phantom
from tests.gui.pipeline_fakes import StallProbe, run_and_wait


@pytest.fixture(scope="module")
def small_phantom(tmp_path_factory):
    """A 16-slice chest phantom (160 x 160 px of 2.5 mm, 18.75 mm slices) with one lung tumour."""
    phantom = make_phantom("lung", seed=5, n_slices=16, in_plane=160, pixel_mm=2.5,
                           tumour_kinds=("lung-parenchymal",))
    return write_phantom(phantom, tmp_path_factory.mktemp("phantom") / "lung_5")


def test_shipped_model_segments_a_small_phantom(qtbot, tmp_path, dialogs, small_phantom, capsys):
    from autopaint_app.gui.main_window import MainWindow

    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.state.case_loaded, timeout=60000):
        window.open_source(small_phantom)
    state, pipeline = window.state, window.pipeline
    expected = default_model_path("lung", "petct", precision="auto", mode="fast").resolve()
    assert pipeline.model is not None and pipeline.model.path == expected
    assert pipeline.modality == "petct" and pipeline.model.channels == ("ct", "pet")
    truth = state.loaded.case.label.array > 0
    z = int(np.argmax(truth.sum(axis=(1, 2))))
    pipeline.set_slices((z,))
    pipeline.set_params(circle_stride_px=pipeline.params.circle_radius_px)

    probe = StallProbe()
    run_and_wait(qtbot, window, timeout_ms=120000)  # the pipeline runs in the worker thread
    qtbot.wait(200)
    wall, cpu = probe.stop()
    with capsys.disabled():
        print(f"\nshipped model, 1 slice: {pipeline.result.stats['seconds']['total']:.1f} s, event-loop stall "
              f"{wall.max() * 1000:.0f} ms wall, GUI-thread work {cpu.max() * 1000:.0f} ms, "
              f"load {os.getloadavg()[0]:.1f}")

    assert dialogs.calls == []
    assert sorted(pipeline.result.slices) == [z] and pipeline.result.stats["holes_inpainted"] > 0
    mask = state.mask
    assert mask is not None and mask.shape == truth.shape and mask.any()
    assert not np.delete(mask, z, axis=0).any()  # only the slice that ran
    assert (mask & truth).any()  # the tumour is found
    assert pipeline.provider == "CPU"
    assert window.provider_label.text().startswith(f"Model: {pipeline.model.name} on CPU · last run")
    table = window.lesion_panel.table
    assert table.rowCount() == len(state.lesions) > 0
    assert all(lesion.suv_max is not None and lesion.suv_max > 0 for lesion in state.lesions)
    assert cpu.max() <= 0.1  # the window's own work between two timer ticks (target 100 ms)
    window.runner.wait_idle(5000)
