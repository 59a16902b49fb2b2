"""Deterministic synthetic PET-CT phantoms of the chest and of the head and neck.

``make_phantom(site, seed)`` builds one case like a scanner would deliver it:

- **CT** (HU, int16) on a 512x512 axial grid of ~0.98 mm pixels and 3 mm slices (chest: 100 slices,
  300 mm; head and neck: 80 slices, 240 mm), with tissue texture, a slight blur and correlated noise;
- **PET** (SUVbw, float32) on its own coarser grid (~4 mm pixels, same slices, origin shifted by a
  few mm, so it must be resampled like real data), blurred by a 6 mm FWHM Gaussian with
  signal-dependent noise;
- **label** (uint8, CT grid): 1 on exactly the tumour voxels, 0 elsewhere;
- the list of :class:`TumourSpec` and the tissue map the case was synthesised from.

The same seed always gives the same arrays. Anatomy, image noise and tumours use separate random
streams, so ``healthy=True`` gives the same patient without tumours (a pseudo-healthy twin).
All geometry is identity-direction LPS; arrays are numpy ``(z, y, x)``, spacing/origin ``(x, y, z)``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from autopaint_app.core.errors import InputError, OutputExistsError
from autopaint_app.core.io import Volume, write_json, write_volume
from autopaint_app.core.phantom_hn import HN_EXTENT_MM, build_hn_anatomy
from autopaint_app.core.phantom_lung import LUNG_EXTENT_MM, build_lung_anatomy
from autopaint_app.core.phantom_shapes import Grid, smooth_field
from autopaint_app.core.phantom_tissues import TISSUE_NAMES, Anatomy, Tissue
from autopaint_app.core.phantom_tumours import (HN_KINDS, LUNG_KINDS, TumourSpec, default_kinds, paint_tumours,
                                                place_tumours)

__all__ = ["Phantom", "TumourSpec", "make_phantom", "write_phantom", "ensure_demo_case", "TISSUE_NAMES",
           "Tissue", "LUNG_KINDS", "HN_KINDS", "PHANTOM_FILES"]

GENERATOR_VERSION = 2
SITES = {"lung": (1, LUNG_EXTENT_MM, -420.0, build_lung_anatomy), "hn": (2, HN_EXTENT_MM, -120.0, build_hn_anatomy)}
FIELD_OF_VIEW_MM = 500.0
DEFAULT_SLICE_MM = 3.0
PET_PIXEL_MM = 4.0
PET_FWHM_MM = 6.0
PET_ORIGIN_SHIFT_MM = (2.1, -1.7, 0.0)
CT_BLUR_SIGMA_MM = 0.5
PHANTOM_FILES = ("ct.nii.gz", "pet.nii.gz", "label.nii.gz")
DEMO = dict(site="lung", seed=11, in_plane=256, pixel_mm=1.6, n_slices=48,
            tumour_kinds=("lung-parenchymal", "juxta-mediastinal"))


@dataclass(frozen=True, eq=False)
class Phantom:
    """One synthetic PET-CT case.

    Attributes:
        site: ``"lung"`` or ``"hn"``.
        seed: the seed it was generated from.
        ct: CT in HU, int16, shape ``(z, y, x)``.
        pet: PET in SUVbw, float32, on its own coarser grid (resample before voxel-wise use).
        label: uint8 on the CT grid, 1 = tumour, 0 = background.
        tumours: ground truth per tumour, in label order of appearance.
        tissue: uint8 tissue codes on the CT grid (see ``TISSUE_NAMES``).
        ct_noise_hu: standard deviation of the added CT noise in HU.
    """

    site: str
    seed: int
    ct: Volume
    pet: Volume
    label: Volume
    tumours: list[TumourSpec]
    tissue: Volume
    ct_noise_hu: float


def make_phantom(site: str, seed: int, healthy: bool = False, n_slices: int | None = None, in_plane: int = 512,
                 pixel_mm: float | None = None, slice_mm: float | None = None,
                 tumour_kinds: tuple[str, ...] | None = None, pet_noise: bool = True) -> Phantom:
    """Generate a deterministic PET-CT phantom.

    Args:
        site: ``"lung"`` (chest) or ``"hn"`` (head and neck).
        seed: any non-negative integer; the same seed gives identical arrays.
        healthy: no tumours (the same anatomy and noise as the diseased case of this seed).
        n_slices: number of axial slices. Without ``slice_mm`` the whole anatomy (300 mm chest, 240 mm
            neck) is covered by thicker or thinner slices; default 3 mm slices (100 / 80).
        in_plane: CT matrix size (square).
        pixel_mm: CT pixel size in mm; default ``500 / in_plane`` (so the anatomy always fits).
        slice_mm: slice thickness in mm; with ``n_slices`` given too, a centred slab is generated.
        tumour_kinds: exact tumour kinds to place (see ``LUNG_KINDS`` / ``HN_KINDS``); default 1-4
            drawn per seed. Ignored when ``healthy``.
        pet_noise: add the PET's counting noise (default). Without it the PET is the scanner-blurred
            true SUV of the same phantom, everything else identical: the noise-free truth that
            ``benchmarks/bench_pet_ceiling.py`` scores inpainters against.

    Returns:
        The :class:`Phantom`.

    Raises:
        ValueError: unknown site or kind, or a grid too small to hold the anatomy.
    """
    if site not in SITES:
        raise ValueError(f"unknown phantom site {site!r}; expected one of {', '.join(SITES)}")
    code, extent, z_base, build = SITES[site]
    grid = _ct_grid(extent, in_plane, pixel_mm, n_slices, slice_mm)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    allowed = LUNG_KINDS if site == "lung" else HN_KINDS
    if tumour_kinds is not None and any(k not in allowed for k in tumour_kinds):
        raise ValueError(f"tumour kinds for {site} must be among {', '.join(allowed)}; got {list(tumour_kinds)}")
    streams = [np.random.default_rng([seed, code, k]) for k in range(4)]
    anatomy = build(grid, streams[0])
    kinds = [] if healthy else list(tumour_kinds) if tumour_kinds is not None else default_kinds(site, streams[1])
    placements = place_tumours(anatomy, grid, streams[1], kinds)
    tumours = paint_tumours(anatomy, grid, streams[1], placements, lambda u: u + z_base)
    origin = (float(grid.x[0]), float(grid.y[0]), float(grid.u[0] + z_base))
    patchy = smooth_field(streams[2], grid, 14.0)     # shared by lung CT texture and PET heterogeneity
    ct, noise_hu = _synthesise_ct(anatomy, grid, streams[2], tumours, patchy)
    activity = _true_activity(anatomy, tumours, patchy)
    pet = _synthesise_pet(activity, grid, origin, streams[3], pet_noise)
    label = np.zeros(grid.shape, dtype=np.uint8)
    for tumour in tumours:
        label.flat[tumour.index] = 1

    def on_ct_grid(array: np.ndarray) -> Volume:
        return Volume(array, grid.spacing, origin, source=f"phantom:{site}:{seed}")

    return Phantom(site, seed, on_ct_grid(ct), pet, on_ct_grid(label), [t.spec for t in tumours],
                   on_ct_grid(anatomy.tissue), noise_hu)


def _ct_grid(extent: float, in_plane: int, pixel_mm: float | None, n_slices: int | None,
             slice_mm: float | None) -> Grid:
    if in_plane < 32 or (n_slices is not None and n_slices < 2):
        raise ValueError(f"grid too small: in_plane={in_plane}, n_slices={n_slices}")
    pixel = float(pixel_mm) if pixel_mm else FIELD_OF_VIEW_MM / in_plane
    if n_slices is None:
        slice_thickness = float(slice_mm or DEFAULT_SLICE_MM)
        n_slices = max(2, int(round(extent / slice_thickness)))
    else:
        slice_thickness = float(slice_mm) if slice_mm else extent / n_slices
    if pixel * in_plane < 300.0:
        raise ValueError(f"field of view {pixel * in_plane:.0f} mm is too small for the anatomy (need >= 300 mm)")
    centred = (np.arange(in_plane) - (in_plane - 1) / 2.0) * pixel
    u = extent / 2.0 + (np.arange(n_slices) - (n_slices - 1) / 2.0) * slice_thickness
    return Grid(centred, centred.copy(), u, (pixel, pixel, slice_thickness))


def _lung_texture(anatomy: Anatomy, grid: Grid, patchy: np.ndarray) -> np.ndarray:
    """Extra HU of lung parenchyma: dependent (posterior) density gradient plus patchy texture."""
    lung = anatomy.tissue == Tissue.LUNG
    rows = np.flatnonzero(lung.any(axis=(0, 2)))
    extra = 16.0 * patchy
    if rows.size:
        depth = np.clip((grid.Y - grid.y[rows[0]]) / max(grid.y[rows[-1]] - grid.y[rows[0]], 1.0), 0, 1)
        extra += 60.0 * depth ** 2
    extra *= lung
    return extra


def _synthesise_ct(anatomy: Anatomy, grid: Grid, rng: np.random.Generator, tumours,
                   patchy: np.ndarray) -> tuple[np.ndarray, float]:
    """CT in HU (int16, ``(z, y, x)``): tissue values + texture, slight blur, correlated noise."""
    table = anatomy.table
    hu = table.hu[anatomy.tissue]
    texture = smooth_field(rng, grid, 3.0)
    hu += table.hu_texture[anatomy.tissue] * texture
    hu += _lung_texture(anatomy, grid, patchy)
    for tumour in tumours:
        hu.flat[tumour.index] = tumour.hu
    # One in-plane Gaussian both blurs the anatomy and correlates the noise added before it; the
    # white noise is scaled up by the filter's noise reduction so the output noise sd is noise_hu.
    sigma = CT_BLUR_SIGMA_MM / grid.spacing[0]
    noise_hu = float(rng.uniform(11.0, 18.0))
    white = rng.standard_normal(grid.shape, dtype=np.float32)
    white *= np.float32(noise_hu / _gaussian_noise_gain(sigma))
    hu += white
    del white
    if sigma > 0.2:
        hu = ndi.gaussian_filter(hu, (0, sigma, sigma), mode="nearest", truncate=3.0)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16), noise_hu


def _gaussian_noise_gain(sigma_px: float, truncate: float = 3.0) -> float:
    """Factor by which a 2-D separable Gaussian (as scipy builds it) scales white-noise sd."""
    if sigma_px <= 0.2:
        return 1.0
    radius = int(truncate * sigma_px + 0.5)
    weights = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_px) ** 2)
    weights /= weights.sum()
    return float((weights ** 2).sum())          # sqrt of (sum w^2)^2 for two axes


def _correlated_noise(rng: np.random.Generator, shape, sigma_px: float) -> np.ndarray:
    """Unit-sd Gaussian noise smoothed in-plane by ``sigma_px`` pixels (float32)."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    if sigma_px > 0.2:
        noise = ndi.gaussian_filter(noise, (0, sigma_px, sigma_px), mode="wrap", truncate=3.0)
        noise /= max(float(noise[::3, ::3, ::3].std()), 1e-6)
    return noise


