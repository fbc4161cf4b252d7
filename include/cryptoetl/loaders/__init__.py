"""Step bodies: one module per step (or family of steps), each ``run_*(ctx, interval) -> rows written``.

Helpers shared by several loaders live here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

IN_LIST_SIZE = 500  # ids per SQL ``IN (...)`` list


def chunks(values: Iterable, size: int = IN_LIST_SIZE) -> Iterator[list]:
    """``values`` in lists of at most ``size``, in order (for IN lists of bounded length)."""
    values: Sequence = list(values)
    for i in range(0, len(values), size):
        yield list(values[i:i + size])
