"""Render the main window after an AutoPaint run on the demo case, with its overlays, to a PNG.

    python packaging/screenshot.py [--out resources/screenshots/main_window.png] [--overwrite]

The run uses the shipped model for the lung PET-CT when ``models/`` has one; otherwise a classical
stand-in (each hole filled with the mean of the ring of known pixels around it, no network), and
the window's status bar says so, as the README caption does.

Uses the xcb platform (not offscreen) so fonts, styles and OpenGL-free painting are those a user
sees. When ``DISPLAY`` is unset it starts ``Xvfb :99`` itself and stops it afterwards (Debian
packages: xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "resources" / "screenshots" / "main_window.png"
WINDOW_SIZE = (1600, 1000)
RUN_DEADLINE_MS = 20 * 60 * 1000  # the shipped model on every OOI slice of the demo case, 2 CPU cores
STAND_IN = "ring-mean fill (no trained model)"


def ring_mean_fill(image, mask, ring_px: int = 4):
    """A non-learned inpainter: each hole filled, per channel, with the mean of the known ring around it."""
    import numpy as np
    from scipy import ndimage

    out = image.astype(np.float32, copy=True)
    for i in range(image.shape[0]):
        hole = mask[i, 0] < 0.5
        ring = ndimage.binary_dilation(hole, iterations=ring_px) & ~hole
        for c in range(image.shape[1]):
            out[i, c][hole] = image[i, c][ring].mean() if ring.any() else 0.0
    return out


def run_autopaint(window, loop) -> str:
    """Run AutoPaint on the open case (shipped model, else the stand-in); returns the model's name."""
    from PySide6.QtCore import QTimer

    from autopaint_app.gui.autopaint_jobs import ModelChoice

    pipeline = window.pipeline
    if pipeline.model is None or pipeline.model.channels != ("ct", "pet"):
        pipeline.add_model(ModelChoice(STAND_IN, predictor=ring_mean_fill, channels=("ct", "pet")))
    pipeline.run_finished.connect(loop.quit)
    pipeline.run_stopped.connect(loop.quit)
    run_deadline = QTimer(singleShot=True, interval=RUN_DEADLINE_MS)
    run_deadline.timeout.connect(loop.quit)
    run_deadline.start()
    window.run_action.trigger()
    loop.exec()
    run_deadline.stop()
    if pipeline.result is None:
        sys.exit("error: the AutoPaint run did not finish")
    return pipeline.model.name


def start_xvfb(display: str = ":99") -> subprocess.Popen | None:
    """Start Xvfb on ``display`` unless an X server is already reachable; returns the process or None."""
    if os.environ.get("DISPLAY"):
        return None
    if shutil.which("Xvfb") is None:
        sys.exit("error: DISPLAY is unset and Xvfb is not installed (apt-get install xvfb)")
    process = subprocess.Popen(["Xvfb", display, "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = Path(f"/tmp/.X11-unix/X{display.lstrip(':')}")
    for _ in range(100):  # wait up to 5 s for the server socket
        if socket.exists():
            break
        time.sleep(0.05)
    os.environ["DISPLAY"] = display
    return process


def render(out: Path, overwrite: bool) -> Path:
    """Open the demo case, run AutoPaint, centre on the largest lesion, save the window."""
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    from autopaint_app.gui.app import configure_pyqtgraph

    configure_pyqtgraph()
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from autopaint_app.gui.file_actions import save_png
    from autopaint_app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    settings = QSettings(str(out.parent / ".screenshot_settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(*WINDOW_SIZE)
    window.show()
    loop = QEventLoop()
    window.state.case_loaded.connect(loop.quit)
    window.runner.job_failed.connect(lambda name, exc: (print(f"error: {exc}", file=sys.stderr), loop.quit()))
    load_deadline = QTimer(singleShot=True, interval=60000)
    load_deadline.timeout.connect(loop.quit)
    load_deadline.start()
    window.open_demo()
    loop.exec()
    load_deadline.stop()  # the run below has its own, longer deadline (a real model on every OOI slice)
    if window.state.loaded is None:
        sys.exit("error: the demo case did not open")
    model = run_autopaint(window, loop)
    state = window.state
    if state.lesions:
        largest = max(state.lesions, key=lambda lesion: lesion.volume_ml)
        state.jump_to_lesion(largest.label)
    window.display_panel.ct_preset.setCurrentText("Lung")
    state.set_fusion(0.35)
    window.lesion_panel.table.selectRow(0)
    window.viewer["axial"].hovered.emit(*state.position)  # the read-out a hovering mouse would show
    window.runner.wait_idle(5000)
    if model == STAND_IN:
        window.statusBar().showMessage("Overlays from a classical ring-mean fill standing in for the "
                                       "trained model (not shipped yet)")
    for _ in range(20):  # let layouts and paints settle
        app.processEvents()
        time.sleep(0.02)
    written = save_png(window.grab(), out, overwrite=overwrite)
    settings_file = Path(settings.fileName())
    window.close()
    settings_file.unlink(missing_ok=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    xvfb = start_xvfb()
    try:
        path = render(args.out, args.overwrite)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
    print(f"{path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
