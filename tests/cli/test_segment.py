"""`autopaint-cli segment`: outputs on the CT grid, summary.json, default model, --slices, refusals, Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autopaint_app.core import segment as core_segment
from autopaint_app.core.errors import InputError
from autopaint_app.core.io import read_volume
from autopaint_app.core.model_store import MODELS_ENV, default_model_path
from autopaint_app.segment_commands import parse_slices, resolve_slices
from tests.cli.helpers import assert_error, assert_same_grid_exactly, cli
from tests.cli.model_fixtures import KeyboardInterruptAfter, use_fake_predictor
from tests.core.autopaint_fakes import CountingPredictor, ring_mean_fill

PETCT_FILES = ["inpainted_ct.nii.gz", "inpainted_pet.nii.gz", "mask.nii.gz", "residual.nii.gz", "summary.json"]


def _segment(case, out, *extra):
    return cli("segment", "--case", case, "--site", "lung", "--modality", "petct", "--out", out, *extra)


def test_segment_writes_every_output_on_the_ct_grid_with_a_summary(lung_phantom, tiny_models, tmp_path):
    case, _ = lung_phantom
    out = tmp_path / "out"
    run = _segment(case, out, "--model", tiny_models / "lung_petct_test.onnx", "--slices", "4:8",
                   "--threshold", "0.2", "--threads", "1")
    assert run.code == 0, run.err
    assert sorted(p.name for p in out.iterdir()) == PETCT_FILES            # no staging file left
    ct = read_volume(case / "ct.nii.gz")
    for name in PETCT_FILES[:-1]:
        assert_same_grid_exactly(read_volume(out / name), ct)
    mask, residual = read_volume(out / "mask.nii.gz").array, read_volume(out / "residual.nii.gz").array
    assert mask.dtype == np.uint8 and residual.dtype == np.float32
    np.testing.assert_array_equal(mask > 0, residual > 0.2)
    assert not residual[:4].any() and not residual[8:].any()                # only slices 4..7 processed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["slices_processed"] == [4, 5, 6, 7]
    assert summary["params"]["threshold"] == 0.2 and summary["mode"] == "fast"
    assert summary["model"]["path"].endswith("lung_petct_test.onnx")
    assert summary["model"]["provider"] == "CPUExecutionProvider"
    assert summary["model"]["card"]["architecture"] == "test-fill"
    assert summary["circles_inpainted"] > 100 and summary["holes_inpainted"] >= summary["circles_inpainted"]
    assert {"load", "prepare", "ooi", "autopaint", "inference", "scoring", "outputs", "total"} <= set(
        summary["timings_s"])
    assert summary["mask"]["voxels"] == int(mask.sum()) == sum(le["voxels"] for le in summary["lesions"])
    assert summary["preset"]["name"] == "lung" and summary["grid"]["shape_zyx"] == list(ct.shape)
    assert run.json["files"] == PETCT_FILES


def test_inpainted_volumes_are_in_hu_and_suv_and_keep_unchanged_voxels(lung_phantom, tmp_path, monkeypatch):
    case, _ = lung_phantom
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    run = _segment(case, tmp_path / "out", "--volume-k", "0")  # the paper's per-slice rule: the fake's
    assert run.code == 0, run.err                               # errors everywhere hide it from the volume rule
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["model"] == {"path": None, "name": "CountingPredictor", "provider": None}
    ct = read_volume(case / "ct.nii.gz").array.astype(np.float32)
    inpainted_ct = read_volume(tmp_path / "out/inpainted_ct.nii.gz").array
    changed = inpainted_ct != ct
    assert summary["slices_kept"], "the ring-mean fake heals the phantom's hot tumour"
    assert changed.any() and set(np.flatnonzero(changed.any(axis=(1, 2)))) <= set(summary["slices_kept"])
    assert ct.max() > 500 and inpainted_ct.max() == ct.max()                # bone above the window survives
    assert -1000 <= inpainted_ct[changed].min() and inpainted_ct[changed].max() <= 500   # HU, window range
    suv = read_volume(tmp_path / "out/inpainted_pet.nii.gz").array
    assert 0 <= suv.min() and suv.max() > 1.0                                # SUV, not unit range


def test_pet_only_outputs_are_on_the_pet_grid(lung_phantom, tiny_models, tmp_path):
    case, _ = lung_phantom
    run = cli("segment", "--pet", case / "pet.nii.gz", "--site", "lung", "--modality", "pet", "--slices", "3:5",
              "--model", tiny_models / "lung_pet_test.onnx", "--out", tmp_path / "out")
    assert run.code == 0, run.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "inpainted_pet.nii.gz", "mask.nii.gz", "residual.nii.gz", "summary.json"]
    pet = read_volume(case / "pet.nii.gz")
    for name in ("mask.nii.gz", "residual.nii.gz", "inpainted_pet.nii.gz"):
        assert_same_grid_exactly(read_volume(tmp_path / "out" / name), pet)


def test_existing_outputs_are_refused_before_any_work(lung_phantom, tmp_path, monkeypatch):
    case, _ = lung_phantom
    predictor = CountingPredictor(ring_mean_fill)
    use_fake_predictor(monkeypatch, predictor)
    (tmp_path / "out").mkdir()
    (tmp_path / "out/residual.nii.gz").write_bytes(b"keep me")
    assert_error(_segment(case, tmp_path / "out"), tmp_path / "out/residual.nii.gz", "already exists")
    assert predictor.calls == 0 and [p.name for p in (tmp_path / "out").iterdir()] == ["residual.nii.gz"]
    assert (tmp_path / "out/residual.nii.gz").read_bytes() == b"keep me"
    assert _segment(case, tmp_path / "out", "--slices", "5:6", "--overwrite").code == 0
    assert len(list((tmp_path / "out").iterdir())) == 5


def test_the_default_model_is_found_by_site_and_modality(lung_phantom, tiny_models, tmp_path, monkeypatch):
    case, _ = lung_phantom
    monkeypatch.setenv(MODELS_ENV, str(tiny_models))
    assert default_model_path("lung", "petct") == tiny_models / "lung_petct_test.onnx"
    run = _segment(case, tmp_path / "out", "--slices", "5:6")
    assert run.code == 0, run.err
    assert json.loads((tmp_path / "out/summary.json").read_text())["model"]["path"] == str(
        tiny_models / "lung_petct_test.onnx")
    (tmp_path / "models").mkdir()
    (tmp_path / "models/lung_petct_gconv_lap.onnx").write_bytes((tiny_models / "lung_petct_test.onnx").read_bytes())
    assert default_model_path("lung", "petct", tmp_path / "models").name == "lung_petct_gconv_lap.onnx"


def test_fast_mode_uses_the_int8_twin_and_reference_mode_the_float_model(lung_phantom, tiny_models, tmp_path,
                                                                          monkeypatch):
    case, _ = lung_phantom
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("lung_petct_gconv_lap.onnx", "lung_petct_gconv_lap.int8.onnx"):  # the twin: another file, same graph
        (folder / name).write_bytes((tiny_models / "lung_petct_test.onnx").read_bytes())
        (folder / name).with_suffix(".json").write_bytes((tiny_models / "lung_petct_test.json").read_bytes())
    monkeypatch.setenv(MODELS_ENV, str(folder))

    def model_used(out, *extra):
        run = _segment(case, tmp_path / out, "--slices", "5:6", *extra)
        assert run.code == 0, run.err
        return Path(json.loads((tmp_path / out / "summary.json").read_text())["model"]["path"]).name

    assert model_used("fast") == "lung_petct_gconv_lap.int8.onnx"
    assert model_used("reference", "--mode", "reference") == "lung_petct_gconv_lap.onnx"
    assert model_used("float", "--precision", "float32") == "lung_petct_gconv_lap.onnx"
    assert model_used("given", "--model", str(folder / "lung_petct_gconv_lap.onnx")) == "lung_petct_gconv_lap.onnx"


def test_a_missing_default_model_says_what_to_do(lung_phantom, tmp_path, monkeypatch):
    case, _ = lung_phantom
    monkeypatch.setenv(MODELS_ENV, str(tmp_path / "models"))
    run = cli("segment", "--ct", case / "ct.nii.gz", "--site", "lung", "--modality", "ct", "--out", tmp_path / "o")
    assert_error(run, tmp_path / "models", "no model for lung/ct", "expected lung_ct_gconv_lap.onnx",
                 "pass --model FILE or train one")
    assert not (tmp_path / "o").exists()


def test_slice_ranges_parse_like_python_slices():
    assert parse_slices("40:60") == range(40, 60) and parse_slices(None) is None
    assert resolve_slices(parse_slices("3:"), 10) == range(3, 10)
    assert resolve_slices(parse_slices(":4"), 10) == range(0, 4)
    for bad in ("5", "a:b", "1:2:3", "6:6", "7:2", "-1:4"):
        with pytest.raises(InputError, match="--slices"):
            parse_slices(bad)


@pytest.mark.parametrize("extra, where, fragment", [
    (["--slices", "9:3"], "--slices", "expected 0 <= A < B"),
    (["--slices", "x"], "--slices", "expected A:B"),
    (["--slices", "10:40"], "--slices", "slices must lie in [0, 12)"),
    (["--threshold", "1.5"], "pipeline parameters", "threshold must be in [0, 1)"),
    (["--radius", "10", "--stride", "20"], "pipeline parameters", "circle_stride_px must be an integer in [1, radius"),
    (["--outlier-k", "0"], "pipeline parameters", "outlier_k must be in (0, 20]"),
])
def test_bad_options_are_one_line_errors(lung_phantom, tmp_path, monkeypatch, extra, where, fragment):
    case, _ = lung_phantom
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    assert_error(_segment(case, tmp_path / "out", *extra), where, fragment)
    assert not any((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_bad_inputs_are_one_line_errors(lung_phantom, tiny_models, tmp_path):
    case, _ = lung_phantom
    out = tmp_path / "out"
    assert_error(cli("segment", "--case", case, "--ct", case / "ct.nii.gz", "--site", "lung", "--modality", "ct",
                     "--out", out), case, "either --case or --ct/--pet")
    assert_error(cli("segment", "--ct", case / "ct.nii.gz", "--site", "lung", "--modality", "petct",
                     "--out", out), "--pet", "modality petct needs a PET image")
    assert_error(cli("segment", "--ct", tmp_path / "none.nii.gz", "--site", "lung", "--modality", "ct",
                     "--out", out), tmp_path / "none.nii.gz", "not found")
    assert_error(_segment(case, out, "--model", tiny_models / "lung_pet_test.onnx", "--slices", "5:6"),
                 tiny_models / "lung_pet_test.onnx", "takes channels ['pet']", "modality petct")
    assert_error(cli("segment", "--case", case, "--site", "hn", "--modality", "petct", "--out", out, "--model",
                     tiny_models / "lung_petct_test.onnx"), tiny_models / "lung_petct_test.onnx",
                 "trained for site lung, not hn")
    assert not out.exists()


def test_ctrl_c_during_inference_leaves_no_output(lung_phantom, tmp_path, monkeypatch):
    case, _ = lung_phantom
    use_fake_predictor(monkeypatch, KeyboardInterruptAfter(5))
    run = _segment(case, tmp_path / "out")
    assert run.code == 130 and run.err.strip().splitlines()[-1] == "error: interrupted"
    assert not (tmp_path / "out").exists()


def test_ctrl_c_while_writing_removes_what_was_written(lung_phantom, tmp_path, monkeypatch):
    case, _ = lung_phantom
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    written = []
    real_write = core_segment.write_volume

    def write_then_interrupt(volume, path, overwrite=False):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(path)
        return real_write(volume, path, overwrite)

    monkeypatch.setattr(core_segment, "write_volume", write_then_interrupt)
    run = _segment(case, tmp_path / "out", "--slices", "5:7")
    assert run.code == 130 and len(written) == 2
    assert list((tmp_path / "out").iterdir()) == []


def test_the_progress_bar_follows_the_pipelines_progress_items(capsys):
    from autopaint_app.core.autopaint import Progress
    from autopaint_app.segment_commands import ProgressBar

    bar = ProgressBar(True, "segment")
    bar(Progress("prepare", None, 0, 0, 0, 0.0))                         # before the pipeline: no bar yet
    assert bar.bar is None
    # phase 1 searches the 4 slices (90 % of the bar), phase 2 decides them
    seen = []
    for stage, searched, done in (("circles", 0, 0), ("searched", 1, 0), ("searched", 4, 0), ("masks", 4, 1),
                                  ("slice", 4, 2), ("slice", 4, 4)):
        bar(Progress(stage, 3, done, 4, 10 * (searched + done), 0.1, slices_searched=searched))
        seen.append(bar.bar.n)
    assert seen == [0, 225, 900, 925, 950, 1000] and bar.bar.total == 1000
    bar.close()
    err = capsys.readouterr().err
    assert "segment" in err and "100%" in err and "slice" in err and "80 holes" in err
    # a two-pass coarse-to-fine search: screening is 80 % of the search
    two_pass = ProgressBar(True)
    seen = []
    for stage, screened, searched in (("screened", 2, 0), ("screened", 4, 0), ("searched", 4, 2), ("searched", 4, 4)):
        two_pass(Progress(stage, 3, 0, 4, 10, 0.1, slices_searched=searched, slices_screened=screened))
        seen.append(two_pass.bar.n)
    assert seen == [360, 720, 810, 900]
    two_pass.close()
    capsys.readouterr()
    silent = ProgressBar(False)
    silent(Progress("circles", 3, 1, 4, 10, 0.1))
    silent.close()
    assert capsys.readouterr().err == ""


def test_tuning_options_reach_the_pipeline_and_the_summary(lung_phantom, tmp_path, monkeypatch):
    case, _ = lung_phantom
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    out = tmp_path / "out"
    run = _segment(case, out, "--slices", "5:6", "--radius", "20", "--stride", "12", "--min-radius", "5",
                   "--top-k", "2", "--outlier-k", "2.5", "--volume-k", "3", "--search", "coarse-to-fine", "--context", "0.7",
                   "--complete-neighbours", "off")
    assert run.code == 0, run.err
    params = json.loads((out / "summary.json").read_text())["params"]
    assert (params["circle_radius_px"], params["circle_stride_px"], params["min_tumour_radius_px"]) == (20, 12, 5.0)
    assert (params["top_k"], params["outlier_k"], params["circle_search"]) == (2, 2.5, "coarse-to-fine")
    assert params["volume_outlier_k"] == 3
    assert params["crop_context_ratio"] == 0.7
    assert params["complete_neighbours"] is False


def test_the_help_states_the_pipelines_own_defaults():
    # The help text hard-codes the defaults (the CLI stays importable without core); this keeps
    # them honest when a default moves (the --context help said 1.0 after the default became 0.7).
    from autopaint_app.cli import build_parser
    from autopaint_app.core.autopaint_params import PipelineParams

    defaults = PipelineParams()
    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    helps = {a.option_strings[0]: a.help for a in evaluate._actions if a.option_strings}
    assert helps["--context"].endswith(f"({defaults.crop_context_ratio:g})")
    assert helps["--top-k"].endswith(f"({defaults.top_k})")
    assert helps["--outlier-k"].endswith(f"({defaults.outlier_k:g})")
    assert f"({defaults.volume_outlier_k:g};" in helps["--volume-k"]
    assert f"default {defaults.circle_search}" in helps["--search"]
    assert f"(default {'on' if defaults.complete_neighbours else 'off'};" in helps["--complete-neighbours"]


def test_the_whole_body_region_reaches_the_pipeline_and_the_summary(lung_phantom, tmp_path, monkeypatch):
    case, _ = lung_phantom
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    summaries = {}
    for region in ("site", "body"):
        run = _segment(case, tmp_path / region, "--slices", "5:6", "--ooi-region", region)
        assert run.code == 0, run.err
        summaries[region] = json.loads((tmp_path / region / "summary.json").read_text())
    assert summaries["site"]["ooi"]["region"] == "site" and summaries["body"]["ooi"]["region"] == "body"
    assert summaries["body"]["ooi"]["volume_ml"] > 1.5 * summaries["site"]["ooi"]["volume_ml"]  # chest wall, heart
    assert summaries["body"]["circles_inpainted"] > summaries["site"]["circles_inpainted"]


def test_the_minimum_lesion_volume_reaches_the_mask_and_the_lesion_table(lung_phantom, tmp_path, monkeypatch):
    case, _ = lung_phantom
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    plain = _segment(case, tmp_path / "plain", "--threshold", "0.02", "--volume-k", "0")  # the fake: 4 lesions
    assert plain.code == 0, plain.err
    lesions = json.loads((tmp_path / "plain" / "summary.json").read_text())["lesions"]
    largest = max(lesion["volume_ml"] for lesion in lesions)
    assert len(lesions) >= 2  # the tumour and smaller specks
    run = _segment(case, tmp_path / "big", "--threshold", "0.02", "--volume-k", "0", "--min-lesion-ml", str(largest))
    assert run.code == 0, run.err
    summary = json.loads((tmp_path / "big" / "summary.json").read_text())
    assert summary["params"]["min_lesion_ml"] == largest
    assert [lesion["volume_ml"] for lesion in summary["lesions"]] == [largest]
    mask = read_volume(tmp_path / "big" / "mask.nii.gz").array
    assert mask.sum() == summary["lesions"][0]["voxels"]
    residual_plain = read_volume(tmp_path / "plain" / "residual.nii.gz").array
    np.testing.assert_array_equal(read_volume(tmp_path / "big" / "residual.nii.gz").array, residual_plain)
    assert_error(_segment(case, tmp_path / "bad", "--min-lesion-ml", "-1"), "pipeline parameters",
                 "min_lesion_ml must be in [0, 1000] (0 = off), got -1.0")


def test_the_whole_body_keeps_the_runs_circle_radius_inside_the_field_of_view(lung_phantom, tmp_path, monkeypatch):
    from autopaint_app.core.ooi import body_ooi
    from autopaint_app.core.preprocess import WorkingGrid

    case, _ = lung_phantom
    use_fake_predictor(monkeypatch, CountingPredictor(ring_mean_fill))
    ct = read_volume(case / "ct.nii.gz")
    pixel_mm = WorkingGrid.for_volume(ct).pixel_size_mm
    for radius, stride in ((15, 10), (40, 30)):
        out = tmp_path / f"r{radius}"
        run = _segment(case, out, "--slices", "5:6", "--ooi-region", "body", "--radius", str(radius),
                       "--stride", str(stride))
        assert run.code == 0, run.err
        voxels = json.loads((out / "summary.json").read_text())["ooi"]["voxels"]
        assert voxels == int(body_ooi(ct, edge_margin_mm=radius * pixel_mm).sum()) > 0
