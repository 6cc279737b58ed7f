"""Hand memory a finished stage freed back to the operating system.

A grid runs many trainings and evaluations in one process. Their tensors are freed when a stage
ends, but glibc keeps the freed heap pages mapped (tensors under its mmap threshold, which rises
as large blocks are freed, come from the heap), so the process grew by about 3 GB a cell with the
0.5B model until the kernel killed it. `malloc_trim` returns those pages; elsewhere this only
collects garbage.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)


def release_memory() -> None:
    """Collect unreachable objects (models in reference cycles), then return free heap pages."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
