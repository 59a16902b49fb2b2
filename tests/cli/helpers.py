"""Shared helpers of the CLI tests: run `autopaint-cli` in-process, check its one-line errors, tiny DICOM."""

from __future__ import annotations


import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from autopaint_app.cli import main
from autopaint_app.core.io import Volume

PHILIPS_PET = "hn_petct_dicom/HN-CHUS-052/pet_dicom"
F18_HALF_LIFE = 6588.0
PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
SMALL_PHANTOM = ["--in-plane", "128", "--slices", "12"]


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict:
        return json.loads(self.out)


def cli(*argv) -> CliRun:
    """``autopaint-cli *argv`` in-process; stdout/stderr captured (usable in module fixtures too)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return CliRun(code, out.getvalue(), err.getvalue())


def assert_error(run: CliRun, path: Path | str, *fragments: str) -> str:
    """Exit 2 and exactly one stderr line ``error: <path>: <problem>`` holding every fragment."""
    assert run.code == 2, run
    assert "Traceback" not in run.err
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_geometry_as_nifti_stores_it(written: Volume, reference: Volume) -> None:
    """Same size and direction; spacing and origin equal at the float32 precision NIfTI stores."""
    assert written.size_xyz == reference.size_xyz
    assert written.direction == reference.direction
    assert np.array_equal(np.float32(written.spacing), np.float32(reference.spacing))
    assert np.array_equal(np.float32(written.origin), np.float32(reference.origin))


def assert_same_grid_exactly(written: Volume, reference: Volume) -> None:
    assert written.size_xyz == reference.size_xyz
    assert (written.spacing, written.origin, written.direction) == (reference.spacing, reference.origin,
                                                                    reference.direction)


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file in a folder with its modification time and bytes (to prove nothing was touched)."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def write_bqml_series(folder: Path, *, weight: str | None = "70", series_uid: str | None = None,
                      value_offset: int = 0, prefix: str = "im") -> list[Path]:
    """Three 4x4 Siemens/GE-style PET slices (Units BQML, DecayCorrection START), one file each.

    Injection 10:00:00 of 370 MBq F-18, series time 11:00:00, so SUV factor = 70 kg / decayed dose
    with one hour of decay. Slice k stores ``value_offset + 100 k + (0..15)`` Bq/ml (slope 1).
    """
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), series_uid or generate_uid(), generate_uid()
    files = []
    for k in range(3):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = PET_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = sop = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = PET_STORAGE, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.Units, ds.DecayCorrection = "PT", "BQML", "START"
        if weight is not None:
            ds.PatientWeight = weight
        ds.SeriesDate, ds.SeriesTime = "20240101", "110000"
        ds.AcquisitionDate, ds.AcquisitionTime = "20240101", "110030"
        item = pydicom.Dataset()
        item.RadionuclideTotalDose, item.RadionuclideHalfLife = "370000000", str(F18_HALF_LIFE)
        item.RadiopharmaceuticalStartTime = "100000"
        ds.RadiopharmaceuticalInformationSequence = pydicom.Sequence([item])
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [2.0, 2.0], 3.0
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
        ds.PixelData = (np.arange(16, dtype=np.int16).reshape(4, 4) + value_offset + 100 * k).tobytes()
        path = folder / f"{prefix}{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


BQML_FACTOR = 70_000.0 / (370e6 * 0.5 ** (3600.0 / F18_HALF_LIFE))  # 70 kg in g / dose decayed 1 h
