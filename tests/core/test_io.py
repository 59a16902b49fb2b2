"""Volume I/O: exact round trips on every real file, atomic writes, and every kind of bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autopaint_app.core.errors import InputError, OutputExistsError
from autopaint_app.core.io import Volume, read_volume, write_volume

STS_CASES = ("STS_001", "STS_002", "STS_003", "STS_004", "STS_005", "STS_006", "STS_008", "STS_010", "STS_012")
STS_FILES = ("CT_image.nii.gz", "CT_mask.nii.gz", "PET_image.nii.gz", "PET_mask.nii.gz")
LUNG_FILES = tuple(f"lung_ct/lung{i}_{kind}.nrrd" for i in (1, 2) for kind in ("image", "label"))
HN = "hn_petct_dicom/HN-CHUS-052"
REAL_FILES = LUNG_FILES + tuple(f"sts_petct/{c}/{f}" for c in STS_CASES for f in STS_FILES) + (f"{HN}/ct.nii.gz",)


def _assert_identical(read_back: Volume, original: Volume) -> None:
    assert read_back.array.dtype == original.array.dtype
    assert read_back.shape == original.shape
    assert read_back.spacing == original.spacing
    assert read_back.origin == original.origin
    assert read_back.direction == original.direction
    assert np.array_equal(read_back.array, original.array)


def _volume(array: np.ndarray, spacing=(2.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0)) -> Volume:
    return Volume(np.asarray(array), spacing, origin)


def test_real_file_list_is_complete(shared_data: Path):
    """REAL_FILES must name every image file in the shared data, so the round trip covers all."""
    on_disk = {str(p.relative_to(shared_data)) for p in shared_data.rglob("*") if p.name.endswith((".nrrd", ".nii.gz"))}
    assert on_disk == set(REAL_FILES)
    assert len(REAL_FILES) == 41


@pytest.mark.parametrize("relative", REAL_FILES)
def test_real_file_round_trip_is_bit_exact(shared_data: Path, tmp_path: Path, relative: str):
    original = read_volume(shared_data / relative)
    suffix = ".nrrd" if relative.endswith(".nrrd") else ".nii.gz"
    written = write_volume(original, tmp_path / f"copy{suffix}")
    _assert_identical(read_volume(written), original)


@pytest.mark.parametrize("relative", LUNG_FILES)
def test_nrrd_to_nifti_keeps_values_and_geometry_to_float32_precision(shared_data: Path, tmp_path: Path, relative: str):
    """NIfTI headers store geometry as float32: lung2's 0.627 mm spacing comes back 2.5e-8 mm off."""
    original = read_volume(shared_data / relative)
    copy = read_volume(write_volume(original, tmp_path / "copy.nii.gz"))
    assert np.array_equal(copy.array, original.array)
    assert copy.same_grid(original)
    assert np.allclose(copy.spacing, original.spacing, rtol=1e-7, atol=0)
    assert np.allclose(copy.origin, original.origin, rtol=0, atol=1e-6)


def test_philips_pet_dicom_reads_as_float_without_wrapping(shared_data: Path, tmp_path: Path):
    pet = read_volume(shared_data / HN / "pet_dicom")
    assert pet.array.dtype == np.float32
    assert pet.size_xyz == (144, 144, 255)
    # README: 0...129176 CNTS when read as float; int16 would wrap to -32759...32725.
    assert pet.array.min() == 0.0
    assert 129176.0 <= pet.array.max() < 129177.0
    assert np.allclose(pet.spacing, (4.0, 4.0, 4.0), atol=1e-6)
    assert np.allclose(pet.origin, (-286.586, -216.586, -1087.755), atol=1e-3)
    # NRRD keeps double-precision geometry: bit-exact.
    _assert_identical(read_volume(write_volume(pet, tmp_path / "pet.nrrd")), pet)
    # NIfTI keeps float32 geometry: the 4.00000003 mm z spacing becomes 4.0; values stay exact.
    as_nifti = read_volume(write_volume(pet, tmp_path / "pet.nii.gz"))
    assert np.array_equal(as_nifti.array, pet.array)
    assert as_nifti.same_grid(pet)
    assert np.allclose(as_nifti.origin, pet.origin, rtol=0, atol=1e-6)


