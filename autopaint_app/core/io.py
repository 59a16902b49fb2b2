"""Reading and writing volumes with their geometry kept exactly.

A :class:`Volume` holds a numpy array in numpy order ``(z, y, x)`` plus the geometry exactly as
SimpleITK reports it, in SimpleITK order: ``spacing (x, y, z)`` in mm, ``origin (x, y, z)`` in mm
(LPS), ``direction`` as the 9 row-major entries of the 3x3 direction cosine matrix. Swapping the two
axis orders is the classic bug; every function here names which one it uses.

Supported inputs: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``), MetaImage
(``.mha``, ``.mhd``) and DICOM series folders. Writes are atomic (temporary file in the same
folder, then ``os.replace``) and refuse to overwrite unless asked.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autopaint_app.core.errors import InputError, OutputExistsError
from autopaint_app.core.nifti_integrity import check_nifti_payload, is_nifti

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")

# Surface ITK's own warnings as our errors instead of letting them print to stderr.
sitk.ProcessObject.SetGlobalWarningDisplay(False)


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D image with its physical geometry.

    Attributes:
        array: voxel values, shape ``(z, y, x)`` (numpy order).
        spacing: voxel size in mm, ``(x, y, z)`` (SimpleITK order).
        origin: physical position of voxel ``(0, 0, 0)`` in mm, ``(x, y, z)``, LPS.
        direction: 3x3 direction cosines, row-major, 9 floats (SimpleITK order).
        source: the file or folder it was read from ("" when computed).
        meta: free-form header facts (e.g. DICOM tags used for SUV); never geometry.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.array.ndim != 3:
            raise ValueError(f"Volume array must be 3-D (z, y, x), got shape {self.array.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def size_xyz(self) -> tuple[int, int, int]:
        """Grid size in SimpleITK order ``(x, y, z)``."""
        z, y, x = self.array.shape
        return (x, y, z)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0

    def with_array(self, array: np.ndarray, source: str = "") -> "Volume":
        """A new volume on the same grid holding ``array`` (shape must match)."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from grid shape {self.array.shape}")
        return Volume(array, self.spacing, self.origin, self.direction, source)

    def to_sitk(self) -> sitk.Image:
        """SimpleITK image with this geometry copied exactly."""
        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image, source: str = "") -> "Volume":
        """Volume from a 3-D scalar SimpleITK image, geometry copied exactly."""
        return cls(
            sitk.GetArrayFromImage(image),
            tuple(image.GetSpacing()),
            tuple(image.GetOrigin()),
            tuple(image.GetDirection()),
            source,
        )

    def same_grid(self, other: "Volume", tolerance_mm: float = 1e-3) -> bool:
        """True when both volumes share size, spacing, origin and direction (within tolerance)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=1e-6, rtol=1e-6)
            and np.allclose(self.origin, other.origin, atol=tolerance_mm)
            and np.allclose(self.direction, other.direction, atol=1e-6)
        )

    def index_to_physical(self, index_xyz: np.ndarray) -> np.ndarray:
        """Physical points (mm, LPS) of continuous indices ``(..., 3)`` given in ``(x, y, z)`` order."""
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        scaled = np.asarray(index_xyz, dtype=float) * np.asarray(self.spacing, dtype=float)
        return np.asarray(self.origin, dtype=float) + scaled @ direction.T

    def physical_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounding box ``(low_xyz, high_xyz)`` in mm of the voxel-centre grid."""
        sx, sy, sz = self.size_xyz
        corners = np.array([[i, j, k] for i in (0, sx - 1) for j in (0, sy - 1) for k in (0, sz - 1)])
        points = self.index_to_physical(corners)
        return points.min(axis=0), points.max(axis=0)


def is_volume_file(path: Path) -> bool:
    """True for a file name with a supported volume suffix."""
    name = path.name.lower()
    return path.is_file() and name.endswith(VOLUME_SUFFIXES)


