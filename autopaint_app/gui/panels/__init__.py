"""Side panels of the main window, one concept per module."""

from autopaint_app.gui.panels.case_header import CaseHeader
from autopaint_app.gui.panels.display import DisplayPanel
from autopaint_app.gui.panels.layers import LayersPanel
from autopaint_app.gui.panels.lesions import LesionPanel

__all__ = ["CaseHeader", "DisplayPanel", "LayersPanel", "LesionPanel"]
