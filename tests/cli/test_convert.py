"""`autopaint-cli convert`: NRRD/DICOM to NIfTI, SUV from the Philips tags, overrides, --series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autopaint_app.core.io import read_volume
from tests.cli.helpers import (BQML_FACTOR, F18_HALF_LIFE, PHILIPS_PET, assert_error,
                               assert_geometry_as_nifti_stores_it, cli, write_bqml_series)


def test_convert_nrrd_to_nifti_keeps_values_and_geometry(shared_data, tmp_path):
    source = shared_data / "lung_ct/lung1_label.nrrd"
    run = cli("convert", source, "--out", tmp_path / "label.nii.gz")
    assert run.code == 0
    original, converted = read_volume(source), read_volume(tmp_path / "label.nii.gz")
    assert converted.array.dtype == np.int16 and np.array_equal(converted.array, original.array)
    assert int(converted.array.sum()) == 837
    assert_geometry_as_nifti_stores_it(converted, original)
    assert converted.spacing == pytest.approx((0.5703125, 0.5703125, 5.0), abs=0)
    assert converted.origin == (-146.0, -325.0, -777.5)
    assert run.json["size_xyz"] == [512, 512, 48] and run.json["modality_guess"] == "label"


@pytest.fixture(scope="module")
def philips_suv(shared_data, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("cli") / "suv.nii.gz"
    run = cli("convert", shared_data / PHILIPS_PET, "--suv", "--out", out)
    assert run.code == 0, run.err
    return out, run.json


def test_convert_philips_dicom_pet_to_suv_with_private_factor(philips_suv):
    out, report = philips_suv
    conversion = report["suv_conversion"]
    assert conversion["factor"] == 0.000434 and conversion["units"] == "CNTS"
    assert "(7053,1000)" in conversion["method"]
    suv = read_volume(out)
    assert suv.array.dtype == np.float32 and suv.size_xyz == (144, 144, 255)
    assert suv.array.max() == pytest.approx(56.06, abs=0.01) and suv.array.min() == 0.0
    assert report["range"] == [0.0, pytest.approx(56.06, abs=0.01)]
    assert suv.origin == pytest.approx((-286.586, -216.586, -1087.755), abs=1e-3)
    assert report["modality_guess"] == "PET"


def test_convert_weight_and_dose_overrides_go_through_the_activity_factor(shared_data, tmp_path, philips_suv):
    out = tmp_path / "suv_override.nii.gz"
    run = cli("convert", shared_data / PHILIPS_PET, "--suv", "--weight", 80, "--dose", 300, "--out", out)
    assert run.code == 0, run.err
    conversion = run.json["suv_conversion"]
    # (7053,1009) Bq/ml per count, dose decayed from injection 08:24:00 to the first acquisition 09:35:39.
    hand = 80_000.0 * 1.139608 / (300e6 * 0.5 ** (4299.0 / F18_HALF_LIFE))
    assert conversion["factor"] == pytest.approx(hand, rel=1e-9)
    assert "(7053,1009)" in conversion["method"]
    assert conversion["weight_kg"] == 80.0 and conversion["injected_dose_bq"] == 300e6
    tag_max = read_volume(philips_suv[0]).array.max()
    assert read_volume(out).array.max() == pytest.approx(tag_max * hand / 0.000434, rel=1e-6)


def test_convert_weight_without_suv_is_refused(shared_data, tmp_path):
    source = shared_data / "lung_ct/lung1_label.nrrd"
    run = cli("convert", source, "--weight", 70, "--out", tmp_path / "x.nii.gz")
    assert_error(run, source, "--weight/--dose only apply with --suv")
    assert list(tmp_path.iterdir()) == []


def test_convert_dicom_pet_missing_weight_names_the_tag_and_the_override(tmp_path):
    folder = tmp_path / "pet"
    files = write_bqml_series(folder, weight=None)
    run = cli("convert", folder, "--suv", "--out", tmp_path / "suv.nii.gz")
    assert_error(run, files[0], "missing DICOM tag PatientWeight (0010,1030)", "--weight")
    assert not (tmp_path / "suv.nii.gz").exists()
    # The suggested override works and gives the hand-computed SUV.
    run = cli("convert", folder, "--suv", "--weight", 70, "--out", tmp_path / "suv.nii.gz")
    assert run.code == 0, run.err
    assert run.json["suv_conversion"]["factor"] == pytest.approx(BQML_FACTOR, rel=1e-9)
    suv = read_volume(tmp_path / "suv.nii.gz").array
    expected = (np.arange(16).reshape(4, 4)[None] + 100 * np.arange(3)[:, None, None]) * BQML_FACTOR
    assert np.allclose(suv, expected, rtol=1e-6)


def test_convert_series_option_picks_one_of_two_series_also_for_suv(tmp_path):
    folder = tmp_path / "mixed"
    first, second = "1.2.826.0.1.3680043.2.1125.21", "1.2.826.0.1.3680043.2.1125.22"
    write_bqml_series(folder, series_uid=first, prefix="a")
    write_bqml_series(folder, series_uid=second, value_offset=1000, prefix="b")
    run = cli("convert", folder, "--suv", "--out", tmp_path / "x.nii.gz")
    assert_error(run, folder, "mixed series: 2 DICOM series in one folder", first, second)
    run = cli("convert", folder, "--suv", "--series", second, "--out", tmp_path / "x.nii.gz")
    assert run.code == 0, run.err
    assert read_volume(tmp_path / "x.nii.gz").array[0, 0, 0] == pytest.approx(1000 * BQML_FACTOR, rel=1e-6)
    run = cli("convert", folder, "--series", first, "--out", tmp_path / "raw.nii.gz")
    assert run.code == 0 and read_volume(tmp_path / "raw.nii.gz").array[:, 0, 0].tolist() == [0.0, 100.0, 200.0]

