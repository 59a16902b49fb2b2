"""The trainer end to end on tiny phantoms: JSON lines, checkpoints, resume, SIGTERM, determinism."""

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autopaint_app.core.phantom import make_phantom, write_phantom
from autopaint_app.training.config import RunConfig
from autopaint_app.training.train import train

TINY = {"widths": [8, 16, 16], "train_crop": 64, "batch_size": 4, "val_crops": 4, "vgg_downsample": 2,
        "threads": 1, "restrict_to_ooi": False, "lr1": 3e-3, "lr2": 1e-3, "max_slices_per_case": 6, "export": False, "seed": 1}
LOSS_TERMS = {"valid", "hole", "perceptual", "style_out", "style_comp", "tv", "lap", "total"}
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    for seed, healthy in ((1, False), (2, True), (3, True)):
        write_phantom(make_phantom("lung", seed, healthy=healthy, in_plane=128, n_slices=16), root / f"lung_{seed}")
    return [str(root / f"lung_{seed}") for seed in (1, 2, 3)]


def _write_config(folder: Path, cases, **overrides) -> Path:
    path = folder / "run.json"
    path.write_text(json.dumps({"cases": cases, "out_dir": str(folder / "run"), **TINY, **overrides}))
    return path


def _events(stdout: str) -> list[dict]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every stdout line must be JSON