# --- atomic writes -----------------------------------------------------------------------------


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path):
    volume = _volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    target = write_volume(volume, tmp_path / "out.nii.gz")
    assert sorted(os.listdir(tmp_path)) == ["out.nii.gz"]
    _assert_identical(read_volume(target), volume)


def test_write_refuses_to_overwrite_and_leaves_original_untouched(tmp_path: Path):
    target = write_volume(_volume(np.zeros((3, 4, 5), np.uint8)), tmp_path / "mask.nii.gz")
    before, mtime = target.read_bytes(), target.stat().st_mtime_ns
    with pytest.raises(OutputExistsError) as info:
        write_volume(_volume(np.ones((3, 4, 5), np.uint8)), target)
    assert str(info.value) == f"{target}: already exists; refusing to overwrite it (use --overwrite)"
    assert isinstance(info.value, InputError)
    assert target.read_bytes() == before and target.stat().st_mtime_ns == mtime
    assert sorted(os.listdir(tmp_path)) == ["mask.nii.gz"]


def test_write_with_overwrite_replaces_the_file(tmp_path: Path):
    target = write_volume(_volume(np.zeros((3, 4, 5), np.uint8)), tmp_path / "mask.nii.gz")
    write_volume(_volume(np.ones((3, 4, 5), np.uint8)), target, overwrite=True)
    assert read_volume(target).array.sum() == 60
    assert sorted(os.listdir(tmp_path)) == ["mask.nii.gz"]


def test_failed_write_leaves_nothing_behind(tmp_path: Path):
    with pytest.raises(InputError) as info:
        write_volume(_volume(np.zeros((3, 4, 5), np.uint8)), tmp_path / "out.unknownformat")
    assert "cannot be written" in str(info.value)
    assert os.listdir(tmp_path) == []


# --- bad input ---------------------------------------------------------------------------------


def _raises_input_error(path: Path, *expected: str, **read_kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        read_volume(path, **read_kwargs)
    assert info.value.path == str(path)
    for text in expected:
        assert text in info.value.problem, info.value.problem
    return info.value


def test_missing_file(tmp_path: Path):
    _raises_input_error(tmp_path / "nope.nii.gz", "file not found")


def test_empty_file(tmp_path: Path):
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    _raises_input_error(tmp_path / "empty.nii.gz", "file is empty")


def test_unsupported_suffix(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    _raises_input_error(tmp_path / "notes.txt", "unsupported file type")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_truncated_nifti_is_detected(tmp_path: Path, suffix: str):
    """ITK itself zero-fills the missing half without an error; we must refuse the file."""
    rng = np.random.default_rng(1)
    whole = write_volume(_volume(rng.normal(size=(20, 30, 40)).astype(np.float32)), tmp_path / f"whole{suffix}")
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(cut))).shape == (20, 30, 40)  # ITK does not complain
    _raises_input_error(cut, "truncated file", "of the 96352 bytes its header promises are present")


def test_truncated_integer_nifti_is_detected(tmp_path: Path):
    whole = write_volume(_volume(np.arange(24000, dtype=np.int16).reshape(20, 30, 40)), tmp_path / "ct.nii.gz")
    data = whole.read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    _raises_input_error(tmp_path / "cut.nii.gz", "truncated file", "of the 48352 bytes")


