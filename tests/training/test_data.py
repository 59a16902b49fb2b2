"""Training data: healthy slices only, patient-wise split, crops, fixed validation set, run.json."""

import json
import logging

import numpy as np
import pytest

from autopaint_app.core.errors import InputError
from autopaint_app.core.phantom import make_phantom, write_phantom
from autopaint_app.core.preprocess import ct_to_unit, pet_to_unit
from autopaint_app.core.presets import LUNG
from autopaint_app.training import data as data_module
from autopaint_app.training.config import CaseEntry, RunConfig, load_run_config
from autopaint_app.training.data import (CropSampler, fixed_validation_set, healthy_slice_mask, load_slices,
                                         split_patients)


@pytest.fixture(scope="module")
def phantom_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    made = {}
    for seed, healthy in ((1, False), (2, True)):
        phantom = make_phantom("lung", seed, healthy=healthy, in_plane=128, n_slices=16)
        made[seed] = (write_phantom(phantom, root / f"lung_{seed}"), phantom)
    return made


def test_healthy_slice_mask_excludes_tumour_slices_and_the_z_margin():
    label = np.zeros((10, 4, 4), dtype=np.uint8)
    label[4, 1, 1] = 1
    assert np.flatnonzero(~healthy_slice_mask(label, 10, 3.0)).tolist() == [4]
    assert np.flatnonzero(~healthy_slice_mask(label, 10, 3.0, margin_mm=6.0)).tolist() == [2, 3, 4, 5, 6]
    assert healthy_slice_mask(None, 10, 3.0) is None
    assert healthy_slice_mask(None, 10, 3.0, flagged_healthy=True).all()


def test_no_returned_slice_meets_the_tumour_label(phantom_folders):
    folder, phantom = phantom_folders[1]
    tumour_slices = set(np.flatnonzero(phantom.label.array.any(axis=(1, 2))).tolist())
    assert tumour_slices, "the diseased phantom must have tumour slices for this test to mean anything"
    (case,) = load_slices([CaseEntry(str(folder))], "lung", "petct", restrict_to_ooi=False, tumour_margin_mm=0.0)
    kept = set(case.slice_indices.tolist())
    assert kept and not kept & tumour_slices
    assert kept == set(range(16)) - tumour_slices  # every healthy slice kept without OOI restriction
    assert case.n_tumour_excluded == len(tumour_slices)
    assert case.images.dtype == np.float16 and case.images.shape == (len(kept), 2, 512, 512)


def test_channels_are_ct_then_pet_in_unit_range(phantom_folders):
    folder, phantom = phantom_folders[2]
    (petct,) = load_slices([CaseEntry(str(folder))], "lung", "petct", restrict_to_ooi=False, max_slices=4)
    (ct,) = load_slices([CaseEntry(str(folder))], "lung", "ct", restrict_to_ooi=False, max_slices=4)
    (pet,) = load_slices([CaseEntry(str(folder))], "lung", "pet", restrict_to_ooi=False, max_slices=4)
    assert petct.images.shape[1] == 2 and ct.images.shape[1] == 1 and pet.images.shape[1] == 1
    np.testing.assert_array_equal(petct.images[:, 0], ct.images[:, 0])
    np.testing.assert_array_equal(petct.images[:, 1], pet.images[:, 0])
    # The CT channel is the windowed HU: its maximum matches the CT's brightest voxel in the window.
    z = int(ct.slice_indices[1])
    expected = ct_to_unit(phantom.ct.array[z], LUNG).max()
    assert abs(float(ct.images[1, 0].max()) - expected) < 0.02
    assert float(pet.images.max()) <= 1.0 and float(pet.images.min()) >= 0.0
    assert float(pet.images.max()) > pet_to_unit(np.array(1.0), LUNG)  # real uptake, not empty


def test_ooi_restriction_keeps_only_slices_meeting_the_lungs_and_max_slices_bounds(phantom_folders):
    folder, _ = phantom_folders[2]
    (every,) = load_slices([CaseEntry(str(folder))], "lung", "ct", restrict_to_ooi=False)
    (lungs,) = load_slices([CaseEntry(str(folder))], "lung", "ct", restrict_to_ooi=True)
    assert set(lungs.slice_indices) <= set(every.slice_indices)
    assert lungs.ooi_cells is not None and lungs.ooi_cells.any(axis=(1, 2)).all()
    (few,) = load_slices([CaseEntry(str(folder))], "lung", "ct", restrict_to_ooi=False, max_slices=5)
    assert len(few.slice_indices) == 5 and few.slice_indices[0] == 0 and few.slice_indices[-1] == 15


