"""A grid of small grey images in one pyqtgraph view: hole previews and sample inpaintings.

Tiles are float arrays in [0, 1], shape (y, x), row-major (``imageAxisOrder='row-major'``); they are
laid out in rows with a ``GAP``-pixel gap (shown in mid-grey) and drawn as one image, so the view
zooms and pans them together without stretching pixels.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

GAP = 2
GAP_VALUE = 0.5


def tile_mosaic(rows: list[list[np.ndarray]]) -> np.ndarray:
    """float32 (H, W) mosaic of ``rows`` of (h, w) tiles (tiles may differ in size; cells take the largest)."""
    if not rows or not any(rows):
        return np.zeros((0, 0), dtype=np.float32)
    tile_h = max(tile.shape[0] for row in rows for tile in row)
    tile_w = max(tile.shape[1] for row in rows for tile in row)
    columns = max(len(row) for row in rows)
    mosaic = np.full((len(rows) * (tile_h + GAP) - GAP, columns * (tile_w + GAP) - GAP), GAP_VALUE, np.float32)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            top, left = r * (tile_h + GAP), c * (tile_w + GAP)
            mosaic[top:top + tile.shape[0], left:left + tile.shape[1]] = np.clip(tile, 0.0, 1.0)
    return mosaic


class MosaicView(pg.GraphicsLayoutWidget):
    """Shows a tile mosaic (grey, 0 black, 1 white) with a title; :attr:`mosaic` holds what is drawn."""

    def __init__(self, title: str = "", parent=None):
        super().__init__(parent)
        self.title = self.addLabel(title, row=0, col=0)
        self.view = self.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMouse=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.mosaic = np.zeros((0, 0), dtype=np.float32)

    def show_tiles(self, rows: list[list[np.ndarray]], title: str | None = None) -> None:
        """Draw ``rows`` of tiles (see :func:`tile_mosaic`); ``title`` replaces the caption."""
        self.mosaic = tile_mosaic(rows)
        if title is not None:
            self.title.setText(title)
        if self.mosaic.size:
            self.image.setImage(self.mosaic, levels=(0.0, 1.0))
            self.view.autoRange(padding=0.01)
        else:
            self.image.clear()
