"""Fine-tuning an exported model: ONNX (BN folded) back to a torch network, every BN frozen, resumable."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from autopaint_app.core.errors import InputError
from autopaint_app.core.phantom import make_phantom, write_phantom
from autopaint_app.training import checkpoints as ckpt
from autopaint_app.training.cards import lineage_section
from autopaint_app.training.config import RunConfig
from autopaint_app.training.export import export_checkpoint
from autopaint_app.training.networks import NetworkConfig, build_network
from autopaint_app.training.onnx_import import state_from_onnx
from autopaint_app.training.train import train

MODELS = Path(__file__).resolve().parents[2] / "models"
RUN = {"widths": [8, 16], "modality": "petct", "train_crop": 32, "batch_size": 2, "val_crops": 4,
       "vgg_downsample": 2, "threads": 1, "restrict_to_ooi": False, "max_slices_per_case": 4,
       "steps_per_epoch": 2, "export": False}


def _onnx_output(path, image, mask):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": image, "mask": mask})[0]


def _network_from(path):
    state = state_from_onnx(path)
    net = build_network(ckpt.network_from_dict(state["network"]))
    net.load_state_dict(state["model"])
    return net.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny PET-CT model trained 2 steps with BN learning (non-trivial statistics), exported."""
    root = tmp_path_factory.mktemp("onnx_import")
    cases = [str(write_phantom(make_phantom("lung", seed, healthy=True, in_plane=128, n_slices=16), root / f"lung_{seed}"))
             for seed in (4, 5)]
    config = RunConfig.from_dict({**RUN, "cases": cases, "out_dir": str(root / "run"),
                                  "epochs_phase1": 1, "epochs_phase2": 0})
    assert train(config, stream=io.StringIO(), command="pytest") == 0
    model = root / "models" / "lung_petct_gconv_lap.onnx"
    export_checkpoint(root / "run" / "checkpoints" / "best.pt", model)
    return {"root": root, "cases": cases, "model": model}


def test_rebuilt_network_reproduces_the_exported_model_and_its_bn_statistics_are_folded(exported):
    source = ckpt.load_checkpoint(exported["root"] / "run" / "checkpoints" / "best.pt")["model"]
    assert float(source["encoder.0.conv.bn.running_mean"].abs().max()) > 1e-4  # BN really learned something
    net = _network_from(exported["model"])
    state = net.state_dict()
    assert torch.equal(state["encoder.0.conv.bn.weight"], torch.ones(8))
    assert torch.equal(state["encoder.0.conv.bn.running_mean"], torch.zeros(8))
    rng = np.random.default_rng(0)
    image = rng.random((2, 2, 64, 64), dtype=np.float32)
    mask = (rng.random((2, 1, 64, 64)) > 0.3).astype(np.float32)
    with torch.no_grad():
        rebuilt = net(torch.from_numpy(image), torch.from_numpy(mask)).numpy()
    assert np.abs(rebuilt - _onnx_output(exported["model"], image, mask)).max() < 1e-5


def test_shipped_head_and_neck_petct_model_comes_back_exactly():
    model = MODELS / "hn_petct_gconv_lap.onnx"
    net = _network_from(model)
    assert net.config.prefill == "biharmonic" and net.config.in_channels == 2
    rng = np.random.default_rng(1)
    image = rng.random((1, 2, 64, 64), dtype=np.float32)
    mask = np.ones((1, 1, 64, 64), np.float32)
    mask[:, :, 20:44, 16:40] = 0.0
    with torch.no_grad():
        rebuilt = net(torch.from_numpy(image), torch.from_numpy(mask)).numpy()
    assert np.abs(rebuilt - _onnx_output(model, image, mask)).max() < 1e-4


def test_initialising_from_an_exported_model_freezes_every_bn_layer_for_good(exported):
    net = build_network(NetworkConfig(in_channels=2, widths=(8, 16), depth=2, kernels=(7, 5)))
    note = ckpt.initialise_from(net, exported["model"], ("ct", "pet"))
    assert note.endswith("BN folded by the export: every BN layer frozen")
    net.train()
    batch_norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(batch_norms) == 4 and not any(m.training for m in batch_norms)
    before = batch_norms[-1].running_var.clone()
    net(torch.rand(2, 2, 32, 32), torch.ones(2, 1, 32, 32))
    assert torch.equal(batch_norms[-1].running_var, before)  # batch statistics never enter


def test_fine_tuning_run_from_an_exported_model_trains_resumes_and_records_its_start(exported, tmp_path):
    start = tmp_path / "start.onnx"  # the run's own copy, as for a shipped model about to be replaced
    shutil.copy(exported["model"], start)
    shutil.copy(exported["model"].with_suffix(".json"), start.with_suffix(".json"))
    data = {**RUN, "cases": exported["cases"], "out_dir": str(tmp_path / "run"), "init_from": str(start),
            "epochs_phase1": 1, "epochs_phase2": 0}
    assert train(RunConfig.from_dict(data), stream=io.StringIO(), command="pytest") == 0
    state = ckpt.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert state["all_bn_frozen"] is True and state["global_step"] == 2
    assert torch.equal(state["model"]["encoder.0.conv.bn.running_mean"], torch.zeros(8))
    # Resuming with one more epoch keeps every BN frozen: the statistics stay the folded identity.
    stream = io.StringIO()
    assert train(RunConfig.from_dict({**data, "epochs_phase2": 1}), resume=True, stream=stream, command="pytest") == 0
    resumed = ckpt.load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert resumed["global_step"] == 4
    assert torch.equal(resumed["model"]["decoder.1.conv.bn.running_var"], torch.full((8,), 1.0 - 1e-5))
    lineage = lineage_section(start)
    assert lineage["sha256"] and lineage["name"] == "lung_petct_gconv_lap"
    assert lineage["training"]["global_step"] == 2


def test_models_that_cannot_be_fine_tuned_are_refused_by_name(exported, tmp_path):
    with pytest.raises(InputError, match=r"nowhere\.onnx: model not found"):
        state_from_onnx(tmp_path / "nowhere.onnx")
    twin = tmp_path / "m.int8.onnx"
    shutil.copy(exported["model"], twin)
    card = json.loads(exported["model"].with_suffix(".json").read_text())
    twin.with_suffix(".json").write_text(json.dumps({**card, "precision": "int8"}))
    with pytest.raises(InputError, match=r"m\.int8\.onnx: precision 'int8': only float32 models"):
        state_from_onnx(twin)
    bare = tmp_path / "bare.onnx"
    shutil.copy(exported["model"], bare)
    bare.with_suffix(".json").write_text(json.dumps({k: v for k, v in card.items() if k != "network"}))
    with pytest.raises(InputError, match=r"bare\.json: model card has no 'network'"):
        state_from_onnx(bare)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    corrupt.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(InputError, match=r"corrupt\.onnx: not a readable ONNX model"):
        state_from_onnx(corrupt)
