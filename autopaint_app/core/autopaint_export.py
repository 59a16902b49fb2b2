"""Writing an autoinpainting run's volumes: the residual and the autoinpainted images, on the CT grid.

Headless twin of the GUI's export of a pipeline run (the mask and lesion table are written by
:func:`autopaint_app.core.review.export_review`). Files, in ``folder``:

* ``<case>_residual.nii.gz`` — float32 residual ``|input - inpainted|`` (unit intensity, after the
  minimum-size criterion), the volume the final mask thresholds;
* ``<case>_inpainted_ct.nii.gz`` (HU) and/or ``<case>_inpainted_pet.nii.gz`` (SUV) — the
  autoinpainted ("healed") images, one per channel the model used, with the original values
  wherever nothing was inpainted (:func:`autopaint_app.core.segment.physical_inpainted`, as the
  CLI's ``segment`` writes them).

Geometry is the reference (CT) grid's, copied exactly; every write is atomic (temporary file, then
rename); existing files are refused unless ``overwrite`` (nothing is written then).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from autopaint_app.core.autopaint_result import AutopaintResult
from autopaint_app.core.errors import OutputExistsError
from autopaint_app.core.io import write_volume
from autopaint_app.core.preprocess import PreparedCase
from autopaint_app.core.segment import physical_inpainted


def pipeline_export_paths(folder: str | os.PathLike, case_id: str, channel_names: tuple[str, ...]) -> dict[str, Path]:
    """Where :func:`export_pipeline_volumes` writes: keys ``residual`` and ``inpainted_<channel>``."""
    folder = Path(folder)
    paths = {"residual": folder / f"{case_id}_residual.nii.gz"}
    for name in channel_names:
        paths[f"inpainted_{name}"] = folder / f"{case_id}_inpainted_{name}.nii.gz"
    return paths


def with_min_radius(result: AutopaintResult, min_radius_px: float | None) -> AutopaintResult:
    """The same run with another minimum tumour radius as its default (shares every array)."""
    if min_radius_px is None or min_radius_px == result.params.min_tumour_radius_px:
        return result
    params = result.params.with_changes(min_tumour_radius_px=float(min_radius_px))
    return dataclasses.replace(result, params=params, _cache={})


def export_pipeline_volumes(result: AutopaintResult, prepared: PreparedCase, folder: str | os.PathLike,
                            case_id: str, min_radius_px: float | None = None, overwrite: bool = False
                            ) -> dict[str, Path]:
    """Write the residual and the autoinpainted volumes of ``result`` on its reference grid.

    Args:
        result: a finished run.
        prepared: the case the run was made on (original HU / SUV outside the inpainted regions).
        folder: existing output folder.
        case_id: file name prefix.
        min_radius_px: minimum tumour radius of the size criterion (default: the run's).
        overwrite: replace existing files; otherwise refuse before writing anything.

    Returns:
        The written paths (see :func:`pipeline_export_paths`).

    Raises:
        OutputExistsError: a target exists and ``overwrite`` is False.
        InputError: the folder is missing or not writable.
    """
    paths = pipeline_export_paths(folder, case_id, result.channel_names)
    if not overwrite:
        for path in paths.values():
            if path.exists():
                raise OutputExistsError(path)
    result = with_min_radius(result, min_radius_px)
    write_volume(result.residual_volume(), paths["residual"], overwrite=overwrite)
    for name, volume in physical_inpainted(result, prepared).items():
        write_volume(volume, paths[f"inpainted_{name}"], overwrite=overwrite)
    return paths
