"""Turn SIGUSR2 / SIGTERM into a flag the training loop checks at step boundaries.

The loop saves a checkpoint at the next step boundary (never mid-step), then hands the signal
on to whatever Python handler was installed before (e.g. submitit's, which requeues the job and
exits, or its SIGTERM "bypass", which only logs), so this composes with submitit instead of
replacing it. If that handler returns, training goes on (``rearm``); without a Python handler
to hand over to, the loop raises ``TrainingInterrupted`` instead.
"""

from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


class StopSignals:
    """Context manager; ``received`` is the first signal number caught, else None."""

    def __init__(self, signals=SIGNALS):
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def restore(self) -> None:
        for s, prev in self._previous.items():
            signal.signal(s, prev)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self.restore()

    def rearm(self) -> None:
        """Catch signals again after a forwarded one was handled without exiting."""
        self.received = None
        self.__enter__()

    def forward(self) -> bool:
        """Restore the previous handlers and re-deliver the caught signal if one of them is a
        Python handler (returns True then). Default/ignored handlers are not re-delivered: the
        caller raises instead of letting SIG_DFL kill the process without a clean exit."""
        signum, prev = self.received, self._previous.get(self.received)
        self.restore()
        if signum is not None and callable(prev):
            os.kill(os.getpid(), signum)
            return True
        return False
