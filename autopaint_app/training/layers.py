"""The two hole-aware convolutions of the paper (section 2.3): gated and partial convolution.

All tensors are torch ``(N, C, H, W)`` (batch, channel, row = y, column = x). Masks are float with
1 = known (valid) pixel and 0 = hole.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class GatedConv2d(nn.Module):
    """Gated convolution (Yu et al. 2019): ``phi(BN(conv_f(x))) * sigmoid(conv_g(x))``.

    The optional batch normalisation and the block's activation ``phi`` (ReLU in the encoder,
    LeakyReLU in the decoder) act on the feature branch, so "gated conv, optional BN, activation"
    of the paper's blocks is one nonlinearity per block; the sigmoid gate then selects, per channel
    and per pixel, how much of each feature passes (the learned, soft mask update).

    Args:
        in_channels: Channels of the input feature map.
        out_channels: Channels of the output feature map.
        kernel_size: Odd square kernel size; padding ``kernel_size // 2`` keeps the size at stride 1.
        stride: Convolution stride (2 in the encoder).
        activation: ``phi``; ``None`` means identity.
        use_bn: Batch-normalise the feature branch before ``phi``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 activation: nn.Module | None = None, use_bn: bool = False) -> None:
        super().__init__()
        padding = kernel_size // 2
        # With BN right after it the feature branch's bias would be cancelled: leave it out.
        self.conv_f = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                bias=not use_bn)
        self.conv_g = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.bn = nn.BatchNorm2d(out_channels) if use_bn else nn.Identity()
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride)."""
        return self.activation(self.bn(self.conv_f(x))) * torch.sigmoid(self.conv_g(x))


class PartialConv2d(nn.Module):
    """Partial convolution (Liu et al. 2018) with the rule-based mask update.

    ``out = W^T (x * m) * sum(1) / sum(m) + b`` where ``sum(m) > 0`` in the sliding window, else 0;
    the updated mask is 1 wherever the window saw at least one known pixel. ``sum(1)`` is the full
    window size ``in_channels * k * k`` even at the image border (zero padding counts as holes),
    as in the reference implementation.

    The mask may have fewer channels than ``x``: ``mask_groups`` lists how many consecutive feature
    channels each mask channel covers (the decoder concatenates upsampled features with skip
    features, each with its own single-channel mask). Default: one mask channel for all inputs.

    Args:
        in_channels: Channels of ``x``.
        out_channels: Output channels.
        kernel_size: Odd square kernel size (padding ``kernel_size // 2``).
        stride: Convolution stride.
        mask_groups: Channel counts per mask channel; must sum to ``in_channels``.
        bias: Learn a bias (added after the renormalisation, as in the reference).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 mask_groups: Sequence[int] | None = None, bias: bool = True) -> None:
        super().__init__()
        groups = tuple(mask_groups) if mask_groups is not None else (in_channels,)
        if sum(groups) != in_channels or min(groups) < 1:
            raise ValueError(f"mask_groups {groups} must be positive and sum to {in_channels}")
        self.mask_groups = groups
        self.stride = stride
        self.padding = kernel_size // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, self.padding,
                              bias=bias)
        # Counting kernel: one output channel, each mask channel weighted by the feature channels
        # it covers, so conv(mask, kernel) = number of known inputs in the window.
        counts = torch.tensor(groups, dtype=torch.float32).view(1, len(groups), 1, 1)
        self.register_buffer("mask_kernel",
                             counts.expand(1, len(groups), kernel_size, kernel_size).contiguous(),
                             persistent=False)
        self.window_size = float(in_channels * kernel_size * kernel_size)

    def renormalisation(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaling factor ``sum(1) / sum(m)`` (0 where no known input) and the updated mask.

        Args:
            mask: (N, len(mask_groups), H, W), 1 = known.

        Returns:
            ``(ratio, new_mask)``, both (N, 1, H', W') at the output resolution.
        """
        with torch.no_grad():
            known = F.conv2d(mask, self.mask_kernel.to(mask.dtype), None, self.stride,
                             self.padding)
            new_mask = (known > 0).to(mask.dtype)
            ratio = self.window_size / known.clamp(min=1e-8) * new_mask
        return ratio, new_mask

    def _mask_per_channel(self, mask: torch.Tensor) -> torch.Tensor:
        if len(self.mask_groups) == 1:
            return mask  # (N, 1, H, W) broadcasts over the channels
        parts = [mask[:, g:g + 1].expand(-1, n, -1, -1) for g, n in enumerate(self.mask_groups)]
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, in_channels, H, W); mask: (N, len(mask_groups), H, W).

        Returns:
            ``(out, new_mask)``: (N, out_channels, H', W') and (N, 1, H', W'); ``out`` is 0
            where ``new_mask`` is 0.
        """
        ratio, new_mask = self.renormalisation(mask)
        raw = F.conv2d(x * self._mask_per_channel(mask), self.conv.weight, None, self.stride,
                       self.padding)
        out = raw * ratio
        if self.conv.bias is not None:
            out = out + self.conv.bias.view(1, -1, 1, 1)
        return out * new_mask, new_mask