def test_case_without_label_needs_the_healthy_flag(tmp_path, phantom_folders, caplog):
    folder, _ = phantom_folders[2]
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("ct.nii.gz", "pet.nii.gz"):
        (bare / name).write_bytes((folder / name).read_bytes())
    with caplog.at_level(logging.INFO, logger="autopaint_app.training.data"):
        with pytest.raises(InputError, match="no usable healthy slice"):
            load_slices([CaseEntry(str(bare))], "lung", "ct", restrict_to_ooi=False)
        assert "no tumour label and its folder is not flagged healthy" in caplog.text
        (case,) = load_slices([CaseEntry(str(bare), healthy=True)], "lung", "ct", restrict_to_ooi=False)
        assert "flagged healthy: every slice is used" in caplog.text
    assert len(case.slice_indices) == 16


def test_patient_wise_split_is_disjoint_deterministic_and_keeps_twins_together():
    ids = [f"P{i}" for i in range(10)] + ["P3", "P3"]  # three cases of patient P3
    train, val = split_patients(ids, 0.3, seed=5)
    assert set(train).isdisjoint(val) and set(train) | set(val) == {f"P{i}" for i in range(10)}
    assert len(val) == 3 and (train, val) == split_patients(ids, 0.3, seed=5)
    assert split_patients(ids, 0.3, seed=6) != (train, val)
    assert split_patients(["A", "B"], 0.01, seed=0)[1] in (["A"], ["B"])
    with pytest.raises(InputError, match="at least 2 patients"):
        split_patients(["A", "A"], 0.5, seed=0)


def test_forced_split_holds_out_the_named_patients_and_fills_the_rest_at_random():
    ids = [f"P{i}" for i in range(10)]
    train, val = split_patients(ids, 0.3, seed=5, forced={"P0": "val", "P1": "train"})
    assert "P0" in val and "P1" in train and len(val) == 3
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(ids)
    assert split_patients(["A", "B"], 0.5, seed=0, forced={"B": "val"}) == (["A"], ["B"])
    assert split_patients(["A", "B", "C"], 0.2, seed=0, forced={"A": "val", "B": "val"}) == (["C"], ["A", "B"])
    with pytest.raises(InputError, match="no training patient"):
        split_patients(["A", "B"], 0.5, seed=0, forced={"A": "val", "B": "val"})


def test_crops_have_the_crop_shape_unit_range_and_avoid_air(phantom_folders):
    folder, _ = phantom_folders[2]
    cases = load_slices([CaseEntry(str(folder))], "lung", "petct", restrict_to_ooi=True)
    sampler = CropSampler(cases, 128)
    images, masks = sampler.batch(16, np.random.default_rng(0))
    assert images.shape == (16, 2, 128, 128) and images.dtype == np.float32
    assert masks.shape == (16, 1, 128, 128) and set(np.unique(masks)) == {0.0, 1.0}
    assert 0.0 <= images.min() and images.max() <= 1.0
    # Centred in the body: no crop is (nearly) all air on the CT channel.
    assert (images[:, 0].mean(axis=(1, 2)) > 0.1).all()
    again, _ = CropSampler(cases, 128).batch(16, np.random.default_rng(0))
    np.testing.assert_array_equal(images, again)


def test_fixed_validation_set_is_reproducible_and_cycles_over_patients(phantom_folders):
    cases = load_slices([CaseEntry(str(f)) for f, _ in phantom_folders.values()], "lung", "ct",
                        restrict_to_ooi=False, max_slices=6)
    first = fixed_validation_set(cases, 6, 64, seed=3)
    second = fixed_validation_set(cases, 6, 64, seed=3)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.masks, second.masks)
    assert [s[0] for s in first.sources] == ["lung_1", "lung_2"] * 3
    assert 0.2 < 1 - first.masks.mean() < 0.35
    assert not np.array_equal(fixed_validation_set(cases, 6, 64, seed=4).masks, first.masks)


def test_run_config_resolves_paths_and_rejects_bad_values(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"cases": ["a", {"path": "b", "healthy": True, "patient_id": "P"}],
                                "out_dir": "out", "arch": "pconv"}))
    config = load_run_config(path)
    assert config.cases[0] == CaseEntry(str(tmp_path / "a"))
    assert config.cases[1] == CaseEntry(str(tmp_path / "b"), True, "P")
    assert config.out_dir == str(tmp_path / "out") and config.channels == ("ct", "pet")
    assert config.model_name == "lung_petct_pconv" and config.total_epochs == 300
    assert RunConfig.from_dict(config.to_dict()) == config
    path.write_text(json.dumps({"cases": ["a"], "out_dir": "o", "arch": "unet", "batch_size": 0, "colour": 1}))
    with pytest.raises(InputError, match="unknown run.json keys: colour"):
        load_run_config(path)
    path.write_text(json.dumps({"cases": ["a"], "out_dir": "o", "arch": "unet", "batch_size": 0}))
    with pytest.raises(InputError, match="arch must be one of.*batch_size must be positive"):
        load_run_config(path)
    path.write_text(json.dumps({"cases": [{"path": "real", "split": "val"}], "out_dir": "o", "init_from": "w/best.pt"}))
    config = load_run_config(path)
    assert config.cases[0].split == "val" and config.init_from == str(tmp_path / "w" / "best.pt")
    path.write_text(json.dumps({"cases": [{"path": "real", "split": "test"}], "out_dir": "o"}))
    with pytest.raises(InputError, match="split must be 'train' or 'val', got 'test'"):
        load_run_config(path)


