"""Plain facts about a volume for `autopaint-cli info` and the GUI header."""

from __future__ import annotations

import numpy as np

from autopaint_app.core.io import Volume


def guess_modality(volume: Volume) -> str:
    """Best guess of what a volume holds: ``"CT"``, ``"PET"``, ``"label"`` or ``"unknown"``.

    DICOM's Modality tag wins when the reader recorded it in ``volume.meta``. Otherwise the values
    decide: integer volumes with few distinct small values are labels; CT holds air near -1000 HU;
    PET is non-negative with a long tail (SUV or counts).
    """
    tagged = volume.meta.get("modality")
    if tagged:
        return {"PT": "PET", "CT": "CT", "SEG": "label"}.get(str(tagged), str(tagged))
    values = volume.array
    low, high = float(values.min()), float(values.max())
    if np.issubdtype(values.dtype, np.integer) or np.all(np.mod(values[:: max(1, values.shape[0] // 8)], 1) == 0):
        if low >= 0 and high <= 255 and np.unique(values[:: max(1, values.shape[0] // 8)]).size <= 16:
            return "label"
    if low <= -900:
        return "CT"
    if low >= -1e-3:
        return "PET"
    return "unknown"


def describe_volume(volume: Volume) -> dict:
    """JSON-ready summary: shape (z, y, x), size/spacing/origin (x, y, z), direction, value range."""
    values = volume.array
    p1, p50, p99 = (float(v) for v in np.percentile(values, [1, 50, 99]))
    return {
        "source": volume.source,
        "shape_zyx": list(volume.shape),
        "size_xyz": list(volume.size_xyz),
        "spacing_xyz_mm": list(volume.spacing),
        "origin_xyz_mm": list(volume.origin),
        "direction": list(volume.direction),
        "dtype": str(values.dtype),
        "range": [float(values.min()), float(values.max())],
        "percentiles_1_50_99": [p1, p50, p99],
        "modality_guess": guess_modality(volume),
        "voxel_volume_ml": volume.voxel_volume_ml,
    }
