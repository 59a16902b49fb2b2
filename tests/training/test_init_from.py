"""Fine-tuning start: a PET-CT checkpoint initialises CT-only and PET-only networks channel by channel."""

import pytest
import torch

from autopaint_app.core.errors import InputError
from autopaint_app.training import checkpoints as ckpt
from autopaint_app.training.networks import NetworkConfig, build_network

TINY = dict(widths=(8, 16, 16), depth=3, kernels=(7, 5, 5))


def _save_petct_checkpoint(path, arch="gconv"):
    torch.manual_seed(3)
    source = build_network(NetworkConfig(arch=arch, in_channels=2, **TINY))
    ckpt.save_checkpoint({"format": ckpt.CHECKPOINT_FORMAT, "model": source.state_dict(),
                          "network": ckpt.network_to_dict(source.config),
                          "run_config": {"modality": "petct"}}, path)
    return source.eval()


@pytest.mark.parametrize("channel,index", [("ct", 0), ("pet", 1)])
def test_single_channel_network_reproduces_its_channel_of_the_petct_source(tmp_path, channel, index):
    source = _save_petct_checkpoint(tmp_path / "src.pt")
    target = build_network(NetworkConfig(arch="gconv", in_channels=1, **TINY))
    assert ckpt.initialise_from(target, tmp_path / "src.pt", (channel,)) == f"channels ['ct', 'pet'] -> ['{channel}']"
    torch.manual_seed(0)
    image, mask = torch.rand(2, 2, 32, 32), (torch.rand(2, 1, 32, 32) > 0.3).float()
    image[:, 1 - index] = 0.0  # the other channel blank: its weights then contribute nothing
    with torch.no_grad():
        expected = source(image, mask)[:, index]
        got = target.eval()(image[:, index:index + 1], mask)[:, 0]
    assert torch.allclose(expected, got, atol=1e-6)


def test_swapped_channel_order_is_matched_by_name(tmp_path):
    _save_petct_checkpoint(tmp_path / "src.pt")
    target = build_network(NetworkConfig(arch="gconv", in_channels=2, **TINY))
    ckpt.initialise_from(target, tmp_path / "src.pt", ("pet", "ct"))
    source = ckpt.load_checkpoint(tmp_path / "src.pt")["model"]
    assert torch.equal(target.state_dict()["head.bias"], source["head.bias"].flip(0))
    assert torch.equal(target.state_dict()["encoder.0.conv.conv_f.weight"][:, 0], source["encoder.0.conv.conv_f.weight"][:, 1])


def test_other_widths_or_architecture_are_refused_with_the_file_named(tmp_path):
    _save_petct_checkpoint(tmp_path / "src.pt")
    wider = build_network(NetworkConfig(arch="gconv", in_channels=2, widths=(8, 16, 32), depth=3, kernels=(7, 5, 5)))
    with pytest.raises(InputError, match=r"src\.pt: network gconv \[8, 16, 16\] cannot start"):
        ckpt.initialise_from(wider, tmp_path / "src.pt", ("ct", "pet"))
    pconv = build_network(NetworkConfig(arch="pconv", in_channels=2, **TINY))
    with pytest.raises(InputError, match="cannot start a pconv"):
        ckpt.initialise_from(pconv, tmp_path / "src.pt", ("ct", "pet"))
