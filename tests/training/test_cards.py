"""Finishing a model card: held-out figures from a model-eval report and the init checkpoint's run."""

import json

import pytest

from autopaint_app.core.errors import InputError
from autopaint_app.training import checkpoints as ckpt
from autopaint_app.training.cards import finish_card, main


def _metrics(psnr, ssim):
    return {"psnr_hole": psnr, "ssim_hole": ssim, "mse_hole": 10 ** (-psnr / 10)}


def _report(model_path="x/lung_ct_gconv_lap.onnx"):
    case = {"case_id": "lung1", "crops": 4, "model": _metrics(22.0, 0.83), "biharmonic": _metrics(20.5, 0.79),
            "wins": {"psnr_hole": 3, "ssim_hole": 4}, "in_training_set": False}
    return {"model": {"path": model_path}, "crop": 128, "crops_per_case": 4, "seed": 0, "scored_on": "composite",
            "cases": [case], "pooled": {"crops": 4, "hole_coverage": 0.27, "model": _metrics(22.0, 0.83),
                                        "biharmonic": _metrics(20.5, 0.79), "wins": {"psnr_hole": 3}}}


def test_card_gains_held_out_figures_and_lineage_and_keeps_the_rest(tmp_path):
    card = tmp_path / "lung_ct_gconv_lap.json"
    card.write_text(json.dumps({"name": "lung_ct_gconv_lap", "params": 7, "training": {"command": "train"}}))
    (tmp_path / "eval.json").write_text(json.dumps(_report()))
    ckpt.save_checkpoint({"format": ckpt.CHECKPOINT_FORMAT, "model": {}, "global_step": 975, "epoch": 13,
                          "wall_time_s": 4209.19, "command": "python -m autopaint_app.training --config a.json",
                          "run_config": {"modality": "petct", "lr1": 2e-4}}, tmp_path / "best.pt")
    assert main(["--card", str(card), "--held-out", str(tmp_path / "eval.json"), "--command", "model-eval ...",
                 "--init-checkpoint", str(tmp_path / "best.pt")]) == 0
    result = json.loads(card.read_text())
    assert result["params"] == 7 and result["training"]["command"] == "train"
    held_out = result["held_out"]
    assert held_out["command"] == "model-eval ..." and held_out["pooled"]["model"]["psnr_hole"] == 22.0
    assert held_out["cases"][0] == {"case": "lung1", "crops": 4, "model": _metrics(22.0, 0.83),
                                    "biharmonic": _metrics(20.5, 0.79), "wins": {"psnr_hole": 3, "ssim_hole": 4},
                                    "in_training_set": False}
    lineage = result["training"]["init_from"]
    assert (lineage["global_step"], lineage["wall_time_s"], lineage["config"]["lr1"]) == (975, 4209.2, 2e-4)


def test_report_of_another_model_or_not_a_report_is_refused(tmp_path, capsys):
    card = tmp_path / "hn_pet_gconv_lap.json"
    card.write_text(json.dumps({"name": "hn_pet_gconv_lap"}))
    (tmp_path / "eval.json").write_text(json.dumps(_report()))
    with pytest.raises(InputError, match=r"eval\.json: report is for model 'lung_ct_gconv_lap'"):
        finish_card(card, tmp_path / "eval.json", "cmd")
    (tmp_path / "eval.json").write_text(json.dumps({"model": {}}))
    assert main(["--card", str(card), "--held-out", str(tmp_path / "eval.json"), "--command", "c"]) == 2
    assert "not an autopaint-cli model-eval report (missing 'pooled')" in capsys.readouterr().err
    assert json.loads(card.read_text()) == {"name": "hn_pet_gconv_lap"}


def test_held_out_keeps_each_channel_and_marks_synthetic_pet_cases(tmp_path):
    report = _report("x/lung_petct_gconv_lap.onnx")
    channels = {"ct": {"model": _metrics(19.0, 0.70), "biharmonic": _metrics(18.1, 0.64)},
                "pet": {"model": _metrics(37.5, 0.95), "biharmonic": _metrics(37.1, 0.94)}}
    report["cases"][0].update(by_channel=channels, synthetic_pet=True)
    report["pooled"]["by_channel"] = channels
    card = tmp_path / "lung_petct_gconv_lap.json"
    card.write_text(json.dumps({"name": "lung_petct_gconv_lap"}))
    (tmp_path / "eval.json").write_text(json.dumps(report))
    finish_card(card, tmp_path / "eval.json", "model-eval --synthetic-pet ...")
    held_out = json.loads(card.read_text())["held_out"]
    assert held_out["pooled"]["by_channel"]["ct"]["model"]["psnr_hole"] == 19.0
    assert held_out["cases"][0]["by_channel"]["pet"]["biharmonic"] == _metrics(37.1, 0.94)
    assert held_out["cases"][0]["synthetic_pet"] is True
