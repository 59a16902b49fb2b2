"""One PET/CT case: which files make it up (dataset layouts) and loading them, validated.

:func:`find_cases` recognises these layouts in a folder, or one level down (a cohort folder of
case folders, or a dataset root holding ``imagesTr/``):

- ``autopet``: ``CTres.nii.gz`` (else ``CT.nii.gz``), ``SUV.nii.gz`` (else ``PET.nii.gz``, Bq/ml),
  ``SEG.nii.gz``.
- ``ibsi_sts``: ``CT_image.nii.gz``, ``PET_image.nii.gz`` (SUV), ``CT_mask.nii.gz`` (CT grid).
- ``autopaint`` (ours): ``ct.nii.gz``, ``pet.nii.gz`` (SUV) or a DICOM folder ``pet_dicom/``,
  ``label.nii.gz``, ``ooi.nii.gz``.
- ``hecktor`` (2022): ``<Center>-<ID>__CT.nii.gz``, ``<Center>-<ID>__PT.nii.gz`` (SUV); label
  ``<Center>-<ID>.nii.gz`` or ``<Center>_<ID>.nii.gz`` beside them, in ``labelsTr/`` or in the
  sibling ``labelsTr/``; 1 = GTVp, 2 = GTVn.
- ``nnunet``: ``<id>_0000.nii.gz`` CT, ``<id>_0001.nii.gz`` PET (SUV); label ``<id>.nii.gz``
  beside them, in ``labelsTr/`` or in the sibling ``labelsTr/`` (``labelsTs/`` for ``imagesTs/``).
- ``pyradiomics``: ``<id>_image.nrrd`` (CT) and ``<id>_label.nrrd``, several cases per folder.

:func:`load_case` reads the files (PET always as float, SUV where known), checks that CT and PET
overlap physically and that label and OOI masks sit on the reference grid (the CT's, else the
PET's), and binarises the masks (``> 0`` -> 1, uint8; HECKTOR's GTVp + GTVn become one target as
in the paper).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autopaint_app.core.errors import InputError
from autopaint_app.core.io import VOLUME_SUFFIXES, Volume, check_same_grid, grid_differences, read_volume  # noqa: F401 (re-exported)

# Rules for turning a stored label into the binary target.
MERGE_NONZERO = "nonzero"  # every value > 0 is tumour
MERGE_HECKTOR = "hecktor_gtvp_gtvn"  # 1 = GTVp, 2 = GTVn, both tumour; other values are an error

LAYOUTS = ("autopet", "ibsi_sts", "autopaint", "hecktor", "nnunet", "pyradiomics")


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case, as found on disk (nothing read yet).

    Attributes:
        case_id: name of the case (folder name, or the id in the file names).
        layout: one of :data:`LAYOUTS`, or ``"files"`` for :func:`case_from_paths`.
        ct, pet, label, ooi: paths (files, or DICOM folders for ct/pet), ``None`` when absent.
        pet_units: what the PET file holds: ``"SUV"``, ``"BQML"`` (Bq/ml), ``"DICOM"`` (a DICOM
            folder; units come from its tags) or ``None`` when there is no PET.
        label_merge: :data:`MERGE_NONZERO` or :data:`MERGE_HECKTOR`.
    """

    case_id: str
    layout: str
    ct: Path | None = None
    pet: Path | None = None
    label: Path | None = None
    ooi: Path | None = None
    pet_units: str | None = None
    label_merge: str = MERGE_NONZERO


