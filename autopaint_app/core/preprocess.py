"""Preprocessing as in the paper (section 2.2): PET on the CT grid, clamp, [0, 1], 512x512 slices.

All functions are pure; volumes keep numpy order ``(z, y, x)`` and SimpleITK geometry order
``(x, y, z)`` (see :mod:`autopaint_app.core.io`).

Resampling
    PET goes onto the CT grid by 3rd-order B-spline (``sitk.sitkBSpline3``), as in the paper.
    Labels and masks use nearest neighbour (``order=0``), so their values stay exact.

Working grid
    The paper extracts axial slices of 512 x 512 pixels and states its sliding-circle radii in
    pixels of its internal data (0.976 mm). :class:`WorkingGrid` maps a case grid (size
    ``nx, ny, nz``, spacing ``sx, sy, sz`` mm, origin ``o``, direction ``D``, 3x3 with the axis
    unit vectors as columns) onto a working grid with the same ``D``, the same z sampling (``nz``,
    ``sz``, no z resampling) and ``N x N`` square pixels (``N = 512``) of size

        ``p = max(max(nx * sx, ny * sy) / N,  min(sx, sy, p_ref))``   with ``p_ref = 500 / 512`` mm

    The first term makes the whole in-plane field of view (FOV) fit. The second keeps the paper's
    pixel radii meaningful in mm: a small or cropped FOV is *padded*, never stretched to fill 512
    pixels (a 200-pixel crop at 0.98 mm would otherwise get 0.38 mm pixels and the 27-pixel circle
    would shrink to 10 mm), and a coarse grid (PET alone at 4 mm) is upsampled to about 1 mm.

    Two cases:

    - **Padding** (``p == sx == sy``, hence ``nx, ny <= N``): the case sits in the working grid at
      the integer offset ``(ox, oy) = ((N - nx) // 2, (N - ny) // 2)`` pixels, i.e.
      ``o_w = o - D @ (ox * p, oy * p, 0)``; case voxel ``(i, j, k)`` is working pixel
      ``(i + ox, j + oy, k)``. Both directions are array copies (pad / crop), bit-exact for any
      dtype and any interpolation order. Every 512 x 512 square-pixel case is the special case
      ``ox = oy = 0`` (identity).
    - **Resampling** (any other size or spacing): the working FOV is centred on the case FOV,
      ``o_w = o + D @ ((nx - 1) / 2 * sx - (N - 1) / 2 * p,  (ny - 1) / 2 * sy - (N - 1) / 2 * p,  0)``,
      and case voxel ``(i, j, k)`` sits at working continuous index
      ``((i - (nx - 1) / 2) * sx / p + (N - 1) / 2,  (j - (ny - 1) / 2) * sy / p + (N - 1) / 2,  k)``.
      Positions in mm are kept; when ``sx / p`` is an integer (e.g. 256 pixels of 2 mm -> 1 mm)
      every case pixel becomes an exact block of working pixels, so a nearest-neighbour round
      trip returns a label mask exactly; otherwise intensities are interpolated (lossy) and masks
      come back by nearest neighbour.

    Going back (``from_working``) always lands on the original case grid with its geometry copied
    exactly. Padding is filled with ``default`` (use 0 on [0, 1] data: the window minimum).
    Pixel radii from the paper (circle 27 px, and so on) are in working pixels; multiply by
    ``WorkingGrid.pixel_size_mm`` to get mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume
from autopaint_app.core.presets import CHANNEL_ORDER, MODALITY_CHANNELS, WORKING_SIZE, SitePreset

# The paper's internal lung data: 512 pixels over a 500 mm field of view. Exact in binary.
REFERENCE_PIXEL_MM = 500.0 / 512

_INTERPOLATORS = {0: sitk.sitkNearestNeighbor, 1: sitk.sitkLinear, 3: sitk.sitkBSpline3}


# --- resampling ---------------------------------------------------------------------------------


def _resample_to_geometry(moving: Volume, size_xyz, spacing, origin, direction, order: int,
                          default: float) -> np.ndarray:
    """Resample ``moving`` onto a grid given in SimpleITK order; returns array ``(z, y, x)``.

    ``order`` 0 keeps the input dtype (labels); 1 and 3 give float32, so that B-spline values are
    never truncated to integers.
    """
    if order not in _INTERPOLATORS:
        raise ValueError(f"interpolation order must be one of {sorted(_INTERPOLATORS)}, got {order}")
    image = moving.to_sitk()
    if order > 0:
        image = sitk.Cast(image, sitk.sitkFloat32)
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(n) for n in size_xyz])
    resampler.SetOutputSpacing(tuple(float(s) for s in spacing))
    resampler.SetOutputOrigin(tuple(float(o) for o in origin))
    resampler.SetOutputDirection(tuple(float(d) for d in direction))
    resampler.SetInterpolator(_INTERPOLATORS[order])
    resampler.SetDefaultPixelValue(float(default))
    return sitk.GetArrayFromImage(resampler.Execute(image))


def resample_to_reference(moving: Volume, reference: Volume, order: int = 3, default: float = 0.0,
                          clip_min: float | None = None) -> Volume:
    """Resample ``moving`` onto the grid of ``reference`` (physical space, identity transform).

    Args:
        moving: volume to resample, array ``(z, y, x)``.
        reference: its size/spacing/origin/direction are copied exactly to the result.
        order: 0 nearest neighbour (labels, masks; dtype kept), 1 linear, 3 cubic B-spline (float32).
        default: value outside ``moving``'s field of view.
        clip_min: values below it are set to it (see :func:`resample_pet_to_ct`).

    Raises:
        InputError: the two volumes do not overlap physically (names ``moving.source``).
    """
    _check_overlap(moving, reference)
    array = _resample_to_geometry(moving, reference.size_xyz, reference.spacing, reference.origin,
                                  reference.direction, order, default)
    if clip_min is not None:
        np.maximum(array, clip_min, out=array)
    return Volume(array, reference.spacing, reference.origin, reference.direction, moving.source, dict(moving.meta))


def resample_pet_to_ct(pet: Volume, ct: Volume) -> Volume:
    """PET (SUV) onto the CT grid by cubic B-spline, as in the paper; negatives clipped to 0.

    Why clip: a cubic B-spline overshoots next to steep edges (the body contour, a hot lesion
    beside cold lung), leaving small negative SUVs. Activity cannot be negative. The SUV window
    [0, 12] would map them to 0 anyway, but the SUV volume itself is also used for SUVmax and
    threshold baselines, so it must stay physical. Overshoot above the true maximum (a few %) is
    kept because it cannot be told apart from real signal.
    """
    return resample_to_reference(pet, ct, order=3, default=0.0, clip_min=0.0)


def _check_overlap(moving: Volume, reference: Volume) -> None:
    """Raise when the fields of view (voxel-centre bounds widened by half a voxel, mm) do not intersect."""
    half_moving = 0.5 * np.abs(np.asarray(moving.spacing))
    half_reference = 0.5 * np.abs(np.asarray(reference.spacing))
    low_m, high_m = moving.physical_bounds()
    low_r, high_r = reference.physical_bounds()
    if np.any(low_m - half_moving > high_r + half_reference) or np.any(low_r - half_reference > high_m + half_moving):
        other = f"the reference volume {reference.source}" if reference.source else "the reference volume"
        raise InputError(moving.source or "moving volume",
                         f"does not overlap {other} physically (bounds {np.round(low_m, 1).tolist()}.."
                         f"{np.round(high_m, 1).tolist()} mm vs {np.round(low_r, 1).tolist()}.."
                         f"{np.round(high_r, 1).tolist()} mm)")


# --- intensity windows --------------------------------------------------------------------------


def _checked_window(window) -> tuple[float, float]:
    low, high = float(window[0]), float(window[1])
    if not low < high:
        raise ValueError(f"window low must be below high, got {window}")
    return low, high


def normalise(array: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Clamp to ``window = (low, high)`` and scale linearly to float32 in [0, 1] (any shape)."""
    low, high = _checked_window(window)
    unit = np.array(array, dtype=np.float32)  # a copy; float32 in place keeps big CTs cheap
    np.clip(unit, low, high, out=unit)
    unit -= np.float32(low)
    unit /= np.float32(high - low)
    return np.clip(unit, 0.0, 1.0, out=unit)  # rounding must not leave [0, 1]