def _true_activity(anatomy: Anatomy, tumours, patchy: np.ndarray) -> np.ndarray:
    """Noise-free, unblurred SUV on the CT grid (float32, ``(z, y, x)``)."""
    activity = anatomy.table.suv[anatomy.tissue]
    activity *= 1.0 + 0.06 * patchy                          # mild physiological heterogeneity
    for tumour in tumours:
        activity.flat[tumour.index] = tumour.suv
    return activity


def pet_grid(ct_grid_spacing: tuple[float, float, float], ct_shape: tuple[int, int, int],
             ct_origin: tuple[float, float, float]) -> tuple[tuple[int, int, int], tuple, tuple]:
    """PET grid ``(size_xyz, spacing_xyz, origin_xyz)`` for a CT grid: coarser pixels, shifted origin."""
    px = ct_grid_spacing[0]
    pet_px = max(PET_PIXEL_MM, 1.5 * px)
    nz, ny, nx = ct_shape
    n = int(math.ceil((nx - 1) * px / pet_px)) + 2
    centre_x = ct_origin[0] + (nx - 1) * px / 2.0
    centre_y = ct_origin[1] + (ny - 1) * px / 2.0
    origin = (centre_x - (n - 1) * pet_px / 2.0 + PET_ORIGIN_SHIFT_MM[0],
              centre_y - (n - 1) * pet_px / 2.0 + PET_ORIGIN_SHIFT_MM[1],
              ct_origin[2] + PET_ORIGIN_SHIFT_MM[2])
    return (n, n, nz), (pet_px, pet_px, ct_grid_spacing[2]), origin