def _run(args, timeout=120):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def test_module_run_then_cli_resume(tmp_path, cases):
    config = _write_config(tmp_path, cases, epochs_phase1=1, epochs_phase2=1, steps_per_epoch=6)
    run = _run(["-m", "autopaint_app.training", "--config", str(config)])
    assert run.returncode == 0, run.stderr
    events = _events(run.stdout)
    assert [e["event"] for e in events] == ["start"] + ["step"] * 6 + ["epoch"] + ["step"] * 6 + ["epoch", "done"]
    start, steps, epochs = events[0], [e for e in events if e["event"] == "step"], [e for e in events if e["event"] == "epoch"]
    assert start["split"]["val"] and set(start["split"]["train"]).isdisjoint(start["split"]["val"])
    assert start["vgg_weights"] in ("imagenet", "random-seeded") and start["biharmonic"]["psnr_hole"] > 15
    assert [(s["phase"], s["epoch"], s["step"], s["lr"]) for s in steps[5:7]] == [(1, 1, 6, 3e-3), (2, 2, 1, 1e-3)]
    assert all(set(s["losses"]) == LOSS_TERMS and s["eta_s"] is not None for s in steps)
    first, last = steps[0]["losses"]["total"], sum(s["losses"]["total"] for s in steps[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    assert epochs[1]["val"]["loss_total"] < epochs[0]["val"]["loss_total"]
    assert {"mse_hole", "psnr_hole", "ssim_hole", "mse_whole", "psnr_whole", "ssim_whole"} <= set(epochs[1]["val"])
    latest, best = tmp_path / "run/checkpoints/latest.pt", tmp_path / "run/checkpoints/best.pt"
    state = torch.load(latest, map_location="cpu", weights_only=True)
    assert (state["epoch"], state["global_step"], state["phase"], state["step_in_epoch"]) == (2, 12, 2, 0)
    assert state["command"] == f"python -m autopaint_app.training --config {config}"  # what the card records
    assert torch.load(best, weights_only=True)["best"]["epoch"] in (1, 2)
    assert (tmp_path / "run/val_set.npz").is_file() and "patient-wise split" in (tmp_path / "run/train.log").read_text()

    again = _run(["-m", "autopaint_app.cli", "train", "--config", str(config)])
    assert again.returncode == 2 and "holds a training run already" in again.stderr

    _write_config(tmp_path, cases, epochs_phase1=1, epochs_phase2=2, steps_per_epoch=6)
    resumed = _run(["-m", "autopaint_app.cli", "train", "--config", str(config), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    events = _events(resumed.stdout)
    assert events[0]["resumed_epoch"] == 2 and events[1]["global_step"] == 13 and events[1]["epoch"] == 3
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [3] and events[-1]["event"] == "done"
    assert torch.load(latest, weights_only=True)["epoch"] == 3


def test_sigterm_stops_after_the_step_saves_and_resumes_there(tmp_path, cases):
    config = _write_config(tmp_path, cases, epochs_phase1=1, epochs_phase2=0, steps_per_epoch=500)
    process = subprocess.Popen([sys.executable, "-m", "autopaint_app.training", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if json.loads(line)["event"] == "step" and json.loads(line)["step"] == 2:
                process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    events = [json.loads(line) for line in lines]
    assert events[-1]["event"] == "stopped" and events[-1]["signal"] == "SIGTERM"
    done_steps = events[-2]["step"]
    assert events[-2]["event"] == "step" and done_steps >= 2
    state = torch.load(tmp_path / "run/checkpoints/latest.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, done_steps, done_steps)

    _write_config(tmp_path, cases, epochs_phase1=1, epochs_phase2=0, steps_per_epoch=done_steps + 1)
    resumed = _run(["-m", "autopaint_app.training", "--config", str(config), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    events = _events(resumed.stdout)
    assert [(e["event"], e.get("step")) for e in events[1:3]] == [("step", done_steps + 1), ("epoch", None)]


def test_training_is_deterministic_for_a_seed(tmp_path, cases):
    losses = []
    for name in ("a", "b"):
        config = RunConfig.from_dict({"cases": cases, "out_dir": str(tmp_path / name), **TINY,
                                      "epochs_phase1": 1, "epochs_phase2": 0, "steps_per_epoch": 2})
        stream = io.StringIO()
        assert train(config, stream=stream) == 0
        losses.append([e["losses"] for e in _events(stream.getvalue()) if e["event"] == "step"])
    assert len(losses[0]) == 2 and losses[0] == losses[1]


def test_rim_lesions_change_the_training_crops_and_stay_deterministic(tmp_path, cases):
    def step_losses(name, rim_lesions):
        config = RunConfig.from_dict({"cases": cases, "out_dir": str(tmp_path / name), **TINY, "epochs_phase1": 1,
                                      "epochs_phase2": 0, "steps_per_epoch": 2, "rim_lesions": rim_lesions})
        stream = io.StringIO()
        assert train(config, stream=stream) == 0
        return [e["losses"] for e in _events(stream.getvalue()) if e["event"] == "step"]

    with_decoys = step_losses("a", 1.0)
    assert with_decoys == step_losses("b", 1.0)
    assert with_decoys != step_losses("c", 0.0)


def test_a_checkpoint_from_before_case_weights_and_synthetic_pets_still_resumes(tmp_path, cases):
    config = _write_config(tmp_path, cases, epochs_phase1=1, epochs_phase2=0, steps_per_epoch=2)
    assert _run(["-m", "autopaint_app.training", "--config", str(config)]).returncode == 0
    latest = tmp_path / "run/checkpoints/latest.pt"
    state = torch.load(latest, weights_only=True)
    assert {"weight", "synthetic_pet"} <= set(state["run_config"]["cases"][0])
    for case in state["run_config"]["cases"]:   # as an older trainer wrote them
        del case["weight"], case["synthetic_pet"]
    torch.save(state, latest)
    _write_config(tmp_path, cases, epochs_phase1=1, epochs_phase2=1, steps_per_epoch=2)
    resumed = _run(["-m", "autopaint_app.training", "--config", str(config), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert _events(resumed.stdout)[-1]["event"] == "done"
    changed = [dict(case, synthetic_pet=True) for case in RunConfig.from_dict(
        json.loads(config.read_text())).to_dict()["cases"]]
    _write_config(tmp_path, changed, epochs_phase1=1, epochs_phase2=2, steps_per_epoch=2)
    refused = _run(["-m", "autopaint_app.training", "--config", str(config), "--resume"])
    assert refused.returncode == 2 and "run.json changed cases since this checkpoint" in refused.stderr


def test_pet_smoothing_channel_weights_and_near_lung_decoys_each_reach_the_training(tmp_path, cases):
    def step_losses(name, **options):
        config = RunConfig.from_dict({"cases": cases, "out_dir": str(tmp_path / name), **TINY, "epochs_phase1": 1,
                                      "epochs_phase2": 0, "steps_per_epoch": 2, **options})
        stream = io.StringIO()
        assert train(config, stream=stream) == 0
        return [e["losses"] for e in _events(stream.getvalue()) if e["event"] == "step"]

    plain = step_losses("plain")
    smoothed = step_losses("smooth", pet_smoothing_px=[1.0, 2.0])
    assert smoothed != plain and smoothed == step_losses("smooth_again", pet_smoothing_px=[1.0, 2.0])
    assert step_losses("ct_smooth", ct_smoothing_px=[1.0, 2.0]) not in (plain, smoothed)
    weighted = step_losses("weighted", channel_loss_weights={"pet": 3})
    # Same crops, holes and network: the weights move only the per-pixel terms.
    assert weighted[0]["hole"] != plain[0]["hole"] and weighted[0]["tv"] == plain[0]["tv"]
    everywhere = step_losses("body", rim_lesions=1.0)
    near_lung = step_losses("near_lung", rim_lesions=1.0, rim_lesion_region="near_lung")
    assert near_lung != everywhere
