"""SUVbw from DICOM PET: the real Philips CNTS series and synthetic BQML/GML/CNTS series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from autopaint_app.core.errors import InputError
from autopaint_app.core.suv import read_pet_suv, suv_factor_from_dicom

F18_HALF_LIFE = 6586.2
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


# --- real Philips PET (Units CNTS, private tag (7053,1000)) --------------------------------------


@pytest.fixture(scope="module")
def philips_folder(shared_data) -> Path:
    return shared_data / "hn_petct_dicom" / "HN-CHUS-052" / "pet_dicom"


@pytest.fixture(scope="module")
def philips_suv(philips_folder):
    return read_pet_suv(philips_folder)


def test_philips_factor_comes_from_private_tag(philips_folder):
    files = sorted(str(p) for p in philips_folder.glob("*.dcm"))
    conversion = suv_factor_from_dicom(files)
    assert conversion.factor == pytest.approx(0.000434, rel=1e-12)
    assert conversion.units == "CNTS"
    assert conversion.method == "Philips CNTS via (7053,1000)"
    assert conversion.is_uniform and len(conversion.slice_factors) == 255


@pytest.mark.parametrize("name", ["1-001.dcm", "1-128.dcm", "1-200.dcm"])
def test_philips_voxels_match_hand_computed_suv(philips_folder, philips_suv, name):
    ds = pydicom.dcmread(philips_folder / name)
    stored = ds.pixel_array.astype(np.float64)  # raw int16, before the per-slice rescale
    rescaled = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = rescaled * 0.000434
    # SimpleITK sorts slices by position: find this file's z index from ImagePositionPatient.
    z = round((float(ds.ImagePositionPatient[2]) - philips_suv.origin[2]) / philips_suv.spacing[2])
    assert philips_suv.origin[0] == pytest.approx(float(ds.ImagePositionPatient[0]))
    row, col = np.unravel_index(np.argmax(stored), stored.shape)
    for r, c in [(row, col), (72, 72), (60, 90)]:
        assert philips_suv.array[z, r, c] == pytest.approx(expected[r, c], rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(philips_suv.array[z], expected, rtol=1e-5, atol=1e-6)


def test_philips_suv_range_and_body_median(philips_suv):
    suv = philips_suv.array
    assert suv.dtype == np.float32 and suv.shape == (255, 144, 144)
    assert suv.min() == 0.0
    assert suv.max() == pytest.approx(56.1, abs=0.05)
    assert np.median(suv[suv > 0.1]) == pytest.approx(0.49, abs=0.01)  # body voxels
    assert np.percentile(suv, 99.9) == pytest.approx(7.4, abs=0.05)
    assert philips_suv.meta["suv"]["factor"] == 0.000434
    assert philips_suv.meta["suv"]["uniform"] is True


def test_philips_bqml_route_reproduces_private_factor(philips_folder):
    """An override sends CNTS through (7053,1009) and the START rule: same factor as (7053,1000)."""
    files = sorted(str(p) for p in philips_folder.glob("*.dcm"))
    conversion = suv_factor_from_dicom(files, weight_kg=72.0)
    # Injection 08:24:00, earliest acquisition 09:35:39 (SeriesTime 111111 is a placeholder).
    hand = 72_000.0 * 1.139608 / (297e6 * 0.5 ** (4299.0 / 6588.0))
    assert conversion.factor == pytest.approx(hand, rel=1e-9)
    assert conversion.factor == pytest.approx(0.000434, rel=0.005)
    assert conversion.reference_rule == "earliest AcquisitionDate/Time"
    assert conversion.reference_time.endswith("09:35:39")
    assert any("SeriesTime 11:11:11" in w for w in conversion.warnings)


# --- synthetic DICOM PET ------------------------------------------------------------------------


def write_pet_series(folder: Path, *, n_slices=3, units="BQML", decay="START", weight="70",
                     dose="370000000", half_life=str(F18_HALF_LIFE), start_time="100000", start_datetime=None,
                     series_date="20240101", series_time="110000", acquisition_times=None, modality="PT",
                     slopes=None, philips=None, drop=()) -> list[str]:
    """An 8x8xN PET series; returns file names in slice order (z = 0 first).

    File names run backwards with z so that name order differs from position order.
    ``philips`` maps (group, element) of the private block to per-slice value lists.
    """
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    slopes = slopes or [0.5 + k for k in range(n_slices)]
    acquisition_times = acquisition_times or ["110030"] * n_slices
    files = []
    for k in range(n_slices):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = PET_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = sop = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = PET_STORAGE, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.Units, ds.DecayCorrection = modality, units, decay
        ds.PatientWeight = weight
        ds.SeriesDate, ds.SeriesTime = series_date, series_time
        ds.AcquisitionDate, ds.AcquisitionTime = series_date, acquisition_times[k]
        item = pydicom.Dataset()
        item.RadionuclideTotalDose, item.RadionuclideHalfLife = dose, half_life
        item.RadiopharmaceuticalStartTime = start_time
        if start_datetime:
            item.RadiopharmaceuticalStartDateTime = start_datetime
        ds.RadiopharmaceuticalInformationSequence = pydicom.Sequence([item])
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-14.0, -14.0, 2.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [4.0, 4.0], 2.0
        ds.Rows = ds.Columns = 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = str(slopes[k]), "0"
        ds.PixelData = stored_values(k).tobytes()
        for keyword in drop:
            if keyword in item:
                delattr(item, keyword)
            elif keyword in ds:
                delattr(ds, keyword)
        if philips:
            block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
            for element, values in philips.items():
                block.add_new(element, "DS", str(values[k]))
        path = folder / f"im{n_slices - k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(str(path))
    return files


def stored_values(k: int) -> np.ndarray:
    """Stored int16 pixels of slice k, shape (8, 8): row-major ramp plus 100 k."""
    return (np.arange(64, dtype=np.int16).reshape(8, 8) * 10 + 100 * k).astype(np.int16)


def decayed(dose_bq: float, seconds: float) -> float:
    return dose_bq * 0.5 ** (seconds / F18_HALF_LIFE)


def test_bqml_start_decay_hand_computed_and_voxels(tmp_path):
    files = write_pet_series(tmp_path / "s")
    conversion = suv_factor_from_dicom(files)
    # 370 MBq at 10:00, series 11:00 -> dose 253.3 MBq; 70 kg -> 70000 g / 253.3e6 Bq.
    assert conversion.factor == pytest.approx(70_000.0 / decayed(370e6, 3600.0), rel=1e-12)
    assert conversion.factor == pytest.approx(2.7633e-4, rel=1e-4)
    assert conversion.method == "BQML decay-corrected to START"
    assert conversion.reference_rule == "SeriesDate/SeriesTime"
    assert conversion.injection_time == "2024-01-01T10:00:00"
    volume = read_pet_suv(tmp_path / "s")
    for k in range(3):  # per-slice RescaleSlope 0.5, 1.5, 2.5 applied by SimpleITK
        expected = stored_values(k) * (0.5 + k) * conversion.factor
        np.testing.assert_allclose(volume.array[k], expected, rtol=1e-6)
    assert volume.meta["suv"]["decayed_dose_bq"] == pytest.approx(decayed(370e6, 3600.0))


def test_admin_means_no_decay(tmp_path):
    files = write_pet_series(tmp_path / "s", decay="ADMIN")
    conversion = suv_factor_from_dicom(files)
    assert conversion.factor == pytest.approx(70_000.0 / 370e6, rel=1e-12)
    assert conversion.method == "BQML decay-corrected to ADMIN (no decay)"


def test_scan_crossing_midnight_with_times_only(tmp_path):
    files = write_pet_series(tmp_path / "s", start_time="235000", series_date="20240102",
                             series_time="004000", acquisition_times=["004000"] * 3)
    conversion = suv_factor_from_dicom(files)
    assert conversion.factor == pytest.approx(70_000.0 / decayed(370e6, 50 * 60.0), rel=1e-12)
    assert conversion.injection_time == "2024-01-01T23:50:00"
    assert any("crossed midnight" in w for w in conversion.warnings)


def test_start_datetime_preferred_over_start_time(tmp_path):
    files = write_pet_series(tmp_path / "s", start_time="100000", start_datetime="20240101093000")
    assert suv_factor_from_dicom(files).factor == pytest.approx(70_000.0 / decayed(370e6, 5400.0), rel=1e-12)
    files = write_pet_series(tmp_path / "t", start_datetime="20231231235000", series_time="004000",
                             acquisition_times=["004000"] * 3)
    conversion = suv_factor_from_dicom(files)
    assert conversion.factor == pytest.approx(70_000.0 / decayed(370e6, 3000.0), rel=1e-12)
    assert conversion.warnings == ()


def test_series_time_after_acquisition_uses_earliest_acquisition(tmp_path):
    files = write_pet_series(tmp_path / "s", series_time="111111", acquisition_times=["103000", "102000", "104000"])
    conversion = suv_factor_from_dicom(files)
    assert conversion.factor == pytest.approx(70_000.0 / decayed(370e6, 1200.0), rel=1e-12)
    assert conversion.reference_rule == "earliest AcquisitionDate/Time"
    files = write_pet_series(tmp_path / "t", drop=("SeriesTime",), acquisition_times=["103000"] * 3)
    assert suv_factor_from_dicom(files).factor == pytest.approx(70_000.0 / decayed(370e6, 1800.0), rel=1e-12)


def test_overrides_take_precedence(tmp_path):
    files = write_pet_series(tmp_path / "s")
    conversion = suv_factor_from_dicom(files, weight_kg=80.0, dose_mbq=400.0)
    assert conversion.factor == pytest.approx(80_000.0 / decayed(400e6, 3600.0), rel=1e-12)
    assert conversion.weight_kg == 80.0 and conversion.injected_dose_bq == 400e6
    # Overrides stand in for missing tags.
    files = write_pet_series(tmp_path / "t", drop=("PatientWeight", "RadionuclideTotalDose"))
    assert suv_factor_from_dicom(files, weight_kg=70, dose_mbq=370).factor == pytest.approx(
        70_000.0 / decayed(370e6, 3600.0), rel=1e-12)
    with pytest.raises(InputError, match="--weight: must be a positive number"):
        suv_factor_from_dicom(files, weight_kg=0.0)


def test_gml_is_already_suv(tmp_path):
    files = write_pet_series(tmp_path / "s", units="GML",
                             drop=("PatientWeight", "RadiopharmaceuticalInformationSequence"))
    volume = read_pet_suv(tmp_path / "s")
    assert volume.meta["suv"]["factor"] == 1.0 and volume.meta["suv"]["method"] == "GML (already SUV)"
    assert suv_factor_from_dicom(files).warnings == ()
    assert "overrides ignored" in suv_factor_from_dicom(files, weight_kg=80.0).warnings[0]
    np.testing.assert_allclose(volume.array[2], stored_values(2) * 2.5, rtol=1e-6)


@pytest.mark.parametrize("keyword, message", [
    ("PatientWeight", "missing DICOM tag PatientWeight (0010,1030); pass --weight KG"),
    ("RadionuclideTotalDose", "missing DICOM tag RadionuclideTotalDose (0018,1074); pass --dose MBQ"),
    ("RadionuclideHalfLife", "missing DICOM tag RadionuclideHalfLife (0018,1075)"),
    ("RadiopharmaceuticalStartTime", "missing DICOM tag RadiopharmaceuticalStartTime (0018,1072)"),
    ("Units", "missing DICOM tag Units (0054,1001)"),
    ("DecayCorrection", "missing DICOM tag DecayCorrection (0054,1102)"),
    ("RadiopharmaceuticalInformationSequence", "missing DICOM tag RadiopharmaceuticalInformationSequence (0054,0016)"),
])
def test_missing_tag_names_file_and_tag(tmp_path, keyword, message):
    files = write_pet_series(tmp_path / "s", drop=(keyword,))
    with pytest.raises(InputError) as info:
        suv_factor_from_dicom(files)
    assert info.value.path == files[0]
    assert info.value.problem.startswith(message)


def test_missing_series_and_acquisition_time(tmp_path):
    files = write_pet_series(tmp_path / "s", drop=("SeriesTime", "AcquisitionTime"))
    with pytest.raises(InputError, match=r"SeriesTime \(0008,0031\) and AcquisitionTime \(0008,0032\)"):
        suv_factor_from_dicom(files)


def test_zero_weight_is_reported_with_hint(tmp_path):
    files = write_pet_series(tmp_path / "s", weight="0")
    with pytest.raises(InputError, match=r"PatientWeight \(0010,1030\) is 0 .*pass --weight KG"):
        suv_factor_from_dicom(files)


def test_injection_after_scan_is_an_error(tmp_path):
    files = write_pet_series(tmp_path / "s", start_datetime="20240101120000")
    with pytest.raises(InputError, match="injection at 2024-01-01 12:00:00 is after the scan reference time"):
        suv_factor_from_dicom(files)


def test_not_pet_and_unsupported_units(tmp_path):
    with pytest.raises(InputError, match="not a PET image \\(Modality CT\\)"):
        suv_factor_from_dicom(write_pet_series(tmp_path / "ct", modality="CT"))
    with pytest.raises(InputError, match="PET Units 'PROPCPS' not supported"):
        suv_factor_from_dicom(write_pet_series(tmp_path / "p", units="PROPCPS"))
    with pytest.raises(InputError, match="DecayCorrection 'WEIRD' not supported"):
        suv_factor_from_dicom(write_pet_series(tmp_path / "w", decay="WEIRD"))


def test_cnts_without_private_tags(tmp_path):
    files = write_pet_series(tmp_path / "s", units="CNTS")
    with pytest.raises(InputError, match=r"Units CNTS without Philips private tag \(7053,1000\)") as info:
        suv_factor_from_dicom(files)
    assert info.value.path == files[0]


def test_cnts_with_activity_factor_only_goes_through_bqml(tmp_path):
    files = write_pet_series(tmp_path / "s", units="CNTS", philips={0x09: [1.5] * 3})
    conversion = suv_factor_from_dicom(files)
    assert conversion.factor == pytest.approx(1.5 * 70_000.0 / decayed(370e6, 3600.0), rel=1e-12)
    assert conversion.method.startswith("Philips CNTS via (7053,1009)")


def test_cnts_suv_factor_overridden_by_weight_rescales(tmp_path):
    files = write_pet_series(tmp_path / "s", units="CNTS", philips={0x00: [0.0004] * 3})
    assert suv_factor_from_dicom(files).factor == 0.0004
    conversion = suv_factor_from_dicom(files, weight_kg=35.0, dose_mbq=185.0)
    assert conversion.factor == pytest.approx(0.0004 * (35 / 70) * (370 / 185), rel=1e-12)


def test_per_slice_factors_applied_per_slice(tmp_path):
    """Differing (7053,1000) per slice: each z slice gets its own file's factor (name order reversed)."""
    factors = [0.001, 0.002, 0.004]
    write_pet_series(tmp_path / "s", units="CNTS", philips={0x00: factors})
    volume = read_pet_suv(tmp_path / "s")
    assert volume.meta["suv"]["uniform"] is False
    for k in range(3):
        np.testing.assert_allclose(volume.array[k], stored_values(k) * (0.5 + k) * factors[k], rtol=1e-6)


def test_decay_none_decays_to_each_acquisition(tmp_path):
    files = write_pet_series(tmp_path / "s", decay="NONE", acquisition_times=["110000", "111000", "112000"])
    conversion = suv_factor_from_dicom(files)
    expected = [70_000.0 / decayed(370e6, 3600.0 + 600.0 * k) for k in range(3)]
    np.testing.assert_allclose(conversion.slice_factors, expected, rtol=1e-12)
    volume = read_pet_suv(tmp_path / "s")
    np.testing.assert_allclose(volume.array[2], stored_values(2) * 2.5 * expected[2], rtol=1e-6)


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all")
    with pytest.raises(InputError, match="cannot be read as DICOM"):
        suv_factor_from_dicom([str(bad)])