def _synthesise_pet(activity: np.ndarray, grid: Grid, ct_origin, rng: np.random.Generator,
                    noise: bool = True) -> Volume:
    """Blur the true SUV to the scanner resolution, sample it on the PET grid, add counting noise.

    The CT-grid activity is first averaged over ``k x k`` pixel blocks (``k`` = whole CT pixels per
    PET pixel), which is itself a box blur; the Gaussian then adds only what is missing to reach
    ``PET_FWHM_MM``. SimpleITK resamples linearly onto the PET grid.
    """
    px, _, sz = grid.spacing
    size, spacing, origin = pet_grid(grid.spacing, grid.shape, ct_origin)
    k = max(1, int(spacing[0] // px))
    nz, ny, nx = activity.shape
    padded = np.pad(activity, ((0, 0), (0, (-ny) % k), (0, (-nx) % k)))
    blocks = padded.reshape(nz, padded.shape[1] // k, k, padded.shape[2] // k, k).mean(axis=(2, 4))
    sigma = PET_FWHM_MM / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    rest = math.sqrt(max(sigma ** 2 - (k * px) ** 2 / 12.0, 0.25))
    blurred = ndi.gaussian_filter(blocks, (sigma / sz, rest / (k * px), rest / (k * px)), mode="nearest")
    image = sitk.GetImageFromArray(blurred.astype(np.float32))
    image.SetSpacing((k * px, k * px, sz))
    image.SetOrigin((ct_origin[0] + (k - 1) * px / 2.0, ct_origin[1] + (k - 1) * px / 2.0, ct_origin[2]))
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetSpacing(spacing)
    reference.SetOrigin(origin)
    signal = sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0))
    if not noise:
        return Volume(np.clip(signal, 0, None).astype(np.float32), spacing, origin, source="phantom:pet")
    gain = float(rng.uniform(0.02, 0.04))            # SUV variance per SUV (count level of the scan)
    noise = _correlated_noise(rng, signal.shape, 0.6)
    pet = np.clip(signal + np.sqrt(gain * np.clip(signal, 0, None)) * noise, 0, None).astype(np.float32)
    return Volume(pet, spacing, origin, source="phantom:pet")


def write_phantom(phantom: Phantom, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``ct.nii.gz``, ``pet.nii.gz``, ``label.nii.gz`` and ``phantom.json`` (tumour specs) atomically.

    Creates ``out_dir`` when missing. Refuses (before writing anything) when a file exists unless
    ``overwrite``.

    Raises:
        OutputExistsError: a target file exists and ``overwrite`` is False.
        InputError: the folder cannot be created or written.
    """
    out = Path(out_dir)
    targets = [out / name for name in (*PHANTOM_FILES, "phantom.json")]
    if not overwrite:
        for target in targets:
            if target.exists():
                raise OutputExistsError(target)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out, f"cannot create output folder ({exc.strerror})") from None
    for volume, target in zip((phantom.ct, phantom.pet, phantom.label), targets):
        write_volume(volume, target, overwrite=True)
    write_json(describe(phantom), targets[-1], overwrite=True)
    return out


def describe(phantom: Phantom) -> dict:
    """JSON-ready description: site, seed, generator version, CT noise and tumour specs."""
    return {"generator_version": GENERATOR_VERSION, "site": phantom.site, "seed": phantom.seed,
            "ct_shape_zyx": list(phantom.ct.shape), "ct_spacing_xyz": list(phantom.ct.spacing),
            "ct_noise_hu": round(phantom.ct_noise_hu, 3), "tumours": [asdict(t) for t in phantom.tumours]}


def _demo_folder() -> Path:
    """``resources/demo_case`` of the source tree when writable, else the user cache folder."""
    resources = Path(__file__).resolve().parents[2] / "resources"
    probe = resources if resources.exists() else resources.parent
    if (resources.parent / "autopaint_app").is_dir() and os.access(probe, os.W_OK):
        return resources / "demo_case"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "autopaint" / "demo_case"


def ensure_demo_case(folder: str | os.PathLike | None = None) -> Path:
    """The demo lung PET-CT case (one parenchymal, one juxta-mediastinal tumour), made on first use.

    Args:
        folder: where to keep it; default ``resources/demo_case`` (or the user cache when that is
            read-only: ``$XDG_CACHE_HOME/autopaint/demo_case`` or ``~/.cache/autopaint/demo_case``).

    Returns:
        The folder holding ``ct.nii.gz``, ``pet.nii.gz``, ``label.nii.gz`` and ``phantom.json``.
    """
    out = Path(folder) if folder is not None else _demo_folder()
    marker = out / "phantom.json"
    if all((out / name).is_file() for name in PHANTOM_FILES) and marker.is_file():
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = {}
        if recorded.get("generator_version") == GENERATOR_VERSION and recorded.get("seed") == DEMO["seed"]:
            return out
    phantom = make_phantom(**DEMO)
    return write_phantom(phantom, out, overwrite=True)