def denormalise(unit: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Inverse of :func:`normalise` inside the window: ``low + unit * (high - low)``, float32."""
    low, high = _checked_window(window)
    return (low + np.asarray(unit, dtype=np.float64) * (high - low)).astype(np.float32)


def ct_to_unit(ct_hu: np.ndarray, preset: SitePreset) -> np.ndarray:
    """CT in HU -> [0, 1] with the preset's CT window (lung [-1000, 500], head & neck [-200, 200])."""
    return normalise(ct_hu, preset.ct_window)


def pet_to_unit(suv: np.ndarray, preset: SitePreset) -> np.ndarray:
    """PET in SUV -> [0, 1] with the preset's SUV window ([0, 12])."""
    return normalise(suv, preset.suv_window)


def unit_to_ct(unit: np.ndarray, preset: SitePreset) -> np.ndarray:
    """[0, 1] -> CT in HU (values that were clamped come back at the window edge)."""
    return denormalise(unit, preset.ct_window)


def unit_to_pet(unit: np.ndarray, preset: SitePreset) -> np.ndarray:
    """[0, 1] -> PET in SUV (values that were clamped come back at the window edge)."""
    return denormalise(unit, preset.suv_window)


def stack_channels(ct_unit: np.ndarray | None = None, pet_unit: np.ndarray | None = None,
                   modality: str = "petct") -> np.ndarray:
    """Stack unit-range volumes into network input, shape ``(z, C, y, x)``, float32.

    Channels follow ``presets.MODALITY_CHANNELS[modality]`` (order ``("ct", "pet")``); channels
    the modality does not use are ignored.

    Raises:
        ValueError: unknown modality, a needed channel missing, or shapes that differ.
    """
    if modality not in MODALITY_CHANNELS:
        raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITY_CHANNELS)}")
    given = dict(zip(CHANNEL_ORDER, (ct_unit, pet_unit)))  # CHANNEL_ORDER is ("ct", "pet")
    needed = MODALITY_CHANNELS[modality]
    missing = [name for name in needed if given[name] is None]
    if missing:
        raise ValueError(f"modality {modality!r} needs the {' and '.join(missing)} channel; none was given")
    arrays = [np.asarray(given[name], dtype=np.float32) for name in needed]
    if any(a.ndim != 3 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"channels must be 3-D (z, y, x) of one shape, got {[a.shape for a in arrays]}")
    return np.stack(arrays, axis=1)


