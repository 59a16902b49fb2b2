"""GUI test fixtures: offscreen Qt (tests/conftest.py), pyqtgraph options, the demo case loaded once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from autopaint_app.core.phantom import ensure_demo_case, make_phantom, write_phantom
from autopaint_app.gui.app import configure_pyqtgraph
from autopaint_app.gui.case_jobs import LoadedCase, open_case_steps

configure_pyqtgraph()


def run_steps(generator):
    """Iterate a job generator on this thread and return its return value."""
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


@pytest.fixture(scope="session")
def demo_loaded() -> LoadedCase:
    """The demo case loaded through the same job the worker runs (once per session: ~2.5 s)."""
    return run_steps(open_case_steps(ensure_demo_case()))


@dataclass
class DialogRecorder:
    """Captures QMessageBox static calls; ``answer`` is what ``question`` returns."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    answer: QMessageBox.StandardButton = QMessageBox.StandardButton.Yes

    def texts(self, kind: str) -> list[str]:
        return [text for k, _, text in self.calls if k == kind]


@pytest.fixture
def dialogs(monkeypatch) -> DialogRecorder:
    recorder = DialogRecorder()
    for kind in ("critical", "warning", "information"):
        monkeypatch.setattr(QMessageBox, kind, staticmethod(
            lambda parent, title, text, *rest, kind=kind: recorder.calls.append((kind, title, text))
            or QMessageBox.StandardButton.Ok))

    def question(parent, title, text, *rest):
        recorder.calls.append(("question", title, text))
        return recorder.answer

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return recorder


@pytest.fixture
def window(qtbot, tmp_path, dialogs):
    """A main window with its own settings file (recent cases do not touch the user's)."""
    from autopaint_app.gui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    yield win
    win.runner.cancel()
    win.runner.wait_idle(5000)


@pytest.fixture
def demo_window(window, demo_loaded):
    """The window with the demo case shown (state set directly; loading itself is tested elsewhere)."""
    window.state.set_loaded_case(demo_loaded)
    return window


@pytest.fixture(scope="session")
def cases(tmp_path_factory) -> Path:
    """Two small healthy lung phantoms (128 px, 12 slices) the training-wizard tests scan and train on."""
    root = tmp_path_factory.mktemp("cases")
    for seed in (2, 3):
        write_phantom(make_phantom("lung", seed, healthy=True, in_plane=128, n_slices=12), root / f"lung_{seed}")
    return root
