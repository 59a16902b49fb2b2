"""Checkpoint -> ONNX + model card: parity with PyTorch, the card's fields, overwrite rules, the CLI."""

import io
import json
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch

from autopaint_app.core.errors import InputError, OutputExistsError
from autopaint_app.core.phantom import make_phantom, write_phantom
from autopaint_app.training.checkpoints import load_checkpoint
from autopaint_app.training.config import RunConfig
from autopaint_app.training.export import export_checkpoint, model_from_checkpoint
from autopaint_app.training.train import train

CARD_FIELDS = {"architecture", "channels", "site", "ct_window", "suv_window", "size_multiple", "params", "train_crop",
               "training", "vgg_weights", "validation", "onnx_parity_max_abs"}
METRICS = {"mse_hole", "psnr_hole", "ssim_hole", "mse_whole", "psnr_whole", "ssim_whole"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    cases = []
    for seed in (4, 5):
        cases.append(str(write_phantom(make_phantom("lung", seed, healthy=True, in_plane=128, n_slices=16),
                                       root / f"lung_{seed}")))
    config = RunConfig.from_dict({"cases": cases, "out_dir": str(root / "run"), "widths": [8, 16], "modality": "petct",
                                  "train_crop": 32, "batch_size": 2, "val_crops": 4, "vgg_downsample": 2,
                                  "threads": 1, "restrict_to_ooi": False, "max_slices_per_case": 4,
                                  "epochs_phase1": 1, "epochs_phase2": 0, "steps_per_epoch": 2, "export": False})
    assert train(config, stream=io.StringIO(), command="pytest") == 0
    return root / "run"


def test_export_matches_pytorch_and_writes_a_complete_card(run_dir, tmp_path):
    out = tmp_path / "models" / "lung_petct_gconv_lap.onnx"
    card = export_checkpoint(run_dir / "checkpoints" / "best.pt", out)
    assert json.loads(out.with_suffix(".json").read_text()) == card
    assert CARD_FIELDS <= set(card) and card["onnx_parity_max_abs"] < 1e-4
    assert card["channels"] == ["ct", "pet"] and card["architecture"] == "gconv_lap" and card["site"] == "lung"
    assert card["ct_window"] == [-1000.0, 500.0] and card["suv_window"] == [0.0, 12.0]
    assert card["size_multiple"] == 4 and card["train_crop"] == 32 and card["vgg_weights"] == "random-seeded"
    assert card["size"] == "custom"  # widths (8, 16) are none of the named sizes
    training = card["training"]
    assert training["epochs_phase1"] == 1 and training["epochs_phase2"] == 0 and training["global_step"] == 2
    assert training["command"] == "pytest" and training["config"]["widths"] == [8, 16]
    assert sorted(training["train_patients"] + training["val_patients"]) == ["lung_4", "lung_5"]
    assert training["wall_time_s"] > 0 and len(training["cases"]) == 2
    validation = card["validation"]
    assert validation["crops"] == 4 and validation["patients"] == training["val_patients"]
    assert set(validation["model"]) == METRICS and set(validation["biharmonic"]) == METRICS
    assert validation["biharmonic"]["psnr_hole"] > validation["model"]["psnr_hole"]  # 2 steps learn nothing yet

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "mask"]
    assert [o.name for o in session.get_outputs()] == ["inpainted"]
    model = model_from_checkpoint(load_checkpoint(run_dir / "checkpoints" / "best.pt"))
    rng = np.random.default_rng(0)
    image = rng.random((3, 2, 40, 24), dtype=np.float32)
    mask = (rng.random((3, 1, 40, 24)) > 0.25).astype(np.float32)
    (got,) = session.run(None, {"image": image, "mask": mask})
    with torch.no_grad():
        expected = model(torch.from_numpy(image), torch.from_numpy(mask)).numpy()
    assert got.shape == (3, 2, 40, 24) and np.abs(got - expected).max() < 1e-4
    assert 0.0 <= got.min() and got.max() <= 1.0


def test_export_refuses_to_overwrite_and_bad_checkpoints(run_dir, tmp_path):
    out = tmp_path / "m.onnx"
    out.with_suffix(".json").write_text("{}")
    with pytest.raises(OutputExistsError):
        export_checkpoint(run_dir / "checkpoints" / "latest.pt", out)
    assert not out.exists()
    with pytest.raises(InputError, match="must end in .onnx"):
        export_checkpoint(run_dir / "checkpoints" / "latest.pt", tmp_path / "m.onx")
    bogus = tmp_path / "bogus.pt"
    torch.save({"format": "something else"}, bogus)
    with pytest.raises(InputError, match="not an AutoPaint training checkpoint"):
        export_checkpoint(bogus, tmp_path / "x.onnx")


def test_cli_export_overwrites_only_when_asked(run_dir, tmp_path):
    out = tmp_path / "lung_petct_gconv_lap.onnx"
    out.write_bytes(b"old")
    command = [sys.executable, "-m", "autopaint_app.cli", "export", "--checkpoint",
               str(run_dir / "checkpoints" / "best.pt"), "--out", str(out)]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "refusing to overwrite" in refused.stderr and out.read_bytes() == b"old"
    done = subprocess.run(command + ["--overwrite"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["onnx_parity_max_abs"] < 1e-4 and summary["validation"]["crops"] == 4
    assert onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_inputs()[0].name == "image"