def read_volume(path: str | os.PathLike, as_float: bool = False, series_uid: str | None = None) -> Volume:
    """Read a 3-D volume from a file or a DICOM series folder.

    Args:
        path: NIfTI / NRRD / MHA / MHD file, or a folder holding one DICOM series.
        as_float: return float32 voxels. Always use it for PET: Philips PET overflows int16.
            DICOM series are always read as float32, because the rescale slope may change from
            slice to slice and an integer output type would wrap around.
        series_uid: which series to read when a DICOM folder holds several.

    Returns:
        The volume, array shape ``(z, y, x)``, geometry exactly as SimpleITK reads it.

    Raises:
        InputError: missing, unreadable, corrupt or truncated file; not 3-D; vector pixels;
            NaN/Inf voxels; empty DICOM folder; several series without ``series_uid``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        image, files = _read_dicom_series(path, series_uid)
        volume = _checked_volume(image, path)
        volume.meta.update(_dicom_header_facts(files[0]))
        return volume
    return _checked_volume(_read_image_file(path, as_float), path)


def _read_image_file(path: Path, as_float: bool) -> sitk.Image:
    if not path.name.lower().endswith(VOLUME_SUFFIXES) and not path.name.lower().endswith(".dcm"):
        raise InputError(path, f"unsupported file type (expected one of {', '.join(VOLUME_SUFFIXES)} or a DICOM folder)")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    try:
        image = sitk.ReadImage(str(path), sitk.sitkFloat32) if as_float else sitk.ReadImage(str(path))
        if is_nifti(path):
            check_nifti_payload(path)  # ITK zero-fills truncated NIfTI and NaN/Inf voxels silently
        return image
    except RuntimeError as exc:
        raise InputError(path, f"cannot be read, corrupt or truncated file ({_first_itk_line(exc)})") from None


def _read_dicom_series(folder: Path, series_uid: str | None) -> tuple[sitk.Image, list[str]]:
    reader = sitk.ImageSeriesReader()
    series_ids = list(reader.GetGDCMSeriesIDs(str(folder)))
    if not series_ids:
        raise InputError(folder, "no DICOM series found in this folder (empty or not DICOM)")
    if series_uid is None:
        if len(series_ids) > 1:
            raise InputError(
                folder,
                f"mixed series: {len(series_ids)} DICOM series in one folder ({', '.join(series_ids)}); choose one",
            )
        series_uid = series_ids[0]
    elif series_uid not in series_ids:
        raise InputError(folder, f"DICOM series {series_uid} not found (present: {', '.join(series_ids)})")
    files = reader.GetGDCMSeriesFileNames(str(folder), series_uid)
    reader.SetFileNames(files)
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        return reader.Execute(), list(files)
    except RuntimeError as exc:
        raise InputError(folder, f"DICOM series cannot be read ({_first_itk_line(exc)})") from None


def _dicom_header_facts(file_name: str) -> dict:
    """Modality and series facts from one file of a series (for `info` and the GUI header)."""
    import pydicom  # only DICOM reads need it

    try:
        header = pydicom.dcmread(file_name, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - ITK read the series already; header facts are optional extras
        return {}
    keywords = ("Modality", "SeriesDescription", "SeriesInstanceUID", "Units", "Manufacturer")
    return {key.lower(): str(header.get(key)) for key in keywords if header.get(key) not in (None, "")}


def dicom_series_files(folder: str | os.PathLike, series_uid: str | None = None) -> list[str]:
    """Sorted file names of the (single or chosen) DICOM series in ``folder``."""
    reader = sitk.ImageSeriesReader()
    ids = list(reader.GetGDCMSeriesIDs(str(folder)))
    if not ids:
        raise InputError(folder, "no DICOM series found in this folder (empty or not DICOM)")
    return list(reader.GetGDCMSeriesFileNames(str(folder), series_uid or ids[0]))


def _first_itk_line(exc: Exception) -> str:
    """The informative part of an ITK exception message, on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "description:" in line.lower():
            return line.split(":", 1)[1].strip()
    return lines[-1] if lines else "unknown ITK error"


def _checked_volume(image: sitk.Image, path: Path) -> Volume:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"has {image.GetNumberOfComponentsPerPixel()} components per voxel; expected a scalar volume")
    if image.GetDimension() != 3:
        raise InputError(path, f"is {image.GetDimension()}-D (size {list(image.GetSize())}); expected a 3-D volume")
    if any(s <= 0 or not np.isfinite(s) for s in image.GetSpacing()):
        raise InputError(path, f"has invalid voxel spacing {image.GetSpacing()}")
    volume = Volume.from_sitk(image, str(path))
    if np.issubdtype(volume.array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(volume.array)))
        if bad:
            raise InputError(path, f"contains {bad} NaN or infinite voxel values")
    return volume