# --- working grid -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkingGrid:
    """A case grid and its square N x N axial working grid (see the module docstring).

    Attributes:
        case_shape: case array shape ``(z, y, x)``.
        case_spacing, case_origin, case_direction: case geometry, SimpleITK order ``(x, y, z)``, mm.
        size: working pixels per side ``N`` (512).
        pixel_size_mm: working pixel size ``p`` in mm (square).
        origin: working grid origin ``(x, y, z)`` in mm; direction and z sampling are the case's.
    """

    case_shape: tuple[int, int, int]
    case_spacing: tuple[float, float, float]
    case_origin: tuple[float, float, float]
    case_direction: tuple[float, ...]
    size: int
    pixel_size_mm: float
    origin: tuple[float, float, float]

    @classmethod
    def for_volume(cls, volume: Volume, size: int = WORKING_SIZE) -> "WorkingGrid":
        """Working grid for ``volume``'s geometry (square pixels, same z sampling; see module doc)."""
        nx, ny, _ = volume.size_xyz
        sx, sy, _ = volume.spacing
        pixel = max(max(nx * sx, ny * sy) / size, min(sx, sy, REFERENCE_PIXEL_MM))
        if pixel == sx == sy:  # padding: integer offset so both directions are exact copies
            shift = np.array([-((size - nx) // 2) * sx, -((size - ny) // 2) * sy, 0.0])
        else:
            shift = np.array([(nx - 1) / 2 * sx - (size - 1) / 2 * pixel,
                              (ny - 1) / 2 * sy - (size - 1) / 2 * pixel, 0.0])
        direction = np.asarray(volume.direction, dtype=float).reshape(3, 3)
        origin = tuple(float(v) for v in np.asarray(volume.origin, dtype=float) + direction @ shift)
        return cls(volume.shape, tuple(volume.spacing), tuple(volume.origin), tuple(volume.direction),
                   int(size), float(pixel), origin)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Working spacing ``(p, p, sz)`` in mm (SimpleITK order)."""
        return (self.pixel_size_mm, self.pixel_size_mm, float(self.case_spacing[2]))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Working array shape ``(z, N, N)``."""
        return (self.case_shape[0], self.size, self.size)

    @property
    def is_padding(self) -> bool:
        """True when the case pixels are the working pixels (mapping = pad / crop, bit-exact)."""
        return self.pixel_size_mm == self.case_spacing[0] == self.case_spacing[1]

    @property
    def pad_offset(self) -> tuple[int, int]:
        """Integer offset ``(ox, oy)`` of the case inside the working grid (padding case only)."""
        _, ny, nx = self.case_shape
        return ((self.size - nx) // 2, (self.size - ny) // 2)

    @property
    def is_identity(self) -> bool:
        """True when the working grid is the case grid (mapping is then a plain copy, bit-exact)."""
        return self.shape == tuple(self.case_shape) and self.spacing == tuple(self.case_spacing) \
            and self.origin == tuple(self.case_origin)

    def mm(self, pixels: float) -> float:
        """Length in mm of ``pixels`` working pixels (e.g. the paper's circle radius)."""
        return float(pixels) * self.pixel_size_mm

    def to_working(self, volume: Volume | np.ndarray, order: int = 3, default: float = 0.0) -> Volume:
        """Case-grid volume (or array ``(z, y, x)``) -> working-grid volume, array ``(z, N, N)``.

        ``order`` 0 for labels/masks (dtype kept), 1 or 3 for intensities (float32); ``default``
        fills the padding outside the case FOV.
        """
        source = self._case_array(volume)
        if self.is_padding:
            array = self._pad(source if order == 0 else source.astype(np.float32), default)
        else:
            moving = Volume(source, self.case_spacing, self.case_origin, self.case_direction)
            array = _resample_to_geometry(moving, (self.size, self.size, self.shape[0]), self.spacing, self.origin,
                                          self.case_direction, order, default)
        return Volume(array, self.spacing, self.origin, self.case_direction)

    def from_working(self, working: Volume | np.ndarray, order: int = 3, default: float = 0.0) -> Volume:
        """Working-grid volume (or array ``(z, N, N)``) -> volume on the case grid, geometry exact."""
        array = working.array if isinstance(working, Volume) else np.asarray(working)
        if array.shape != self.shape:
            raise ValueError(f"working array shape {array.shape} differs from the working grid {self.shape}")
        if self.is_padding:
            ox, oy = self.pad_offset
            _, ny, nx = self.case_shape
            back = array[:, oy:oy + ny, ox:ox + nx].copy()
            back = back if order == 0 else back.astype(np.float32)
        else:
            moving = Volume(array, self.spacing, self.origin, self.case_direction)
            back = _resample_to_geometry(moving, _size_xyz(self.case_shape), self.case_spacing,
                                         self.case_origin, self.case_direction, order, default)
        return Volume(back, self.case_spacing, self.case_origin, self.case_direction)

    def _pad(self, source: np.ndarray, default: float) -> np.ndarray:
        ox, oy = self.pad_offset
        _, ny, nx = self.case_shape
        padded = np.full(self.shape, default, dtype=source.dtype)
        padded[:, oy:oy + ny, ox:ox + nx] = source
        return padded

    def _case_array(self, volume: Volume | np.ndarray) -> np.ndarray:
        if isinstance(volume, Volume):
            same = (volume.shape == tuple(self.case_shape) and volume.spacing == self.case_spacing
                    and volume.origin == self.case_origin and volume.direction == self.case_direction)
            if not same:
                raise ValueError("volume is not on this working grid's case grid; resample it onto the case first")
            return volume.array
        array = np.asarray(volume)
        if array.shape != tuple(self.case_shape):
            raise ValueError(f"array shape {array.shape} differs from the case grid {tuple(self.case_shape)}")
        return array


def _size_xyz(shape_zyx) -> tuple[int, int, int]:
    """SimpleITK size ``(x, y, z)`` of a numpy shape ``(z, y, x)``."""
    z, y, x = shape_zyx
    return (int(x), int(y), int(z))


# --- one case, ready for the pipeline ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PreparedCase:
    """A case prepared as in the paper.

    Attributes:
        reference: the grid every case-grid output uses (the CT; the PET when there is no CT).
        ct_hu: CT in HU on the reference grid, or None.
        suv: PET in SUV on the reference grid (B-spline resampled, negatives clipped), or None.
        grid: the 512 x 512 working grid of ``reference``.
        channels: network input on the working grid, shape ``(z, C, N, N)``, float32 in [0, 1],
            channels in ``MODALITY_CHANNELS[modality]`` order.
        modality: ``"ct"``, ``"pet"`` or ``"petct"``.
        preset: the site preset whose windows were used.
    """

    reference: Volume
    ct_hu: Volume | None
    suv: Volume | None
    grid: WorkingGrid
    channels: np.ndarray
    modality: str
    preset: SitePreset


def prepare_case(ct: Volume | None, pet: Volume | None, preset: SitePreset, modality: str) -> PreparedCase:
    """PET onto the CT grid, clamp and scale per preset, stack channels on the 512 x 512 working grid.

    Args:
        ct: CT in HU, array ``(z, y, x)``, or None (PET-only case).
        pet: PET in SUV, array ``(z, y, x)``, any grid overlapping the CT, or None.
        preset: site preset (CT and SUV windows).
        modality: which channels the network takes (``"ct"``, ``"pet"``, ``"petct"``).

    Working-grid mapping uses linear interpolation on the [0, 1] arrays: it cannot leave [0, 1],
    and for the usual 512 x 512 CT it is an exact copy anyway. Padding is 0 (the window minimum).

    Raises:
        InputError: the modality needs a volume that was not given; PET and CT do not overlap.
    """
    if modality not in MODALITY_CHANNELS:
        raise InputError(None, f"unknown modality {modality!r}; expected one of {', '.join(MODALITY_CHANNELS)}")
    given = {"ct": ct, "pet": pet}
    missing = [name.upper() for name in MODALITY_CHANNELS[modality] if given[name] is None]
    if missing:
        raise InputError(None, f"modality {modality} needs a {' and a '.join(missing)} volume; none was given")
    reference = ct if ct is not None else pet
    suv = pet
    if pet is not None and ct is not None and not pet.same_grid(ct, tolerance_mm=1e-6):
        suv = resample_pet_to_ct(pet, ct)
    grid = WorkingGrid.for_volume(reference)
    units = {"ct": ct_to_unit(ct.array, preset) if ct is not None else None,
             "pet": pet_to_unit(suv.array, preset) if suv is not None else None}
    working = {name: grid.to_working(units[name], order=1).array if units[name] is not None else None
               for name in units}
    channels = stack_channels(working["ct"], working["pet"], modality)
    return PreparedCase(reference, ct, suv, grid, channels, modality, preset)