def test_truncated_nrrd(tmp_path: Path):
    whole = write_volume(_volume(np.arange(24000, dtype=np.float32).reshape(20, 30, 40)), tmp_path / "whole.nrrd")
    data = whole.read_bytes()
    (tmp_path / "cut.nrrd").write_bytes(data[: len(data) // 2])
    _raises_input_error(tmp_path / "cut.nrrd", "cannot be read, corrupt or truncated file")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_random_bytes_are_rejected(tmp_path: Path, suffix: str):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(np.random.default_rng(2).bytes(5000))
    _raises_input_error(path, "cannot be read, corrupt or truncated file")


def test_gzip_corrupted_in_the_middle(tmp_path: Path):
    whole = write_volume(_volume(np.random.default_rng(3).normal(size=(20, 30, 40)).astype(np.float32)),
                         tmp_path / "whole.nii.gz")
    data = bytearray(whole.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "flipped.nii.gz").write_bytes(bytes(data))
    _raises_input_error(tmp_path / "flipped.nii.gz", "cannot be read, corrupt or truncated file")


def test_four_dimensional_nifti(tmp_path: Path):
    path = tmp_path / "dynamic.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.float32), isVector=False), str(path))
    _raises_input_error(path, "is 4-D (size [5, 4, 3, 2]); expected a 3-D volume")


def test_vector_image(tmp_path: Path):
    path = tmp_path / "rgb.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5, 3), np.uint8), isVector=True), str(path))
    _raises_input_error(path, "has 3 components per voxel")


@pytest.mark.parametrize("suffix,dtype", [(".nii.gz", np.float32), (".nii", np.float32),
                                          (".nii.gz", np.float64), (".nrrd", np.float32), (".mha", np.float64)])
def test_nan_and_inf_voxels(tmp_path: Path, suffix: str, dtype):
    """ITK's NIfTI reader turns NaN/Inf into 0 silently; the file must still be refused."""
    array = np.ones((3, 4, 5), dtype)
    array[1, 2, 3], array[0, 0, 0], array[2, 3, 4] = np.nan, np.inf, -np.inf
    path = tmp_path / f"pet{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    _raises_input_error(path, "contains 3 NaN or infinite voxel values")
    _raises_input_error(path, "contains 3 NaN or infinite voxel values", as_float=True)


def test_finite_float_nifti_passes_the_nan_scan(tmp_path: Path):
    array = np.random.default_rng(4).normal(size=(7, 9, 11)).astype(np.float64)
    path = tmp_path / "fine.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    assert np.array_equal(read_volume(path).array, array)


def test_empty_folder_is_not_dicom(tmp_path: Path):
    _raises_input_error(tmp_path, "no DICOM series found in this folder")


def test_folder_of_non_dicom_files(tmp_path: Path):
    (tmp_path / "readme.txt").write_text("not an image")
    _raises_input_error(tmp_path, "no DICOM series found in this folder")


def _write_dicom_series(folder: Path, series_uid: str, prefix: str, value_offset: int) -> None:
    """Three 4x5 PT slices, 3 mm apart, one file each (SimpleITK's DICOM writer)."""
    for k in range(3):
        image = sitk.GetImageFromArray(np.full((1, 4, 5), value_offset + k, np.int16))
        image.SetSpacing((2.0, 2.0, 3.0))
        image.SetOrigin((0.0, 0.0, 3.0 * k))
        tags = {"0008|0060": "PT", "0020|000d": "1.2.826.0.1.3680043.2.1125.1", "0020|000e": series_uid,
                "0020|0032": f"0\\0\\{3.0 * k}", "0020|0037": "1\\0\\0\\0\\1\\0", "0020|0013": str(k + 1),
                "0008|0016": "1.2.840.10008.5.1.4.1.1.128"}
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"{prefix}{k}.dcm"))
        writer.Execute(image)


def test_two_dicom_series_in_one_folder(tmp_path: Path):
    first, second = "1.2.826.0.1.3680043.2.1125.2", "1.2.826.0.1.3680043.2.1125.3"
    _write_dicom_series(tmp_path, first, "a", 0)
    single = read_volume(tmp_path)
    assert single.size_xyz == (5, 4, 3) and single.spacing == pytest.approx((2.0, 2.0, 3.0))
    assert single.array[:, 0, 0].tolist() == [0.0, 1.0, 2.0]
    _write_dicom_series(tmp_path, second, "b", 100)
    _raises_input_error(tmp_path, f"mixed series: 2 DICOM series in one folder ({first}, {second}); choose one")
    chosen = read_volume(tmp_path, series_uid=second)
    assert chosen.array[:, 0, 0].tolist() == [100.0, 101.0, 102.0]
    _raises_input_error(tmp_path, "DICOM series 9.9.9 not found", series_uid="9.9.9")
