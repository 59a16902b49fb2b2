"""The training backend as a child process: ``<python> -m autopaint_app.training --config run.json``.

The GUI never imports torch: the trainer runs in its own interpreter (``sys.executable`` by default,
any other Python with the package installed, e.g. a GPU machine's). stdout carries JSON lines
(``start``, ``step``, ``epoch``, ``done``, ``stopped``, ``error``), stderr the log. ``stop()``
sends SIGTERM (``QProcess.terminate``): the trainer finishes its step, saves ``latest.pt`` and
says ``stopped``. Any other end without ``done`` / ``stopped`` is a failure, reported with the
last log lines.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Signal

LOG_TAIL = 40
KILL_AFTER_MS = 30000  # a stop request that is not honoured in this time becomes a kill


class BackendProcess(QObject):
    """Runs one training session and turns its output into signals.

    Signals:
        event(dict): one parsed JSON line of stdout.
        log_line(str): one line of stderr (or a non-JSON stdout line).
        finished(str, str): outcome (``"done"``, ``"stopped"``, ``"failed"``) and a message; failures
            carry the exit status and the last log lines.
    """

    event = Signal(dict)
    log_line = Signal(str)
    finished = Signal(str, str)

    def __init__(self, python: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.python = python or sys.executable
        self.process: QProcess | None = None
        self.tail: deque[str] = deque(maxlen=LOG_TAIL)
        self.last_event: str | None = None
        self.stop_requested = False
        self._buffers = {"out": b"", "err": b""}
        self._kill_timer: int | None = None
        self.kill_after_ms = KILL_AFTER_MS

    def _cancel_kill_timer(self) -> None:
        """Forget a pending kill (it belongs to a process that has ended; a resumed one must live)."""
        if self._kill_timer is not None:
            self.killTimer(self._kill_timer)
            self._kill_timer = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def arguments(self, config_path: Path, resume: bool) -> list[str]:
        return ["-m", "autopaint_app.training", "--config", str(config_path)] + (["--resume"] if resume else [])

    def start(self, config_path: str | Path, resume: bool = False) -> None:
        """Start training with ``config_path``; ``resume`` continues from ``latest.pt``."""
        if self.running:
            raise RuntimeError("a training process is already running")
        self.tail.clear()
        self.last_event, self.stop_requested = None, False
        self._buffers = {"out": b"", "err": b""}
        process = QProcess(self)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONUNBUFFERED", "1")
        environment.insert("PYTHONWARNINGS", "ignore")  # library chatter belongs to the log, not to dialogs
        process.setProcessEnvironment(environment)
        process.setWorkingDirectory(str(Path(config_path).parent))
        process.readyReadStandardOutput.connect(lambda: self._read("out"))
        process.readyReadStandardError.connect(lambda: self._read("err"))
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self.process = process
        self.log_line.emit(f"$ {self.python} {' '.join(self.arguments(Path(config_path), resume))}")
        process.start(self.python, self.arguments(Path(config_path), resume))

    def stop(self) -> None:
        """Ask for a clean stop (SIGTERM); the trainer saves its checkpoint and says ``stopped``."""
        if not self.running:
            return
        self.stop_requested = True
        self.process.terminate()
        if self._kill_timer is None:
            self._kill_timer = self.startTimer(int(self.kill_after_ms))

    def kill(self) -> None:
        """End the process at once (no checkpoint of the current epoch)."""
        if self.running:
            self.process.kill()

    def timerEvent(self, timer_event) -> None:
        self._cancel_kill_timer()
        if self.running:
            seconds = self.kill_after_ms / 1000
            self.tail.append(f"the trainer did not stop within {seconds:g} s of the stop request; killed")
            self.log_line.emit(self.tail[-1])
            self.stop_requested = False  # a forced kill is a failure: the last step may not be saved
            self.process.kill()

    def _read(self, stream: str) -> None:
        process = self.process
        data = process.readAllStandardOutput() if stream == "out" else process.readAllStandardError()
        *lines, rest = (self._buffers[stream] + bytes(data)).split(b"\n")
        self._buffers[stream] = rest
        for raw in lines:
            self._line(raw.decode("utf-8", errors="replace").rstrip("\r"), stream)

    def _line(self, text: str, stream: str) -> None:
        if not text.strip():
            return
        if stream == "out":
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict) and "event" in record:
                self.last_event = record["event"]
                if record["event"] == "error":
                    self.tail.append(f"error: {record.get('message')}")
                self.event.emit(record)
                return
        self.tail.append(text)
        self.log_line.emit(text)

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.process = None
            self.finished.emit("failed", f"could not start the training backend with {self.python!r} "
                                         f"(is it a Python with autopaint_app installed?)")

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        for stream in ("out", "err"):
            if self._buffers[stream]:
                self._line(self._buffers[stream].decode("utf-8", errors="replace"), stream)
                self._buffers[stream] = b""
        self.process = None
        self._cancel_kill_timer()
        if exit_code == 0 and exit_status == QProcess.ExitStatus.NormalExit and self.last_event in ("done", "stopped"):
            self.finished.emit(self.last_event, "")
            return
        if self.stop_requested and self.last_event in (None, "start"):
            self.finished.emit("stopped", "stopped before the first training step: no checkpoint of this session")
            return
        how = ("was killed or crashed" if exit_status == QProcess.ExitStatus.CrashExit
               else f"exited with code {exit_code}")
        tail = "\n".join(self.tail) or "(no log output)"
        self.finished.emit("failed", f"The training backend {how} before finishing.\nLast log lines:\n{tail}")
