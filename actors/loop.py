"""A background thread per actor: the actor's work loop, kept alive through errors."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger(__name__)


class Loop:
    """A daemon thread calling ``self._tick()`` until stopped."""

    def _start(self, name: str) -> None:
        self._stop = threading.Event()
        self.lock = threading.Lock()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # keep the actor alive and visible in status()
                logger.exception("%s tick failed", type(self).__name__)
                self.error = f"{type(exc).__name__}: {exc}"
                time.sleep(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
