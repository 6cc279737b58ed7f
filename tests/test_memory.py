import psutil
import pytest

from mimicry.memory import _malloc_trim, release_memory


def resident_bytes() -> int:
    return psutil.Process().memory_info().rss


@pytest.mark.skipif(_malloc_trim() is None, reason="needs glibc's malloc_trim")
def test_release_memory_returns_freed_heap_pages_to_the_system():
    # 300 MB in blocks under glibc's mmap threshold come from the heap; a block allocated after them
    # pins the heap's top, so freeing them leaves a hole that free() alone keeps mapped.
    blocks = [bytearray(100_000) for _ in range(3000)]
    pin = bytearray(100_000)
    before_free = resident_bytes()
    del blocks
    held = resident_bytes()
    release_memory()
    released = resident_bytes()
    assert held > before_free - 100_000_000, "free() alone already returned the blocks: the test shows nothing"
    assert held - released > 200_000_000
    del pin
