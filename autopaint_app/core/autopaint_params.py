"""Parameters of the autoinpainting pipeline (paper section 2.5): a frozen, validated dataclass.

Pixel quantities are in working-grid pixels (``core.preprocess.WorkingGrid``, ~0.98 mm), as in the
paper. Defaults come from the site preset (lung: circle radius 27, stride 15, minimum tumour radius
7; head and neck: 15, 8, 4; dilation widths 7..15; top-k 3); the rest are this implementation's
choices, each documented where it is used:

* ``outlier_k`` — :func:`autopaint_app.core.autopaint_scores.select_outliers`;
* ``volume_outlier_k`` — :func:`autopaint_app.core.autopaint.volume_outliers`;
* ``min_intensity_difference`` — same function (absolute floor);
* ``dilation_tolerance`` — :func:`autopaint_app.core.autopaint_scores.choose_mask`;
* ``size_level``, ``threshold`` — :mod:`autopaint_app.core.autopaint_result`;
* ``feature_sigmas_px`` — :func:`autopaint_app.core.autopaint_scores.texture_map`;
* crop sizes — :meth:`PipelineParams.circle_crop_size` (``crop_context_ratio``);
* ``circle_search``, ``screen_margin``, ``volume_screen_margin`` — :mod:`autopaint_app.core.autopaint_search`.

Fast-mode crops are placed on the network's grid (``autopaint_circles.aligned_crop``): that, not
the amount of context, is what makes them agree with reference mode's whole-slice passes. The
default ``crop_context_ratio=0.7`` is a 96-px lung crop grown to 128 px by the alignment (the cost
of the former centred 128-px crops; circle scores 1.0 % from reference mode's instead of 6.6 %).
``circle_search="coarse-to-fine"`` is the default (since session 8): it inpaints a quarter of the
grid plus the neighbourhoods of the circles that could pass both the slice and the volume rule
(~40 % of the circles), 2.4x faster than ``"exhaustive"`` (every circle, the paper's decisions).
Its median/MAD come from a quarter of the circles and a small tumour seen by one grid circle can be
missed, so its decisions differ from the exhaustive search's on some slices; on the 20-phantom lung
PET-CT cohort the two score the same ([Dice] 0.539 vs 0.542, cases up and down by up to 0.15), and
on the benchmark case it agrees with reference mode at Dice 0.971. On the demo case it lost a
tumour slice between kept ones (Dice 0.657 vs 0.744), hence ``complete_neighbours`` (default on,
session 9): the slices next to a slice with candidates are searched with every circle and judged
on all of them, while the volume rule's statistics keep their screening circles (so no other
slice's decision moves): demo Dice 0.730. Measured in the README (Pipeline speed).
Reference mode ignores these and stays the paper's exhaustive whole-slice search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from autopaint_app.core.presets import SitePreset

SCHEMA_VERSION = 1
MODES = ("fast", "reference")
TEXTURES = ("gaussian-derivatives", "none")
SEARCHES = ("coarse-to-fine", "exhaustive")


def round_up(value: float, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return int(math.ceil(value / multiple)) * multiple


@dataclass(frozen=True)
class PipelineParams:
    """Everything the pipeline decides with.

    Attributes:
        circle_radius_px: sliding-circle radius ``r`` (pixels).
        circle_stride_px: distance ``s`` between circle centres (pixels); ``r >= s / sqrt(2)`` so the
            circles cover every OOI pixel.
        min_tumour_radius_px: a slice keeps its inpainting only when the largest connected
            component of its residual (at ``size_level``) is at least a digital disk of this radius.
        dilation_widths_px: structuring-element widths (odd, increasing) of the dilated union masks.
        top_k: at most this many candidate circles per slice.
        mode: ``"fast"`` (local crops, batched) or ``"reference"`` (whole slice, one circle per pass).
        threshold: default residual threshold of the final mask (``residual > threshold``).
        min_lesion_ml: the final mask drops 3-D lesions (26-connected) smaller than this volume
            (ml); 0 = off, the paper (which has no such rule). Applies to the mask only: the
            residual, and so ``evaluate``'s threshold sweep, are unchanged.
        size_level: residual level at which connected components are measured for the minimum-size
            criterion (independent of ``threshold``, so the paper's threshold sweep sees one fixed
            residual volume).
        outlier_k: a circle is an outlier when its score exceeds the slice's median by more than
            ``outlier_k`` robust standard deviations (1.4826 x MAD). 2.0, not 3.0: with the shipped
            lung PET-CT model on phantom lung_204 (slices 40-46, a 4 cm tumour touching 58 of 185
            circles) the tumour circles score 4.3-5.4 while the k = 3 level is 6.0 (the tumour
            circles themselves widen the MAD), so k = 3 kept nothing (Dice 0); k = 2 keeps them
            (Dice 0.33 at threshold 0.05). The minimum-size rule and the dilation test still
            reject most chance outliers.
        volume_outlier_k: a candidate must also stand out from every circle of the run by this many
            robust standard deviations (:func:`autopaint_app.core.autopaint.volume_outliers`; our
            addition to the paper; 0 = off, the paper's per-slice rule alone). 4.0 was chosen on
            the demo case (shipped lung PET-CT model; Dice at threshold 0.1, offline by slice: off
            0.30, k = 3 0.43, 4 0.69, 5 0.15 — above 4 the tumour's own slices drop out; the rule as
            built, ``autopaint-cli demo``: 0.71) and then used unchanged on the README's cohorts.
        min_intensity_difference: circles whose mean |input - inpainted| is below this (unit
            intensity) are never candidates.
        dilation_tolerance: the next larger mask is taken when the change it adds per added pixel
            exceeds this multiple of the slice's healthy change per pixel (the median circle score).
        texture: ``"gaussian-derivatives"`` (intensity + texture score) or ``"none"`` (intensity only).
        feature_sigmas_px: scales of the Gaussian-derivative filter bank (pixels).
        batch_size: crops per predictor call in fast mode.
        crop_size_px: side of the square crop around a circle in fast mode; None = the rule of
            :meth:`circle_crop_size`.
        crop_context_ratio: real context the fast-mode circle crop keeps on every side of the
            circle, as a fraction of ``r`` (the crop-size rule of :meth:`circle_crop_size`).
        circle_search: ``"coarse-to-fine"`` (fast mode: screen every other grid circle, inpaint the
            full-stride circles only next to promising ones) or ``"exhaustive"`` (every circle;
            reference mode always searches exhaustively).
        screen_margin: coarse-to-fine refines around a screened circle whose score is above
            ``outlier_k - screen_margin`` robust standard deviations (the most a circle's score was
            seen to drop from an outlier to its best screened neighbour, with room to spare).
        volume_screen_margin: with the volume rule on, coarse-to-fine refines only around circles
            whose volume score is above ``volume_outlier_k - volume_screen_margin`` robust standard
            deviations of the run's screening circles (``autopaint.volume_gate``).
        complete_neighbours: coarse-to-fine with the volume rule on: the slices next to a slice
            with candidates are searched with every circle, the statistics still taken from the
            screening circles (``autopaint.neighbours_to_complete``, ``autopaint_search.complete_circles``).
        schema_version: version of this parameter set when saved.
    """

    circle_radius_px: int = 27
    circle_stride_px: int = 15
    min_tumour_radius_px: float = 7.0
    dilation_widths_px: tuple[int, ...] = (7, 9, 11, 13, 15)
    top_k: int = 3
    mode: str = "fast"
    threshold: float = 0.1
    min_lesion_ml: float = 0.0
    size_level: float = 0.1
    outlier_k: float = 2.0
    volume_outlier_k: float = 4.0
    min_intensity_difference: float = 0.01
    dilation_tolerance: float = 2.0
    texture: str = "gaussian-derivatives"
    feature_sigmas_px: tuple[float, ...] = (1.0, 2.0, 4.0)
    batch_size: int = 8
    crop_size_px: int | None = None
    crop_context_ratio: float = 0.7
    circle_search: str = "coarse-to-fine"
    screen_margin: float = 1.5
    volume_screen_margin: float = 2.5
    complete_neighbours: bool = True
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        problems = []
        r, s = self.circle_radius_px, self.circle_stride_px
        if not (isinstance(r, int) and 2 <= r <= 128):
            problems.append(f"circle_radius_px must be an integer in [2, 128], got {r!r}")
        elif not (isinstance(s, int) and 1 <= s and r >= s / math.sqrt(2)):
            problems.append(f"circle_stride_px must be an integer in [1, radius * sqrt(2)] so that circles "
                            f"cover the OOI, got {s!r} for radius {r}")
        if not 0 <= self.min_tumour_radius_px <= 128:
            problems.append(f"min_tumour_radius_px must be in [0, 128], got {self.min_tumour_radius_px}")
        widths = tuple(self.dilation_widths_px)
        if any(w < 1 or w % 2 == 0 for w in widths) or list(widths) != sorted(set(widths)):
            problems.append(f"dilation_widths_px must be odd, positive and increasing, got {widths}")
        if not 1 <= self.top_k <= 50:
            problems.append(f"top_k must be in [1, 50], got {self.top_k}")
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("threshold", "size_level", "min_intensity_difference"):
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.min_lesion_ml <= 1000:
            problems.append(f"min_lesion_ml must be in [0, 1000] (0 = off), got {self.min_lesion_ml}")
        if not 0 < self.outlier_k <= 20:
            problems.append(f"outlier_k must be in (0, 20], got {self.outlier_k}")
        if not 0 <= self.volume_outlier_k <= 20:
            problems.append(f"volume_outlier_k must be in [0, 20] (0 = off), got {self.volume_outlier_k}")
        if not 0 < self.dilation_tolerance <= 100:
            problems.append(f"dilation_tolerance must be in (0, 100], got {self.dilation_tolerance}")
        if self.texture not in TEXTURES:
            problems.append(f"texture must be one of {', '.join(TEXTURES)}, got {self.texture!r}")
        if not self.feature_sigmas_px or any(not 0.5 <= sigma <= 16 for sigma in self.feature_sigmas_px):
            problems.append(f"feature_sigmas_px must be non-empty, each in [0.5, 16], got {self.feature_sigmas_px}")
        if not 1 <= self.batch_size <= 1024:
            problems.append(f"batch_size must be in [1, 1024], got {self.batch_size}")
        if self.crop_size_px is not None and not 2 * r + 1 <= self.crop_size_px <= 4096:
            problems.append(f"crop_size_px must hold the circle (>= {2 * r + 1}), got {self.crop_size_px}")
        if not 0.25 <= self.crop_context_ratio <= 4:
            problems.append(f"crop_context_ratio must be in [0.25, 4], got {self.crop_context_ratio}")
        if self.circle_search not in SEARCHES:
            problems.append(f"circle_search must be one of {', '.join(SEARCHES)}, got {self.circle_search!r}")
        if not 0 <= self.screen_margin <= 20:
            problems.append(f"screen_margin must be in [0, 20], got {self.screen_margin}")
        if not 0 <= self.volume_screen_margin <= 20:
            problems.append(f"volume_screen_margin must be in [0, 20], got {self.volume_screen_margin}")
        if not isinstance(self.complete_neighbours, bool):
            problems.append(f"complete_neighbours must be true or false, got {self.complete_neighbours!r}")
        if problems:
            raise ValueError("invalid pipeline parameters: " + "; ".join(problems))
        object.__setattr__(self, "dilation_widths_px", widths)
        object.__setattr__(self, "feature_sigmas_px", tuple(float(v) for v in self.feature_sigmas_px))

    @classmethod
    def from_preset(cls, preset: SitePreset, **overrides) -> "PipelineParams":
        """The paper's values for a site (radius, stride, minimum radius, widths, top-k) + overrides."""
        values = dict(circle_radius_px=preset.circle_radius_px, circle_stride_px=preset.circle_stride_px,
                      min_tumour_radius_px=float(preset.min_tumour_radius_px),
                      dilation_widths_px=tuple(preset.dilation_widths_px), top_k=preset.top_k)
        values.update(overrides)
        return cls(**values)

    def with_changes(self, **changes) -> "PipelineParams":
        """A validated copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @property
    def reach_px(self) -> float:
        """A centre is kept when it lies within this distance of the OOI: half the stride cell's diagonal."""
        return self.circle_stride_px / math.sqrt(2)

    @property
    def dilation_radii_px(self) -> tuple[int, ...]:
        """Radii of the disk structuring elements: width ``w`` -> radius ``(w - 1) / 2``."""
        return tuple((w - 1) // 2 for w in self.dilation_widths_px)

    def circle_crop_size(self, size_multiple: int = 32) -> int:
        """Side of the square fast-mode crop around one circle (pixels).

        Rule: the circle's box ``2 r + 1`` plus ``ceil(crop_context_ratio * r)`` pixels of real
        context on each side, rounded up to the network's size multiple; the crop fed to the
        network is one size multiple larger, aligned (``autopaint_circles.aligned_crop``). Default
        ratio 0.7: lung 55 + 2 x 19 = 93 -> 96 px (+ 32 = 128 fed), head and neck 61 -> 64 px
        (+ 32 = 96 fed). Ratio 1.0 (the ``4 r`` rule): lung 128 px (+ 32 = 160; scores 0.24 % from
        reference mode's instead of 1.0 %, 1.5x the cost).
        """
        if self.crop_size_px is not None:
            return round_up(self.crop_size_px, size_multiple)
        r = self.circle_radius_px
        return round_up(2 * r + 1 + 2 * math.ceil(self.crop_context_ratio * r - 1e-9), size_multiple)

    @property
    def coarse_to_fine(self) -> bool:
        """True when the circle search is coarse-to-fine (fast mode only; reference is exhaustive)."""
        return self.mode == "fast" and self.circle_search == "coarse-to-fine"

    @property
    def mask_margin_px(self) -> int:
        """Context kept around a union/dilated mask's bounding box in fast mode: the circle radius."""
        return self.circle_radius_px
