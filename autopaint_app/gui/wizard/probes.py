"""Short backend questions answered in a child process: which devices torch sees, what a run will cost.

The GUI never imports torch: ``python -m autopaint_app.training.devices`` and ``python -m
autopaint_app.training --estimate --config run.json`` run with the trainer's interpreter (possibly
a GPU machine's Python) and print one JSON line each. :class:`JsonLineProcess` runs one such
command as a QProcess and reports the last JSON record, or why there is none.
"""

from __future__ import annotations

import json
from collections import deque

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal
from shiboken6 import isValid

DEVICE_PROBE_ARGS = ["-m", "autopaint_app.training.devices"]
LOG_TAIL = 12


def estimate_args(config_path: str, steps: int = 3) -> list[str]:
    """Arguments of the backend's cost estimate for ``config_path`` (``steps`` timed training steps)."""
    return ["-m", "autopaint_app.training", "--estimate", "--estimate-steps", str(steps), "--config", config_path]


class JsonLineProcess(QObject):
    """Runs ``<python> <args>`` and reports its last JSON object line.

    Signals:
        finished(dict, str): the record (``{}`` on failure) and an error message (``""`` on success;
            else the exit status, the time limit or the missing output, with the last stderr lines).
    """

    finished = Signal(dict, str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.process: QProcess | None = None
        self._stdout = b""
        self._stderr: deque[str] = deque(maxlen=LOG_TAIL)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timeout)
        self._timed_out = False

    @property
    def running(self) -> bool:
        return self.process is not None

    def start(self, python: str, args: list[str], timeout_ms: int = 600000, working_dir: str | None = None) -> None:
        """Start the command (a running one is killed first); the answer comes through :attr:`finished`."""
        self.cancel()
        self._stdout, self._timed_out = b"", False
        self._stderr.clear()
        process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONWARNINGS", "ignore")
        process.setProcessEnvironment(environment)
        if working_dir:
            process.setWorkingDirectory(working_dir)
        process.readyReadStandardOutput.connect(lambda: self._read_stdout(process))
        process.readyReadStandardError.connect(lambda: self._read_stderr(process))
        process.finished.connect(lambda code, status: self._on_finished(process, code, status))
        process.errorOccurred.connect(lambda error: self._on_error(process, error))
        self.process = process
        self._timer.start(int(timeout_ms))
        process.start(python, args)

    def cancel(self) -> None:
        """Forget the running command (killed; no :attr:`finished` for it)."""
        process, self.process = self.process, None
        self._timer.stop()
        if process is not None:
            process.blockSignals(True)
            process.kill()
            process.waitForFinished(3000)
            process.deleteLater()

    def _current(self, process: QProcess) -> bool:
        """True for the running command's process (not a cancelled one, nor one Qt is destroying)."""
        return process is self.process and isValid(process) and isValid(self)

    def _read_stdout(self, process: QProcess) -> None:
        if self._current(process):
            self._stdout += bytes(process.readAllStandardOutput())

    def _read_stderr(self, process: QProcess) -> None:
        if self._current(process):
            text = bytes(process.readAllStandardError()).decode("utf-8", errors="replace")
            self._stderr.extend(line for line in text.splitlines() if line.strip())

    def _on_timeout(self) -> None:
        if self.process is not None:
            self._timed_out = True
            self.process.kill()

    def _on_error(self, process: QProcess, error: QProcess.ProcessError) -> None:
        if self._current(process) and error == QProcess.ProcessError.FailedToStart:
            self.process = None
            self._timer.stop()
            self.finished.emit({}, f"could not start {process.program()!r} (is it a Python interpreter?)")

    def _on_finished(self, process: QProcess, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        if not self._current(process):
            return
        self._read_stdout(process)
        self._read_stderr(process)
        self.process = None
        self._timer.stop()
        process.deleteLater()
        record = last_json_record(self._stdout.decode("utf-8", errors="replace"))
        tail = "\n".join(self._stderr)
        if self._timed_out:
            self.finished.emit({}, f"no answer within the time limit; last log lines:\n{tail}")
        elif exit_status != QProcess.ExitStatus.NormalExit or exit_code != 0 or record is None:
            how = "crashed" if exit_status != QProcess.ExitStatus.NormalExit else f"exited with code {exit_code}"
            self.finished.emit({}, f"the backend {how}" + (" without an answer" if record is None else "") +
                               (f"; last log lines:\n{tail}" if tail else ""))
        else:
            self.finished.emit(record, "")


def last_json_record(text: str) -> dict | None:
    """The last line of ``text`` that is a JSON object with an ``event``, else None."""
    for line in reversed(text.splitlines()):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "event" in record:
            return record
    return None
