"""The paper's multi-term inpainting objective (section 2.3, after Liu et al. 2018).

``L = 30 L_valid + 240 L_hole + 0.2 L_perceptual + 0.05 (L_style_out + L_style_comp)
+ 250 L_tv + 20 L_lap``. Every term is a separate function so it can be tested on its own;
``InpaintingLoss`` (or ``total_loss``) combines them and returns a dict of floats for logging.

Shapes: ``output``, ``target``: (N, C, H, W) in [0, 1]; ``mask``: (N, 1, H, W), 1 = known pixel,
0 = hole (broadcast over C). "Mean" below means the sum divided by the number of elements of the
tensor, the normalisations ``1 / N`` of the paper's formulas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from autopaint_app.training.vgg import VGG16Features, load_vgg16_features

LAPLACIAN_LEVELS = 3
# 5-tap binomial approximation of a Gaussian (sigma ~ 1), the classic pyramid kernel.
_BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the six terms (paper defaults = GConv-Lap). ``lap=0`` gives plain GConv/PConv."""

    valid: float = 30.0
    hole: float = 240.0
    perceptual: float = 0.2
    style: float = 0.05  # applied to style_out + style_comp
    tv: float = 250.0
    lap: float = 20.0
    # Relative weight of each channel in the per-pixel terms (valid, hole, Laplacian), network
    # order, mean 1 (RunConfig.channel_weights); None = every channel alike, as in the paper.
    channels: tuple[float, ...] | None = None

    @classmethod
    def without_laplacian(cls) -> LossWeights:
        """Liu et al.'s objective, used for the PConv and GConv baselines."""
        return cls(lap=0.0)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def composite(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """I_comp: the prediction inside the holes, the ground truth on the known pixels."""
    return mask * target + (1.0 - mask) * output


def valid_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_valid = ||M * (out - gt)||_1 / N_gt (N_gt = number of elements of ``target``)."""
    return (mask * (output - target)).abs().sum() / target.numel()


def hole_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_hole = ||(1 - M) * (out - gt)||_1 / N_gt."""
    return ((1.0 - mask) * (output - target)).abs().sum() / target.numel()


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Autocorrelation of a feature map: (N, C, H, W) -> (N, C, C), divided by K = C * H * W."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def perceptual_loss(features_out: list[torch.Tensor], features_comp: list[torch.Tensor],
                    features_gt: list[torch.Tensor]) -> torch.Tensor:
    """Sum over pooling layers p of mean|Psi_p(out) - Psi_p(gt)| + mean|Psi_p(comp) - Psi_p(gt)|."""
    total = features_gt[0].new_zeros(())
    for out, comp, gt in zip(features_out, features_comp, features_gt, strict=True):
        total = total + F.l1_loss(out, gt) + F.l1_loss(comp, gt)
    return total


def style_loss(features: list[torch.Tensor], features_gt: list[torch.Tensor]) -> torch.Tensor:
    """Sum over p of mean|G(Psi_p(x)) - G(Psi_p(gt))|; the mean over C_p^2 entries is the 1/C_p^2.

    Called with the output's features for L_style_out and the composite's for L_style_comp.
    """
    total = features_gt[0].new_zeros(())
    for feat, gt in zip(features, features_gt, strict=True):
        total = total + F.l1_loss(gram_matrix(feat), gram_matrix(gt))
    return total


