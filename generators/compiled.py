"""Compiled kernels for the per-item hot loops of generation.

Sampling, search, enumeration and trace checks run once or more per generated item, so they
are written as plain Python over numpy arrays and compiled by numba. ``kernel`` compiles a
function on its first call and caches the machine code on disk (next to the module, or in
numba's user cache when that folder is read-only), so later processes load it instead of
compiling. Kernels that write traces emit token ids (see ``generators.pencil.tokens_of``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

kernel = njit(cache=True, nogil=True)


@kernel
def room_for(out, used, extra):  # noqa: ANN001, ANN201 (compiled)
    """``out``, or a copy at least twice as long when ``extra`` more items would not fit
    after its first ``used``: kernels that write rows of unknown length into one array."""
    if used + extra <= out.size:
        return out
    bigger = np.empty(max(2 * out.size, used + extra), out.dtype)
    bigger[:used] = out[:used]
    return bigger
