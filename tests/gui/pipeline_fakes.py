"""A fast fake inpainter for the GUI's AutoPaint tests (no network) and helpers to drive runs."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QTimer

from autopaint_app.gui.autopaint_jobs import ModelChoice

# Axial slices of the demo case through its largest tumour (label slices 34-42).
TUMOUR_SLICES = (36, 37, 38)


class MedianFill:
    """Fills each hole with the per-channel median of the known pixels of its crop; counts calls.

    ``seconds_per_item`` adds a GIL-free sleep per inpainted image, like ONNX Runtime's forward
    pass (which releases the GIL), so a run costs the GUI thread what a real model would.
    """

    size_multiple = 32

    def __init__(self, seconds_per_item: float = 0.0):
        self.calls = 0
        self.items = 0
        self.seconds_per_item = seconds_per_item

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.items += image.shape[0]
        if self.seconds_per_item:
            time.sleep(self.seconds_per_item * image.shape[0])
        out = image.astype(np.float32, copy=True)
        for i in range(image.shape[0]):
            known = mask[i, 0] > 0.5
            for c in range(image.shape[1]):
                out[i, c][~known] = np.median(image[i, c][known])
        return out


def use_fake(window, fill: MedianFill | None = None, slices=TUMOUR_SLICES) -> MedianFill:
    """Select a MedianFill as the window's model and restrict runs to ``slices``."""
    fill = fill or MedianFill()
    window.pipeline.add_model(ModelChoice("median fill", predictor=fill, channels=("ct", "pet")))
    window.pipeline.set_slices(slices)
    return fill


def run_and_wait(qtbot, window, timeout_ms: int = 30000) -> None:
    """Press Run AutoPaint and wait for the result (fails on an error dialog or a timeout)."""
    with qtbot.waitSignal(window.pipeline.run_finished, timeout=timeout_ms):
        window.run_action.trigger()


class StallProbe:
    """Ticks every 10 ms on the GUI thread from creation to :meth:`stop`, recording wall-clock and the
    GUI thread's CPU time: a wall gap is what the user sees (the machine's load included), a CPU gap
    is the GUI thread's own work between two ticks (drawing, copying), whatever the load."""

    def __init__(self, interval_ms: int = 10):
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.thread_time())

    def stop(self) -> tuple[np.ndarray, np.ndarray]:
        """Stop ticking; returns the gaps ``(wall, cpu)`` between ticks in seconds."""
        self.timer.stop()
        return np.diff(self.wall), np.diff(self.cpu)
