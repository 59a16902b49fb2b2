"""Render the training wizard's Run page during a short real training on phantom cases, to a PNG.

    python packaging/screenshot_wizard.py [--out resources/screenshots/training_wizard.png] [--overwrite]

Three healthy lung phantoms (128 px, 24 slices) are written to a temporary folder, the wizard is
walked like a user would (Data → Model → Training → Run) with a small network (6 epochs of 12 steps:
about 7 minutes on a busy 2-core CPU), and the window is saved after the last epoch. Uses the xcb
platform on ``$DISPLAY`` or on an ``Xvfb`` it starts itself (see ``packaging/screenshot.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot import start_xvfb  # noqa: E402 - the sibling script's Xvfb helper

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "resources" / "screenshots" / "training_wizard.png"
SMALL = {"widths": [16, 32, 32, 32], "val_crops": 8, "vgg_downsample": 2, "threads": 2, "restrict_to_ooi": False,
         "max_slices_per_case": 12}


def render(out: Path, overwrite: bool) -> Path:
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    from autopaint_app.gui.app import configure_pyqtgraph

    configure_pyqtgraph()
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from autopaint_app.core.phantom import make_phantom, write_phantom
    from autopaint_app.gui.file_actions import save_png
    from autopaint_app.gui.wizard import TrainingWizard

    app = QApplication.instance() or QApplication([])
    work = Path(tempfile.mkdtemp(prefix="autopaint_wizard_shot_"))
    for seed in (2, 3, 4):
        phantom = make_phantom("lung", seed, healthy=True, in_plane=128, n_slices=24)
        write_phantom(phantom, work / "cases" / f"lung_{seed}")
    wizard = TrainingWizard(models_folder=work / "models", overrides=SMALL)
    wizard.resize(1500, 1000)
    wizard.show()
    scanned = QEventLoop()
    wizard.data_page.scan_finished.connect(scanned.quit)
    wizard.data_page.add_folder(str(work / "cases"))  # the scan runs in a worker thread
    scanned.exec()
    wizard.next()
    wizard.model_page.crop.setValue(64)
    wizard.next()
    page = wizard.training_page
    page.epochs1.setValue(4)
    page.epochs2.setValue(2)
    page.batch.setValue(4)
    page.steps.setValue(12)
    page.out_dir.setText(str(work / "run"))
    wizard.next()
    loop = QEventLoop()
    wizard.run_page.state_changed.connect(lambda state: state in ("done", "failed", "stopped") and loop.quit())
    QTimer.singleShot(600000, loop.quit)
    loop.exec()
    if wizard.run_page.state != "done":
        sys.exit(f"error: the run ended as {wizard.run_page.state}: {wizard.run_page.error_label.text()}")
    app.processEvents()
    return save_png(wizard.grab(), out, overwrite=overwrite)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    xvfb = start_xvfb()
    try:
        print(render(args.out, args.overwrite))
    finally:
        if xvfb is not None:
            xvfb.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
