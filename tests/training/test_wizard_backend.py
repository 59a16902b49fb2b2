"""Backend parts the training wizard uses: device and window settings, --estimate, the device probe, and the
per-epoch sample inpaintings (real tiny runs on phantoms)."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autopaint_app.core.errors import InputError
from autopaint_app.core.phantom import make_phantom, write_phantom
from autopaint_app.core.presets import LUNG
from autopaint_app.training.config import RunConfig, load_run_config
from autopaint_app.training.data import load_slices
from autopaint_app.training.train import prepare_data, train

TINY = {"widths": [8, 16, 16], "train_crop": 64, "batch_size": 2, "val_crops": 3, "vgg_downsample": 2,
        "threads": 1, "restrict_to_ooi": False, "max_slices_per_case": 3, "export": False, "seed": 1}
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("cases")
    for seed in (2, 3):
        write_phantom(make_phantom("lung", seed, healthy=True, in_plane=96, n_slices=8), root / f"lung_{seed}")
    return [{"path": str(root / f"lung_{seed}"), "healthy": True} for seed in (2, 3)]


def _config(tmp_path: Path, cases, **overrides) -> RunConfig:
    return RunConfig.from_dict({"cases": cases, "out_dir": str(tmp_path / "run"), **TINY, **overrides})


def test_old_run_json_loads_with_cpu_and_the_preset_windows(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"cases": ["a"], "out_dir": "run"}))
    config = load_run_config(path)
    assert config.device == "cpu" and config.ct_window is None and config.site_preset is LUNG


def test_device_and_windows_are_validated_and_override_the_preset(tmp_path):
    config = RunConfig.from_dict({"cases": ["a"], "out_dir": "run", "device": "cuda", "ct_window": [-160, 240],
                                  "suv_window": [0, 8]})
    assert config.site_preset.ct_window == (-160.0, 240.0) and config.site_preset.suv_window == (0.0, 8.0)
    assert config.site_preset.circle_radius_px == LUNG.circle_radius_px  # the rest of the lung preset stays
    assert config.to_dict()["ct_window"] == (-160.0, 240.0)
    for bad, message in (({"device": "tpu"}, "device must be one of"), ({"ct_window": [200, -100]}, "low < high"),
                         ({"suv_window": [1, 2, 3]}, "suv_window must be [low, high]")):
        with pytest.raises(InputError, match=message.replace("[", r"\[")):
            RunConfig.from_dict({"cases": ["a"], "out_dir": "run", **bad})


def test_custom_windows_change_the_prepared_slices(tmp_path, cases):
    entries = _config(tmp_path, cases).cases
    narrow_preset = _config(tmp_path, cases, ct_window=[-200, 200]).site_preset
    default = load_slices(entries, "lung", "petct", False, 6.0, 3)[0].images.astype(np.float32)
    narrow = load_slices(entries, "lung", "petct", False, 6.0, 3, narrow_preset)[0].images.astype(np.float32)
    assert np.array_equal(default[:, 1], narrow[:, 1])  # the PET channel keeps the preset's SUV window
    # CT: unit values of [-1000, 500] HU re-read as HU and windowed to [-200, 200]
    expected = np.clip((-1000 + 1500 * default[:, 0] + 200) / 400, 0, 1)
    assert np.abs(default[:, 0] - narrow[:, 0]).mean() > 0.02  # (air is 0 in both)
    assert np.abs(expected - narrow[:, 0]).mean() < 0.02  # (edges differ a little: resampling after clamping)
    assert prepare_data(_config(tmp_path, cases, ct_window=[-200, 200])).val.images.shape == (3, 2, 64, 64)


def test_epochs_write_sample_inpaintings_named_in_the_epoch_event(tmp_path, cases):
    config = _config(tmp_path, cases, epochs_phase1=1, epochs_phase2=1, steps_per_epoch=2)
    stream = io.StringIO()
    assert train(config, stream=stream) == 0
    epochs = [json.loads(line) for line in stream.getvalue().splitlines() if '"epoch"' in line[:20]]
    assert [Path(e["samples"]).name for e in epochs] == ["epoch_001.npz", "epoch_002.npz"]
    with np.load(epochs[-1]["samples"]) as samples:
        truth, masks, holes, output = (samples[k] for k in ("truth", "masks", "holes", "output"))
        assert truth.shape == output.shape == holes.shape == (3, 2, 64, 64) and masks.shape == (3, 1, 64, 64)
        assert list(samples["channels"]) == ["ct", "pet"] and int(samples["epoch"]) == 2
        assert np.all(holes[masks.repeat(2, 1) == 0] == 0) and 0.03 < 1 - masks.mean() < 0.62
        assert not np.allclose(output, truth)
    with np.load(epochs[0]["samples"]) as first:  # fixed validation holes: the same every epoch
        assert np.array_equal(first["masks"], masks) and not np.array_equal(first["output"], output)
    assert not list((tmp_path / "run" / "samples").glob(".*"))  # no temporary file left behind


def test_estimate_measures_real_steps_and_writes_nothing(tmp_path, cases):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"cases": cases, "out_dir": str(tmp_path / "est"), **TINY}))
    run = subprocess.run([sys.executable, "-m", "autopaint_app.training", "--estimate", "--estimate-steps", "2",
                          "--config", str(path)], capture_output=True, text=True, timeout=900, env=ENV)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "estimate" and record["device"] == "cpu" and record["params"] > 1000
    # 2 cases x 3 slices, one patient validates: 3 training slices at batch 2 -> 2 steps per epoch
    assert record["train_slices"] == 3 and record["steps_per_epoch"] == 2
    assert 0 < record["seconds_per_step"] < 30 and record["seconds_per_epoch"] == pytest.approx(
        2 * record["seconds_per_step"] + record["validation_s"], abs=0.02)
    assert record["seconds_total"] == pytest.approx(300 * record["seconds_per_epoch"], rel=1e-3)
    assert not (tmp_path / "est").exists()


def test_device_probe_prints_what_torch_sees():
    run = subprocess.run([sys.executable, "-m", "autopaint_app.training.devices"], capture_output=True, text=True,
                         timeout=600, env=ENV)
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    import torch

    assert record == {"event": "devices", "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                      "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}


def test_cuda_without_a_cuda_torch_is_refused(tmp_path, cases, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(InputError, match="sees no CUDA device"):
        train(_config(tmp_path, cases, device="cuda"), stream=io.StringIO())
