"""Inpainting U-Nets of the paper (section 2.3): GConv (the method) and PConv (the baseline).

Both share one topology: ``depth`` encoder blocks (stride-2 hole-aware conv, optional BN, ReLU),
``depth`` decoder blocks (nearest x2 upsampling, skip connection concatenating the encoder
features of the same resolution and their mask, hole-aware conv, optional BN, LeakyReLU 0.2) and an
output layer fed by the last decoder output, the input image with holes and the input mask,
followed by a sigmoid. GConv-Lap is the GConv network trained with the Laplacian loss term
(``losses.LossWeights``); it needs no architecture of its own.

Optional ``prefill="harmonic"`` (our addition, not in the paper; recorded in the card): a fixed,
parameter-free multigrid harmonic fill of the holes from the known pixels (:class:`HarmonicPrefill`)
is computed inside the network; the output layer sees it in place of the image with holes and its
logit is added to the layer's output, so the network predicts a *correction* to a smooth fill. Why:
on PET, which is smooth and low in amplitude in the SUV window, the plain head spends its capacity
reproducing intensities and stayed 3-10 dB below ``inpaint_biharmonic``; with the prefill it starts
at a smooth fill's quality and only has to learn what anatomy adds. The encoder still sees only the
known pixels, so nothing under a hole leaks in.

Contract (the same as the exported ONNX models): ``image`` (N, C, H, W) float in [0, 1] with
C = 1 (CT or PET) or 2 (CT, PET); ``mask`` (N, 1, H, W), 1 = known pixel, 0 = hole; output
(N, C, H, W) in [0, 1], the raw prediction (not composited with the known pixels). H and W must be
multiples of ``NetworkConfig.size_multiple``. Fully convolutional: one set of weights runs on
128 px crops and on 512 px slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autopaint_app.training.config import PREFILLS
from autopaint_app.training.layers import GatedConv2d, PartialConv2d

ARCHITECTURES = ("gconv", "pconv")
PAPER_WIDTHS = (64, 128, 256, 512, 512, 512, 512, 512)
# Encoder kernels of Liu et al. (2018), which the paper's U-Net follows; the decoder uses 3x3.
PAPER_KERNELS = (7, 5, 5, 3, 3, 3, 3, 3)
COMPACT_WIDTHS = (32, 64, 96, 128, 128)
# The light network: 4 levels, 16-64 channels, 0.33 M parameters. Why: the exhaustive circle
# search inpaints ~90 circles per lung slice, and the compact net's 2.2 GFLOP per 128-px crop keeps
# a 100-slice case near 3 minutes on a 2-core CPU; this one needs 0.43 GFLOP per crop, and its
# 16-px size multiple lets the lung crop be fed at 112 px instead of 128 (4.1x the crops per second,
# measured with ONNX Runtime, 2 threads, batch 16). Measured cost (README, Pipeline speed): the
# light lung PET-CT run segmented the 20-phantom cohort at [Dice] 0.375 against 0.533 for compact.
LIGHT_WIDTHS = (16, 32, 48, 64)
NAMED_WIDTHS = {"compact": COMPACT_WIDTHS, "light": LIGHT_WIDTHS, "paper": PAPER_WIDTHS}
DECODER_KERNEL = 3
LEAKY_SLOPE = 0.2
# Jacobi sweeps of the harmonic prefill at every pyramid level: enough for 128-256 px crops to
# settle (measured on held-out PET crops: 40 sweeps 35.4 dB, 100 sweeps 36.0 dB), and cheap next
# to the U-Net (a 3x3 depthwise conv per sweep).
PREFILL_SWEEPS = 100
# The biharmonic prefill: a short harmonic start, then conjugate gradients on the biharmonic energy
# preconditioned by a multigrid V-cycle. Measured PSNR in the holes (scikit-image's exact
# inpaint_biharmonic in brackets): real HN PET crops (HN-CHUS-052, 21) 36.87 dB (36.87); 64 HN PET
# validation crops 38.21 (38.20); 64 lung PET 38.90 (38.87). The plain CG it replaces (100 steps,
# similar cost) reached only 31.25 dB on those real crops: CG alone barely moves the smooth error
# modes of a 4th-order problem, which the coarse grids remove in a few cycles.
BIHARMONIC_SWEEPS = 10
BIHARMONIC_PCG_STEPS = 20
BIHARMONIC_MG_LEVELS = 4  # 128 px -> 16 px; deeper coarse grids lose too much of the hole shapes
BIHARMONIC_SMOOTHING = 2  # damped-Jacobi sweeps before and after each coarse-grid correction
BIHARMONIC_JACOBI = 0.55 / 20.0  # damping / diagonal of the 13-point operator (0.55: best measured)
LOGIT_EPS = 1e-4


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of an inpainting U-Net. The defaults are the compact CPU configuration.

    Attributes:
        arch: ``"gconv"`` (gated convolutions) or ``"pconv"`` (partial convolutions).
        in_channels: Image channels, 1 (CT or PET) or 2 (CT, PET in this order).
        widths: Output channels of each encoder block, shallow to deep (len == depth).
        depth: Number of encoder blocks (= decoder blocks); the paper uses 8.
        kernels: Encoder kernel sizes (len == depth); decoder kernels are 3.
        use_bn: Batch normalisation in every encoder and decoder block.
        prefill: ``"none"`` (the paper), ``"harmonic"`` or ``"biharmonic"`` (see the module
            docstring; GConv only).
        prefill_channels: Indices of the channels the prefill fills; None = every channel. The
            other channels keep the paper's plain head (their output is not a correction).
    """

    arch: str = "gconv"
    in_channels: int = 1
    widths: tuple[int, ...] = COMPACT_WIDTHS
    depth: int = len(COMPACT_WIDTHS)
    kernels: tuple[int, ...] = PAPER_KERNELS[:len(COMPACT_WIDTHS)]
    use_bn: bool = True
    prefill: str = "none"
    prefill_channels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.prefill not in PREFILLS or (self.prefill != "none" and self.arch != "gconv"):
            raise ValueError(f"prefill must be one of {PREFILLS} (a prefill with gconv only), got {self.prefill!r}")
        if self.in_channels not in (1, 2):
            raise ValueError(f"in_channels must be 1 or 2, got {self.in_channels}")
        chosen = self.prefill_channels
        if chosen is not None and (self.prefill == "none" or not chosen or len(set(chosen)) != len(chosen)
                                   or not all(0 <= c < self.in_channels for c in chosen)):
            raise ValueError(f"prefill_channels must be distinct channel indices below {self.in_channels} "
                             f"of a network with a prefill, got {chosen} with prefill {self.prefill!r}")
        if self.depth < 1 or len(self.widths) != self.depth or len(self.kernels) != self.depth:
            raise ValueError(f"widths {self.widths} and kernels {self.kernels} need depth "
                             f"{self.depth} entries each")
        if min(self.widths) < 1 or any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise ValueError("widths must be positive and kernels odd")

    @property
    def prefilled(self) -> tuple[int, ...]:
        """Indices of the channels whose output corrects the prefill (none without a prefill)."""
        if self.prefill == "none":
            return ()
        return tuple(range(self.in_channels)) if self.prefill_channels is None else tuple(sorted(self.prefill_channels))

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (2 ** depth)."""
        return 2 ** self.depth

    @classmethod
    def paper(cls, arch: str = "gconv", in_channels: int = 1, use_bn: bool = True
              ) -> NetworkConfig:
        """The paper's 8-level network (64...512 channels); inputs multiples of 256 px."""
        return cls(arch, in_channels, PAPER_WIDTHS, len(PAPER_WIDTHS), PAPER_KERNELS, use_bn)

    @classmethod
    def named(cls, size: str, arch: str = "gconv", in_channels: int = 1) -> NetworkConfig:
        """A named configuration: ``"compact"`` (default), ``"light"`` or ``"paper"`` (with the paper's
        kernels for their depth, so ``named("paper")`` is :meth:`paper`)."""
        return cls.with_widths(NAMED_WIDTHS[size], arch, in_channels)

    @classmethod
    def with_widths(cls, widths: tuple[int, ...], arch: str = "gconv", in_channels: int = 1,
                    use_bn: bool = True) -> NetworkConfig:
        """A config of depth ``len(widths)`` with the paper's kernels for those levels."""
        widths = tuple(widths)
        kernels = (PAPER_KERNELS + (3,) * len(widths))[:len(widths)]
        return cls(arch, in_channels, widths, len(widths), kernels, use_bn)


