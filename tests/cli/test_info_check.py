"""`autopaint-cli info` and `check` on files, DICOM folders, case folders and broken cohorts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autopaint_app.core.io import Volume, read_volume, write_volume
from tests.cli.helpers import PHILIPS_PET, assert_error, cli


def test_info_on_a_file(shared_data):
    run = cli("info", shared_data / "sts_petct/STS_002/CT_image.nii.gz")
    assert run.code == 0
    info = run.json
    assert info["shape_zyx"] == [48, 143, 161] and info["size_xyz"] == [161, 143, 48]
    assert info["spacing_xyz_mm"] == pytest.approx([0.9766, 0.9766, 3.27], abs=1e-4)
    assert info["direction"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert info["range"][0] == -1000.0 and info["modality_guess"] == "CT"
    assert len(info["origin_xyz_mm"]) == 3


def test_info_on_the_dicom_folder_guesses_pet(shared_data):
    run = cli("info", shared_data / PHILIPS_PET)
    assert run.code == 0
    assert run.json["modality_guess"] == "PET" and run.json["shape_zyx"] == [255, 144, 144]
    assert run.json["range"][0] == 0.0 and run.json["range"][1] == pytest.approx(129176, rel=1e-3)  # CNTS


def test_info_on_case_folders_lists_the_cases(shared_data, lung_phantom):
    cohort = cli("info", shared_data / "sts_petct").json
    assert [c["case_id"] for c in cohort["cases"]] == ["STS_001", "STS_002", "STS_003", "STS_004", "STS_005",
                                                       "STS_006", "STS_008", "STS_010", "STS_012"]
    assert {c["layout"] for c in cohort["cases"]} == {"ibsi_sts"}
    ours = cli("info", lung_phantom[0]).json["cases"]
    assert len(ours) == 1 and ours[0]["layout"] == "autopaint"
    assert ours[0]["label"] == str(lung_phantom[0] / "label.nii.gz") and ours[0]["pet_units"] == "SUV"


def test_info_on_a_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    assert_error(cli("info", tmp_path), tmp_path, "no volume, DICOM series or known case layout")


# --- check ----------------------------------------------------------------------------------------


def test_check_real_sarcoma_cohort(shared_data):
    run = cli("check", shared_data / "sts_petct")
    assert run.code == 0 and run.err == ""
    report = run.json
    assert report["failed"] == 0 and len(report["cases"]) == 9 and all(c["ok"] for c in report["cases"])
    first = report["cases"][0]
    assert first["case_id"] == "STS_001" and first["label_voxels"] == 117145 and first["shape_zyx"] == [59, 202, 198]


def _copy_case(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for name in ("ct.nii.gz", "pet.nii.gz", "label.nii.gz"):
        shutil.copy(source / name, target / name)
    return target


def test_check_reports_a_label_with_another_geometry(lung_phantom, tmp_path):
    good = _copy_case(lung_phantom[0], tmp_path / "cohort" / "a_good")
    bad = _copy_case(lung_phantom[0], tmp_path / "cohort" / "b_bad")
    label = read_volume(bad / "label.nii.gz")
    write_volume(Volume(label.array, (label.spacing[0] * 2, label.spacing[1], label.spacing[2]), label.origin),
                 bad / "label.nii.gz", overwrite=True)
    run = cli("check", tmp_path / "cohort")
    assert_error(run, bad / "label.nii.gz", "geometry does not match the CT grid", "spacing")
    report = run.json
    assert report["failed"] == 1
    assert [(c["case_id"], c["ok"]) for c in report["cases"]] == [(good.name, True), (bad.name, False)]


def test_check_reports_a_pet_that_does_not_overlap_the_ct(lung_phantom, tmp_path):
    case = _copy_case(lung_phantom[0], tmp_path / "case")
    pet = read_volume(case / "pet.nii.gz")
    moved = (-pet.origin[0], pet.origin[1], pet.origin[2] + 2000.0)  # another frame of reference
    write_volume(Volume(pet.array, pet.spacing, moved), case / "pet.nii.gz", overwrite=True)
    run = cli("check", case)
    assert_error(run, case / "pet.nii.gz", "does not overlap the CT physically", "CT z", "PET z")
    assert run.json["failed"] == 1


def test_check_missing_folder(tmp_path):
    assert_error(cli("check", tmp_path / "nowhere"), tmp_path / "nowhere", "folder not found")

