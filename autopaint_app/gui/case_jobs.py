"""Opening a case for the viewer: which dropped file is which, and the load job the worker runs.

No Qt here: :func:`open_case_steps` is a plain generator (core calls between progress reports), so
the GUI runs it in a worker thread and a script or test can simply iterate it. Its CLI twin is
``autopaint-cli demo`` / ``ooi`` (load, PET onto the CT grid, organ of interest).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator

import numpy as np

from autopaint_app.core.case import Case, CaseFiles, case_from_paths, find_cases, load_case
from autopaint_app.core.describe import guess_modality
from autopaint_app.core.errors import InputError
from autopaint_app.core.io import Volume, read_volume
from autopaint_app.core.lesions import LesionStats, lesion_table
from autopaint_app.core.ooi import BODY_REGION, SITE_REGION, compute_ooi
from autopaint_app.core.preprocess import resample_pet_to_ct
from autopaint_app.core.review import label_lesions

ROLES = ("ct", "pet", "label", "ooi")

# File-name words that say which role a file plays (checked in this order: "ct_mask" is a label).
_ROLE_WORDS = (
    ("ooi", re.compile(r"(^|[^a-z])(ooi|organ)([^a-z]|$)")),
    ("label", re.compile(r"(^|[^a-z])(label|labels|seg|mask|gtv|gt|truth)([^a-z]|$)")),
    ("pet", re.compile(r"(^|[^a-z])(pet|pt|suv|fdg)([^a-z]|$)|_0001\b")),
    ("ct", re.compile(r"(^|[^a-z])(ct|ctres)([^a-z]|$)|_0000\b")),
)


@dataclass(frozen=True)
class Progress:
    """One progress report of a job: ``done`` of ``total`` steps, with a line for the status bar."""

    done: int
    total: int
    message: str


@dataclass(frozen=True, eq=False)
class LoadedCase:
    """What the viewer needs of a case.

    Attributes:
        case: the validated case (CT, PET on its own grid, label, OOI as loaded).
        suv: PET on the reference grid (CT's; PET's own without CT), float32 ``(z, y, x)``; None
            without PET. SUV when ``case.pet_units == "SUV"``, otherwise the stored units.
        ooi: boolean organ-of-interest mask ``(z, y, x)`` on the reference grid, or None.
        site: ``"lung"`` or ``"hn"`` (the organ-of-interest rule used).
        notes: remarks for the status bar (e.g. "no lung found").
        ooi_region: ``"site"`` (the site's organ, or the case's OOI file) or ``"body"`` (whole body).
    """

    case: Case
    suv: Volume | None
    ooi: np.ndarray | None
    site: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    ooi_region: str = SITE_REGION

    @property
    def reference(self) -> Volume:
        """The grid everything is shown and exported on (CT, else PET)."""
        return self.case.reference

    @property
    def has_suv(self) -> bool:
        """True when the PET is in SUV (baselines and lesion SUVs need it)."""
        return self.suv is not None and self.case.pet_units == "SUV"


@dataclass(frozen=True, eq=False)
class MaskLesions:
    """The lesions of a result mask: label image ``(z, y, x)`` int32 (0 background, 1..n) and
    their statistics in label order (see :func:`mask_lesions`)."""

    labels: np.ndarray
    table: list[LesionStats]


def mask_lesions(mask: np.ndarray, loaded: LoadedCase) -> MaskLesions:
    """Number the 26-connected lesions of ``mask`` and measure them (SUVs when the PET is in SUV).

    Costly on a whole CT (a second or more for 512 x 512 x 300 voxels), so jobs call it in the
    worker and hand the result to :meth:`AppState.set_mask`.

    Args:
        mask: boolean ``(z, y, x)`` on the case's reference grid.
        loaded: the open case.
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    suv = loaded.suv.array if loaded.has_suv else None
    return MaskLesions(label_lesions(mask), lesion_table(mask, suv, loaded.reference.spacing))


def role_from_name(path: Path) -> str | None:
    """``"ct"``, ``"pet"``, ``"label"``, ``"ooi"`` from the file name's words, or None."""
    name = path.name.lower()
    for role, pattern in _ROLE_WORDS:
        if pattern.search(name):
            return role
    return None