class _EncoderBlock(nn.Module):
    """Stride-2 hole-aware conv, optional BN, ReLU; also returns the block's mask."""

    def __init__(self, arch: str, in_channels: int, out_channels: int, kernel: int,
                 use_bn: bool) -> None:
        super().__init__()
        self.arch = arch
        self.kernel = kernel
        if arch == "gconv":
            self.conv = GatedConv2d(in_channels, out_channels, kernel, 2, nn.ReLU(), use_bn)
        else:
            self.conv = PartialConv2d(in_channels, out_channels, kernel, 2)
            self.bn = nn.BatchNorm2d(out_channels) if use_bn else nn.Identity()
            self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.arch == "gconv":
            # GConv learns its own soft mask; the binary mask handed to the skip connection is the
            # PConv rule (known if the window saw a known pixel), i.e. a max-pool of the mask.
            new_mask = F.max_pool2d(mask, self.kernel, 2, self.kernel // 2)
            return self.conv(x), new_mask
        out, new_mask = self.conv(x, mask)
        return self.activation(self.bn(out)), new_mask


class _DecoderBlock(nn.Module):
    """Nearest x2 upsampling, concat skip features + skip mask, hole-aware conv, BN, LeakyReLU."""

    def __init__(self, arch: str, up_channels: int, skip_channels: int, out_channels: int,
                 use_bn: bool) -> None:
        super().__init__()
        self.arch = arch
        self.has_skip = skip_channels > 0
        if arch == "gconv":
            in_channels = up_channels + (skip_channels + 1 if self.has_skip else 0)
            self.conv = GatedConv2d(in_channels, out_channels, DECODER_KERNEL, 1,
                                    nn.LeakyReLU(LEAKY_SLOPE), use_bn)
        else:
            groups = (up_channels, skip_channels) if self.has_skip else (up_channels,)
            self.conv = PartialConv2d(sum(groups), out_channels, DECODER_KERNEL, 1, groups)
            self.bn = nn.BatchNorm2d(out_channels) if use_bn else nn.Identity()
            self.activation = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, skip: torch.Tensor | None,
                skip_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")
        if self.arch == "gconv":
            if self.has_skip:
                x = torch.cat([x, skip, skip_mask], dim=1)
            return self.conv(x), mask
        if self.has_skip:
            x, mask = torch.cat([x, skip], dim=1), torch.cat([mask, skip_mask], dim=1)
        out, new_mask = self.conv(x, mask)
        return self.activation(self.bn(out)), new_mask


class HarmonicPrefill(nn.Module):
    """Fill holes with a multigrid harmonic interpolation of the known pixels (no parameters).

    Push: a pyramid of mask-weighted averages (``levels`` halvings). Pull: from the coarsest level
    up, upsample the coarser estimate, keep fully known pixels, and relax the others with
    ``sweeps`` Jacobi iterations of Laplace's equation (replicate borders). Inputs: ``known``
    (N, C, H, W) = image * mask, ``mask`` (N, 1, H, W); H and W multiples of 2 ** levels.
    """

    def __init__(self, levels: int, sweeps: int = PREFILL_SWEEPS) -> None:
        super().__init__()
        self.levels, self.sweeps = levels, sweeps
        stencil = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]])
        self.register_buffer("stencil", stencil.view(1, 1, 3, 3), persistent=False)

    def forward(self, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        sums, weights = [known], [mask]
        for _ in range(self.levels):
            sums.append(F.avg_pool2d(sums[-1], 2))
            weights.append(F.avg_pool2d(weights[-1], 2))
        channels = known.shape[1]
        kernel = self.stencil.expand(channels, 1, 3, 3)
        estimate = None
        for level in range(self.levels, -1, -1):
            weight = weights[level]
            value = sums[level] / weight.clamp_min(1e-6)
            free = (weight < 0.999).to(known.dtype)  # pixels not fully known at this level
            fixed = (1.0 - free) * value
            # Zero padding renormalised by the neighbours inside the image (a Neumann border);
            # three ONNX nodes per sweep keep the exported graph small.
            gain = free / F.conv2d(torch.ones_like(weight), self.stencil, padding=1)
            estimate = value if estimate is None else (
                free * F.interpolate(estimate, scale_factor=2.0, mode="bilinear", align_corners=False) + fixed)
            for _ in range(self.sweeps):
                estimate = fixed + gain * F.conv2d(estimate, kernel, padding=1, groups=channels)
            estimate = self.refine(estimate, free, level)
        return estimate

    def refine(self, estimate: torch.Tensor, free: torch.Tensor, level: int) -> torch.Tensor:
        """Hook for a better solve after the sweeps of each level (0 = full size; harmonic: none)."""
        return estimate


class BiharmonicPrefill(HarmonicPrefill):
    """Fill holes with (nearly) scikit-image's biharmonic inpainting, inside the network.

    The harmonic multigrid above gives the start; at full resolution a multigrid-preconditioned
    conjugate-gradient solve then minimises the energy sum |Laplacian(u)|^2 over the free pixels,
    whose minimiser solves the biharmonic equation in the holes with the known pixels as boundary
    values. The Laplacian uses replicated borders, which makes it a symmetric matrix (so the
    energy's normal operator is simply the Laplacian applied twice) and keeps a hole touching the
    image edge well posed. Convolutions, pools, pads and sums only: it exports to ONNX.

    Preconditioner: one V-cycle with damped-Jacobi smoothing. A coarse pixel is free only when all
    four of its children are (measured: counting partly known coarse pixels as free made the
    correction overshoot along the hole borders, 35.9 vs 36.8 dB on real HN PET crops). The coarse
    operator is the same 13-point stencil, which on a grid twice as coarse is 16 times the fine one.
    The V-cycle's restriction and prolongation are not exact transposes, so the CG uses the
    flexible (Polak-Ribiere) update.
    """

    def __init__(self, levels: int, sweeps: int = BIHARMONIC_SWEEPS, pcg_steps: int = BIHARMONIC_PCG_STEPS,
                 mg_levels: int = BIHARMONIC_MG_LEVELS) -> None:
        super().__init__(levels, sweeps)
        self.pcg_steps, self.mg_levels = pcg_steps, min(mg_levels, levels + 1)
        laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.register_buffer("laplacian", laplacian.view(1, 1, 3, 3), persistent=False)

    def _laplacian(self, u: torch.Tensor) -> torch.Tensor:
        channels = u.shape[1]
        kernel = self.laplacian.expand(channels, 1, 3, 3)
        return F.conv2d(F.pad(u, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)

    def _operator(self, u: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        """The energy's normal operator on the free pixels (known pixels held at zero)."""
        return free * self._laplacian(self._laplacian(u * free))

    def _smooth(self, correction: torch.Tensor, residual: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        for _ in range(BIHARMONIC_SMOOTHING):
            correction = correction + BIHARMONIC_JACOBI * free * (residual - self._operator(correction, free))
        return correction

    def _v_cycle(self, residual: torch.Tensor, frees: list[torch.Tensor], level: int = 0) -> torch.Tensor:
        """Approximately solve operator(correction) = residual on ``frees[level]``'s grid."""
        free = frees[level]
        correction = self._smooth(torch.zeros_like(residual), residual, free)
        if level + 1 < len(frees):
            coarse_residual = frees[level + 1] * F.avg_pool2d(
                free * (residual - self._operator(correction, free)), 2)
            coarse = self._v_cycle(16.0 * coarse_residual, frees, level + 1)
            correction = correction + free * F.interpolate(
                coarse, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self._smooth(correction, residual, free)

    def refine(self, estimate: torch.Tensor, free: torch.Tensor, level: int) -> torch.Tensor:
        # Only at full resolution: the coarser levels just give the harmonic start.
        if level != 0:
            return estimate
        frees = [free]
        for _ in range(self.mg_levels - 1):
            frees.append((F.avg_pool2d(frees[-1], 2) > 0.99).to(free.dtype))  # all four children free
        # Guards 0/0 where a channel has no hole or is constant (the start is then exact). A clamp,
        # not "+ tiny": the ONNX exporter's optimiser drops the addition of 1e-20 as a no-op in
        # float32, and the exported model returned NaN for a constant channel (a PET crop in air).
        tiny = 1e-20
        solution = torch.zeros_like(estimate)
        residual = -free * self._laplacian(self._laplacian(estimate))
        preconditioned = self._v_cycle(residual, frees)
        direction = preconditioned
        rz = (residual * preconditioned).sum(dim=(2, 3), keepdim=True)
        for _ in range(self.pcg_steps):
            curvature = self._operator(direction, free)
            alpha = rz / (direction * curvature).sum(dim=(2, 3), keepdim=True).clamp_min(tiny)
            solution = solution + alpha * direction
            residual = residual - alpha * curvature
            next_preconditioned = self._v_cycle(residual, frees)
            beta = (residual * (next_preconditioned - preconditioned)).sum(dim=(2, 3), keepdim=True) / rz.clamp_min(tiny)
            direction = next_preconditioned + beta * direction
            preconditioned = next_preconditioned
            rz = (residual * preconditioned).sum(dim=(2, 3), keepdim=True)
        return estimate + free * solution


class InpaintingUNet(nn.Module):
    """GConv or PConv inpainting U-Net (see the module docstring for the contract)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        c, widths = config.in_channels, config.widths
        first_in = c + 1 if config.arch == "gconv" else c  # GConv sees the mask as a channel
        self.encoder = nn.ModuleList(
            _EncoderBlock(config.arch, w_in, w_out, k, config.use_bn)
            for w_in, w_out, k in zip((first_in,) + widths[:-1], widths, config.kernels))
        # Decoder block j upsamples to the resolution of encoder level depth - 2 - j; the last
        # block reaches full resolution, where the output layer supplies the input image instead.
        skips = tuple(reversed(widths[:-1])) + (0,)
        ups = (widths[-1],) + tuple(reversed(widths[:-1]))
        outs = tuple(reversed(widths[:-1])) + (widths[0],)
        self.decoder = nn.ModuleList(
            _DecoderBlock(config.arch, u, s, o, config.use_bn) for u, s, o in zip(ups, skips, outs))
        if config.arch == "gconv":
            self.head = nn.Conv2d(widths[0] + c + 1, c, DECODER_KERNEL, 1, DECODER_KERNEL // 2)
        else:
            self.head = PartialConv2d(widths[0] + c, c, DECODER_KERNEL, 1, (widths[0], c))
        prefills = {"harmonic": HarmonicPrefill, "biharmonic": BiharmonicPrefill}
        self.prefill = prefills[config.prefill](config.depth) if config.prefill in prefills else None
        self._encoder_bn_frozen = False
        self._all_bn_frozen = False

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image: (N, C, H, W) in [0, 1]; mask: (N, 1, H, W) 1 = known -> (N, C, H, W) in [0, 1]."""
        self._check_input(image, mask)
        known = image * mask  # the network never sees the pixels under the holes
        x = torch.cat([known, mask], dim=1) if self.config.arch == "gconv" else known
        features, masks = [], []
        m = mask
        for block in self.encoder:
            x, m = block(x, m)
            features.append(x)
            masks.append(m)
        for j, block in enumerate(self.decoder):
            level = self.config.depth - 2 - j
            skip = (features[level], masks[level]) if level >= 0 else (None, None)
            x, m = block(x, m, *skip)
        if self.prefill is not None:
            head_image, offset = self._prefilled(known, mask)
            out = self.head(torch.cat([x, head_image, mask], dim=1)) + offset
        elif self.config.arch == "gconv":
            out = self.head(torch.cat([x, known, mask], dim=1))
        else:
            out, _ = self.head(torch.cat([x, known], dim=1), torch.cat([m, mask], dim=1))
        return torch.sigmoid(out)

    def _prefilled(self, known: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's image input and the logit it corrects: the prefill on the prefilled channels;
        the image with holes and a zero offset (the paper's plain head) on the others."""
        chosen = self.config.prefilled
        if len(chosen) == self.config.in_channels:
            smooth = self.prefill(known, mask)
            return smooth, _logit(smooth)
        images, offsets = [], []
        for c in range(self.config.in_channels):
            channel = known[:, c:c + 1]
            if c in chosen:
                smooth = self.prefill(channel, mask)  # the solvers treat channels independently
                images.append(smooth)
                offsets.append(_logit(smooth))
            else:
                images.append(channel)
                offsets.append(torch.zeros_like(channel))
        return torch.cat(images, dim=1), torch.cat(offsets, dim=1)

    def _check_input(self, image: torch.Tensor, mask: torch.Tensor) -> None:
        # Skipped while tracing for export: the symbolic sizes would otherwise become guards.
        if torch.compiler.is_compiling():
            return
        n, c, h, w = image.shape
        step = self.config.size_multiple
        if c != self.config.in_channels or tuple(mask.shape) != (n, 1, h, w):
            raise ValueError(f"expected image (N, {self.config.in_channels}, H, W) and mask "
                             f"(N, 1, H, W), got {tuple(image.shape)} and {tuple(mask.shape)}")
        if h % step or w % step:
            raise ValueError(f"image height and width must be multiples of {step}, got {h}x{w}")

    def set_encoder_bn_frozen(self, frozen: bool) -> None:
        """Phase 2 of the paper: encoder BN uses its running statistics (decoder BN still learns).

        The encoder BN layers stay in eval mode across later ``train()`` calls until unfrozen;
        their affine parameters keep training, as in Liu et al.'s fine-tuning.
        """
        self._encoder_bn_frozen = frozen
        self.train(self.training)

    @property
    def encoder_bn_frozen(self) -> bool:
        return self._encoder_bn_frozen

    def freeze_all_bn(self) -> None:
        """Every BN layer in eval mode for good (affine parameters still train).

        For networks rebuilt from an exported model (``onnx_import``), whose BN statistics were
        folded into the convolutions: batch statistics would undo what the weights learned.
        """
        self._all_bn_frozen = True
        self.train(self.training)

    @property
    def all_bn_frozen(self) -> bool:
        return self._all_bn_frozen

    def train(self, mode: bool = True) -> InpaintingUNet:
        super().train(mode)
        frozen_part = self if self._all_bn_frozen else self.encoder if self._encoder_bn_frozen else None
        if frozen_part is not None:
            for module in frozen_part.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self


def _logit(fill: torch.Tensor) -> torch.Tensor:
    """The logit the head's correction is added to (clamped: a fill of exactly 0 or 1 stays finite)."""
    return torch.logit(fill.clamp(LOGIT_EPS, 1.0 - LOGIT_EPS))


def build_network(config: NetworkConfig | None = None) -> InpaintingUNet:
    """Build the U-Net described by ``config`` (default: compact GConv, 1 channel)."""
    return InpaintingUNet(config if config is not None else NetworkConfig())


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``; BN running statistics are not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
