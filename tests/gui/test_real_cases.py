"""Real patient data through the window: STS PET/CT (IBSI layout) and a CT-only lung case dropped as files."""

from __future__ import annotations

import numpy as np

from autopaint_app.core.io import read_volume

LOAD_TIMEOUT_MS = 60000


def test_sts_petct_opens_reviews_and_exports_on_the_ct_grid(window, qtbot, shared_data, tmp_path, dialogs):
    with qtbot.waitSignal(window.state.case_loaded, timeout=LOAD_TIMEOUT_MS):
        window.open_source(shared_data / "sts_petct" / "STS_001")
    state = window.state
    ct = state.loaded.case.ct
    assert state.loaded.case.files.layout == "ibsi_sts" and state.has_suv
    assert state.loaded.ooi is None  # no lung in a thigh: the baseline then covers the whole volume
    assert window.viewer["axial"].items["CT"].image.shape == ct.shape[1:]
    window.baseline_action.trigger()
    assert state.lesions and state.mask.sum() == int((state.loaded.suv.array >= 2.5).sum())
    truth = state.loaded.case.label.array > 0
    on_tumour = sorted(set(np.unique(state.lesion_labels[truth]).tolist()) - {0})
    assert on_tumour  # the sarcoma takes up FDG: some SUV >= 2.5 component overlaps the GTV
    others = [lesion.label for lesion in state.lesions if lesion.label not in on_tumour]
    state.set_lesions_accepted(others, False)  # the reader rejects everything off the tumour
    written = window.export_to(tmp_path)
    exported = read_volume(written["mask"])
    assert (exported.spacing, exported.origin, exported.direction, exported.shape) == \
        (ct.spacing, ct.origin, ct.direction, ct.shape)
    assert np.array_equal(exported.array > 0, np.isin(state.lesion_labels, on_tumour))
    assert dialogs.calls == []


def test_ct_only_case_from_dropped_files(window, qtbot, shared_data):
    files = [shared_data / "lung_ct" / "lung1_image.nrrd", shared_data / "lung_ct" / "lung1_label.nrrd"]
    with qtbot.waitSignal(window.state.case_loaded, timeout=LOAD_TIMEOUT_MS):
        window.open_source(files)
    state = window.state
    case = state.loaded.case
    assert case.pet is None and case.files.ct.name == "lung1_image.nrrd" and case.label.array.sum() == 837
    assert not window.baseline_action.isEnabled()  # no PET, no SUV baseline
    assert not window.viewer["axial"].items["PET"].isVisible()
    assert "Modality: CT" in window.case_header.text() and "PET units: no PET" in window.case_header.text()
    z, y, x = state.position
    text = state.voxel_readout(z, y, x)
    assert f"HU {case.ct.array[z, y, x]:.0f}" in text and "SUV" not in text
    transform = window.viewer["coronal"].items["CT"].transform()
    assert (transform.m11(), transform.m22()) == (case.ct.spacing[0], 5.0)


def test_whole_body_organ_of_interest_for_a_thigh_sarcoma(window, qtbot, shared_data):
    """No lung in a thigh: Segment > Organ of interest > Whole body puts the circles on the limb."""
    with qtbot.waitSignal(window.state.case_loaded, timeout=LOAD_TIMEOUT_MS):
        window.open_source(shared_data / "sts_petct" / "STS_008")
    state = window.state
    assert state.loaded.ooi is None and not window.body_ooi_action.isChecked()
    with qtbot.waitSignal(state.ooi_changed, timeout=LOAD_TIMEOUT_MS):
        window.body_ooi_action.trigger()
    truth = state.loaded.case.label.array > 0
    assert state.loaded.ooi_region == "body" and window.body_ooi_action.isChecked()
    assert state.loaded.ooi[truth].all()
    assert not state.loaded.ooi[:, :10, :].any()  # a circle radius (14.6 mm) inside the cropped field of view
    window.baseline_action.trigger()
    assert np.array_equal(state.mask > 0, (state.loaded.suv.array >= 2.5) & state.loaded.ooi)
    with qtbot.waitSignal(state.ooi_changed, timeout=LOAD_TIMEOUT_MS):
        window.change_site("hn")  # another site keeps the whole body, with that site's circle radius
    assert state.loaded.site == "hn" and state.loaded.ooi_region == "body" and state.loaded.ooi[truth].all()
    with qtbot.waitSignal(state.ooi_changed, timeout=LOAD_TIMEOUT_MS):
        window.body_ooi_action.trigger()  # back to the site's organ: the neck box is not in a thigh crop
    assert state.loaded.ooi_region == "site" and not window.body_ooi_action.isChecked()
