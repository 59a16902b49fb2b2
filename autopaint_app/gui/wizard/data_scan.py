"""The Data page's look at case folders: cases, modalities, slices, labels, split, problems.

Pure Python on ``core`` (no Qt, no torch), so it is tested directly and mirrors what the backend
(``autopaint_app.training.data``) will do: a case serves when it has a tumour label with at
least one tumour-free axial slice, or no label and its folder is flagged tumour-free; the split
is patient-wise (one case = one patient) with the backend's rule and seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from autopaint_app.core.case import Case, find_cases, load_case
from autopaint_app.core.errors import InputError
from autopaint_app.gui.wizard.data_preview import HolePreview, prepared_crop, preview_slice_index, with_training_holes

MODALITY_ORDER = ("petct", "ct", "pet")


@dataclass(frozen=True)
class CaseInfo:
    """One case found in a folder.

    Attributes:
        case_id: The case's id (also its patient id in the split).
        folder: The folder the user added.
        modalities: Channels present, subset of ``("ct", "pet")``.
        n_slices: Axial slices of the reference volume (CT, else PET).
        has_label: A tumour label file is present.
        healthy_slices: Axial slices without tumour (before the backend's z margin); None when
            unknown (no label).
        problem: Why the case cannot be used, else None.
    """

    case_id: str
    folder: str
    modalities: tuple[str, ...] = ()
    n_slices: int = 0
    has_label: bool = False
    healthy_slices: int | None = None
    problem: str | None = None


@dataclass
class DataSummary:
    """What a set of folders offers for training; ``errors`` block the wizard, ``notes`` inform;
    ``previews`` show a few usable cases' prepared slices with training holes."""

    cases: list[CaseInfo] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    modalities: tuple[str, ...] = ()
    split: tuple[list[str], list[str]] = ([], [])
    previews: list[HolePreview] = field(default_factory=list)

    @property
    def usable(self) -> list[CaseInfo]:
        return [case for case in self.cases if case.problem is None]


def case_info(files, folder: str, flagged_healthy: bool) -> CaseInfo:
    """Load one case (validated by ``core.case.load_case``) and count its tumour-free slices."""
    return _load_and_describe(files, folder, flagged_healthy)[0]


def _load_and_describe(files, folder: str, flagged_healthy: bool) -> tuple[CaseInfo, Case | None]:
    """:func:`case_info` and the loaded case (None when unreadable)."""
    try:
        case = load_case(files)
    except InputError as error:
        return CaseInfo(files.case_id, folder, problem=f"unreadable: {error}"), None
    modalities = tuple(name for name, volume in (("ct", case.ct), ("pet", case.pet)) if volume is not None)
    n_slices = int(case.reference.shape[0])
    problem, healthy = None, None
    if "pet" in modalities and case.pet_units != "SUV":
        problem = f"PET is in {case.pet_units}, not SUV (convert it with autopaint-cli convert --suv)"
    if case.label is not None:
        tumour_per_slice = case.label.array.reshape(n_slices, -1).any(axis=1)
        healthy = int((~tumour_per_slice).sum())
        if healthy == 0 and problem is None:
            problem = "no healthy slice: every axial slice holds tumour"
    elif flagged_healthy:
        healthy = n_slices
    elif problem is None:
        problem = "no tumour label and the folder is not marked tumour-free"
    return CaseInfo(files.case_id, folder, modalities, n_slices, case.label is not None, healthy, problem), case


def split_patients(patient_ids: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """The backend's patient-wise split (``training.data.split_patients``, same rule and seed)."""
    unique = sorted(set(patient_ids))
    order = np.random.default_rng([seed, 2024]).permutation(len(unique))
    n_val = min(len(unique) - 1, max(1, round(val_fraction * len(unique))))
    val = sorted(unique[i] for i in order[:n_val])
    return sorted(set(unique) - set(val)), val


def scan_folders(folders: list[str | os.PathLike], flagged_healthy: bool = False, seed: int = 0,
                 val_fraction: float = 0.2, previews: int = 0) -> DataSummary:
    """Every case of ``folders``, what blocks training (``errors``) and the split of usable cases.

    ``previews`` usable cases (the first ones) also get a prepared slice with training holes
    (:mod:`~autopaint_app.gui.wizard.data_preview`, lung windows) in ``summary.previews``.
    """
    summary = DataSummary()
    crops = []
    if not folders:
        summary.errors.append("Add at least one folder of cases.")
        return summary
    for folder in folders:
        try:
            found = find_cases(folder)
        except InputError as error:
            summary.errors.append(str(error))
            continue
        if not found:
            summary.errors.append(f"{folder}: no PET/CT case found in this folder")
        for files in found:
            info, case = _load_and_describe(files, str(folder), flagged_healthy)
            summary.cases.append(info)
            if info.problem is None and len(crops) < previews:
                z = preview_slice_index(case)
                try:
                    crops.append((info.case_id, z, *prepared_crop(case, z)))
                except (InputError, ValueError) as error:  # the preview is a courtesy, never a blocker
                    summary.notes.append(f"{info.case_id}: no preview ({error})")
    ids = [case.case_id for case in summary.cases]
    duplicates = sorted({case_id for case_id in ids if ids.count(case_id) > 1})
    if duplicates:
        summary.errors.append(f"case ids appear twice: {', '.join(duplicates)} (the backend needs unique ids)")
    _judge(summary, seed, val_fraction)
    summary.previews = with_training_holes(crops, seed)
    return summary


def _judge(summary: DataSummary, seed: int, val_fraction: float) -> None:
    """Fill ``modalities``, ``split`` and the blocking errors from the cases found."""
    if summary.cases and not any(case.problem is None or not case.problem.startswith("unreadable")
                                 for case in summary.cases):
        summary.errors.append("No readable case: every case failed to load (see the table).")
        return
    usable = summary.usable
    if summary.cases and not usable:
        summary.errors.append("No healthy slice to train on: no case has a tumour-free slice "
                              "(cases without label count only when their folder is marked tumour-free).")
        return
    kinds = {case.modalities for case in usable}
    if len(kinds) > 1:
        counts = [f"{'+'.join(m).upper() or 'none'}: {sum(c.modalities == m for c in usable)} case(s)"
                  for m in sorted(kinds)]
        summary.notes.append("Mixed modalities: " + "; ".join(counts) + " (only what every case has is offered)")
    common = set.intersection(*(set(m) for m in kinds)) if kinds else set()
    summary.modalities = tuple(name for name in MODALITY_ORDER
                               if all(channel in common for channel in (("ct", "pet") if name == "petct" else (name,))))
    if usable and not summary.modalities:
        summary.errors.append("Mixed modalities with nothing in common (CT-only and PET-only cases): "
                              "no modality can be trained on every case; remove one kind.")
    if len(usable) == 1:
        summary.errors.append("Only one usable case: the patient-wise validation split needs at least two.")
    if len(usable) >= 2:
        summary.split = split_patients([case.case_id for case in usable], val_fraction, seed)
    skipped = [case for case in summary.cases if case.problem is not None]
    if skipped and usable:
        summary.notes.append(f"{len(skipped)} case(s) will be skipped (see the table).")
