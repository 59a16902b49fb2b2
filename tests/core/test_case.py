"""Dataset layouts and case loading: synthetic folders for every layout, the real folders, validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autopaint_app.core.case import (
    MERGE_HECKTOR,
    MERGE_NONZERO,
    CaseFiles,
    case_from_paths,
    find_cases,
    load_case,
)
from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume, write_volume

CT_SPACING = (2.0, 2.0, 3.0)  # (x, y, z) mm
PET_SPACING = (4.0, 4.0, 3.0)


def _write(path: Path, array: np.ndarray, spacing=CT_SPACING, origin=(0.0, 0.0, 0.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_volume(Volume(np.asarray(array), spacing, origin), path)


def _ct(path: Path, **geometry) -> Path:
    """CT, shape (z, y, x) = (6, 10, 12), HU."""
    return _write(path, np.full((6, 10, 12), -800, np.int16), **geometry)


def _pet(path: Path, value: float = 1.5, **geometry) -> Path:
    """PET on a coarser grid covering the same region, shape (6, 5, 6)."""
    geometry.setdefault("spacing", PET_SPACING)
    return _write(path, np.full((6, 5, 6), value, np.float32), **geometry)


def _label(path: Path, values=(1,), **geometry) -> Path:
    """Label on the CT grid holding each of ``values`` in one voxel."""
    array = np.zeros((6, 10, 12), np.uint8)
    for i, value in enumerate(values):
        array[2, 3, 4 + i] = value
    return _write(path, array, **geometry)


# --- layout recognition on synthetic folders ---------------------------------------------------


def test_autopet_prefers_ctres_and_suv(tmp_path: Path):
    for name in ("CT.nii.gz", "CTres.nii.gz"):
        _ct(tmp_path / "PETCT_0af7ffe12a" / name)
    for name in ("PET.nii.gz", "SUV.nii.gz"):
        _pet(tmp_path / "PETCT_0af7ffe12a" / name)
    _label(tmp_path / "PETCT_0af7ffe12a" / "SEG.nii.gz")
    [case] = find_cases(tmp_path / "PETCT_0af7ffe12a")
    folder = tmp_path / "PETCT_0af7ffe12a"
    assert case == CaseFiles("PETCT_0af7ffe12a", "autopet", folder / "CTres.nii.gz", folder / "SUV.nii.gz",
                             folder / "SEG.nii.gz", None, "SUV", MERGE_NONZERO)


def test_autopet_raw_pet_is_bqml_and_converts_with_weight_and_dose(tmp_path: Path):
    _ct(tmp_path / "CT.nii.gz")
    _pet(tmp_path / "PET.nii.gz", value=5000.0)  # Bq/ml
    [files] = find_cases(tmp_path)
    assert (files.ct.name, files.pet.name, files.pet_units, files.label) == ("CT.nii.gz", "PET.nii.gz", "BQML", None)
    raw = load_case(files)
    assert raw.pet_units == "BQML" and np.all(raw.pet.array == 5000.0)
    # SUVbw = 5000 Bq/ml * 70000 g / 350e6 Bq = 1.0
    suv = load_case(files, weight_kg=70.0, dose_mbq=350.0)
    assert suv.pet_units == "SUV" and suv.pet.array.dtype == np.float32
    assert np.allclose(suv.pet.array, 1.0, rtol=1e-6)
    with pytest.raises(InputError, match="SUV needs the patient weight and injected dose") as info:
        load_case(files, pet_suv=True)
    assert info.value.path == str(tmp_path / "PET.nii.gz")


def test_nnunet_dataset_root_with_train_and_test_images(tmp_path: Path):
    for split, case_id in (("imagesTr", "lung_001"), ("imagesTr", "lung_002"), ("imagesTs", "lung_101")):
        _ct(tmp_path / split / f"{case_id}_0000.nii.gz")
        _pet(tmp_path / split / f"{case_id}_0001.nii.gz")
    _label(tmp_path / "labelsTr" / "lung_001.nii.gz")
    _label(tmp_path / "labelsTr" / "lung_002.nii.gz")
    cases = find_cases(tmp_path)
    assert [(c.case_id, c.layout, c.pet_units) for c in cases] == [
        ("lung_001", "nnunet", "SUV"), ("lung_002", "nnunet", "SUV"), ("lung_101", "nnunet", "SUV")]
    assert cases[0].ct == tmp_path / "imagesTr" / "lung_001_0000.nii.gz"
    assert cases[0].pet == tmp_path / "imagesTr" / "lung_001_0001.nii.gz"
    assert cases[0].label == tmp_path / "labelsTr" / "lung_001.nii.gz"
    assert cases[2].label is None
    assert [c.case_id for c in find_cases(tmp_path / "imagesTr")] == ["lung_001", "lung_002"]
    assert find_cases(tmp_path / "imagesTr")[1].label == tmp_path / "labelsTr" / "lung_002.nii.gz"


def test_nnunet_flat_folder(tmp_path: Path):
    _ct(tmp_path / "case7_0000.nii.gz")
    _pet(tmp_path / "case7_0001.nii.gz")
    _label(tmp_path / "case7.nii.gz")
    [case] = find_cases(tmp_path)
    assert (case.case_id, case.layout, case.ct.name, case.pet.name, case.label.name) == (
        "case7", "nnunet", "case7_0000.nii.gz", "case7_0001.nii.gz", "case7.nii.gz")


def test_hecktor_labels_in_labels_folder_and_gtvp_gtvn_merged(tmp_path: Path):
    images, labels = tmp_path / "imagesTr", tmp_path / "labelsTr"
    for case_id in ("CHUM-001", "MDA-042"):
        _ct(images / f"{case_id}__CT.nii.gz")
        _pet(images / f"{case_id}__PT.nii.gz")
    _label(labels / "CHUM-001.nii.gz", values=(1, 2, 2))
    _label(labels / "MDA_042.nii.gz", values=(2,))  # the underscore spelling
    cases = find_cases(tmp_path)
    assert [(c.case_id, c.layout, c.pet_units, c.label_merge) for c in cases] == [
        ("CHUM-001", "hecktor", "SUV", MERGE_HECKTOR), ("MDA-042", "hecktor", "SUV", MERGE_HECKTOR)]
    assert cases[0].label == labels / "CHUM-001.nii.gz" and cases[1].label == labels / "MDA_042.nii.gz"
    case = load_case(cases[0])
    assert case.label.array.dtype == np.uint8
    assert np.unique(case.label.array).tolist() == [0, 1]
    assert int(case.label.array.sum()) == 3  # GTVp (1) + 2 GTVn (2) voxels, one target


def test_hecktor_label_beside_images_and_unknown_values_rejected(tmp_path: Path):
    _ct(tmp_path / "CHUP-007__CT.nii.gz")
    _pet(tmp_path / "CHUP-007__PT.nii.gz")
    _label(tmp_path / "CHUP-007.nii.gz", values=(1, 3))
    [case] = find_cases(tmp_path)
    assert case.label == tmp_path / "CHUP-007.nii.gz"
    with pytest.raises(InputError) as info:
        load_case(case)
    assert str(info.value) == f"{tmp_path / 'CHUP-007.nii.gz'}: unexpected label values [3] (HECKTOR labels are 0, 1 = GTVp, 2 = GTVn)"


def test_our_folder_with_ooi(tmp_path: Path):
    _ct(tmp_path / "ct.nii.gz")
    _pet(tmp_path / "pet.nii.gz")
    _label(tmp_path / "label.nii.gz", values=(1, 1))
    _label(tmp_path / "ooi.nii.gz", values=(7, 7, 7, 7))
    [files] = find_cases(tmp_path)
    assert files == CaseFiles(tmp_path.name, "autopaint", tmp_path / "ct.nii.gz", tmp_path / "pet.nii.gz",
                              tmp_path / "label.nii.gz", tmp_path / "ooi.nii.gz", "SUV")
    case = load_case(tmp_path)
    assert case.ct.array.dtype == np.int16 and case.pet.array.dtype == np.float32
    assert case.pet_units == "SUV" and np.all(case.pet.array == 1.5)
    assert int(case.label.array.sum()) == 2 and int(case.ooi.array.sum()) == 4
    assert case.ooi.array.max() == 1 and case.ooi.same_grid(case.ct)


def test_ibsi_sts_layout(tmp_path: Path):
    _ct(tmp_path / "STS_100" / "CT_image.nii.gz")
    _pet(tmp_path / "STS_100" / "PET_image.nii.gz")
    _label(tmp_path / "STS_100" / "CT_mask.nii.gz")
    _write(tmp_path / "STS_100" / "PET_mask.nii.gz", np.ones((6, 5, 6), np.uint8), spacing=PET_SPACING)
    [case] = find_cases(tmp_path / "STS_100")
    assert (case.case_id, case.layout, case.pet_units, case.label.name) == ("STS_100", "ibsi_sts", "SUV", "CT_mask.nii.gz")


def test_pyradiomics_several_cases_per_folder(tmp_path: Path):
    for case_id in ("brain1", "lung3"):
        _ct(tmp_path / f"{case_id}_image.nrrd")
        _label(tmp_path / f"{case_id}_label.nrrd")
    _ct(tmp_path / "breast1_image.nrrd")
    cases = find_cases(tmp_path)
    assert [(c.case_id, c.layout, c.pet, c.pet_units) for c in cases] == [
        ("brain1", "pyradiomics", None, None), ("breast1", "pyradiomics", None, None), ("lung3", "pyradiomics", None, None)]
    assert cases[0].label == tmp_path / "brain1_label.nrrd" and cases[1].label is None


def test_cohort_folder_of_case_folders(tmp_path: Path):
    for case_id in ("p02", "p01"):
        _ct(tmp_path / case_id / "ct.nii.gz")
        _pet(tmp_path / case_id / "pet.nii.gz")
    (tmp_path / "notes").mkdir()
    assert [c.case_id for c in find_cases(tmp_path)] == ["p01", "p02"]
    with pytest.raises(InputError, match=r"holds 2 cases \(p01, p02\); choose one"):
        load_case(tmp_path)


def test_folder_without_a_case(tmp_path: Path):
    (tmp_path / "readme.txt").write_text("nothing here")
    assert find_cases(tmp_path) == []
    with pytest.raises(InputError, match="no PET/CT case found") as info:
        load_case(tmp_path)
    assert info.value.path == str(tmp_path)
    with pytest.raises(InputError, match="folder not found"):
        find_cases(tmp_path / "missing")
    with pytest.raises(InputError, match="is a file, not a case folder"):
        load_case(tmp_path / "readme.txt")


# --- the real folders --------------------------------------------------------------------------


# README table: CT GTV voxels and volume SUVmax per STS case.
STS_FIGURES = {"STS_001": (117145, 25.4), "STS_002": (17090, 21.7), "STS_003": (25693, 10.3),
               "STS_004": (94963, 5.4), "STS_005": (187576, 6.7), "STS_006": (83436, 27.8),
               "STS_008": (8862, 6.5), "STS_010": (58608, 11.8), "STS_012": (25263, 9.5)}


def test_real_sts_folder(shared_data: Path):
    cases = find_cases(shared_data / "sts_petct")
    assert [c.case_id for c in cases] == list(STS_FIGURES)
    assert {(c.layout, c.pet_units, c.ct.name, c.pet.name, c.label.name) for c in cases} == {
        ("ibsi_sts", "SUV", "CT_image.nii.gz", "PET_image.nii.gz", "CT_mask.nii.gz")}
    for files in cases:
        case = load_case(files)
        gtv_voxels, suv_max = STS_FIGURES[case.case_id]
        assert case.label.same_grid(case.ct) and int(case.label.array.sum()) == gtv_voxels, case.case_id
        assert case.pet.spacing != case.ct.spacing  # own grid, not resampled
        assert case.pet.array.max() == pytest.approx(suv_max, abs=0.05), case.case_id


def test_real_lung_folder(shared_data: Path):
    cases = find_cases(shared_data / "lung_ct")
    assert [(c.case_id, c.layout, c.ct.name, c.label.name, c.pet) for c in cases] == [
        ("lung1", "pyradiomics", "lung1_image.nrrd", "lung1_label.nrrd", None),
        ("lung2", "pyradiomics", "lung2_image.nrrd", "lung2_label.nrrd", None)]
    for files, tumour_voxels in zip(cases, (837, 24644)):  # README label voxel counts
        case = load_case(files)
        assert case.pet is None and case.pet_units is None
        assert case.label.array.dtype == np.uint8 and int(case.label.array.sum()) == tumour_voxels
        assert case.label.same_grid(case.ct) and case.ct.array.dtype == np.int16


def test_real_head_and_neck_folder_with_dicom_pet(shared_data: Path):
    folder = shared_data / "hn_petct_dicom" / "HN-CHUS-052"
    [files] = find_cases(folder)
    assert files == CaseFiles("HN-CHUS-052", "autopaint", folder / "ct.nii.gz", folder / "pet_dicom", None, None, "DICOM")
    assert find_cases(shared_data / "hn_petct_dicom") == [files]
    case = load_case(files)
    assert case.pet_units == "SUV" and case.pet.array.dtype == np.float32
    assert case.pet.array.max() == pytest.approx(129176.1 * 0.000434, rel=1e-3)  # README: SUV 0...56.1
    assert case.ct.size_xyz == (512, 512, 132) and case.pet.size_xyz == (144, 144, 255)
    raw = load_case(files, pet_suv=False)
    assert raw.pet_units == "DICOM" and 129176.0 <= raw.pet.array.max() < 129177.0


# --- validation --------------------------------------------------------------------------------


def test_pet_far_from_ct_is_rejected(tmp_path: Path):
    ct = _ct(tmp_path / "ct.nii.gz", origin=(0.0, 0.0, -100.0))
    pet = _pet(tmp_path / "pet.nii.gz", origin=(0.0, 0.0, 500.0))
    with pytest.raises(InputError) as info:
        load_case(case_from_paths(ct=ct, pet=pet))
    # CT voxels z = -100 ... -85 mm (6 slices of 3 mm) cover -101.5 ... -83.5 mm; PET 498.5 ... 516.5 mm.
    assert str(info.value) == (f"{pet}: does not overlap the CT physically "
                               "(CT z -101.5..-83.5 mm, PET z 498.5..516.5 mm)")


def test_pet_beside_ct_in_x_is_rejected(tmp_path: Path):
    ct = _ct(tmp_path / "ct.nii.gz")
    pet = _pet(tmp_path / "pet.nii.gz", origin=(300.0, 0.0, 0.0))
    with pytest.raises(InputError, match=r"does not overlap the CT physically \(CT x -1.0..23.0 mm, PET x 298.0..322.0 mm\)"):
        load_case(case_from_paths(ct=ct, pet=pet))


def test_pet_barely_touching_ct_is_rejected(tmp_path: Path):
    ct = _ct(tmp_path / "ct.nii.gz")  # z -1.5 ... 16.5 mm
    pet = _pet(tmp_path / "pet.nii.gz", origin=(0.0, 0.0, 16.5))  # z 15 ... 33 mm: 1.5 mm shared
    # shared box 23 x 19 x 1.5 mm out of the PET's 24 x 20 x 18 mm
    with pytest.raises(InputError, match=r"only 7\.6% of the smaller field of view is shared"):
        load_case(case_from_paths(ct=ct, pet=pet))


@pytest.mark.parametrize("change,expected", [
    ({"origin": (0.0, 0.0, 6.0)}, "origin (0, 0, 6) vs (0, 0, 0) mm"),
    ({"spacing": (2.0, 2.0, 2.5)}, "spacing (2, 2, 2.5) vs (2, 2, 3) mm"),
])
def test_label_off_the_ct_grid_is_rejected(tmp_path: Path, change: dict, expected: str):
    ct = _ct(tmp_path / "ct.nii.gz")
    label = _label(tmp_path / "label.nii.gz", **change)
    with pytest.raises(InputError) as info:
        load_case(case_from_paths(ct=ct, label=label))
    assert str(info.value) == f"{label}: geometry does not match the CT grid ({expected}; this file vs CT)"


def test_label_of_another_size_is_rejected(tmp_path: Path):
    ct = _ct(tmp_path / "ct.nii.gz")
    label = _write(tmp_path / "label.nii.gz", np.zeros((5, 10, 12), np.uint8))
    with pytest.raises(InputError) as info:
        load_case(case_from_paths(ct=ct, label=label))
    assert info.value.path == str(label)
    assert info.value.problem == "geometry does not match the CT grid (size (12, 10, 5) vs (12, 10, 6); this file vs CT)"


def test_ooi_off_the_ct_grid_is_rejected(tmp_path: Path):
    ct = _ct(tmp_path / "ct.nii.gz")
    ooi = _label(tmp_path / "ooi.nii.gz", spacing=(1.0, 1.0, 3.0), origin=(5.0, 0.0, 0.0))
    with pytest.raises(InputError) as info:
        load_case(case_from_paths(ct=ct, ooi=ooi))
    assert info.value.path == str(ooi)
    assert "spacing (1, 1, 3) vs (2, 2, 3) mm; origin (5, 0, 0) vs (0, 0, 0) mm" in info.value.problem


def test_label_within_float32_rounding_is_snapped_to_the_ct_grid(tmp_path: Path):
    ct = _ct(tmp_path / "ct.nii.gz", origin=(0.1, 0.2, -3.3))
    label = _label(tmp_path / "label.nii.gz", origin=(0.1 + 4e-4, 0.2, -3.3))
    case = load_case(case_from_paths(ct=ct, label=label))
    assert case.label.origin == case.ct.origin and case.label.spacing == case.ct.spacing


# --- single-file cases -------------------------------------------------------------------------


def test_ct_only_case(tmp_path: Path):
    files = case_from_paths(ct=_ct(tmp_path / "scan.nii.gz"))
    assert (files.case_id, files.layout, files.pet, files.pet_units) == ("scan", "files", None, None)
    case = load_case(files)
    assert case.pet is None and case.ct.shape == (6, 10, 12) and case.reference is case.ct


def test_pet_only_case_with_label_on_the_pet_grid(tmp_path: Path):
    pet = _pet(tmp_path / "pet.nii.gz")
    label = _write(tmp_path / "gtv.nii.gz", np.eye(6 * 5, 6, dtype=np.uint8).reshape(6, 5, 6) * 2, spacing=PET_SPACING)
    case = load_case(case_from_paths(pet=pet, label=label))
    assert case.ct is None and case.pet_units == "SUV" and case.reference is case.pet
    assert case.label.array.max() == 1 and case.label.same_grid(case.pet)
    ct_grid_label = _label(tmp_path / "ct_label.nii.gz")
    with pytest.raises(InputError, match="geometry does not match the PET grid"):
        load_case(case_from_paths(pet=pet, label=ct_grid_label))


def test_case_without_any_image(tmp_path: Path):
    label = _label(tmp_path / "label.nii.gz")
    with pytest.raises(InputError, match="a case needs a CT or a PET image") as info:
        case_from_paths(label=label)
    assert info.value.path == str(label)


def test_missing_file_in_a_case_names_the_file(tmp_path: Path):
    ct = _ct(tmp_path / "ct.nii.gz")
    with pytest.raises(InputError) as info:
        load_case(case_from_paths(ct=ct, pet=tmp_path / "pet.nii.gz"))
    assert str(info.value) == f"{tmp_path / 'pet.nii.gz'}: file not found"


def test_dicom_pet_goes_through_suv_conversion_with_overrides(tmp_path: Path, monkeypatch):
    _ct(tmp_path / "ct.nii.gz")
    (tmp_path / "pet_dicom").mkdir()
    calls = []

    def fake_read_pet_suv(folder, weight_kg=None, dose_mbq=None):
        calls.append((Path(folder), weight_kg, dose_mbq))
        return Volume(np.full((6, 5, 6), 2.0, np.float32), PET_SPACING, (0.0, 0.0, 0.0), source=str(folder))

    monkeypatch.setattr("autopaint_app.core.suv.read_pet_suv", fake_read_pet_suv)
    case = load_case(tmp_path, weight_kg=81.5, dose_mbq=310.0)
    assert calls == [(tmp_path / "pet_dicom", 81.5, 310.0)]
    assert case.pet_units == "SUV" and np.all(case.pet.array == 2.0)
    with pytest.raises(InputError, match="no DICOM series found") as info:
        load_case(tmp_path, pet_suv=False)  # raw read: the (empty) folder itself is read
    assert info.value.path == str(tmp_path / "pet_dicom")