def assign_roles(paths: list[str | os.PathLike]) -> CaseFiles:
    """Which of several dropped/chosen files is the CT, the PET, the label and the OOI.

    The file name decides first (``ct``, ``pet``/``suv``/``pt``, ``label``/``seg``/``mask``, ``ooi``);
    a file whose name says nothing is read and its values decide (:func:`guess_modality`).

    Raises:
        InputError: a role claimed twice, a file that is neither, or no CT/PET at all.
    """
    chosen: dict[str, Path] = {}
    for path in (Path(p) for p in paths):
        role = role_from_name(path) or _role_from_values(path)
        if role in chosen:
            raise InputError(path, f"both this file and {chosen[role].name} look like the {role.upper()}; "
                                   "open them with the file dialog one by one or rename them")
        chosen[role] = path
    return case_from_paths(**{role: chosen.get(role) for role in ROLES})


def _role_from_values(path: Path) -> str:
    modality = guess_modality(read_volume(path))
    role = {"CT": "ct", "PET": "pet", "label": "label"}.get(modality)
    if role is None:
        raise InputError(path, "cannot tell whether this is a CT, a PET or a mask; put ct, pet or label in its name")
    return role


def case_files_for(source: str | os.PathLike | list) -> CaseFiles:
    """Case files from a folder (a recognised layout), one file, or a list of files."""
    if isinstance(source, CaseFiles):
        return source
    if isinstance(source, (list, tuple)):
        if len(source) == 1 and Path(source[0]).is_dir():
            return case_files_for(source[0])
        return assign_roles(list(source))
    path = Path(source)
    if path.is_dir():
        cases = find_cases(path)
        if len(cases) == 1:
            return cases[0]
        if not cases:  # a bare DICOM series folder: treat it as one image
            return assign_roles([path])
        names = ", ".join(c.case_id for c in cases[:5]) + (", ..." if len(cases) > 5 else "")
        raise InputError(path, f"holds {len(cases)} cases ({names}); open one case folder")
    return assign_roles([path])


def guess_site(files: CaseFiles) -> str:
    """Head and neck for HECKTOR data, lung otherwise (the user can switch in the menu)."""
    return "hn" if files.layout == "hecktor" else "lung"


def open_case_steps(source, site: str | None = None) -> Generator[Progress, None, LoadedCase]:
    """Load a case, put the PET on the CT grid and find the organ of interest, reporting progress.

    Args:
        source: a case folder, a file, a list of files, or a :class:`CaseFiles`.
        site: ``"lung"`` / ``"hn"``; default from :func:`guess_site`.

    Yields:
        :class:`Progress` after each step (4 steps).

    Returns:
        The :class:`LoadedCase` (as the generator's return value).

    Raises:
        InputError: anything wrong with the files (naming the file).
    """
    yield Progress(0, 4, "finding the case files")
    files = case_files_for(source)
    site = site or guess_site(files)
    yield Progress(1, 4, f"reading {files.case_id}")
    case = load_case(files)
    yield Progress(2, 4, "putting the PET on the CT grid")
    suv = None
    if case.pet is not None:
        suv = resample_pet_to_ct(case.pet, case.ct) if case.ct is not None else case.pet
    yield Progress(3, 4, "finding the organ of interest")
    ooi, notes = ooi_for(case, suv, site)
    yield Progress(4, 4, f"{files.case_id} loaded")
    return LoadedCase(case, suv, ooi, site, notes)


def ooi_for(case: Case, suv: Volume | None, site: str) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """The case's own OOI mask when it has one, else :func:`compute_ooi` for ``site``.

    Returns:
        ``(mask or None, notes)``: None with a note when no organ of interest was found.
    """
    if case.ooi is not None:
        return case.ooi.array > 0, ("organ of interest from the case's OOI file",)
    import warnings

    with warnings.catch_warnings():  # an empty automatic mask is reported as a note instead
        warnings.simplefilter("ignore")
        mask = compute_ooi(site, ct=case.ct, pet=suv)
    if not mask.any():
        return None, (f"no {site} organ of interest found; baselines use the whole volume",)
    return mask, ()


def recompute_ooi_steps(loaded: LoadedCase, site: str, region: str = SITE_REGION
                        ) -> Generator[Progress, None, LoadedCase]:
    """The same case with the automatic OOI of another site or region (ignores the case's OOI file).

    ``region="body"``: the whole body, kept the site's circle radius inside the field of view.
    """
    what = "whole-body" if region == BODY_REGION else site
    yield Progress(0, 1, f"finding the {what} organ of interest")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = compute_ooi(site, ct=loaded.case.ct, pet=loaded.suv, region=region)
    notes = () if mask.any() else (f"no {what} organ of interest found",)
    yield Progress(1, 1, f"{what} organ of interest ready")
    return LoadedCase(loaded.case, loaded.suv, mask if mask.any() else None, site, notes, region)
