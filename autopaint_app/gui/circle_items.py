"""Sliding circles in the coronal and sagittal views: each circle's chord on the shown plane.

A candidate circle lives on one axial slice ``z``; a coronal plane (voxel row ``y0``) or a sagittal
plane (voxel column ``x0``) cuts it in a line segment, its chord, drawn at the slice's height.
With the circle's centre at voxel indices ``(row, col)`` (continuous; integer = voxel centre) and
radius ``R`` mm, the coronal plane lies ``d = (y0 - row) * sy`` mm from the centre and the chord
spans ``(col + 0.5) * sx ± sqrt(R² - d²)`` mm along x, at height ``(z + 0.5) * sz`` mm — the same
scene millimetres the viewers' image items use (see :mod:`autopaint_app.gui.viewers`). Circles
the plane misses (``|d| >= R``) have no chord.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QRectF

from autopaint_app.gui.overlays import CircleData


@dataclass(frozen=True)
class Chords:
    """Line segments in scene millimetres, one per circle the plane cuts.

    Attributes:
        segments: ``(n, 4)`` float ``(x1, y1, x2, y2)`` in the plane's scene mm (columns, rows).
        colours: ``(n, 4)`` uint8 RGBA, the circles' colours.
        width: pen width in screen pixels.
    """

    segments: np.ndarray
    colours: np.ndarray
    width: float = 1.0

    def __len__(self) -> int:
        return len(self.segments)


def circle_chords(circles: CircleData, plane: str, index: int, spacing_zyx: tuple[float, float, float]) -> Chords:
    """The chords of every circle that a coronal or sagittal plane cuts.

    Args:
        circles: circles per axial slice (centres in voxel indices, radius in mm).
        plane: ``"coronal"`` (cut at voxel row ``index``) or ``"sagittal"`` (column ``index``).
        index: the plane's voxel index along y (coronal) or x (sagittal).
        spacing_zyx: voxel size in mm, numpy order ``(z, y, x)``.

    Returns:
        :class:`Chords` ordered by slice, then circle; horizontal segments at each slice's centre
        height ``(z + 0.5) * sz``.
    """
    if plane not in ("coronal", "sagittal"):
        raise ValueError(f"chords are drawn in the coronal and sagittal planes, not {plane!r}")
    sz, sy, sx = (float(s) for s in spacing_zyx)
    segments, colours, width = [], [], 1.0
    for z in sorted(circles):
        slice_circles = circles[z]
        if plane == "coronal":  # the plane is a row: distance along y, chord along x
            across, along, step_across, step_along = slice_circles.rows, slice_circles.cols, sy, sx
        else:  # a column: distance along x, chord along y
            across, along, step_across, step_along = slice_circles.cols, slice_circles.rows, sx, sy
        distance = (index - np.asarray(across, dtype=float)) * step_across
        radius = float(slice_circles.radius_mm)
        cut = np.abs(distance) < radius
        if not cut.any():
            continue
        half = np.sqrt(radius ** 2 - distance[cut] ** 2)
        centre = (np.asarray(along, dtype=float)[cut] + 0.5) * step_along
        height = np.full(half.shape, (z + 0.5) * sz)
        segments.append(np.stack([centre - half, height, centre + half, height], axis=1))
        colours.append(np.asarray(slice_circles.colours, dtype=np.uint8)[cut])
        width = slice_circles.width
    if not segments:
        return Chords(np.zeros((0, 4)), np.zeros((0, 4), np.uint8), width)
    return Chords(np.concatenate(segments), np.concatenate(colours), width)


class SegmentsItem(pg.GraphicsObject):
    """Coloured line segments in view (mm) coordinates with cosmetic pens (width in screen pixels)."""

    def __init__(self):
        super().__init__()
        self.chords = Chords(np.zeros((0, 4)), np.zeros((0, 4), np.uint8))
        self._groups: list[tuple] = []
        self._bounds = QRectF()

    def set_chords(self, chords: Chords) -> None:
        """Show these segments (replacing the previous ones)."""
        self.prepareGeometryChange()
        self.chords = chords
        self._groups = []
        if len(chords):
            unique, inverse = np.unique(chords.colours, axis=0, return_inverse=True)
            for k, colour in enumerate(unique):  # one pen per colour: drawLines per group
                lines = [QLineF(*map(float, s)) for s in chords.segments[inverse.ravel() == k]]
                self._groups.append((pg.mkPen(tuple(int(v) for v in colour), width=chords.width), lines))
            low, high = chords.segments.min(axis=0), chords.segments.max(axis=0)
            self._bounds = QRectF(low[0], low[1], max(high[2] - low[0], 1e-6), max(high[3] - low[1], 1e-6))
        else:
            self._bounds = QRectF()
        self.update()

    def clear(self) -> None:
        """Show nothing."""
        self.set_chords(Chords(np.zeros((0, 4)), np.zeros((0, 4), np.uint8)))

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt override
        # pad by a few mm so wide cosmetic pens at the ends are not clipped
        return self._bounds.adjusted(-2.0, -2.0, 2.0, 2.0) if not self._bounds.isNull() else QRectF()

    def paint(self, painter, *args) -> None:
        for pen, lines in self._groups:
            painter.setPen(pen)
            painter.drawLines(lines)
