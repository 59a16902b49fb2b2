"""`autopaint-cli model-eval`: model vs biharmonic on held-out healthy crops, and its refusals.

The model is the tiny ONNX fill model of tests/core/tiny_onnx.py, whose output is known exactly
(``reference_output``), so the reported model figures can be recomputed independently.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from autopaint_app.core.case import find_cases, load_case
from autopaint_app.core.inpaint_quality import biharmonic_metrics, inpainting_metrics
from autopaint_app.core.model_eval import EvalSettings, case_crops, modality_of
from autopaint_app.core.slice_sampling import healthy_slice_mask
from tests.cli.helpers import CliRun, assert_error, cli
from tests.core.tiny_onnx import build_model, reference_output, write_card

CROP, CROPS, SEED = 64, 6, 1


@pytest.fixture(scope="module")
def fill_model(tmp_path_factory) -> Path:
    """The 2-channel fill model with a card like an exported one (train_crop, training patients)."""
    folder = tmp_path_factory.mktemp("eval_model")
    build_model(folder / "lung_petct_fill.onnx", channels=2)
    write_card(folder / "lung_petct_fill.json", train_crop=CROP, training={"train_patients": ["lung_case"]})
    return folder / "lung_petct_fill.onnx"


@pytest.fixture(scope="module")
def evaluated(lung_phantom, fill_model, tmp_path_factory):
    case_folder, _ = lung_phantom
    out = tmp_path_factory.mktemp("eval_out") / "eval.json"
    run = cli("model-eval", "--model", fill_model, "--cases", case_folder, "--site", "lung", "--crops", CROPS,
              "--seed", SEED, "--out", out)
    return run, out, case_folder


def test_reported_figures_are_the_model_and_biharmonic_on_the_same_crops(evaluated):
    run, out, case_folder = evaluated
    assert run.code == 0, run.err
    report = json.loads(out.read_text())
    (files,) = find_cases(case_folder)
    crops = case_crops(files, "lung", "petct", EvalSettings(crop=CROP, crops_per_case=CROPS, seed=SEED))
    assert crops.images.shape == (CROPS, 2, CROP, CROP) and crops.masks.shape == (CROPS, 1, CROP, CROP)
    (case,) = report["cases"]
    expected_model = inpainting_metrics(reference_output(crops.images, crops.masks), crops.images, crops.masks)
    expected_biharmonic = biharmonic_metrics(crops.images, crops.masks)
    for name in ("mse_hole", "psnr_hole", "ssim_hole"):
        assert case["model"][name] == pytest.approx(expected_model[name], rel=1e-5)
        assert case["biharmonic"][name] == pytest.approx(expected_biharmonic[name], rel=1e-9)
        assert report["pooled"]["model"][name] == pytest.approx(case["model"][name], rel=1e-9)  # one case
    rows = case["per_crop"]
    assert len(rows) == CROPS
    assert case["wins"]["psnr_hole"] == sum(r["model"]["psnr_hole"] > r["biharmonic"]["psnr_hole"] for r in rows)
    assert case["wins"]["mse_hole"] == sum(r["model"]["mse_hole"] < r["biharmonic"]["mse_hole"] for r in rows)
    # A fill with 0.5 plus a blur loses to biharmonic on smooth anatomy: the table must say so.
    assert case["wins"]["psnr_hole"] < CROPS and case["model"]["psnr_hole"] < case["biharmonic"]["psnr_hole"]
    assert 0.2 <= report["pooled"]["hole_coverage"] <= 0.35
    assert report["crop"] == CROP and report["modality"] == "petct" and case["in_training_set"] is True
    prediction = reference_output(crops.images, crops.masks)
    for c, name in enumerate(("ct", "pet")):   # each channel alone, as the by_channel rows say
        alone = inpainting_metrics(prediction[:, c:c + 1], crops.images[:, c:c + 1], crops.masks)
        assert case["by_channel"][name]["model"]["psnr_hole"] == pytest.approx(alone["psnr_hole"], rel=1e-5)
        assert report["pooled"]["by_channel"][name]["biharmonic"]["ssim_hole"] == pytest.approx(
            biharmonic_metrics(crops.images[:, c:c + 1], crops.masks)["ssim_hole"], rel=1e-9)
    assert case["synthetic_pet"] is False


def test_crops_come_from_tumour_free_slices_only(evaluated):
    _, out, case_folder = evaluated
    report = json.loads(out.read_text())
    case = load_case(find_cases(case_folder)[0])
    healthy = healthy_slice_mask(case.label.array, case.label.array.shape[0], case.reference.spacing[2], 6.0)
    assert (~healthy).any(), "the phantom must have tumour slices for this test to mean anything"
    used = {row["slice"] for row in report["cases"][0]["per_crop"]}
    assert used and all(healthy[z] for z in used)
    assert report["cases"][0]["tumour_excluded"] == int((~healthy).sum())


def test_printed_table_has_each_case_and_the_pooled_row(evaluated):
    run, out, _ = evaluated
    report = json.loads(out.read_text())
    lines = run.out.splitlines()
    case_line = next(line for line in lines if line.startswith("lung_case *"))
    pooled_line = next(line for line in lines if line.startswith("pooled (1 cases)"))
    assert f"{report['cases'][0]['model']['psnr_hole']:.2f}" in case_line
    assert f"{report['pooled']['biharmonic']['ssim_hole']:.4f}" in pooled_line
    assert f"{report['pooled']['wins']['psnr_hole']}/{CROPS}" in pooled_line
    assert any(line.startswith("* case used for training") for line in lines)
    pet_line = next(line for line in lines if line.strip().startswith("PET channel"))
    assert f"{report['pooled']['by_channel']['pet']['model']['psnr_hole']:.2f}" in pet_line
    assert run.err.strip().splitlines() == ["case 1/1 lung_case: 6 crops scored"]


def test_crops_are_fixed_by_seed_and_case_alone(lung_phantom):
    (files,) = find_cases(lung_phantom[0])
    settings = EvalSettings(crop=CROP, crops_per_case=3, seed=SEED)
    first, again = case_crops(files, "lung", "petct", settings), case_crops(files, "lung", "petct", settings)
    other = case_crops(files, "lung", "petct", EvalSettings(crop=CROP, crops_per_case=3, seed=SEED + 1))
    assert np.array_equal(first.images, again.images) and np.array_equal(first.masks, again.masks)
    assert not np.array_equal(first.masks, other.masks)
    assert modality_of(("ct", "pet")) == "petct" and modality_of(("pet",)) == "pet"


def test_unlabelled_case_needs_the_healthy_flag(lung_phantom, fill_model, tmp_path):
    unlabelled = tmp_path / "nolabel"
    shutil.copytree(lung_phantom[0], unlabelled)
    (unlabelled / "label.nii.gz").unlink()
    refused = cli("model-eval", "--model", fill_model, "--cases", unlabelled, "--site", "lung", "--crops", 2)
    progress, error = refused.err.strip().splitlines()  # the progress line of the case, then the error
    assert progress == "case 1/1 nolabel: skipped (no tumour label and --healthy not given)"
    assert_error(CliRun(refused.code, refused.out, error), unlabelled, "no case could be scored",
                 "no tumour label and --healthy not given")
    accepted = cli("model-eval", "--model", fill_model, "--cases", unlabelled, "--site", "lung", "--crops", 2,
                   "--healthy")
    assert accepted.code == 0, accepted.err
    assert accepted.err.strip() == "case 1/1 nolabel: 2 crops scored"
    assert any(line.startswith("pooled (1 cases)") and line.split()[3] == "2" for line in accepted.out.splitlines())


def test_bad_inputs_exit_2_with_one_clear_line(lung_phantom, fill_model, tmp_path):
    case_folder = lung_phantom[0]
    missing = tmp_path / "no_such_cases"
    assert_error(cli("model-eval", "--model", fill_model, "--cases", missing, "--site", "lung"), missing,
                 "folder not found")
    wrong = tmp_path / "lung_pet_wrong.onnx"
    build_model(wrong, channels=2)
    write_card(wrong.with_suffix(".json"), channels=["pet"], train_crop=CROP)
    assert_error(cli("model-eval", "--model", wrong, "--cases", case_folder, "--site", "lung"), wrong,
                 "2 channel(s), but its card lists channels ['pet']")
    assert_error(cli("model-eval", "--model", fill_model, "--cases", case_folder, "--site", "hn"), fill_model,
                 "trained for site lung, not hn")
    assert_error(cli("model-eval", "--model", fill_model, "--cases", case_folder, "--site", "lung", "--crop", 48),
                 "--crop", "multiple of the model's size_multiple 32")
    existing = tmp_path / "eval.json"
    existing.write_text("keep")
    assert_error(cli("model-eval", "--model", fill_model, "--cases", case_folder, "--site", "lung", "--out",
                     existing), existing, "refusing to overwrite")
    assert existing.read_text() == "keep"


def test_synthetic_pet_scores_a_ct_only_case_and_says_which_channel_is_real(lung_phantom, fill_model, tmp_path):
    ct_only = tmp_path / "chest_ct"
    ct_only.mkdir()
    for name in ("ct.nii.gz", "label.nii.gz"):
        shutil.copy(lung_phantom[0] / name, ct_only / name)
    skipped = cli("model-eval", "--model", fill_model, "--cases", ct_only, "--site", "lung", "--crops", 2)
    assert skipped.code == 2 and "modality petct needs PET, the case has none" in skipped.err
    run = cli("model-eval", "--model", fill_model, "--cases", ct_only, "--site", "lung", "--crops", 2,
              "--synthetic-pet", "--out", tmp_path / "eval.json")
    assert run.code == 0, run.err
    (case,) = json.loads((tmp_path / "eval.json").read_text())["cases"]
    assert case["synthetic_pet"] is True and set(case["by_channel"]) == {"ct", "pet"}
    assert any(line.startswith("chest_ct s") for line in run.out.splitlines())
    assert "only its CT channel is real data" in run.out
    real = cli("model-eval", "--model", fill_model, "--cases", lung_phantom[0], "--site", "lung", "--crops", 2,
               "--synthetic-pet", "--out", tmp_path / "real.json")
    assert real.code == 0 and json.loads((tmp_path / "real.json").read_text())["cases"][0]["synthetic_pet"] is False
