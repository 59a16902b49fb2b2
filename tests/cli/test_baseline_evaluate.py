"""`autopaint-cli baseline` and `evaluate`: masks on the right grid, the paper's table, CSV, PNG, refusals."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from autopaint_app.core import baselines, metrics
from autopaint_app.core.io import read_volume
from autopaint_app.core.ooi import compute_ooi
from autopaint_app.core.phantom import make_phantom, write_phantom
from autopaint_app.core.preprocess import resample_pet_to_ct
from tests.cli.helpers import SMALL_PHANTOM, assert_error, assert_same_grid_exactly, cli
from tests.cli.model_fixtures import use_fake_predictor
from tests.core.autopaint_fakes import CountingPredictor, ring_mean_fill

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cohort(lung_phantom, tmp_path_factory):
    """Two labelled lung phantom cases in one cohort folder (the session's seed-3 case and seed 5)."""
    folder = tmp_path_factory.mktemp("cohort")
    case, _ = lung_phantom
    (folder / "case_a").mkdir()
    for name in ("ct.nii.gz", "pet.nii.gz", "label.nii.gz"):
        (folder / "case_a" / name).write_bytes((case / name).read_bytes())
    in_plane, slices = int(SMALL_PHANTOM[1]), int(SMALL_PHANTOM[3])
    write_phantom(make_phantom("lung", 5, n_slices=slices, in_plane=in_plane), folder / "case_b")
    return folder


def test_baseline_on_the_ct_grid_matches_core_baselines(lung_phantom, tmp_path):
    case, _ = lung_phantom
    ct, pet = read_volume(case / "ct.nii.gz"), read_volume(case / "pet.nii.gz", as_float=True)
    suv = resample_pet_to_ct(pet, ct)
    ooi = compute_ooi("lung", ct=ct, pet=suv)
    for method, name in (("suv2.5", "suv_2.5"), ("suv41", "suvmax_41pct_per_lesion")):
        out = tmp_path / f"{method}.nii.gz"
        run = cli("baseline", "--pet", case / "pet.nii.gz", "--ct", case / "ct.nii.gz", "--site", "lung",
                  "--method", method, "--out", out)
        assert run.code == 0, run.err
        mask = read_volume(out)
        assert_same_grid_exactly(mask, ct)
        expected = baselines.CLI_BASELINES[name](suv.array, ooi)
        np.testing.assert_array_equal(mask.array > 0, expected)
        assert run.json["method"] == name and run.json["voxels"] == int(expected.sum()) > 0 and run.json["grid"] == "CT"
        assert not (mask.array.astype(bool) & ~ooi).any()                 # restricted to the OOI
    truth = read_volume(case / "label.nii.gz").array > 0
    assert metrics.recall(read_volume(tmp_path / "suv2.5.nii.gz").array > 0, truth) > 0.5


def test_baseline_without_ct_is_on_the_pet_grid_and_refuses_overwrite(lung_phantom, tmp_path):
    case, _ = lung_phantom
    out = tmp_path / "mask.nii.gz"
    run = cli("baseline", "--pet", case / "pet.nii.gz", "--site", "lung", "--method", "suv2.5", "--out", out)
    assert run.code == 0, run.err
    assert_same_grid_exactly(read_volume(out), read_volume(case / "pet.nii.gz"))
    assert run.json["grid"] == "PET"
    before = out.read_bytes()
    again = cli("baseline", "--pet", case / "pet.nii.gz", "--site", "lung", "--method", "suv41", "--out", out)
    assert_error(again, out, "already exists")
    assert out.read_bytes() == before
    assert_error(cli("baseline", "--pet", tmp_path / "none.nii.gz", "--site", "lung", "--method", "suv2.5",
                     "--out", tmp_path / "x.nii.gz"), tmp_path / "none.nii.gz", "not found")


def test_evaluate_writes_the_papers_table_csv_and_plot(cohort, tmp_path, monkeypatch):
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    out = tmp_path / "eval"
    run = cli("evaluate", "--cases", cohort, "--site", "lung", "--modality", "petct", "--out", out)
    assert run.code == 0, run.err
    assert sorted(p.name for p in out.iterdir()) == ["cases", "cases.csv", "dice_vs_threshold.csv",
                                                     "dice_vs_threshold.png", "evaluation.json", "summary.csv"]
    assert sorted(p.name for p in (out / "cases").iterdir()) == ["case_a.json", "case_a.residual.nii.gz",
                                                                 "case_b.json", "case_b.residual.nii.gz"]
    stored_residual = read_volume(out / "cases" / "case_a.residual.nii.gz")  # each case's residual, CT geometry
    assert_same_grid_exactly(stored_residual, read_volume(cohort / "case_a" / "ct.nii.gz"))
    truth = read_volume(cohort / "case_a" / "label.nii.gz").array > 0
    stored = json.loads((out / "cases" / "case_a.json").read_text())
    assert stored["scores"]["best"]["dice"] == metrics.best_per_subject(metrics.sweep(stored_residual.array, truth)).dice
    rows = list(csv.DictReader((out / "cases.csv").open()))
    assert [r["case_id"] for r in rows] == ["case_a", "case_b"]
    table = json.loads((out / "evaluation.json").read_text())
    fixed = table["fixed_threshold"]
    for row in rows:
        assert float(row["autopaint_fixed_threshold"]) == fixed
        assert float(row["autopaint_best_dice"]) >= float(row["autopaint_fixed_dice"])
        assert 0 < float(row["suv_2.5_dice"]) <= 1 and row["suvmax_41pct_per_lesion_recall"] != ""
    best = [float(r["autopaint_best_dice"]) for r in rows]
    assert max(best) > 0.3                                   # the ring-mean fake heals hot tumours
    summary = {r["method"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert list(summary) == ["autopaint_fixed", "autopaint_best", "suv_2.5", "suvmax_41pct_per_lesion"]
    assert float(summary["autopaint_best"]["dice_mean"]) == pytest.approx(np.mean(best), abs=1e-4)
    assert float(summary["autopaint_best"]["dice_sd"]) == pytest.approx(np.std(best, ddof=1), abs=1e-4)
    assert summary["suv_2.5"]["wilcoxon_vs_autopaint_best_dice_p"] != ""
    sweep = list(csv.DictReader((out / "dice_vs_threshold.csv").open()))
    assert len(sweep) == 41 and float(sweep[0]["threshold"]) == 0.0 and float(sweep[-1]["threshold"]) == 0.8
    mean_at_fixed = [float(r["mean_dice"]) for r in sweep if float(r["threshold"]) == fixed]
    assert mean_at_fixed == [max(float(r["mean_dice"]) for r in sweep)]
    png = (out / "dice_vs_threshold.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    printed = run.out
    assert "AutoPaint, fixed t = " in printed and "[best t per case]" in printed and "SUV >= 2.5" in printed
    assert "41 % SUVmax (per lesion)" in printed and "Wilcoxon AutoPaint [Dice] vs SUV >= 2.5" in printed
    # one line per finished case on stderr, with that case's best-threshold Dice
    for number, row in enumerate(rows, start=1):
        line = next(l for l in run.err.splitlines() if l.startswith(f"case {number}/2 {row['case_id']}: "))
        assert f"[Dice] {float(row['autopaint_best_dice']):.3f}" in line


def test_evaluate_refusals_and_unlabelled_cases(cohort, tmp_path, monkeypatch, lung_phantom):
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    out = tmp_path / "eval"
    out.mkdir()
    (out / "summary.csv").write_text("keep")
    assert_error(cli("evaluate", "--cases", cohort, "--site", "lung", "--modality", "pet", "--out", out),
                 out / "summary.csv", "already exists")
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    case, _ = lung_phantom
    for name in ("ct.nii.gz", "pet.nii.gz"):
        (unlabelled / name).write_bytes((case / name).read_bytes())
    assert_error(cli("evaluate", "--cases", unlabelled, "--site", "lung", "--modality", "petct", "--out",
                     tmp_path / "e2"), unlabelled / "ct.nii.gz", "no label")
    assert_error(cli("evaluate", "--cases", tmp_path / "nowhere", "--site", "lung", "--modality", "petct", "--out",
                     tmp_path / "e3"), tmp_path / "nowhere", "folder not found")
    assert not (tmp_path / "e2").exists() and not (tmp_path / "e3").exists()


def test_evaluate_without_pet_skips_baselines_with_a_note(cohort, tmp_path, monkeypatch):
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    ct_only = tmp_path / "ct_only"
    (ct_only / "case").mkdir(parents=True)
    for name in ("ct.nii.gz", "label.nii.gz"):
        (ct_only / "case" / name).write_bytes((cohort / "case_b" / name).read_bytes())
    run = cli("evaluate", "--cases", ct_only, "--site", "lung", "--modality", "ct", "--out", tmp_path / "e")
    assert run.code == 0, run.err
    assert "note: no PET in SUV: baselines skipped" in run.out and "SUV >= 2.5" not in run.out
    assert "CT-only model" not in run.out
    summary = list(csv.DictReader((tmp_path / "e/summary.csv").open()))
    assert [r["method"] for r in summary] == ["autopaint_fixed", "autopaint_best"]


def test_evaluate_on_a_real_sarcoma_with_the_whole_body_as_organ(shared_data, tmp_path, monkeypatch):
    """A thigh sarcoma (IBSI STS_008): the neck box is not where the tumour is; --ooi-region body holds it."""
    case = shared_data / "sts_petct" / "STS_008"
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    out = tmp_path / "eval"
    run = cli("evaluate", "--cases", case, "--site", "hn", "--modality", "pet", "--ooi-region", "body",
              "--out", out)
    assert run.code == 0, run.err
    assert run.out.startswith("AutoPaint evaluation: site hn (organ of interest: whole body), modality pet")
    table = json.loads((out / "evaluation.json").read_text())
    assert table["ooi_region"] == "body"
    row = next(csv.DictReader((out / "cases.csv").open()))
    assert row["case_id"] == "STS_008"
    assert float(row["suv_2.5_recall"]) > 0.3   # the baselines search the whole body: they reach the GTV
    assert float(row["autopaint_best_recall"]) > 0.3  # the ring-mean fake heals the hot lesion


def test_baseline_with_the_whole_body_as_organ(shared_data, tmp_path):
    case = shared_data / "sts_petct" / "STS_008"
    gtv = read_volume(case / "CT_mask.nii.gz").array > 0
    masks = {}
    for region in ("site", "body"):
        out = tmp_path / f"{region}.nii.gz"
        run = cli("baseline", "--ct", case / "CT_image.nii.gz", "--pet", case / "PET_image.nii.gz", "--site", "hn",
                  "--method", "suv2.5", "--ooi-region", region, "--out", out)
        assert run.code == 0, run.err
        masks[region] = read_volume(out).array > 0
    recall = {region: float((mask & gtv).sum() / gtv.sum()) for region, mask in masks.items()}
    assert recall["body"] > recall["site"] + 0.2 and not (masks["site"] & ~masks["body"]).any()
