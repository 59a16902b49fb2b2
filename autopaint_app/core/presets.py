"""Site presets: intensity windows and the paper's pipeline defaults per organ of interest.

Values from the paper (sections 2.2 and 2.5): lung CT HU [-1000, 500], head & neck CT HU
[-200, 200], PET SUV [0, 12]; sliding circle radius / stride / minimum tumour radius in working-grid
pixels: lung 27 / 15 / 7, head & neck 15 / 8 / 4; dilation widths 7..15; top-k 3.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SCHEMA_VERSION = 1

# Channel names in the order every model card and stack uses.
CHANNEL_ORDER = ("ct", "pet")
MODALITY_CHANNELS = {"ct": ("ct",), "pet": ("pet",), "petct": ("ct", "pet")}

# The paper's axial working grid (pixels).
WORKING_SIZE = 512

# Where the sliding circles may go (core.ooi.compute_ooi): the site's organ, or the whole body.
SITE_REGION = "site"
BODY_REGION = "body"
OOI_REGIONS = (SITE_REGION, BODY_REGION)


@dataclass(frozen=True)
class SitePreset:
    """Everything that depends on the organ of interest.

    Attributes:
        name: ``"lung"`` or ``"hn"``.
        ct_window: CT clamp range in HU ``(low, high)``.
        suv_window: PET clamp range in SUV ``(low, high)``.
        circle_radius_px: sliding-circle radius on the working grid (pixels).
        circle_stride_px: distance between circle centres (pixels).
        min_tumour_radius_px: smallest tumour radius kept (pixels).
        dilation_widths_px: structuring-element widths of the incremental dilation.
        top_k: at most this many candidate circles kept per slice.
    """

    name: str
    ct_window: tuple[float, float]
    suv_window: tuple[float, float]
    circle_radius_px: int
    circle_stride_px: int
    min_tumour_radius_px: int
    dilation_widths_px: tuple[int, ...] = (7, 9, 11, 13, 15)
    top_k: int = 3

    def __post_init__(self):
        if self.ct_window[0] >= self.ct_window[1] or self.suv_window[0] >= self.suv_window[1]:
            raise ValueError(f"preset {self.name}: window low must be below high")
        if not (1 <= self.circle_stride_px and 1 <= self.circle_radius_px <= WORKING_SIZE // 2):
            raise ValueError(f"preset {self.name}: circle radius/stride out of range")
        if self.min_tumour_radius_px < 0 or self.top_k < 1:
            raise ValueError(f"preset {self.name}: minimum tumour radius must be >= 0 and top-k >= 1")


LUNG = SitePreset("lung", ct_window=(-1000.0, 500.0), suv_window=(0.0, 12.0),
                  circle_radius_px=27, circle_stride_px=15, min_tumour_radius_px=7)
HEAD_NECK = SitePreset("hn", ct_window=(-200.0, 200.0), suv_window=(0.0, 12.0),
                       circle_radius_px=15, circle_stride_px=8, min_tumour_radius_px=4)

PRESETS = {"lung": LUNG, "hn": HEAD_NECK}


def get_preset(site: str) -> SitePreset:
    """The preset for ``site`` (``"lung"`` or ``"hn"``)."""
    try:
        return PRESETS[site]
    except KeyError:
        raise ValueError(f"unknown site {site!r}; expected one of {', '.join(PRESETS)}") from None


def preset_for_model(site: str, card=None) -> SitePreset:
    """The ``site`` preset with a model card's windows, so inference normalises as the model was trained.

    A model trained with custom windows (``run.json`` ``ct_window`` / ``suv_window``) records them in
    its card (``core.inpaint_model.ModelCard``); everything else (circles, dilations, organ of
    interest) stays the site's. ``card`` may be None or lack the windows (a fake predictor): then
    the plain preset.
    """
    preset = get_preset(site)
    windows = {name: tuple(float(v) for v in getattr(card, name)) for name in ("ct_window", "suv_window")
               if getattr(card, name, None) is not None}
    return replace(preset, **windows) if windows else preset
