"""`autopaint-cli demo`: the main job on the embedded demo case; never overwrites a previous run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autopaint_app.core.io import read_volume
from autopaint_app.core.phantom import ensure_demo_case
from tests.cli.helpers import assert_error, assert_same_grid_exactly, cli, snapshot


def test_demo_writes_summary_and_masks_on_the_ct_grid_and_never_overwrites(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOPAINT_MODELS_DIR", str(tmp_path / "no_models"))
    (tmp_path / "no_models").mkdir()
    out = tmp_path / "demo"
    run = cli("demo", "--out", out)
    assert run.code == 0, run.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary == run.json
    ct = read_volume(ensure_demo_case() / "ct.nii.gz")
    assert summary["ct_shape_zyx"] == list(ct.shape)
    masks = sorted(p.name for p in out.glob("*.nii.gz"))
    assert masks == ["baseline_suv_2.5.nii.gz", "baseline_suvmax_41pct_per_lesion.nii.gz", "ooi.nii.gz",
                     "pet_suv_on_ct.nii.gz"]
    for name in masks:
        assert_same_grid_exactly(read_volume(out / name), ct)
    ooi = read_volume(out / "ooi.nii.gz").array
    assert ooi.dtype == np.uint8 and summary["ooi_volume_ml"] == pytest.approx(ooi.sum() * ct.voxel_volume_ml)
    assert summary["scores"]["ooi_tumour_coverage"] >= 0.95
    for name in ("suv_2.5", "suvmax_41pct_per_lesion"):
        assert 0.0 < summary["scores"][name]["dice"] <= 1.0
    assert "no AutoPaint model installed" in summary["scores"]["autopaint"]["skipped"]
    before = snapshot(out)
    again = cli("demo", "--out", out)
    assert_error(again, out / "ooi.nii.gz", "already exists", "--overwrite")
    assert snapshot(out) == before


def test_demo_output_folder_that_cannot_be_created(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    out = tmp_path / "a_file" / "demo"
    assert_error(cli("demo", "--out", out), out, "cannot create output folder")


def test_demo_runs_autopaint_with_the_installed_model(tmp_path, monkeypatch, tiny_models):
    monkeypatch.setenv("AUTOPAINT_MODELS_DIR", str(tiny_models))
    out = tmp_path / "demo"
    run = cli("demo", "--out", out)
    assert run.code == 0, run.err
    autopaint = run.json["scores"]["autopaint"]
    assert autopaint["model"].endswith("lung_petct_test.onnx")
    ct = read_volume(ensure_demo_case() / "ct.nii.gz")
    mask = read_volume(out / "autopaint" / "mask.nii.gz")
    assert_same_grid_exactly(mask, ct)
    truth = read_volume(ensure_demo_case() / "label.nii.gz").array > 0
    dice = 2 * np.logical_and(mask.array > 0, truth).sum() / max((mask.array > 0).sum() + truth.sum(), 1)
    assert autopaint["dice"] == pytest.approx(dice)
    assert (out / "autopaint" / "summary.json").is_file()
