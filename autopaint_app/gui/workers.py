"""Background jobs: run a core generator in a worker thread, report progress/ETA, cancel on request.

Habit 2 of ARCHITECTURE.md: long work is a generator that yields at safe points; superqt's
``create_worker`` runs it in Qt's thread pool and ``quit()`` stops it at the next ``yield``. The
GUI thread never loops on ``processEvents``.

One :class:`JobRunner` runs one job at a time (starting a new job cancels the running one, whose
late results are then dropped). Any generator plugs in::

    runner.run("Autopaint", run_autopaint, case, params, predictor=model,
               on_item=show_slice_result, on_result=show_final, to_progress=progress_of)

``on_item`` receives every yielded item (e.g. per-slice intermediates to draw as they come);
``to_progress`` turns an item into a :class:`~autopaint_app.gui.case_jobs.Progress` (items that
already are one need no adapter).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal, Slot
from superqt.utils import GeneratorWorker, create_worker

from autopaint_app.gui.case_jobs import Progress


class JobCrashed(Exception):
    """A ``RuntimeError`` raised inside a job, re-raised as this type.

    superqt treats a ``RuntimeError`` from a worker as "the Qt object was deleted": it only warns
    and emits neither ``errored`` nor ``finished``, so the job would hang as busy forever.
    SimpleITK and many libraries raise ``RuntimeError`` for ordinary failures, so the runner wraps
    every job (:func:`_runtime_errors_reported`). ``str()`` is ``"RuntimeError: <message>"``.
    """

    def __init__(self, original: RuntimeError):
        super().__init__(f"{type(original).__name__}: {original}")
        self.original = original


def _runtime_errors_reported(generator_function: Callable, *args, **kwargs):
    """Run ``generator_function`` as a generator, turning a RuntimeError into :class:`JobCrashed`."""
    try:
        return (yield from generator_function(*args, **kwargs))
    except RuntimeError as exc:
        raise JobCrashed(exc) from exc


def eta_seconds(done: int, total: int, elapsed_s: float) -> float:
    """Remaining time by linear extrapolation; NaN until one step is done or when total is unknown."""
    if done <= 0 or total <= 0 or done > total:
        return math.nan
    return elapsed_s / done * (total - done)


class _JobRelay(QObject):
    """Receives one worker's signals on the GUI thread (queued) and forwards them to the runner."""

    def __init__(self, runner: "JobRunner", name: str, on_item, on_result, to_progress):
        super().__init__(runner)
        self.runner, self.name = runner, name
        self.on_item, self.on_result, self.to_progress = on_item, on_result, to_progress
        self.started_at = time.perf_counter()
        self.cancelled = False

    @Slot(object)
    def yielded(self, item: Any) -> None:
        if self.cancelled:
            return
        if self.on_item is not None:
            self.on_item(item)
        progress = item if isinstance(item, Progress) else (self.to_progress(item) if self.to_progress else None)
        if progress is not None:
            elapsed = time.perf_counter() - self.started_at
            self.runner.progress_changed.emit(progress.done, progress.total, progress.message,
                                              eta_seconds(progress.done, progress.total, elapsed))

    @Slot(object)
    def returned(self, result: Any) -> None:
        if not self.cancelled and self.on_result is not None:
            self.on_result(result)

    @Slot(object)
    def errored(self, exc: Exception) -> None:
        if not self.cancelled:
            self.runner.job_failed.emit(self.name, exc)

    @Slot()
    def aborted(self) -> None:
        self.runner.job_cancelled.emit(self.name)

    @Slot()
    def finished(self) -> None:
        self.runner._forget(self)
        self.runner.job_finished.emit(self.name, time.perf_counter() - self.started_at)
        self.deleteLater()


class JobRunner(QObject):
    """Runs generator jobs in a worker thread, one at a time.

    Signals:
        job_started(name): a job began.
        progress_changed(done, total, message, eta_s): after each progress item (eta NaN = unknown).
        job_failed(name, exception): the job raised (InputError for bad input; shown as a dialog).
        job_cancelled(name): the job stopped at a yield after :meth:`cancel`.
        job_finished(name, seconds): the job ended, whatever the outcome (always last).
    """

    job_started = Signal(str)
    progress_changed = Signal(int, int, str, float)
    job_failed = Signal(str, object)
    job_cancelled = Signal(str)
    job_finished = Signal(str, float)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._worker: GeneratorWorker | None = None
        self._relay: _JobRelay | None = None
        self._running: list[GeneratorWorker] = []

    @property
    def is_busy(self) -> bool:
        """True while a job is running (cancelled jobs still draining count too)."""
        return bool(self._running)

    def run(self, name: str, generator_function: Callable, *args,
            on_item: Callable[[Any], None] | None = None, on_result: Callable[[Any], None] | None = None,
            to_progress: Callable[[Any], Progress | None] | None = None, **kwargs) -> GeneratorWorker:
        """Start ``generator_function(*args, **kwargs)`` in a worker thread (cancelling any running job).

        Args:
            name: what the status bar calls the job.
            generator_function: a generator function (yields items; its ``return`` value is the result).
            on_item: called on the GUI thread with every yielded item.
            on_result: called on the GUI thread with the return value (not after cancel or error).
            to_progress: maps a yielded item to a Progress (or None) for the progress bar.

        Returns:
            The started superqt worker (``quit()`` cancels it; prefer :meth:`cancel`).
        """
        self.cancel()
        relay = _JobRelay(self, name, on_item, on_result, to_progress)
        worker = create_worker(_runtime_errors_reported, generator_function, *args, _start_thread=False,
                               _connect={"errored": relay.errored}, **kwargs)
        worker.yielded.connect(relay.yielded)
        worker.returned.connect(relay.returned)
        worker.aborted.connect(relay.aborted)
        worker.finished.connect(relay.finished)
        relay.worker = worker
        self._worker, self._relay = worker, relay
        self._running.append(worker)
        self.job_started.emit(name)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the running job to stop at its next yield; its later items and result are dropped."""
        if self._worker is not None and self._relay is not None:
            self._relay.cancelled = True
            self._worker.quit()
        self._worker, self._relay = None, None

    def _forget(self, relay: _JobRelay) -> None:
        if relay.worker in self._running:
            self._running.remove(relay.worker)
        if self._relay is relay:
            self._worker, self._relay = None, None

    def wait_idle(self, msecs: int = 10000) -> bool:
        """Block until every worker thread has ended (shutdown and tests only; never from a slot)."""
        try:
            GeneratorWorker.await_workers(msecs)
        except RuntimeError:  # superqt raises when a worker is still inside a long step (one forward pass)
            return False
        return not any(worker.is_running for worker in self._running)
