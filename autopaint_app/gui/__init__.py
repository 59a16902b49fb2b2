"""Desktop GUI (PySide6 + pyqtgraph)."""
