"""What the File menu does besides opening: recent cases, export, screenshot, loading a mask.

Plain helpers the main window calls; the work itself is core (:mod:`autopaint_app.core.review`,
:mod:`autopaint_app.core.io`). Dialogs go through ``QMessageBox``/``QFileDialog`` static functions
so tests can replace them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Generator

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QMessageBox, QWidget

from autopaint_app.core.autopaint_export import export_pipeline_volumes, pipeline_export_paths
from autopaint_app.core.autopaint_result import AutopaintResult
from autopaint_app.core.case import check_same_grid
from autopaint_app.core.errors import InputError, OutputExistsError
from autopaint_app.core.io import Volume, _temporary_beside, read_volume
from autopaint_app.core.review import export_paths, export_review
from autopaint_app.gui.case_jobs import Progress
from autopaint_app.gui.state import AppState

RECENT_KEY = "recent_cases"
MAX_RECENT = 8


# ---------------------------------------------------------------------------------- recent cases
def recent_sources(settings: QSettings) -> list[list[str]]:
    """Recently opened cases, newest first; each a list of paths (one folder, or several files)."""
    try:
        sources = json.loads(settings.value(RECENT_KEY, "[]") or "[]")
    except (TypeError, ValueError):
        return []
    return [list(map(str, source)) for source in sources if isinstance(source, list) and source]


def remember_source(settings: QSettings, source: list[str]) -> None:
    """Put ``source`` first in the recent list (no duplicates, at most :data:`MAX_RECENT`)."""
    source = [str(Path(p).resolve()) for p in source]
    sources = [s for s in recent_sources(settings) if s != source]
    settings.setValue(RECENT_KEY, json.dumps([source, *sources][:MAX_RECENT]))
    settings.sync()


def source_title(source: list[str]) -> str:
    """Menu text for a recent case: the folder, or the first file and how many more."""
    first = Path(source[0])
    return str(first) if len(source) == 1 else f"{first.name} (+{len(source) - 1} files) in {first.parent}"


# ---------------------------------------------------------------------------------- overwrite
def confirm_overwrite(parent: QWidget, paths: list[Path]) -> bool:
    """True when no path exists, or the user agreed to replace the existing ones."""
    existing = [path for path in paths if path.exists()]
    if not existing:
        return True
    names = "\n".join(str(path) for path in existing)
    answer = QMessageBox.question(parent, "Replace files?", f"These files exist already:\n{names}\n\nReplace them?",
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


# ---------------------------------------------------------------------------------- export
def export_case_review(parent: QWidget, state: AppState, folder: str | os.PathLike,
                       result: AutopaintResult | None = None, prepared=None, min_radius_px: float | None = None
                       ) -> dict[str, Path] | None:
    """Write the accepted lesions (NIfTI on the CT grid) and the lesion table (CSV) into ``folder``,
    plus, for a pipeline result, its residual and inpainted volumes (NIfTI on the CT grid).

    Asks once before replacing any file; returns the written paths, or None when nothing was written.
    Core twins: :func:`autopaint_app.core.review.export_review`,
    :func:`autopaint_app.core.autopaint_export.export_pipeline_volumes`.
    """
    if state.lesion_labels is None:
        QMessageBox.information(parent, "Nothing to export", "There is no result mask yet.")
        return None
    case_id = state.loaded.case.case_id
    targets = list(export_paths(folder, case_id).values())
    if result is not None:
        targets += list(pipeline_export_paths(folder, case_id, result.channel_names).values())
    if not confirm_overwrite(parent, targets):
        return None
    try:
        written = export_review(state.lesion_labels, state.lesions, state.loaded.reference, folder, case_id,
                                rejected=state.rejected, overwrite=True)
        if result is not None:
            written.update(export_pipeline_volumes(result, prepared, folder, case_id, min_radius_px, overwrite=True))
        return written
    except InputError as exc:
        QMessageBox.critical(parent, "Export failed", str(exc))
        return None


def save_png(pixmap: QPixmap, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save a pixmap as PNG atomically (temporary file beside it, then rename).

    Raises:
        OutputExistsError: the file exists and ``overwrite`` is False.
        InputError: the folder is missing or the image cannot be written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    if not path.parent.is_dir():
        raise InputError(path.parent, "output folder does not exist")
    tmp_name = _temporary_beside(path, ".png")
    try:
        if not pixmap.save(tmp_name, "PNG"):
            raise InputError(path, "cannot be written as PNG")
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return path


# ---------------------------------------------------------------------------------- masks
def read_mask_steps(path: str | os.PathLike, reference: Volume) -> Generator[Progress, None, np.ndarray]:
    """Read a mask file on the reference grid as boolean ``(z, y, x)`` (worker job).

    Raises:
        InputError: unreadable file, other grid, or an empty mask.
    """
    yield Progress(0, 1, f"reading {Path(path).name}")
    mask = read_volume(path)
    check_same_grid(mask, reference)
    inside = mask.array > 0
    if not inside.any():
        raise InputError(path, "mask is empty (no voxel > 0)")
    yield Progress(1, 1, f"{Path(path).name} read")
    return inside