@dataclass(frozen=True, eq=False)
class Case:
    """A loaded, validated case.

    Attributes:
        case_id: as in :class:`CaseFiles`.
        ct: CT in HU, array ``(z, y, x)``, or ``None``.
        pet: PET as float32 ``(z, y, x)`` on its own grid (not resampled); in SUV when
            ``pet_units == "SUV"``.
        label: uint8 0/1 tumour mask on the reference grid (CT's, else PET's), or ``None``.
        ooi: uint8 0/1 organ-of-interest mask on the reference grid, or ``None``.
        files: where it came from.
        pet_units: ``"SUV"``, ``"BQML"``, ``"DICOM"`` (raw DICOM values, not converted) or ``None``.
    """

    case_id: str
    ct: Volume | None
    pet: Volume | None
    label: Volume | None
    ooi: Volume | None
    files: CaseFiles
    pet_units: str | None

    @property
    def reference(self) -> Volume:
        """The grid masks live on: the CT, or the PET when there is no CT."""
        return self.ct if self.ct is not None else self.pet  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Layout recognition


def find_cases(folder: str | os.PathLike) -> list[CaseFiles]:
    """All cases in ``folder``, or in its immediate subfolders when the folder itself holds none.

    Args:
        folder: a case folder, a folder of several flat-layout cases, or a cohort folder.

    Returns:
        Cases sorted by subfolder then case id; empty when no layout is recognised.

    Raises:
        InputError: the folder does not exist or is a file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(folder, "folder not found")
    if not folder.is_dir():
        raise InputError(folder, "is a file, not a case folder")
    cases = _cases_in(folder)
    if not cases:
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            cases.extend(_cases_in(child))
    return cases


def find_cases_in(folders) -> list[CaseFiles]:
    """The cases of every folder in ``folders`` (``find_cases`` each), in order.

    Raises:
        InputError: a folder holds no known case layout (named, so a cohort run stops before work).
    """
    found = []
    for folder in folders:
        cases = find_cases(folder)
        if not cases:
            raise InputError(folder, "no known case layout found in this folder")
        found.extend(cases)
    return found


def _cases_in(folder: Path) -> list[CaseFiles]:
    """Cases of the first layout that matches the files directly in ``folder``."""
    try:
        names = {p.name: p for p in folder.iterdir()}
    except OSError:
        return []  # unreadable subfolder of a cohort: not a case
    for recognise in (_autopet, _ibsi_sts, _autopaint, _hecktor, _nnunet, _pyradiomics):
        cases = recognise(folder, names)
        if cases:
            return cases
    return []


def _first(names: dict[str, Path], *candidates: str) -> Path | None:
    """The first candidate name present in the listing (exact case, even on case-insensitive disks)."""
    return next((names[name] for name in candidates if name in names), None)


def _autopet(folder: Path, names: dict[str, Path]) -> list[CaseFiles]:
    ct = _first(names, "CTres.nii.gz", "CT.nii.gz")
    pet = _first(names, "SUV.nii.gz", "PET.nii.gz")
    if ct is None and pet is None:
        return []
    units = None if pet is None else ("SUV" if pet.name == "SUV.nii.gz" else "BQML")
    return [CaseFiles(folder.name, "autopet", ct, pet, _first(names, "SEG.nii.gz"), pet_units=units)]


def _ibsi_sts(folder: Path, names: dict[str, Path]) -> list[CaseFiles]:
    ct, pet = _first(names, "CT_image.nii.gz"), _first(names, "PET_image.nii.gz")
    if ct is None and pet is None:
        return []
    # CT_mask is the GTV on the CT grid; PET_mask (same contour on the PET grid) is not needed.
    label = _first(names, "CT_mask.nii.gz") if ct is not None else _first(names, "PET_mask.nii.gz")
    return [CaseFiles(folder.name, "ibsi_sts", ct, pet, label, pet_units=None if pet is None else "SUV")]


def _autopaint(folder: Path, names: dict[str, Path]) -> list[CaseFiles]:
    ct = _first(names, "ct.nii.gz", "ct.nii", "ct.nrrd", "ct.mha", "ct_dicom")
    pet = _first(names, "pet.nii.gz", "pet.nii", "pet.nrrd", "pet.mha")
    units = "SUV"
    if pet is None and "pet_dicom" in names and names["pet_dicom"].is_dir():
        pet, units = names["pet_dicom"], "DICOM"
    if ct is None and pet is None:
        return []
    label, ooi = _first(names, "label.nii.gz", "label.nii"), _first(names, "ooi.nii.gz", "ooi.nii")
    return [CaseFiles(folder.name, "autopaint", ct, pet, label, ooi, None if pet is None else units)]


_HECKTOR_IMAGE = re.compile(r"^(?P<id>.+?)__(?P<modality>CT|PT)\.nii\.gz$")
_NNUNET_IMAGE = re.compile(r"^(?P<id>.+)_(?P<channel>\d{4})$")


def _hecktor(folder: Path, names: dict[str, Path]) -> list[CaseFiles]:
    found: dict[str, dict[str, Path]] = {}
    for name, path in names.items():
        match = _HECKTOR_IMAGE.match(name)
        if match:
            found.setdefault(match["id"], {})[match["modality"]] = path
    cases = []
    for case_id, images in sorted(found.items()):
        label_names = [f"{case_id}.nii.gz", f"{case_id.replace('-', '_', 1)}.nii.gz"]
        label = _find_label(folder, names, label_names)
        cases.append(CaseFiles(case_id, "hecktor", images.get("CT"), images.get("PT"), label,
                               pet_units="SUV" if "PT" in images else None, label_merge=MERGE_HECKTOR))
    return cases


def _nnunet(folder: Path, names: dict[str, Path]) -> list[CaseFiles]:
    found: dict[str, dict[str, Path]] = {}
    for name, path in names.items():
        stem, suffix = _split_volume_suffix(name)
        match = _NNUNET_IMAGE.match(stem) if suffix else None
        if match and match["channel"] in ("0000", "0001"):
            found.setdefault(match["id"], {})[match["channel"]] = path
    cases = []
    for case_id, channels in sorted(found.items()):
        suffix = _split_volume_suffix(next(iter(channels.values())).name)[1]
        label = _find_label(folder, names, [f"{case_id}{suffix}"])
        cases.append(CaseFiles(case_id, "nnunet", channels.get("0000"), channels.get("0001"), label,
                               pet_units="SUV" if "0001" in channels else None))
    return cases


def _pyradiomics(folder: Path, names: dict[str, Path]) -> list[CaseFiles]:
    cases = []
    for name, path in sorted(names.items()):
        stem, suffix = _split_volume_suffix(name)
        if suffix and stem.endswith("_image"):
            case_id = stem[: -len("_image")]
            cases.append(CaseFiles(case_id, "pyradiomics", ct=path, label=names.get(f"{case_id}_label{suffix}")))
    return cases


def _find_label(folder: Path, names: dict[str, Path], label_names: list[str]) -> Path | None:
    """A label file in the folder itself, its ``labelsTr/``, or the sibling ``labels*`` folder.

    The sibling rule maps a dataset's ``imagesTr`` to ``labelsTr`` and ``imagesTs`` to ``labelsTs``.
    """
    places = [folder, folder / "labelsTr"]
    if folder.name.startswith("images"):
        places.append(folder.parent / ("labels" + folder.name[len("images"):]))
    for place in places:
        for name in label_names:
            candidate = names.get(name) if place == folder else place / name
            if candidate is not None and candidate.is_file():
                return candidate
    return None


def _split_volume_suffix(name: str) -> tuple[str, str]:
    """``("lung1_image", ".nrrd")`` for ``"lung1_image.nrrd"``; ``(name, "")`` if not a volume."""
    lower = name.lower()
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    return name, ""


# ---------------------------------------------------------------------------------------------
# Loading


def case_from_paths(ct: str | os.PathLike | None = None, pet: str | os.PathLike | None = None,
                    label: str | os.PathLike | None = None, ooi: str | os.PathLike | None = None,
                    pet_units: str | None = None, case_id: str | None = None) -> CaseFiles:
    """A case made of explicitly chosen files (e.g. only a CT, or only a PET).

    Args:
        ct, pet: image files, or DICOM series folders.
        label, ooi: mask files on the CT grid (on the PET grid when there is no CT).
        pet_units: what the PET holds; default ``"DICOM"`` for a folder, ``"SUV"`` for a file.
        case_id: defaults to the first image's name without its suffix.

    Raises:
        InputError: neither a CT nor a PET was given.
    """
    paths = {key: None if value is None else Path(value) for key, value in
             {"ct": ct, "pet": pet, "label": label, "ooi": ooi}.items()}
    image = paths["ct"] or paths["pet"]
    if image is None:
        raise InputError(paths["label"] or paths["ooi"], "a case needs a CT or a PET image")
    if paths["pet"] is not None and pet_units is None:
        pet_units = "DICOM" if paths["pet"].is_dir() else "SUV"
    case_id = case_id or _split_volume_suffix(image.name)[0]
    return CaseFiles(case_id, "files", paths["ct"], paths["pet"], paths["label"], paths["ooi"], pet_units)


def load_case(files_or_folder: CaseFiles | str | os.PathLike, pet_suv: bool | None = None,
              weight_kg: float | None = None, dose_mbq: float | None = None) -> Case:
    """Read and validate a case.

    Args:
        files_or_folder: a :class:`CaseFiles`, or a folder holding exactly one case.
        pet_suv: ``None`` = SUV whenever possible (DICOM is converted; a Bq/ml file only when
            ``weight_kg`` and ``dose_mbq`` are given, else it stays Bq/ml); ``True`` = SUV
            required (InputError if impossible); ``False`` = PET values as stored.
        weight_kg, dose_mbq: patient weight and injected dose, overriding DICOM tags (passed to
            :func:`autopaint_app.core.suv.read_pet_suv`) or converting a Bq/ml file (the dose
            must then be decay-corrected to the scan's reference time).

    Returns:
        The case; CT and PET each on their own grid, masks on the reference grid.

    Raises:
        InputError: unreadable file, no case / several cases in the folder, CT and PET that do
            not overlap physically, mask whose grid differs from the reference grid, label
            values outside a layout's rule.
    """
    files = files_or_folder if isinstance(files_or_folder, CaseFiles) else _single_case(Path(files_or_folder))
    if files.ct is None and files.pet is None:
        raise InputError(files.case_id, "a case needs a CT or a PET image")
    ct = read_volume(files.ct) if files.ct is not None else None
    pet, pet_units = (None, None) if files.pet is None else _read_pet(files, pet_suv, weight_kg, dose_mbq)
    if ct is not None and pet is not None:
        check_overlap(ct, pet)
    reference = ct if ct is not None else pet
    label = _read_mask(files.label, reference, files.label_merge, "CT" if ct is not None else "PET")
    ooi = _read_mask(files.ooi, reference, MERGE_NONZERO, "CT" if ct is not None else "PET")
    return Case(files.case_id, ct, pet, label, ooi, files, pet_units)


def _single_case(folder: Path) -> CaseFiles:
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, "is a file, not a case folder (load single files with case_from_paths)")
    cases = find_cases(folder)
    if not cases:
        raise InputError(folder, f"no PET/CT case found (recognised layouts: {', '.join(LAYOUTS)})")
    if len(cases) > 1:
        listed = ", ".join(case.case_id for case in cases[:5]) + (", ..." if len(cases) > 5 else "")
        raise InputError(folder, f"holds {len(cases)} cases ({listed}); choose one")
    return cases[0]


def _read_pet(files: CaseFiles, pet_suv: bool | None, weight_kg: float | None,
              dose_mbq: float | None) -> tuple[Volume, str | None]:
    """PET volume (float32) and its units after any SUV conversion."""
    path, units = files.pet, files.pet_units
    if units == "DICOM" and pet_suv is not False:
        from autopaint_app.core.suv import read_pet_suv  # imported late: SUV needs pydicom

        return read_pet_suv(path, weight_kg=weight_kg, dose_mbq=dose_mbq), "SUV"
    pet = read_volume(path, as_float=True)
    if units == "BQML" and pet_suv is not False:
        if weight_kg is not None and dose_mbq is not None:
            # SUVbw = (Bq/ml) * weight (g) / dose (Bq), taking 1 g of tissue as 1 ml.
            factor = weight_kg * 1000.0 / (dose_mbq * 1e6)
            return pet.with_array((pet.array * factor).astype(np.float32), str(path)), "SUV"
        if pet_suv:
            raise InputError(path, "PET is in Bq/ml; SUV needs the patient weight and injected dose (--weight, --dose)")
    if pet_suv and units not in ("SUV", "BQML"):
        raise InputError(path, f"PET units {units} cannot be converted to SUV")
    return pet, units


def _read_mask(path: Path | None, reference: Volume, merge: str, reference_name: str) -> Volume | None:
    """A 0/1 uint8 mask on exactly the reference grid (geometry copied from the reference)."""
    if path is None:
        return None
    mask = read_volume(path)
    check_same_grid(mask, reference, reference_name)
    if merge == MERGE_HECKTOR:
        unexpected = np.setdiff1d(np.unique(mask.array), [0, 1, 2])
        if unexpected.size:
            raise InputError(path, f"unexpected label values {unexpected[:5].tolist()} "
                                   "(HECKTOR labels are 0, 1 = GTVp, 2 = GTVn)")
    return reference.with_array((mask.array > 0).astype(np.uint8), str(path))


# ---------------------------------------------------------------------------------------------
# Geometry checks

# CT and PET must share at least this fraction of the smaller one's field of view.
MIN_OVERLAP_FRACTION = 0.1
_AXES = "xyz"


def physical_extent(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Box ``(low_xyz, high_xyz)`` in mm (LPS) covered by the voxels, edges included.

    Unlike :meth:`Volume.physical_bounds` (voxel centres) this reaches half a voxel further, so a
    single-slice volume still has a thickness.
    """
    sx, sy, sz = volume.size_xyz
    corners = np.array([[i, j, k] for i in (-0.5, sx - 0.5) for j in (-0.5, sy - 0.5) for k in (-0.5, sz - 0.5)])
    points = volume.index_to_physical(corners)
    return points.min(axis=0), points.max(axis=0)


def check_overlap(ct: Volume, pet: Volume) -> None:
    """Raise InputError (naming the PET) unless CT and PET share a meaningful physical region.

    Meaningful: the boxes intersect along every axis and the intersection holds at least
    :data:`MIN_OVERLAP_FRACTION` of the smaller box. A PET in another frame of reference (e.g.
    origin sign flipped, or another patient position) fails this.
    """
    (ct_low, ct_high), (pet_low, pet_high) = physical_extent(ct), physical_extent(pet)
    shared = np.minimum(ct_high, pet_high) - np.maximum(ct_low, pet_low)
    disjoint = [axis for axis in range(3) if shared[axis] <= 0]
    axis = disjoint[0] if disjoint and 2 not in disjoint else 2

    def ranges(axis: int) -> str:
        name = _AXES[axis]
        return (f"CT {name} {ct_low[axis]:.1f}..{ct_high[axis]:.1f} mm, "
                f"PET {name} {pet_low[axis]:.1f}..{pet_high[axis]:.1f} mm")

    if disjoint:
        raise InputError(pet.source, f"does not overlap the CT physically ({ranges(axis)})")
    smaller = min(np.prod(ct_high - ct_low), np.prod(pet_high - pet_low))
    fraction = float(np.prod(shared) / smaller)
    if fraction < MIN_OVERLAP_FRACTION:
        raise InputError(pet.source, f"does not overlap the CT physically: only {fraction:.1%} of the smaller "
                                     f"field of view is shared ({ranges(2)})")
