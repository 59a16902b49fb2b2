"""Errors the user can act on.

Every problem with user input is raised as :class:`InputError`, which names the file and the
problem in one line. The CLI prints ``error: <file>: <problem>`` and exits 2; the GUI shows the
same text in a dialog. Nothing else should ever reach the user as a traceback.
"""

from __future__ import annotations

import os


class InputError(Exception):
    """A user-supplied file or folder cannot be used.

    Args:
        path: the offending file or folder (or a tag/parameter name when there is no file).
        problem: what is wrong, phrased for the user, without a trailing full stop.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = "" if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class OutputExistsError(InputError):
    """Refused to overwrite an existing output file (pass ``overwrite=True`` / ``--overwrite``)."""

    def __init__(self, path: str | os.PathLike):
        super().__init__(path, "already exists; refusing to overwrite it (use --overwrite)")
