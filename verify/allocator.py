"""Keep freed memory in the process while the Monte Carlo runs (glibc's malloc thresholds).

A draw of the 3x256x256 net allocates and frees tensors of 33-67 MB. glibc serves every
allocation above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and returns it with
``munmap`` when freed, so each draw maps ~1 GB anew and takes ~30,000 minor page faults
(the kernel zeroes every page on first touch): 22-29% of a draw on 2 CPU cores, measured by
``bench/bench_engine.py``. ``retain_freed_memory()`` turns mmap off for new allocations
(``M_MMAP_MAX = 0``) and never trims the heap (``M_TRIM_THRESHOLD``), so later draws
reuse the first draw's pages: 0 faults per draw at 256 pixels in steady state (torch asks
for 64-byte aligned blocks, so now and then a block no longer fits the hole its twin left and
is mapped anew: a draw of 16 inputs of 64 pixels keeps about a third of its faults). On exit
it restores glibc's defaults and hands the free pages back (``malloc_trim``). Where the C
library is not glibc (macOS, musl) it does nothing.

The numbers do not change: only where the bytes live.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from typing import Iterator

__all__ = ["glibc_available", "retain_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc's defaults (malloc/malloc.c): DEFAULT_TRIM_THRESHOLD and DEFAULT_MMAP_MAX
_DEFAULT_TRIM = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
_NEVER_TRIM = 2**31 - 1

_lock = threading.Lock()
_depth = 0
_libc: ctypes.CDLL | None = None
_probed = False


def _glibc() -> ctypes.CDLL | None:
    global _libc, _probed
    if not _probed:
        _probed = True
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            # gnu_get_libc_version exists only in glibc: mallopt's parameter numbers are glibc's
            lib.gnu_get_libc_version.restype = ctypes.c_char_p
            lib.gnu_get_libc_version()
            lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            _libc = lib
        except (OSError, AttributeError):
            _libc = None
    return _libc


def glibc_available() -> bool:
    """Whether the process runs on glibc (where ``retain_freed_memory`` has an effect)."""
    return _glibc() is not None


@contextlib.contextmanager
def retain_freed_memory(enabled: bool = True) -> Iterator[bool]:
    """Keep freed memory for reuse inside the block; yields whether that is in effect.

    Nested and concurrent uses share one setting: the defaults come back when the outermost
    block exits.
    """
    global _depth
    lib = _glibc() if enabled else None
    if lib is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            lib.mallopt(_M_MMAP_MAX, 0)
            lib.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                lib.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                lib.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM)
                lib.malloc_trim(0)