def write_volume(volume: Volume, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``volume`` atomically (temporary file in the same folder, then rename).

    Args:
        volume: what to write; its geometry is written exactly.
        path: destination (``.nii.gz`` recommended; any SimpleITK-writable suffix works).
        overwrite: replace an existing file; otherwise refuse.

    Raises:
        OutputExistsError: the file exists and ``overwrite`` is False.
        InputError: the folder is missing or not writable.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    if not path.parent.exists():
        raise InputError(path.parent, "output folder does not exist")
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    tmp_name = _temporary_beside(path, suffix)
    try:
        sitk.WriteImage(volume.to_sitk(), tmp_name, True)
        os.replace(tmp_name, path)
    except (RuntimeError, OSError) as exc:
        raise InputError(path, f"cannot be written ({exc})") from None
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return path


def _temporary_beside(path: Path, suffix: str) -> str:
    """An empty temporary file next to ``path`` with normal permissions (mkstemp makes it 0600)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    return tmp_name


def write_text(text: str, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) atomically, refusing to overwrite unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    if not path.parent.is_dir():
        raise InputError(path.parent, "output folder does not exist")
    tmp_name = _temporary_beside(path, path.suffix)
    try:
        Path(tmp_name).write_text(text, encoding="utf-8")
        os.replace(tmp_name, path)
    except OSError as exc:
        raise InputError(path, f"cannot be written ({exc.strerror})") from None
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (model fingerprints in cards and evaluation stores)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_json(data: dict, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``data`` as indented JSON atomically, refusing to overwrite unless asked."""
    return write_text(json.dumps(data, indent=2), path, overwrite)


def publish_staged(staged: dict[Path, Path]) -> None:
    """Rename each staged temporary file (value) onto its final name (key), all or nothing.

    Used for output sets (segment, evaluate): if anything fails or is interrupted (Ctrl-C) the files
    already renamed are removed again and every remaining temporary is deleted.
    """
    moved: list[Path] = []
    try:
        for final, temporary in staged.items():
            os.replace(temporary, final)
            moved.append(final)
    except BaseException:
        for final in moved:
            final.unlink(missing_ok=True)
        raise
    finally:
        for temporary in staged.values():
            if Path(temporary).exists():
                Path(temporary).unlink()


def write_like(array: np.ndarray, reference: Volume, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``array`` (shape ``(z, y, x)``) with the reference volume's geometry copied exactly."""
    if array.shape != reference.shape:
        raise ValueError(f"array shape {array.shape} does not match reference grid {reference.shape}")
    return write_volume(reference.with_array(array), path, overwrite)


def write_mask(mask: np.ndarray, reference: Volume, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write a binary or label mask as uint8 on the reference grid (geometry copied exactly)."""
    return write_like(np.asarray(mask).astype(np.uint8), reference, path, overwrite)


def grid_differences(volume: Volume, reference: Volume) -> list[str]:
    """Which of size, spacing, origin, direction differ, each as ``"what a vs b"`` (x, y, z order).

    Tolerances are those of :meth:`Volume.same_grid`: NIfTI stores geometry as float32, so a grid
    that went through NIfTI may differ from the original by ~1e-6 mm.
    """
    differences = []
    if volume.size_xyz != reference.size_xyz:
        differences.append(f"size {_fmt(volume.size_xyz)} vs {_fmt(reference.size_xyz)}")
    if not np.allclose(volume.spacing, reference.spacing, atol=1e-6, rtol=1e-6):
        differences.append(f"spacing {_fmt(volume.spacing)} vs {_fmt(reference.spacing)} mm")
    if not np.allclose(volume.origin, reference.origin, atol=1e-3):
        differences.append(f"origin {_fmt(volume.origin)} vs {_fmt(reference.origin)} mm")
    if not np.allclose(volume.direction, reference.direction, atol=1e-6):
        differences.append(f"direction {_fmt(volume.direction)} vs {_fmt(reference.direction)}")
    return differences


def check_same_grid(volume: Volume, reference: Volume, reference_name: str = "CT") -> None:
    """Raise InputError naming ``volume``'s file unless it lies on the reference grid."""
    differences = grid_differences(volume, reference)
    if differences:
        raise InputError(volume.source, f"geometry does not match the {reference_name} grid "
                                        f"({'; '.join(differences)}; this file vs {reference_name})")


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
