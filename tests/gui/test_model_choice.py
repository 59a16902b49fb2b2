"""The tuning panel's model list: models/ and the user's model folder, and "File…" refusing wrong files
with a dialog that names the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QStandardPaths
from PySide6.QtWidgets import QFileDialog

from autopaint_app.core.model_store import MODELS_ENV
from autopaint_app.gui.panels.tuning import FILE_ENTRY
from autopaint_app.gui.pipeline import model_folders
from autopaint_app.gui.wizard import user_models_folder
from tests.core.tiny_onnx import build_model, write_card


def _model(folder: Path, name: str, channels: int = 2, **card) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    build_model(path, channels=channels)
    write_card(path.with_suffix(".json"), **card)
    return path


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """``models/`` (through $AUTOPAINT_MODELS_DIR) and the app-data folder, both in tmp_path."""
    shipped, app_data = tmp_path / "shipped", tmp_path / "app_data"
    monkeypatch.setenv(MODELS_ENV, str(shipped))
    monkeypatch.setattr(QStandardPaths, "writableLocation", staticmethod(lambda location: str(app_data)))
    return shipped, app_data / "models"


@pytest.fixture
def panel_window(qtbot, tmp_path, folders, dialogs):
    from autopaint_app.gui.main_window import MainWindow

    shipped, user = folders
    _model(shipped, "lung_petct_shipped")
    _model(user, "lung_petct_wizard")  # what the training wizard installs
    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    return window


def test_models_come_from_models_dir_and_the_user_folder(panel_window, folders):
    shipped, user = folders
    assert model_folders() == [shipped, user] and user == user_models_folder()  # the wizard installs there
    combo = panel_window.tuning_panel.model
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "lung_petct_shipped (CT+PET)", "lung_petct_wizard (CT+PET)", FILE_ENTRY]
    assert [m.path for m in panel_window.pipeline.models] == [
        (shipped / "lung_petct_shipped.onnx").resolve(), (user / "lung_petct_wizard.onnx").resolve()]


def _choose_file(window, monkeypatch, path: Path) -> None:
    """Pick "File…" in the model list and answer the file dialog with ``path``."""
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *args, **kwargs: (str(path), "")))
    combo = window.tuning_panel.model
    combo.setCurrentIndex(combo.findText(FILE_ENTRY))
    combo.activated.emit(combo.currentIndex())


@pytest.mark.parametrize("kind, problem", [
    ("not_onnx", "not a readable ONNX model"),
    ("no_card", "model card not found"),
    ("wrong_channels", "has 1 channel(s), but its card lists"),
    ("bad_card", "model card 'channels' must be"),
])
def test_a_wrong_model_file_is_refused_with_a_dialog_naming_it(panel_window, tmp_path, monkeypatch, dialogs,
                                                                kind, problem):
    chosen = tmp_path / "elsewhere" / f"{kind}.onnx"
    if kind == "not_onnx":
        chosen.parent.mkdir()
        chosen.write_text("this is a text file, not a network", encoding="utf-8")
        write_card(chosen.with_suffix(".json"))
    elif kind == "no_card":
        _model(chosen.parent, kind).with_suffix(".json").unlink()
    elif kind == "wrong_channels":  # a one-channel network whose card claims CT+PET
        _model(chosen.parent, kind, channels=1)
    else:
        write_card(_model(chosen.parent, kind).with_suffix(".json"), channels=["suv", "mri"])
    pipeline, before = panel_window.pipeline, panel_window.pipeline.model
    _choose_file(panel_window, monkeypatch, chosen)
    warnings = dialogs.texts("warning")
    assert len(warnings) == 1 and problem in warnings[0]
    named = chosen.with_suffix(".json") if kind in ("no_card", "bad_card") else chosen
    assert str(named) in warnings[0]
    assert pipeline.model is before and all(m.path != chosen for m in pipeline.models)
    combo = panel_window.tuning_panel.model
    assert combo.currentText() == "lung_petct_shipped (CT+PET)" and combo.count() == 3


def test_a_good_model_file_is_added_and_kept_open(panel_window, tmp_path, monkeypatch, dialogs):
    chosen = tmp_path / "elsewhere" / "lung_ct_mine.onnx"
    chosen.parent.mkdir()
    build_model(chosen, channels=1)
    write_card(chosen.with_suffix(".json"), channels=["ct"])
    _choose_file(panel_window, monkeypatch, chosen)
    pipeline = panel_window.pipeline
    assert dialogs.calls == [] and pipeline.model.path == chosen and pipeline.model.channels == ("ct",)
    assert panel_window.tuning_panel.model.currentText() == "lung_ct_mine (CT)"
    assert pipeline.model_cache[pipeline.model.key].channels == ("ct",)  # opened once, reused by the run


def test_fast_mode_picks_the_int8_twin_and_reference_mode_the_float_model(qtbot, tmp_path, folders, dialogs):
    from autopaint_app.gui.main_window import MainWindow

    shipped, _ = folders
    float_model = _model(shipped, "lung_petct_gconv_lap")
    twin = _model(shipped, "lung_petct_gconv_lap.int8", precision="int8")
    window = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    pipeline, panel = window.pipeline, window.tuning_panel
    assert pipeline.params.mode == "fast" and pipeline.model.path == twin.resolve()
    panel.mode.setCurrentIndex(panel.mode.findData("reference"))
    panel.mode.activated.emit(panel.mode.currentIndex())
    assert pipeline.params.mode == "reference" and pipeline.model.path == float_model.resolve()
    assert not panel.search.isEnabled()  # reference mode inpaints every circle
    panel.mode.setCurrentIndex(panel.mode.findData("fast"))
    panel.mode.activated.emit(panel.mode.currentIndex())
    assert pipeline.model.path == twin.resolve() and panel.search.isEnabled()
    # a model the user chose stays chosen whatever the mode
    pipeline.set_model(next(m for m in pipeline.models if m.path == float_model.resolve()))
    pipeline.set_params(mode="reference")
    pipeline.set_params(mode="fast")
    assert pipeline.model.path == float_model.resolve()


def test_the_search_choice_reaches_the_pipeline_parameters(panel_window):
    pipeline, panel = panel_window.pipeline, panel_window.tuning_panel
    assert pipeline.params.circle_search == "coarse-to-fine" and pipeline.params.complete_neighbours
    assert panel.search.currentData() == "coarse-to-fine+neighbours"
    panel.search.setCurrentIndex(panel.search.findData("coarse-to-fine"))
    panel.search.activated.emit(panel.search.currentIndex())
    assert pipeline.params.circle_search == "coarse-to-fine" and not pipeline.params.complete_neighbours
    pipeline.set_site("hn")                                  # a new preset keeps the user's search choice
    assert pipeline.params.circle_radius_px == 15 and not pipeline.params.complete_neighbours
    assert panel.search.currentData() == "coarse-to-fine"
    panel.search.setCurrentIndex(panel.search.findData("exhaustive"))
    panel.search.activated.emit(panel.search.currentIndex())
    assert pipeline.params.circle_search == "exhaustive"
