"""An injectable wall clock, so tests can age stored files past 24 h without waiting."""

from __future__ import annotations

import threading
import time


class Clock:
    """Real time plus an offset that only ever grows (``POST /_emulator/clock``)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
