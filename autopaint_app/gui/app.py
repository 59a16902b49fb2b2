"""GUI entry point (`autopaint`): ``autopaint --demo`` or ``autopaint <case folder | files...>``."""

from __future__ import annotations

import argparse
import sys

import pyqtgraph as pg


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options, once at start-up (habit 10): arrays are (rows, cols) = numpy order."""
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autopaint", description="AutoPaint Studio: PET/CT tumour segmentation by "
                                                                   "self-inpainting, with lesion review and export.")
    parser.add_argument("paths", nargs="*", help="a case folder, or CT/PET/label/OOI files of one case")
    parser.add_argument("--demo", action="store_true", help="open the embedded demo lung PET-CT case")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the desktop app; returns Qt's exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    configure_pyqtgraph()
    from PySide6.QtWidgets import QApplication

    from autopaint_app.gui.main_window import MainWindow  # after the pyqtgraph options are set

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("AutoPaint Studio")
    app.setOrganizationName("AutoPaint")
    window = MainWindow()
    window.show()
    if args.demo:
        window.open_demo()
    elif args.paths:
        window.open_source(args.paths)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
