"""A background-thread iterator, so that producing the next item (reading, computing, formatting a
part of a replacement) overlaps with the consumer's work on the current one (the server writing it).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable


class Prefetch:
    """Iterate ``iterable`` in a background thread, at most ``depth`` items ahead. Exceptions are
    re-raised in the consumer; ``close()`` stops the producer (and closes ``iterable``) and waits for it."""

    _DONE = object()

    def __init__(self, iterable: Iterable, depth: int = 1):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(iter(iterable),), daemon=True,
                                        name="cryptoetl-prefetch")
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, iterator) -> None:
        try:
            for item in iterator:
                if not self._put((True, item)):
                    return
            self._put((True, self._DONE))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((False, exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def __iter__(self):
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is self._DONE:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
