"""Keep a long-running server's resident memory flat (glibc only; elsewhere a no-op).

Every batch allocates tensors of a different size (its tokens, its padding), from the model
thread, the event loop and the text thread. With glibc's defaults that memory is not given back:
freed large blocks raise the dynamic mmap threshold, so later ones come from heap arenas that
only grow, and each thread may get an arena of its own. Over a 5-minute soak the server's RSS
rose 16 % this way, with the live data unchanged. So, at start-up: at most two arenas, large
blocks (over 1 MB) always mapped and unmapped on free, and free heap above 32 MB trimmed.
``TAGSURE_SERVE_MALLOC=0`` leaves glibc's defaults (to compare, or to use another allocator).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
SETTINGS = {M_ARENA_MAX: 2, M_MMAP_THRESHOLD: 1024 * 1024, M_TRIM_THRESHOLD: 32 * 1024 * 1024}


def bound_malloc() -> bool:
    """Apply the settings above; False where the C library isn't glibc, or when turned off."""
    name = ctypes.util.find_library("c")
    if name is None or os.environ.get("TAGSURE_SERVE_MALLOC", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = all(mallopt(option, value) == 1 for option, value in SETTINGS.items())
    if not done:
        logger.warning("mallopt refused a setting; resident memory may grow under load")
    return done


def freeze_loaded() -> None:
    """Move every object alive now (the loaded model, its vocabularies, the imported modules)
    out of the garbage collector's reach (``gc.freeze``), so that a full collection under load
    walks only what requests allocate instead of pausing the event loop over the model too."""
    gc.collect()
    gc.freeze()