def tv_loss(comp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Total variation of the composite on R, the hole region dilated by one pixel (3x3 square).

    Only neighbour pairs with both pixels in R count; the sum is divided by comp.numel().
    """
    region = F.max_pool2d(1.0 - mask, 3, stride=1, padding=1)
    pairs_x = region[..., :, 1:] * region[..., :, :-1]
    pairs_y = region[..., 1:, :] * region[..., :-1, :]
    step_x = (comp[..., :, 1:] - comp[..., :, :-1]).abs()
    step_y = (comp[..., 1:, :] - comp[..., :-1, :]).abs()
    return ((pairs_x * step_x).sum() + (pairs_y * step_y).sum()) / comp.numel()


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5x5 binomial blur per channel; replicate padding so constants stay constant."""
    taps = torch.tensor(_BINOMIAL_5, dtype=x.dtype, device=x.device) / 16.0
    channels = x.shape[1]
    x = F.pad(x, (2, 2, 2, 2), mode="replicate")
    x = F.conv2d(x, taps.view(1, 1, 1, 5).expand(channels, 1, 1, 5), groups=channels)
    return F.conv2d(x, taps.view(1, 1, 5, 1).expand(channels, 1, 5, 1), groups=channels)


def laplacian_pyramid(image: torch.Tensor, levels: int = LAPLACIAN_LEVELS) -> list[torch.Tensor]:
    """Laplacian pyramid: ``levels - 1`` band-pass levels, then the low-pass residual.

    Down = Gaussian blur then keep every second pixel; up = nearest x2 then Gaussian blur.
    Level j has size ~ (H / 2^j, W / 2^j).
    """
    pyramid = []
    current = image
    for _ in range(levels - 1):
        low = _blur(current)[..., ::2, ::2]
        up = _blur(F.interpolate(low, size=current.shape[-2:], mode="nearest"))
        pyramid.append(current - up)
        current = low
    pyramid.append(current)
    return pyramid


def laplacian_loss(output: torch.Tensor, target: torch.Tensor,
                   levels: int = LAPLACIAN_LEVELS) -> torch.Tensor:
    """L_lap = sum_j 2^(2j) ||L^j(out) - L^j(gt)||_1 / N_gt.

    The 2^(2j) compensates the 4^j times fewer pixels of level j, so each level contributes its
    mean absolute difference (a constant offset d shows only in the low-pass level: L_lap = d).
    """
    total = target.new_zeros(())
    for j, (a, b) in enumerate(zip(laplacian_pyramid(output, levels),
                                   laplacian_pyramid(target, levels), strict=True)):
        total = total + 4.0 ** j * (a - b).abs().sum()
    return total / target.numel()


class InpaintingLoss(nn.Module):
    """The weighted objective; holds the frozen VGG16 used by the perceptual and style terms.

    Args:
        weights: Term weights (``LossWeights()`` = GConv-Lap, ``without_laplacian()`` otherwise).
        vgg: A ready ``VGG16Features``; default ``load_vgg16_features(vgg_weights_path)``, loaded
            only if the perceptual or style weight is non-zero.
        vgg_weights_path: torchvision-format VGG16 state dict to use.
        vgg_downsample: Average-pool the images by this factor before VGG (1 = the paper). The
            VGG terms cost 10-20x the compact network on CPU; 2 makes them 4x cheaper.
    """

    def __init__(self, weights: LossWeights | None = None, vgg: VGG16Features | None = None,
                 vgg_weights_path: str | Path | None = None, vgg_downsample: int = 1) -> None:
        super().__init__()
        if vgg_downsample < 1:
            raise ValueError(f"vgg_downsample must be >= 1, got {vgg_downsample}")
        self.weights = weights if weights is not None else LossWeights()
        self.vgg_downsample = vgg_downsample
        needs_vgg = self.weights.perceptual != 0 or self.weights.style != 0
        if vgg is None and needs_vgg:
            vgg = load_vgg16_features(vgg_weights_path)
        self.vgg = vgg

    @property
    def vgg_weights_source(self) -> str | None:
        """``"imagenet"``, ``"random-seeded"`` or None (no VGG needed) for the model card."""
        return self.vgg.weights_source if self.vgg is not None else None

    def forward(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """Returns the scalar total loss and every term (and ``"total"``) as floats."""
        return total_loss(output, target, mask, self.vgg, self.weights, self.vgg_downsample)


def total_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               vgg: VGG16Features | None, weights: LossWeights | None = None,
               vgg_downsample: int = 1) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the six terms and a dict of each term (unweighted) as floats.

    ``vgg`` may be None only when the perceptual and style weights are 0 (those terms are then 0).
    ``vgg_downsample`` > 1 average-pools the three images before VGG (see ``InpaintingLoss``).
    """
    weights = weights if weights is not None else LossWeights()
    comp = composite(output, target, mask)
    # The per-pixel terms are linear in the image, so scaling both images by a channel's weight
    # weighs that channel's differences (Laplacian pyramid included); TV and VGG see the images as they are.
    pixel_out, pixel_target = output, target
    if weights.channels is not None:
        if len(weights.channels) != output.shape[1]:
            raise ValueError(f"{len(weights.channels)} channel weights for {output.shape[1]} channels")
        scale = torch.tensor(weights.channels, dtype=output.dtype, device=output.device).view(1, -1, 1, 1)
        pixel_out, pixel_target = output * scale, target * scale
    terms = {"valid": valid_loss(pixel_out, pixel_target, mask), "hole": hole_loss(pixel_out, pixel_target, mask),
             "tv": tv_loss(comp, mask), "lap": laplacian_loss(pixel_out, pixel_target)}
    zero = output.new_zeros(())
    if weights.perceptual != 0 or weights.style != 0:
        if vgg is None:
            raise ValueError("perceptual/style weights are non-zero but no VGG16 was given")
        def shrink(x: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(x, vgg_downsample) if vgg_downsample > 1 else x

        features = vgg(shrink(torch.cat([output, comp], dim=0)))
        n_rows = output.shape[0] * output.shape[1]  # rows of the output's grey images
        feat_out = [f[:n_rows] for f in features]
        feat_comp = [f[n_rows:] for f in features]
        with torch.no_grad():
            feat_gt = vgg(shrink(target))
        terms["perceptual"] = perceptual_loss(feat_out, feat_comp, feat_gt)
        terms["style_out"] = style_loss(feat_out, feat_gt)
        terms["style_comp"] = style_loss(feat_comp, feat_gt)
    else:
        terms.update(perceptual=zero, style_out=zero, style_comp=zero)
    total = (weights.valid * terms["valid"] + weights.hole * terms["hole"]
             + weights.perceptual * terms["perceptual"]
             + weights.style * (terms["style_out"] + terms["style_comp"])
             + weights.tv * terms["tv"] + weights.lap * terms["lap"])
    logged = {name: float(value.detach()) for name, value in terms.items()}
    logged["total"] = float(total.detach())
    return total, logged
