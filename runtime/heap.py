"""Keep a streaming run's memory flat: glibc must return freed image buffers instead of keeping them.

glibc's malloc serves blocks above its mmap threshold (128 KiB at start) with mmap and unmaps them when
freed, but each time such a block is freed it raises the threshold to that block's size (up to 32 MiB).
Decoding images frees a few-MB buffer per file, so after the first ones the decoded images and each
chunk's 9.6 MB of pixels come from the heap instead, between small objects that live on (outputs,
labels); the heap then grows by a chunk now and then and is never trimmed. `mdx evaluate` of 62,400
images (224 px, no bootstrap) peaked at 163 MB against 136 MB for 624 that way (1.2x); with the
threshold fixed at 1 MiB, 149 MB (1.09x), in 133.2 s against 133.6 s. 128 KiB was flatter still but
17% slower (every decoded image a fresh mmap, paid in page faults); malloc_trim after every chunk
gave 158 MB. Measured on an AMD EPYC, benchmarks/README.md "evaluate_scale.py".
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD_BYTES = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_ENV = "MALLOC_MMAP_THRESHOLD_"  # glibc's own setting; a user who set it is obeyed


def bound_heap_growth() -> bool:
    """Fix glibc's mmap threshold for this process (streaming commands only: a fixed threshold would
    make training's mid-size tensors a fresh mmap each). True when it was set; False off glibc
    (macOS, musl) or when MALLOC_MMAP_THRESHOLD_ is set in the environment."""
    if not sys.platform.startswith("linux") or _ENV in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
