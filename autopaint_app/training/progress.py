"""Training progress for people and for the GUI: JSON lines on stdout, tqdm on a terminal, stop signals.

Every line on stdout is one JSON object with an ``event``: ``"start"``, ``"step"``, ``"epoch"``,
``"done"``, ``"stopped"`` or ``"error"`` (fields in ``train.py``'s docstring). Log messages go to
stderr and ``train.log``, never to stdout, so a reader can parse every stdout line.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from typing import TextIO


def json_safe(value):
    """JSON-safe copy: non-finite floats become None (JSON has no inf/nan)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


class Progress:
    """Emits JSON lines and keeps an ETA; shows a tqdm bar on stderr when stderr is a terminal.

    Args:
        total_steps: Steps of the whole run (all epochs).
        done_steps: Steps already done (resumed runs).
        stream: Where the JSON lines go (stdout).
    """

    def __init__(self, total_steps: int, done_steps: int = 0, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.total_steps = total_steps
        self.start_steps = done_steps
        self.done_steps = done_steps
        self.started = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=done_steps, file=sys.stderr, unit="step")

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    @property
    def eta_s(self) -> float | None:
        """Remaining seconds at this session's mean pace (validation included); None before a step."""
        steps = self.done_steps - self.start_steps
        if steps <= 0:
            return None
        return (self.total_steps - self.done_steps) * self.elapsed_s / steps

    def step_done(self) -> None:
        self.done_steps += 1
        if self.bar is not None:
            self.bar.update(1)

    def emit(self, event: str, **fields) -> dict:
        """Write one JSON line ``{"event": event, ..., "elapsed_s", "eta_s"}`` and flush it."""
        eta = self.eta_s
        record = {"event": event, **fields, "elapsed_s": round(self.elapsed_s, 3),
                  "eta_s": None if eta is None else round(eta, 1)}
        record = json_safe(record)
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()
        if self.bar is not None and event == "step" and "losses" in fields:
            self.bar.set_postfix(loss=f"{fields['losses'].get('total', float('nan')):.4f}", refresh=False)
        return record

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class StopRequest:
    """Turns SIGINT / SIGTERM into a flag the training loop checks between steps.

    Use as a context manager; the previous handlers come back on exit. A second signal while
    the flag is already set still only sets the flag: the current step finishes and is saved.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, _frame) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: the caller stops us some other way
                break
        return self

    def __exit__(self, *_exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
