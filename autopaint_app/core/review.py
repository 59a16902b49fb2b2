"""Lesion review: number the lesions of a mask, keep the accepted ones, export mask and table.

The headless twin of the GUI's lesion review panel and Export action: everything the panel shows
and writes is computed here, so a script can do the same review without a window.

Lesions are the 26-connected components of a mask, numbered exactly as
:func:`autopaint_app.core.lesions.lesion_table` numbers them (scipy's labelling order), so a
lesion's ``LesionStats.label`` indexes the label image of :func:`label_lesions`.
"""

from __future__ import annotations

import csv
import io as _io
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage

from autopaint_app.core.errors import OutputExistsError
from autopaint_app.core.io import Volume, write_mask, write_text
from autopaint_app.core.lesions import CONNECTIVITY_26, LesionStats

CSV_COLUMNS = ("lesion", "accepted", "voxels", "volume_ml", "suv_max", "suv_mean", "suv_peak", "tlg_suv_ml",
               "slice_first", "slice_last", "centroid_z", "centroid_y", "centroid_x")


def label_lesions(mask: np.ndarray) -> np.ndarray:
    """Label image of the 26-connected components of ``mask``.

    Args:
        mask: boolean or 0/non-zero mask, shape ``(z, y, x)``.

    Returns:
        int32 array ``(z, y, x)``: 0 background, ``1..n`` lesions in ``lesion_table`` order.
    """
    labels, _ = ndimage.label(np.asarray(mask).astype(bool, copy=False), structure=CONNECTIVITY_26)
    return labels.astype(np.int32, copy=False)


def accepted_mask(labels: np.ndarray, rejected: Iterable[int]) -> np.ndarray:
    """Boolean mask ``(z, y, x)`` of every lesion in ``labels`` except the rejected ones.

    Args:
        labels: label image from :func:`label_lesions`.
        rejected: lesion numbers (1-based) to leave out.
    """
    keep = labels > 0
    rejected = [int(r) for r in rejected]
    if rejected:
        keep &= ~np.isin(labels, rejected)
    return keep


def lesion_rows(table: Sequence[LesionStats], rejected: Iterable[int] = ()) -> list[dict]:
    """One dict per lesion with the :data:`CSV_COLUMNS` keys (floats rounded for reading; None -> "")."""
    rejected = set(int(r) for r in rejected)
    rows = []
    for lesion in table:
        values = {"lesion": lesion.label, "accepted": lesion.label not in rejected, "voxels": lesion.voxels,
                  "volume_ml": lesion.volume_ml, "suv_max": lesion.suv_max, "suv_mean": lesion.suv_mean,
                  "suv_peak": lesion.suv_peak, "tlg_suv_ml": lesion.tlg, "slice_first": lesion.z_range[0],
                  "slice_last": lesion.z_range[1], "centroid_z": lesion.centroid_zyx[0],
                  "centroid_y": lesion.centroid_zyx[1], "centroid_x": lesion.centroid_zyx[2]}
        rows.append({key: _cell(value) for key, value in values.items()})
    return rows


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 4)
    return value


def write_lesion_csv(table: Sequence[LesionStats], path: str | os.PathLike, rejected: Iterable[int] = (),
                     overwrite: bool = False) -> Path:
    """Write the lesion table as CSV atomically (temporary file beside it, then rename).

    Every lesion is listed, with ``accepted`` true/false, so the file records the review decision.

    Raises:
        OutputExistsError: the file exists and ``overwrite`` is False.
        InputError: the folder is missing or not writable.
    """
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(lesion_rows(table, rejected))
    return write_text(buffer.getvalue(), path, overwrite)


def export_paths(folder: str | os.PathLike, case_id: str) -> dict[str, Path]:
    """Where :func:`export_review` writes: ``{"mask": <case>_mask.nii.gz, "table": <case>_lesions.csv}``."""
    folder = Path(folder)
    return {"mask": folder / f"{case_id}_mask.nii.gz", "table": folder / f"{case_id}_lesions.csv"}


def export_review(labels: np.ndarray, table: Sequence[LesionStats], reference: Volume, folder: str | os.PathLike,
                  case_id: str, rejected: Iterable[int] = (), overwrite: bool = False) -> dict[str, Path]:
    """Write the accepted lesions as a uint8 NIfTI on the reference (CT) grid and the table as CSV.

    Args:
        labels: label image ``(z, y, x)`` from :func:`label_lesions`, on ``reference``'s grid.
        table: the lesions' statistics (``lesion_table`` of the same mask).
        reference: the grid to copy geometry from exactly (the CT; the PET without a CT).
        folder: existing output folder.
        case_id: file name prefix.
        rejected: lesion numbers left out of the mask (still listed in the CSV as not accepted).
        overwrite: replace existing files; otherwise refuse before writing anything.

    Returns:
        The written paths, keys ``"mask"`` and ``"table"``.

    Raises:
        OutputExistsError: a target exists and ``overwrite`` is False (nothing is written).
    """
    paths = export_paths(folder, case_id)
    if not overwrite:
        for path in paths.values():
            if path.exists():
                raise OutputExistsError(path)
    rejected = list(rejected)
    write_mask(accepted_mask(labels, rejected), reference, paths["mask"], overwrite=overwrite)
    write_lesion_csv(table, paths["table"], rejected, overwrite=overwrite)
    return paths
