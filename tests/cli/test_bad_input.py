"""Every bad input of issue 2 section 2 through the CLI: exit 2 and one `error: <file>: <problem>` line.

Includes real subprocesses (``python -m autopaint_app.cli`` and the installed console script): no traceback.
The other bad inputs of that list live beside their command: CT and PET that do not overlap
(test_ooi.py), label with the wrong geometry and non-overlapping case PET (test_info_check.py), DICOM
PET missing PatientWeight (test_convert.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from tests.cli.helpers import assert_error, cli, write_bqml_series


def _float_volume(path: Path, array: np.ndarray | None = None) -> Path:
    array = np.random.default_rng(0).normal(size=(6, 20, 20)).astype(np.float32) if array is None else array
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "missing.nii.gz"


def _truncated(tmp: Path) -> Path:
    data = _float_volume(tmp / "whole.nii.gz").read_bytes()
    (tmp / "truncated.nii.gz").write_bytes(data[: len(data) // 2])
    return tmp / "truncated.nii.gz"


def _random_bytes(tmp: Path) -> Path:
    (tmp / "corrupt.nii.gz").write_bytes(np.random.default_rng(1).bytes(4000))
    return tmp / "corrupt.nii.gz"


def _four_d(tmp: Path) -> Path:
    path = tmp / "dynamic.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.float32), isVector=False), str(path))
    return path


def _nan(tmp: Path) -> Path:
    array = np.ones((3, 4, 5), np.float32)
    array[1, 2, 3], array[2, 0, 0] = np.nan, np.inf
    return _float_volume(tmp / "nan.nii.gz", array)


def _empty_folder(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


BAD_FILES = {
    "missing file": (_missing, "file not found"),
    "truncated nii.gz": (_truncated, "truncated file: "),
    "random bytes": (_random_bytes, "cannot be read, corrupt or truncated file"),
    "4-D NIfTI": (_four_d, "is 4-D (size [5, 4, 3, 2]); expected a 3-D volume"),
    "NaN voxels": (_nan, "contains 2 NaN or infinite voxel values"),
    "empty folder as DICOM": (_empty_folder, "no DICOM series found in this folder"),
}


@pytest.mark.parametrize("command", ["convert", "info", "ooi"])
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, kind, command):
    make, problem = BAD_FILES[kind]
    bad = make(tmp_path)
    out = tmp_path / "out.nii.gz"
    argv = {"convert": ["convert", bad, "--out", out], "info": ["info", bad],
            "ooi": ["ooi", "--ct", bad, "--site", "lung", "--out", out]}[command]
    if command == "info" and kind == "empty folder as DICOM":
        problem = "no volume, DICOM series or known case layout found"  # info also looks for case folders
    run = cli(*argv)
    assert_error(run, bad, problem)
    assert run.out == "" and not out.exists()


def test_folder_with_two_dicom_series(tmp_path):
    write_bqml_series(tmp_path / "two", prefix="a")
    write_bqml_series(tmp_path / "two", prefix="b")
    for argv in (["info", tmp_path / "two"], ["convert", tmp_path / "two", "--out", tmp_path / "x.nii.gz"]):
        assert_error(cli(*argv), tmp_path / "two", "mixed series: 2 DICOM series in one folder", "choose one")


# --- real processes -------------------------------------------------------------------------------


def test_module_subprocess_bad_input_prints_one_line_and_exits_2(tmp_path):
    bad = _nan(tmp_path)
    result = subprocess.run([sys.executable, "-m", "autopaint_app.cli", "info", str(bad)],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {bad}: contains 2 NaN or infinite voxel values\n"


def test_console_script_runs_and_fails_cleanly(shared_data, tmp_path):
    script = Path(sys.executable).parent / "autopaint-cli"  # installed beside the interpreter (venv)
    assert script.is_file() and os.access(script, os.X_OK)
    good = subprocess.run([str(script), "info", str(shared_data / "lung_ct/lung1_label.nrrd")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["size_xyz"] == [512, 512, 48]
    four_d = _four_d(tmp_path)
    bad = subprocess.run([str(script), "convert", str(four_d), "--out", str(tmp_path / "x.nii.gz")],
                         check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines() == [f"error: {four_d}: is 4-D (size [5, 4, 3, 2]); expected a 3-D volume"]