def test_case_weight_draws_that_case_proportionally_more_often(phantom_folders, monkeypatch):
    cases = load_slices([CaseEntry(str(f), weight=w) for (f, _), w in zip(phantom_folders.values(), (1.0, 4.0))],
                        "lung", "ct", restrict_to_ooi=False, max_slices=6)
    assert [c.weight for c in cases] == [1.0, 4.0] and cases[1].summary()["weight"] == 4.0
    drawn = []

    def record(case, index, crop, rng):
        drawn.append(case.case_id)
        return np.zeros((1, crop, crop), np.float32)

    monkeypatch.setattr(data_module, "sample_crop", record)
    CropSampler(cases, 32).batch(4000, np.random.default_rng(0))
    share = drawn.count(cases[1].case_id) / len(drawn)
    assert share == pytest.approx(4 * 6 / (6 + 4 * 6), abs=0.02)  # 0.8, not the unweighted 0.5
    drawn.clear()
    even = load_slices([CaseEntry(str(f)) for f, _ in phantom_folders.values()], "lung", "ct",
                       restrict_to_ooi=False, max_slices=6)
    CropSampler(even, 32).batch(4000, np.random.default_rng(0))
    assert drawn.count(even[1].case_id) / len(drawn) == pytest.approx(0.5, abs=0.03)


def test_case_weight_must_be_a_positive_number(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"cases": [{"path": "real", "weight": 3}], "out_dir": "o"}))
    assert load_run_config(path).cases[0].weight == 3.0
    for bad in (0, -1, "2", True):
        path.write_text(json.dumps({"cases": [{"path": "real", "weight": bad}], "out_dir": "o"}))
        with pytest.raises(InputError, match=r"run\.json: a case entry's weight must be a positive number"):
            load_run_config(path)


def test_synthetic_pet_lets_a_ct_only_case_serve_a_petct_run(tmp_path, phantom_folders, caplog):
    folder, _ = phantom_folders[2]
    ct_only = tmp_path / "ct_only"
    ct_only.mkdir()
    (ct_only / "ct.nii.gz").write_bytes((folder / "ct.nii.gz").read_bytes())
    with caplog.at_level(logging.WARNING, logger="autopaint_app.training.data"):
        with pytest.raises(InputError, match="no usable healthy slice"):
            load_slices([CaseEntry(str(ct_only), healthy=True)], "lung", "petct", restrict_to_ooi=False)
    assert "needs PET, the case has none" in caplog.text
    (case,) = load_slices([CaseEntry(str(ct_only), healthy=True, synthetic_pet=True)], "lung", "petct",
                          restrict_to_ooi=False)
    assert case.images.shape[1] == 2 and case.summary()["synthetic_pet"] is True
    pet = case.images[:, 1].astype(np.float32)
    body = case.images[:, 0].astype(np.float32) > 0.3               # soft tissue in the lung CT window
    assert pet[body].mean() > 0.03 and pet[:, :3, :3].max() == 0.0  # uptake in the body, none in the corner air


def test_synthetic_pet_is_refused_for_a_case_with_its_own_pet(phantom_folders):
    folder, _ = phantom_folders[2]
    with pytest.raises(InputError, match=r"pet\.nii\.gz: the case has its own PET; 'synthetic_pet' is for CT-only"):
        load_slices([CaseEntry(str(folder), healthy=True, synthetic_pet=True)], "lung", "petct",
                    restrict_to_ooi=False)


def test_synthetic_pet_must_be_true_or_false(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"cases": [{"path": "chest", "synthetic_pet": True}], "out_dir": "o"}))
    assert load_run_config(path).cases[0].synthetic_pet is True
    path.write_text(json.dumps({"cases": [{"path": "chest", "synthetic_pet": "yes"}], "out_dir": "o"}))
    with pytest.raises(InputError, match=r"run\.json: a case entry's synthetic_pet must be true or false"):
        load_run_config(path)
    path.write_text(json.dumps({"cases": [{"path": "chest", "pet": "synthetic"}], "out_dir": "o"}))
    with pytest.raises(InputError, match=r"run\.json: a case entry must be a folder path or an object with keys"):
        load_run_config(path)
