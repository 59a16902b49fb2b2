"""`autopaint-cli ooi`: masks on the CT grid that cover the tumour; refusals."""

from __future__ import annotations

import numpy as np

from autopaint_app.core.io import Volume, read_volume, write_volume
from tests.cli.helpers import assert_error, assert_geometry_as_nifti_stores_it, assert_same_grid_exactly, cli


def test_lung_ooi_of_real_ct_is_on_the_ct_grid_and_covers_the_tumour(shared_data, tmp_path):
    ct_path = shared_data / "lung_ct/lung2_image.nrrd"
    run = cli("ooi", "--ct", ct_path, "--site", "lung", "--out", tmp_path / "ooi.nii.gz")
    assert run.code == 0, run.err
    mask, ct = read_volume(tmp_path / "ooi.nii.gz"), read_volume(ct_path)
    assert_geometry_as_nifti_stores_it(mask, ct)
    assert mask.array.dtype == np.uint8 and set(np.unique(mask.array)) == {0, 1}
    assert run.json["voxels"] == int(mask.array.sum())
    tumour = read_volume(shared_data / "lung_ct/lung2_label.nrrd").array > 0
    coverage = float((mask.array.astype(bool) & tumour).sum() / tumour.sum())
    print(f"lung2 OOI (CLI) covers {coverage:.1%} of {tumour.sum()} tumour voxels; "
          f"{mask.array.mean():.1%} of the CT")
    assert coverage >= 0.95
    assert 0.05 < mask.array.mean() < 0.5  # a lung field, not the whole volume


def test_hn_ooi_on_phantom_with_and_without_pet(hn_phantom, tmp_path):
    ct, label = read_volume(hn_phantom / "ct.nii.gz"), read_volume(hn_phantom / "label.nii.gz")
    for name, extra in (("ct_only.nii.gz", []), ("with_pet.nii.gz", ["--pet", hn_phantom / "pet.nii.gz"])):
        run = cli("ooi", "--ct", hn_phantom / "ct.nii.gz", *extra, "--site", "hn", "--out", tmp_path / name)
        assert run.code == 0, run.err
        mask = read_volume(tmp_path / name)
        assert_same_grid_exactly(mask, ct)
        assert 0.01 < mask.array.mean() < 0.5
        truth = label.array > 0
        assert (mask.array.astype(bool) & truth).sum() / truth.sum() >= 0.95


def test_ooi_refuses_an_existing_output(hn_phantom, tmp_path):
    out = tmp_path / "ooi.nii.gz"
    out.write_bytes(b"keep me")
    run = cli("ooi", "--ct", hn_phantom / "ct.nii.gz", "--site", "hn", "--out", out)
    assert_error(run, out, "already exists")
    assert out.read_bytes() == b"keep me"


def test_ooi_with_a_pet_that_does_not_overlap_the_ct(hn_phantom, tmp_path):
    pet = read_volume(hn_phantom / "pet.nii.gz")
    far = tmp_path / "far_pet.nii.gz"
    write_volume(Volume(pet.array, pet.spacing, (pet.origin[0], pet.origin[1], pet.origin[2] + 5000.0)), far)
    run = cli("ooi", "--ct", hn_phantom / "ct.nii.gz", "--pet", far, "--site", "hn", "--out", tmp_path / "o.nii.gz")
    assert_error(run, far, "does not overlap")
    assert not (tmp_path / "o.nii.gz").exists()

