"""`autopaint-cli phantom`: a readable case, label on the CT grid, PET in SUV, no overwrite."""

from __future__ import annotations

import numpy as np
import pytest

from autopaint_app.cli import main
from autopaint_app.core.case import check_overlap
from autopaint_app.core.io import read_volume
from autopaint_app.core.preprocess import resample_pet_to_ct
from tests.cli.helpers import assert_error, assert_same_grid_exactly, cli, snapshot


def test_phantom_writes_a_readable_case_with_label_on_the_ct_grid_and_pet_in_suv(lung_phantom):
    out, report = lung_phantom
    assert sorted(p.name for p in out.iterdir()) == ["ct.nii.gz", "label.nii.gz", "pet.nii.gz", "phantom.json"]
    ct, pet, label = (read_volume(out / name) for name in ("ct.nii.gz", "pet.nii.gz", "label.nii.gz"))
    assert report["ct_shape_zyx"] == [12, 128, 128] == list(ct.shape)
    assert ct.array.dtype == np.int16 and ct.array.min() <= -1000  # HU with air
    assert_same_grid_exactly(label, ct)
    assert set(np.unique(label.array)) == {0, 1}
    assert report["tumours"] >= 1 and report["label_voxels"] == int(label.array.sum()) > 0
    # PET: float SUV on its own coarser grid that overlaps the CT; tumours are hot.
    assert pet.array.dtype == np.float32 and pet.array.min() >= 0.0
    assert pet.spacing[0] > ct.spacing[0]
    check_overlap(ct, pet)
    suv_on_ct = resample_pet_to_ct(pet, ct).array
    tumour_max = suv_on_ct[label.array > 0].max()
    assert pet.array.max() > 2.0 and tumour_max > 2.5
    assert tumour_max > np.percentile(suv_on_ct[label.array == 0], 99)


def test_phantom_healthy_has_an_empty_label(tmp_path):
    run = cli("phantom", "--site", "lung", "--seed", 3, "--healthy", "--in-plane", 64, "--slices", 8,
              "--out", tmp_path / "healthy")
    assert run.code == 0 and run.json["tumours"] == 0 and run.json["label_voxels"] == 0
    label = read_volume(tmp_path / "healthy" / "label.nii.gz")
    assert label.shape == (8, 64, 64) and not label.array.any()


def test_phantom_refuses_to_overwrite_an_existing_case(tmp_path):
    out = tmp_path / "case"
    assert cli("phantom", "--site", "lung", "--seed", 1, "--in-plane", 64, "--slices", 8, "--out", out).code == 0
    before = snapshot(out)
    run = cli("phantom", "--site", "lung", "--seed", 2, "--in-plane", 64, "--slices", 8, "--out", out)
    assert_error(run, out / "ct.nii.gz", "already exists", "--overwrite")
    assert snapshot(out) == before
    run = cli("phantom", "--site", "lung", "--seed", 2, "--in-plane", 64, "--slices", 8, "--out", out,
              "--overwrite")
    assert run.code == 0
    assert snapshot(out)["ct.nii.gz"][1] != before["ct.nii.gz"][1]  # another seed, another CT


@pytest.mark.parametrize("options,problem", [(["--seed", "-1"], "seed must be >= 0, got -1"),
                                             (["--seed", "1", "--in-plane", "16"], "grid too small")])
def test_phantom_bad_options_are_one_line_errors(tmp_path, options, problem):
    run = cli("phantom", "--site", "hn", *options, "--slices", 4, "--out", tmp_path / "x")
    assert_error(run, "phantom options", problem)
    assert not (tmp_path / "x").exists()


def test_argparse_errors_exit_2_without_traceback(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["phantom", "--site", "liver", "--seed", "1", "--out", "x"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'liver'" in err and "Traceback" not in err

