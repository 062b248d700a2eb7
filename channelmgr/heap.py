"""Giving freed memory back to the operating system after a large piece of work.

A reload of many mapping files (issue 13: 10,000 at a start) passes through hundreds of MB
that are freed when it ends: the texts read, the parsed files coming back from the worker
processes, the catalog sync's journal rows, the version recorded in the ledger. The C
library keeps such freed pages in the process (its heap cannot shrink below a live
allocation), so the daemon stayed at the high-water mark of its start for as long as it
ran. ``give_back`` asks glibc to return every whole free page (``malloc_trim``); on another
C library it does nothing. It takes milliseconds (20-40 ms on a 180 MB heap); call it off
the event loop. The daemon calls it 10 s after its start and once a minute.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache


@cache
def _trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only (musl has none)
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def give_back() -> bool:
    """Return the C heap's free pages to the system; True when there is a way to (glibc)."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
